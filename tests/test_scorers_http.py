"""The generic HTTP reward scorer against a loopback server shaped like vLLM's pooling API (the way
Qwen2.5-Math-PRM-7B is served), and the scorer helpers (template filling, JSON paths, self-certainty,
step-tag reading of an RLHFlow-shaped answer). The ORM and step-tag scorers are tested against
the stand-in SGLang server in test_scorers_sim.py."""

import json
import math
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import FAST

from planner.errors import InputError
from sglang_plugin.scorers import HttpRewardScorer, SelfCertaintyScorer, StepTagScorer, make_scorer
from sglang_plugin.scorers.base import render
from sglang_plugin.scorers.http_reward import json_path
from sglang_plugin.transport.http import EndpointError
from sglang_plugin.transport.ledger import CostLedger


class _PoolingHandler(BaseHTTPRequestHandler):
    """POST /pooling {"model", "input": [text]} -> per text, [P(bad), P(good)] at each <extra_0>; a step
    is good when its last paragraph says "correct"."""

    protocol_version = "HTTP/1.1"
    requests: list = []
    fail_first = 0

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            return self._send(503, {"error": "warming up"})
        if body.get("model") != "Qwen/Qwen2.5-Math-PRM-7B":
            return self._send(400, {"error": "unknown model"})
        data, tokens = [], 0
        for index, text in enumerate(body["input"]):
            steps = text.split("<extra_0>")[:-1]
            good = [0.9 if "correct" in step.strip().split("\n\n")[-1] else 0.2 for step in steps]
            data.append({"index": index, "data": [[1 - g, g] for g in good]})
            tokens += len(text.split())
        self._send(200, {"data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _send(self, status, payload):
        raw = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture()
def pooling_server():
    _PoolingHandler.requests, _PoolingHandler.fail_first = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PoolingHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


CANDIDATES = [["First, a correct step.\n\n", "Then a wrong one.\n\n", "So \\boxed{3}."],
              ["A correct start.\n\n", "And correct again: \\boxed{4}."]]


def test_vllm_prm_scores_every_step_in_one_request(pooling_server):
    scorer = HttpRewardScorer.vllm_qwen_prm(pooling_server, transport=FAST)
    ledger = CostLedger()
    scores = scorer.score_steps("What is 1+2?", CANDIDATES, ledger)
    assert scores == [[0.9, 0.2, 0.2], [0.9, 0.9]]
    (request,) = _PoolingHandler.requests
    assert request["model"] == "Qwen/Qwen2.5-Math-PRM-7B"
    first = request["input"][0]
    assert first.startswith("<|im_start|>system\n") and "What is 1+2?" in first
    assert first.count("<extra_0>") == 3 and "First, a correct step.<extra_0>Then" in first
    assert ledger.cost.reward_tokens == sum(len(t.split()) for t in request["input"])
    assert ledger.cost.requests == 1
    assert scorer.score_last("What is 1+2?", CANDIDATES, CostLedger()) == [0.2, 0.9]


def test_retries_5xx_then_succeeds_and_counts_the_retry(pooling_server):
    _PoolingHandler.fail_first = 2
    ledger = CostLedger()
    scores = HttpRewardScorer.vllm_qwen_prm(pooling_server, transport=FAST).score_last("q", CANDIDATES, ledger)
    assert scores == [0.2, 0.9]
    assert len(_PoolingHandler.requests) == 3 and ledger.retries == 2


def test_gives_up_after_the_documented_attempts(pooling_server):
    _PoolingHandler.fail_first = 10
    transport = replace(FAST, max_retries=2)
    with pytest.raises(EndpointError) as caught:
        HttpRewardScorer.vllm_qwen_prm(pooling_server, transport=transport).score_last("q", CANDIDATES, CostLedger())
    assert caught.value.status == 503 and caught.value.attempts == 3
    assert len(_PoolingHandler.requests) == 3


def test_4xx_is_not_retried(pooling_server):
    scorer = HttpRewardScorer.vllm_qwen_prm(pooling_server, model="other/model", transport=FAST)
    with pytest.raises(EndpointError) as caught:
        scorer.score_last("q", CANDIDATES, CostLedger())
    assert caught.value.status == 400 and "unknown model" in str(caught.value)
    assert len(_PoolingHandler.requests) == 1


def test_one_text_per_request_and_outcome_scores_through_prefixes(pooling_server):
    scorer = HttpRewardScorer(
        pooling_server + "/pooling", request={"model": "Qwen/Qwen2.5-Math-PRM-7B", "input": ["{text}"]},
        scores_path="data[0].data[-1][1]", per_step=False, template="{problem}\n{response}<extra_0>",
        transport=FAST)
    scores = scorer.score_steps("q", CANDIDATES, CostLedger())
    assert scores == [[0.9, 0.2, 0.2], [0.9, 0.9]]
    assert len(_PoolingHandler.requests) == 5  # one per prefix
    assert _PoolingHandler.requests[1]["input"] == ["q\nFirst, a correct step.\n\nThen a wrong one.\n\n<extra_0>"]


def test_a_wrong_number_of_step_scores_is_an_error(pooling_server):
    scorer = HttpRewardScorer.vllm_qwen_prm(pooling_server, step_separator="<sep>", transport=FAST)
    with pytest.raises(EndpointError, match="step scores"):
        scorer.score_steps("q", CANDIDATES, CostLedger())


def test_request_template_needs_a_placeholder():
    with pytest.raises(InputError, match="placeholder"):
        HttpRewardScorer("http://127.0.0.1:1", request={"input": "x"}, scores_path="data")


def test_json_path():
    document = {"data": [{"data": [[0.1, 0.9], [0.3, 0.7]]}, {"data": [[0.5, 0.5]]}], "usage": {"n": 3}}
    assert json_path(document, "usage.n") == 3
    assert json_path(document, "data[*].data[-1][1]") == [0.7, 0.5]
    assert json_path(document, "data[5].data") is None
    assert json_path(document, "missing.key") is None


def test_render_leaves_braces_in_values_alone():
    text = render("P: {problem} R: {response}", problem="f(x) = {x}", response="\\boxed{2} {problem}")
    assert text == "P: f(x) = {x} R: \\boxed{2} {problem}"


def test_self_certainty_is_higher_for_a_peaked_distribution():
    scorer = SelfCertaintyScorer(top_k=3)
    peaked = {"output_top_logprobs": [[[-0.01, 1, None], [-5.0, 2, None], [-6.0, 3, None]]] * 4}
    flat = {"output_top_logprobs": [[[-1.1, 1, None], [-1.1, 2, None], [-1.1, 3, None]]] * 4}
    assert scorer.step_score(flat) == pytest.approx(0.0, abs=1e-9)
    assert 0.5 < scorer.step_score(peaked) < 1.0
    assert scorer.gen_options() == {"return_logprob": True, "top_logprobs_num": 3, "logprob_start_len": -1}
    with pytest.raises(EndpointError, match="output_top_logprobs"):
        scorer.step_score({})


def test_make_scorer():
    assert make_scorer("none") is None
    assert isinstance(make_scorer("self_certainty", top_k=4), SelfCertaintyScorer)
    with pytest.raises(InputError, match="URL"):
        make_scorer("orm")
    with pytest.raises(InputError, match="unknown scorer"):
        make_scorer("magic", "http://x")


def test_step_tags_with_context_skip_the_same_token_inside_steps():
    """RLHFlow's label "+" also appears in math: only a "+" after <|end_header_id|> "\n\n" is a tag."""
    scorer = StepTagScorer.rlhflow("http://127.0.0.1:1")
    assert "2+3" in scorer.format("q", ["So 2+3 = 5.\n\n", "Done."])  # steps keep their "+"
    ids = [5, 10, 7, 128007, 271, 10, 9, 10, 128007, 271, 10, 4]  # "+" inside a step at 1 and 7
    good, bad = math.log(0.8), math.log(0.2)
    chosen = [None] + [[[good, 10, None], [bad, 12, None]] if i == 5 else [[bad, 10, None], [good, 12, None]]
                       for i in range(1, len(ids))]
    item = {"meta_info": {"input_token_logprobs": [[None if i == 0 else -1.0, t, None] for i, t in enumerate(ids)],
                          "input_token_ids_logprobs": chosen}}
    assert scorer._rewards(item, 2) == pytest.approx([0.8, 0.2])
    assert scorer._rewards(item, None) == pytest.approx([0.2])
    with pytest.raises(EndpointError, match="found 2 step tags for 3"):
        scorer._rewards(item, 3)
