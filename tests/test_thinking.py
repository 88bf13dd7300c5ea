"""Long-thinking policies on the stand-in server's thinking profile, over real HTTP with the real sglang frontend:
trace confidence as DeepConf defines it, both ways SGLang streams chunks, confidence traces streamed or in
segments, online and offline DeepConf (cut traces aborted, every generated token counted by client and server
alike), thinking and answer tokens apart, the adaptive solver taking confidence as evidence, gpt-oss's harmony
channels, and `tts-planner run --strategy deepconf` directly and through the SGLang Model Gateway."""

import json
import math
from dataclasses import replace

import pytest
import sglang as sgl
from conftest import FAST, PROBLEMS, RECORDS, SAMPLE, cli, lines, needs_smg, settings, sim_stats, write_problems

from planner.adaptive import MAX_SAMPLES, budget_from_tokens
from planner.belief.evidence import ConfidenceEvidence
from planner.confidence import TraceConfidence, kept, percentile, stop_threshold, token_confidence
from planner.errors import InputError
from planner.grading import final_answer
from planner.planning.table import StrategyTable
from planner.policies import DEFAULT_POLICY, Thinking, known_policy
from planner.records import ResultLine
from sglang_plugin import Endpoint, Planning, solve
from sglang_plugin.config import SearchConfig, SolveConfig
from sglang_plugin.programs.traces import apportioned
from sglang_plugin.sim.server import SimServer
from sglang_plugin.sim.thinking import ThinkingParams
from sglang_plugin.transport.http import TransportConfig
from sglang_plugin.transport.streams import StreamReader

SHORT = ThinkingParams(easy_median_tokens=600, hard_median_tokens=2400)  # traces of a few thousand tokens
WINDOW = 256
EASY = PROBLEMS[0].__class__("What is 6 times 7? Give the product.", "42", 1.0)
PROMPT = "<｜User｜>What is 2+2?<｜Assistant｜><think>\n"


def config(**search) -> SolveConfig:
    return SolveConfig(search=SearchConfig(confidence_window=WINDOW, **search))


@pytest.fixture(scope="module")
def thinking():
    with SimServer([*PROBLEMS, EASY], thinking=True, seed=4, thinking_params=SHORT) as server:
        yield server


# -- the confidence arithmetic --------------------------------------------------------------------------------

def test_token_and_trace_confidence_follow_deepconf():
    assert token_confidence([[-0.1, 5, "a"], [-2.0, 6, "b"]]) == pytest.approx(1.05)
    assert token_confidence([[None, 5, "a"]]) is None
    trace = TraceConfidence(window=3)
    trace.add([1.0, 2.0])
    assert not trace.full and trace.current is None and trace.score == pytest.approx(1.5)  # mean while short
    assert not trace.fell_below(10.0)  # no whole window yet: nothing to stop on
    trace.add([3.0, 0.0, 0.0, 6.0, 6.0, 6.0])
    assert trace.full and trace.current == pytest.approx(6.0)
    assert trace.score == pytest.approx(1.0)  # the lowest window mean, (3 + 0 + 0) / 3 ... then (0 + 0 + 6) / 3
    assert trace.fell_below(1.5) and not trace.fell_below(0.5)  # a dip seen between two reads still counts
    with pytest.raises(ValueError):
        TraceConfidence(window=0)


def test_thresholds_and_the_offline_filter():
    scores = [float(v) for v in range(1, 9)]
    assert percentile(scores, 0.5) == pytest.approx(4.5)
    assert stop_threshold(scores, 0.1) == pytest.approx(percentile(scores, 0.9))  # DeepConf-low: 90th percentile
    assert kept(scores, 0.9) == list(range(1, 8))  # 7 of 8 at 90%, the least confident dropped
    assert kept(scores, 0.1) == [7]
    assert kept([None, 2.0, None, 1.0], 0.5) == [1]
    assert kept([None, None], 0.5) == []


def test_confidence_evidence_favours_confident_traces():
    evidence = ConfidenceEvidence.from_auroc(0.8)
    ratios = evidence.log_ratios([17.0, 15.0, None, 16.0])
    assert ratios[0] > ratios[3] > ratios[1] and ratios[2] == 0.0
    assert ConfidenceEvidence.from_auroc(0.5).log_ratios([1.0, 2.0]) == [0.0, 0.0]
    assert evidence.log_ratios([3.0]) == [0.0]  # one trace: nothing to compare with
    with pytest.raises(InputError, match="confidence_auroc"):
        ConfidenceEvidence.from_auroc(1.0)


def test_answers_are_read_after_the_thinking():
    end = "</think>"
    assert final_answer("<think>\nmaybe \\boxed{3}? no.\n</think>\nSo $\\boxed{4}$.", end) == "4"
    assert final_answer("<think>\nlet me think, the answer is 5 or", end) is None  # cut inside its thinking
    assert final_answer("<think>\nit must be \\boxed{7} then, and", end) == "7"  # cut, but it boxed one
    assert apportioned(100, "abcd</think>xxxxxxxxxxxxxxxxxxxxxxxx", end) == 33
    assert apportioned(100, "no end here", end) is None


# -- streams and segments ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("incremental", [True, False])
def test_a_stream_reads_the_same_logprobs_in_either_chunk_format(incremental):
    """SGLang 0.5.2 (and later releases by default) re-send every logprob so far in each chunk; servers started
    with --incremental-streaming-output send only the new ones. The reader hands out each token once, and the
    endpoint's probe tells the two apart."""
    with SimServer(thinking=True, seed=2, thinking_params=SHORT, incremental_streaming_output=incremental) as server:
        endpoint = Endpoint(server.url, transport=FAST)
        options = {"return_logprob": True, "top_logprobs_num": 5, "logprob_start_len": -1}
        sampling = {"max_new_tokens": 400, "sampling_seed": 9, "stream_interval": 16}
        whole = endpoint.client.post(server.url + "/generate", endpoint.payload(PROMPT, sampling, options))
        reader = StreamReader("</think>")
        tops = []
        last, stopped = endpoint.stream(endpoint.payload(PROMPT, sampling, options), None,
                                        lambda event: tops.extend(reader.feed(event)) or True)
        assert not stopped and reader.text == whole["text"]
        assert tops == whole["meta_info"]["output_top_logprobs"] and len(tops) == 400
        assert endpoint.client.submit(endpoint.incremental_streams(None)).result() is incremental


def test_a_trace_in_segments_is_the_same_trace(thinking):
    """A client continuing a trace in segments gets the trace it would have got in one request, with the same
    per-token confidences, and the thinking's end is a segment boundary."""
    endpoint = Endpoint(thinking.url, transport=FAST)
    options = {"return_logprob": True, "top_logprobs_num": 3, "logprob_start_len": -1}
    prompt = f"<｜User｜>{EASY.text}<｜Assistant｜><think>\n"
    whole = endpoint.client.post(thinking.url + "/generate", endpoint.payload(
        prompt, {"max_new_tokens": 20000, "sampling_seed": 3}, options))
    text, tops = "", []
    while True:
        part = endpoint.client.post(thinking.url + "/generate", endpoint.payload(
            prompt + text, {"max_new_tokens": 500, "sampling_seed": 3, "stop": ["</think>"], "no_stop_trim": True},
            options))
        text += part["text"]
        tops += part["meta_info"]["output_top_logprobs"]
        if part["meta_info"]["finish_reason"]["type"] != "length":
            break
    assert text.endswith("</think>") and whole["text"].startswith(text)
    assert tops == whole["meta_info"]["output_top_logprobs"][:len(tops)]


# -- DeepConf -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def paced():
    """Tokens take time, as on a GPU: an abort arrives while the trace is still being generated."""
    with SimServer([*PROBLEMS, EASY], thinking=True, seed=4, thinking_params=SHORT, token_delay_ms=0.2) as server:
        yield server


@pytest.mark.parametrize("transport", ["stream", "segments"])
def test_online_deepconf_cuts_traces_and_counts_every_token(paced, transport):
    endpoint = Endpoint(paced.url, transport=FAST)
    before = sim_stats(paced)
    result = solve(PROBLEMS[1].text, "deepconf", 16, endpoint,
                   config=config(confidence_transport=transport, deepconf_consensus=None, deepconf_min_gain=None))
    after = sim_stats(paced)
    stopped = [b for b in result.branches if b.finish_reason == "stopped"]
    assert result.size["mode"] == "online" and result.size["warmup"] == 2
    assert result.size["traces"] == len(result.branches) == 16  # no consensus stop
    assert stopped and result.plan.deepconf.stopped == len(stopped)
    assert result.plan.deepconf.stopped_tokens == sum(b.tokens for b in stopped)
    assert result.plan.deepconf.threshold is not None and result.plan.deepconf.traces == 16
    assert all(b.answer is None and b.tokens >= WINDOW for b in stopped)
    voters = {i for vote in result.votes for i in vote.branches}
    assert voters and not voters & {b.id for b in stopped}
    assert result.answer is not None and result.chosen in voters
    # the server generated exactly what the client counts: cut traces really stopped
    assert after["completion_tokens"] - before["completion_tokens"] == result.cost.completion_tokens
    if transport == "stream":
        # aborted on the server, unless it had already generated the rest when the cut came
        assert 0 < after["aborted_requests"] - before["aborted_requests"] <= len(stopped)
    else:
        assert after["aborted_requests"] == before["aborted_requests"]  # segments are simply not continued
    for branch in result.branches:
        assert branch.confidence is not None and 0 < branch.thinking_tokens <= branch.tokens
        if branch.answer is not None:
            assert branch.tokens - branch.thinking_tokens < 400  # the short answer after the thinking
    assert result.thinking_tokens == sum(b.thinking_tokens for b in result.branches)


def test_deepconf_stops_sampling_once_the_vote_is_settled(thinking):
    """Every warm-up trace agrees (the problem's rate is 1): the vote is settled before any later wave, though
    only the warm-up's most confident trace is above the threshold; a settled vote is the answer."""
    result = solve(EASY.text, "deepconf", 32, Endpoint(thinking.url, transport=FAST), config=config())
    assert result.answer == "42" and result.size["traces"] == result.size["warmup"] == 4
    assert len(result.branches) == 4 and result.plan.deepconf.settled
    answered = [b for b in result.branches if b.answer is not None]
    assert result.plan.deepconf.voters == len(answered) >= 2 and {b.answer for b in answered} == {"42"}
    assert result.plan.deepconf.cancelled == 4 - len(answered)  # still running when two agreed: cut (timing decides)


@pytest.fixture(scope="module")
def slow():
    """Tokens take long enough (about half a second per trace) that the vote settles, graded off the request
    loop, well before the longer traces end, however busy the machine."""
    with SimServer([EASY], thinking=True, seed=4, thinking_params=SHORT, token_delay_ms=1.0) as server:
        yield server


@pytest.mark.parametrize("transport", ["stream", "segments"])
def test_traces_still_running_when_the_vote_settles_are_cancelled(slow, transport):
    """Eight warm-up traces, all agreeing: the vote is settled once two have ended, and the six still running
    are cut there and then, not run to their end; every token they generated is counted, by the server too."""
    endpoint = Endpoint(slow.url, transport=FAST)
    before = sim_stats(slow)
    result = solve(EASY.text, "deepconf", 32, endpoint,
                   config=config(confidence_transport=transport, deepconf_warmup=8, confidence_segment_tokens=64))
    after = sim_stats(slow)
    cancelled = [b for b in result.branches if b.finish_reason == "cancelled"]
    assert result.answer == "42" and result.plan.deepconf.settled and result.size["traces"] == 8
    assert cancelled and result.plan.deepconf.cancelled == len(cancelled) and result.plan.deepconf.stopped == 0
    assert result.plan.deepconf.cancelled_tokens == sum(b.tokens for b in cancelled) > 0
    assert all(b.answer is None and 0 < b.thinking_tokens <= b.tokens for b in cancelled)
    finished = [b for b in result.branches if b.finish_reason == "answer"]
    assert len(finished) + len(cancelled) == 8 and result.plan.deepconf.voters == len(finished)
    assert after["completion_tokens"] - before["completion_tokens"] == result.cost.completion_tokens
    if transport == "stream":
        assert after["aborted_requests"] - before["aborted_requests"] >= 1
    assert not any(b.independent for b in result.branches)  # the first to end are not plain samples


def test_deepconf_stops_once_no_trace_to_come_would_change_the_winner():
    """Split votes that never reach 95% of the weight: sampling still stops before N once the voters' leader
    holds after the traces to come with probability 95% (planner.belief.lead), and the answer is that leader."""
    early = []
    with SimServer(PROBLEMS, thinking=True, seed=4, thinking_params=SHORT) as server:
        for problem in PROBLEMS:
            result = solve(problem.text, "deepconf", 32, Endpoint(server.url, transport=FAST), config=config())
            total = sum(v.score for v in result.votes)
            if result.size["traces"] < 32 and result.votes[0].score / total < 0.95:
                early.append(result)
    assert early  # at this seed two problems stop at 16 and 28 traces of 32 on a 57-67% majority
    for result in early:
        assert result.plan.deepconf.settled and result.answer == result.votes[0].answer
        assert result.plan.deepconf.voters == sum(len(v.branches) for v in result.votes)


HARD = PROBLEMS[0].__class__("Find the number of ordered triples of primes summing to 1001.", "0", 0.0)


def test_deepconf_stops_once_the_traces_to_come_are_not_worth_their_tokens():
    """A problem the policy never solves, predicted hard: its warm-up traces disagree (at this seed) and the vote
    never settles, and after the warm-up the belief expects the traces to come to add too little accuracy for their tokens, so sampling stops
    ("priced out") with far fewer tokens than DeepConf without the price spends; the answer is the voters' vote.
    The same run with traces 20 times cheaper (a policy whose usual trace is that much longer) goes on."""
    with SimServer([HARD], thinking=True, seed=5, thinking_params=SHORT, enable_deterministic_inference=True) as server:
        endpoint = Endpoint(server.url, transport=FAST)  # deterministic: branch k is one trace in every run
        runs = {gain: solve(HARD.text, "deepconf", 16, endpoint, config=config(deepconf_min_gain=gain),
                            planning=Planning(pass_at_1=0.02)) for gain in (0.01, None)}
        alone = solve(HARD.text, "deepconf", 16, endpoint, config=config(deepconf_consensus=None),
                      planning=Planning(pass_at_1=0.02))  # the price applies without the vote's stop too
        table = Planning().table_for(endpoint.model_info["model_path"], None, SearchConfig())
        longer = replace(table.cost, tokens_per_sample=table.cost.tokens_per_sample * 20)
        cheap = solve(HARD.text, "deepconf", 16, endpoint, config=config(), planning=Planning(
            pass_at_1=0.02, table=StrategyTable(table.policy, None, table.curves, longer)))
    priced, unpriced = runs[0.01], runs[None]
    assert priced.plan.deepconf.priced_out and not priced.plan.deepconf.settled
    assert priced.size["traces"] < unpriced.size["traces"] and not unpriced.plan.deepconf.priced_out
    assert priced.cost.completion_tokens < unpriced.cost.completion_tokens / 2
    assert priced.answer == priced.votes[0].answer and priced.prediction.pass_at_1 == 0.02
    assert cheap.size["traces"] > priced.size["traces"] and not cheap.plan.deepconf.priced_out
    assert alone.plan.deepconf.priced_out and alone.size["traces"] == priced.size["traces"]


def test_offline_deepconf_votes_the_confident_share(thinking):
    result = solve(PROBLEMS[2].text, "deepconf", 8, Endpoint(thinking.url, transport=FAST),
                   config=config(deepconf_mode="offline"))
    assert result.size == {"n": 8, "mode": "offline", "kept": 7}
    assert all(b.finish_reason != "stopped" for b in result.branches) and len(result.branches) == 8
    dropped = set(range(8)) - {i for vote in result.votes for i in vote.branches}
    lowest = min(result.branches, key=lambda b: b.confidence)
    assert lowest.answer is None or dropped == {lowest.id}
    assert math.isclose(sum(v.score for v in result.votes),
                        sum(b.confidence for b in result.branches if b.id not in dropped and b.answer is not None))


def test_deepconf_settings_are_checked():
    for bad in ({"deepconf_keep": 0.0}, {"deepconf_mode": "live"}, {"confidence_transport": "pigeon"},
                {"confidence_segment_tokens": 0}, {"deepconf_warmup": 0}, {"deepconf_min_gain": -0.1},
                {"deepconf_min_gain": "high"}):
        with pytest.raises(InputError, match=next(iter(bad))):
            SearchConfig(**bad)
    assert SearchConfig().keep_share == 0.1 and SearchConfig(deepconf_mode="offline").keep_share == 0.9


# -- the adaptive solver ------------------------------------------------------------------------------------------

def test_adaptive_takes_a_thinking_policys_confidence_as_evidence(thinking):
    result = solve(PROBLEMS[3].text, "adaptive", 4, Endpoint(thinking.url, transport=FAST), config=config())
    trace = result.plan.adaptive
    assert result.answer is not None and trace.samples >= 2
    drawn = [b for b in result.branches if b.id < trace.samples]
    assert all(b.confidence is not None and b.thinking_tokens for b in drawn)
    plain = solve(PROBLEMS[3].text, "majority", 2, Endpoint(thinking.url, transport=FAST), config=config())
    assert all(b.confidence is None and b.thinking_tokens for b in plain.branches)  # apportioned, not streamed


def test_whole_samples_keep_their_own_thinking_tokens(thinking):
    """Samples handed out in text order (canonicalize) carry their thinking tokens with them."""
    result = solve(PROBLEMS[2].text, "majority", 6, Endpoint(thinking.url, transport=FAST), config=config())
    for branch in result.branches:
        assert branch.thinking_tokens == apportioned(branch.tokens, branch.text, "</think>") < branch.tokens


# -- gpt-oss: harmony's special-token channels --------------------------------------------------------------------

@sgl.function
def _harmony_turn(s):
    s += sgl.user(EASY.text)
    s += sgl.assistant_begin()


@pytest.mark.compat
def test_gpt_oss_reads_its_final_channel(tmp_path):
    """gpt-oss writes harmony: every channel marker is a special token, which the server drops by default
    ("analysis...assistantfinal..."), so requests keep them and the answer is read from the final channel."""
    oss = known_policy("openai/gpt-oss-120b")
    assert oss.thinking.special and oss.params == 5.13e9  # active parameters (a mixture of experts)
    with SimServer([*PROBLEMS, EASY], thinking=True, seed=5, thinking_params=SHORT,
                   model_path="openai/gpt-oss-20b") as server:
        endpoint = Endpoint(server.url, transport=FAST)
        assert endpoint.chat_template.name == "gpt-oss"
        for strategy in ("deepconf", "majority"):
            result = solve(EASY.text, strategy, 8, endpoint, config=config())
            assert result.answer == "42"
            answered = [b for b in result.branches if b.answer is not None]
            assert answered and all(b.text.startswith("<|channel|>analysis<|message|>") for b in answered)
            assert all(0 < b.thinking_tokens < b.tokens for b in answered)
        prompt = _harmony_turn.run(backend=endpoint).text()
        assert prompt.startswith("<|start|>system<|message|>") and "Reasoning: high" in prompt
        raw = endpoint.client.request("POST", server.url + "/generate", {"text": prompt, "sampling_params": {
            "max_new_tokens": 20000, "temperature": 0.6}})
        assert "<|channel|>" not in raw["text"] and "assistantfinal" in raw["text"]  # the server's default
        described = Planning(policy="acme/oss-math", policy_params=3.6e9, thinking_end="<|channel|>final<|message|>")
        result = solve(EASY.text, "majority", 3, endpoint, config=config(), planning=described)
        assert all(0 < b.thinking_tokens < b.tokens for b in result.branches)  # described: its end is special too
        assert not Thinking.ending_with("</think>").special
        examples = tmp_path / "problems.jsonl"
        write_problems(examples, 3)
        done = cli("run", "--endpoint", server.url, "--input", str(examples), "-o", str(tmp_path / "oss.jsonl"),
                   "--strategy", "majority", "--size", "4")
        assert done.returncode == 0, done.stderr
        assert all(line["status"] == "ok" and line["thinking_tokens"] for line in lines(tmp_path / "oss.jsonl"))


# -- the command line, directly and through the gateway ------------------------------------------------------------

def _deepconf_run(url: str, tmp_path, count: int):
    write_problems(tmp_path / "problems.jsonl", count)
    settings = tmp_path / "search.json"
    settings.write_text(json.dumps({"search": {"confidence_window": WINDOW}}), encoding="utf-8")
    return cli("run", "--endpoint", url, "--input", str(tmp_path / "problems.jsonl"), "-o",
               str(tmp_path / "results.jsonl"), "--strategy", "deepconf", "--size", "16", "--config", str(settings))


def test_run_with_deepconf_reports_thinking_and_answer_tokens(tmp_path):
    with SimServer(SAMPLE, thinking=True, seed=6, thinking_params=SHORT) as server:
        done = _deepconf_run(server.url, tmp_path, 4)
        served = sim_stats(server)["completion_tokens"]
    assert done.returncode == 0, done.stderr
    written = lines(tmp_path / "results.jsonl")
    assert len(written) == 4 and all(line["status"] == "ok" and line["strategy"] == "deepconf" for line in written)
    assert all(0 < line["thinking_tokens"] < line["cost"]["completion_tokens"] for line in written)
    assert sum(line["cost"]["completion_tokens"] for line in written) == served  # the stream probe's 2 included
    assert "spent thinking" in done.stdout and "answering" in done.stdout
    traces = [line["plan"]["deepconf"] for line in written]  # how each problem's traces ended, in its line
    assert all(t["mode"] == "online" and t["warmup"] == 2 <= t["traces"] <= 16 for t in traces)
    stopped, cancelled = sum(t["stopped"] for t in traces), sum(t["cancelled"] for t in traces)
    summary = next(row for row in done.stdout.splitlines() if row.startswith("deepconf"))
    assert f"{stopped} stopped by confidence" in summary and f"{cancelled} cancelled" in summary
    assert f"{sum(t['settled'] for t in traces)} of 4 problems settled" in summary
    assert f"{sum(t['priced_out'] for t in traces)} priced out" in summary
    read = [ResultLine.from_dict(line) for line in written]  # typed, as report and calibrate read it
    assert [line.plan.deepconf.stopped_tokens for line in read] == [t["stopped_tokens"] for t in traces]
    bad = dict(written[0], plan=dict(written[0]["plan"], deepconf=dict(traces[0], mode="sometimes")))
    with pytest.raises(InputError, match="plan.deepconf.mode"):
        ResultLine.from_dict(bad)


def test_streamed_traces_are_progress_for_the_watchdog(tmp_path):
    """A trace streams for longer than --watchdog-seconds before its request ends; its chunks keep the run alive
    (on a GPU a 32k-token trace streams for many minutes)."""
    write_problems(tmp_path / "problems.jsonl", 2)
    with SimServer(SAMPLE, thinking=True, seed=6, thinking_params=SHORT, token_delay_ms=3.0) as server:
        done = cli("run", "--endpoint", server.url, "--input", str(tmp_path / "problems.jsonl"), "-o",
                   str(tmp_path / "slow.jsonl"), "--strategy", "deepconf", "--size", "4", "--watchdog-seconds", "2")
    assert done.returncode == 0, done.stderr
    written = lines(tmp_path / "slow.jsonl")
    assert [line["status"] for line in written] == ["ok", "ok"]
    longest = max(line["cost"]["completion_tokens"] / line["plan"]["deepconf"]["traces"] for line in written)
    assert longest * 0.003 > 2.0  # a trace took longer than the watchdog's 2 s on average


@needs_smg
def test_deepconf_through_the_gateway(gateway, tmp_path):
    """smg has no /abort_request: a cut trace is stopped by closing its stream (or, on servers that re-send
    every logprob in each chunk, by not sending its next segment)."""
    front, _ = gateway(2, "round_robin", options=("--thinking",))
    result = solve(RECORDS[0]["problem"], "deepconf", 16, Endpoint(front.url, transport=FAST), config=config())
    assert result.answer is not None and result.size["traces"] >= 2
    done = _deepconf_run(front.url, tmp_path, 3)
    assert done.returncode == 0, done.stderr
    assert [line["status"] for line in lines(tmp_path / "results.jsonl")] == ["ok"] * 3


def test_a_long_thinking_policy_the_planner_does_not_know_is_described(tmp_path):
    from sglang_plugin import Planning

    with SimServer([*PROBLEMS], thinking=True, seed=3, thinking_params=SHORT, model_path="acme/reasoner") as server:
        endpoint = Endpoint(server.url, transport=FAST)
        described = Planning(policy="acme/reasoner", policy_params=7e9, thinking_end="</think>")
        result = solve(PROBLEMS[0].text, "majority", 3, endpoint, config=config(), planning=described)
        assert all(b.thinking_tokens for b in result.branches) and result.thinking_tokens
        plain = solve(PROBLEMS[0].text, "majority", 3, endpoint, config=config(),
                      planning=Planning(policy="acme/reasoner", policy_params=7e9))
        assert plain.thinking_tokens is None
    examples = SAMPLE.parent.parent.parent / "examples" / "problems.jsonl"
    planned = cli("plan", str(examples), "--budget", "8", "--policy", "acme/reasoner", "--policy-params", "7e9",
                  "--thinking-end", "</think>", "-o", str(tmp_path / "plans.jsonl"))
    assert planned.returncode == 0, planned.stderr
    assert "deepconf" in {line["plan"]["strategy"] for line in lines(tmp_path / "plans.jsonl")}


# -- budgets in tokens ---------------------------------------------------------------------------------------------

def test_a_budget_in_tokens_is_samples_of_each_problem_after_its_probe():
    assert budget_from_tokens(40_000, 4_000) == 10
    assert budget_from_tokens(1_000, 4_000) == 1  # never less than the probe
    assert budget_from_tokens(1e12, 1.0) == MAX_SAMPLES
    with pytest.raises(InputError, match="budget_tokens"):
        Planning(budget_tokens=0)


def test_run_with_a_budget_in_tokens(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 4)
    budgets = {}
    for tokens in (1500, 12000):  # a fresh server each, same seed: every probe is the same draw
        with SimServer(SAMPLE, thinking=True, seed=6, thinking_params=SHORT) as server:
            done = cli("run", "--endpoint", server.url, "--input", str(tmp_path / "problems.jsonl"), "-o",
                       str(tmp_path / f"{tokens}.jsonl"), "--budget-tokens", str(tokens))
        assert done.returncode == 0, done.stderr
        traces = {line["problem_id"]: line["plan"]["adaptive"] for line in lines(tmp_path / f"{tokens}.jsonl")}
        assert all(t["samples"] <= t["cap"] == math.ceil(2 * t["budget"]) for t in traces.values())
        budgets[tokens] = {k: t["budget"] for k, t in traces.items()}
    for problem, small in budgets[1500].items():  # round(1500 / u) and round(12000 / u) for the probe's u tokens
        large = budgets[12000][problem]
        assert large >= 4 * small and abs(large - 8 * small) <= 4.5, (small, large)
    assert len(set(budgets[1500].values()) | set(budgets[12000].values())) > 2  # probes differ in length


def test_a_thinking_policy_budgets_in_tokens_by_default(tmp_path):
    """Without --budget, a long-thinking policy gets 8 samples' worth of tokens (8 x its tokens per sample): the
    same run as --budget-tokens 32000 for R1-Distill-7B (4,000 per sample), resumable as such; --budget 8 still
    budgets in samples, and a policy that does not think keeps 8 samples."""
    write_problems(tmp_path / "problems.jsonl", 3)
    per_sample = known_policy("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").tokens_per_sample
    runs = {}
    for name, extra in (("default", ()), ("tokens", ("--budget-tokens", str(8 * per_sample))),
                        ("samples", ("--budget", "8"))):
        with SimServer(SAMPLE, thinking=True, seed=6, thinking_params=SHORT) as server:
            done = cli("run", "--endpoint", server.url, "--input", str(tmp_path / "problems.jsonl"), "-o",
                       str(tmp_path / f"{name}.jsonl"), *extra)
            assert done.returncode == 0, done.stderr
            assert ("budgeting 32,000 generated tokens per problem" in done.stderr) == (name == "default")
            if name == "default":  # the same run again resumes it: the default is recorded as the tokens it is
                again = cli("run", "--endpoint", server.url, "--input", str(tmp_path / "problems.jsonl"), "-o",
                            str(tmp_path / "default.jsonl"), "--budget-tokens", str(8 * per_sample))
                assert again.returncode == 0 and "3 written" in again.stdout and "0 in this session" in again.stdout
        runs[name] = {line["problem_id"]: line["plan"]["adaptive"]["budget"] for line in lines(tmp_path / f"{name}.jsonl")}
    assert runs["default"] == runs["tokens"] and set(runs["samples"].values()) == {8}
    assert runs["default"] != runs["samples"]
    manifest = json.loads((tmp_path / "default.jsonl.run.json").read_text(encoding="utf-8"))
    assert manifest["settings"]["budget_tokens"] == 8 * per_sample and manifest["settings"]["budget"] == 8
    policy = "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"  # a calibration's measured tokens per sample are used
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({
        "format": "tts-planner-calibration", "version": 1, "policies": {policy: {"tokens_per_sample": 1500.0}},
        "points": [{"policy": policy, "reward_model": None, "strategy": "cot", "bin": "easy", "size": 1,
                    "accuracy": 0.9, "tokens": 1500.0, "problems": 20, "mean_pass_at_1": 0.8}]}), encoding="utf-8")
    with SimServer(SAMPLE, thinking=True, seed=6, thinking_params=SHORT) as server:
        done = cli("run", "--endpoint", server.url, "--input", str(tmp_path / "problems.jsonl"), "-o",
                   str(tmp_path / "calibrated.jsonl"), "--calibration", str(calibration))
    assert done.returncode == 0 and "budgeting 12,000 generated tokens" in done.stderr, done.stderr
    with SimServer(SAMPLE, seed=6) as server:
        done = cli("run", "--endpoint", server.url, "--input", str(tmp_path / "problems.jsonl"), "-o",
                   str(tmp_path / "plain.jsonl"))
    assert done.returncode == 0, done.stderr
    assert {line["plan"]["adaptive"]["budget"] for line in lines(tmp_path / "plain.jsonl")} == {8}
    assert "budget_tokens" not in json.loads((tmp_path / "plain.jsonl.run.json").read_text())["settings"]


def test_the_watchdog_waits_as_long_as_one_unstreamed_sample_may_take(tmp_path):
    """A long-thinking sample of 32,768 tokens may take read_timeout + 32,768 / 10 s before its own timeout; the
    run's default watchdog is never shorter, and a given --watchdog-seconds is kept."""
    write_problems(tmp_path / "problems.jsonl", 1)
    thinking, plain = known_policy("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"), known_policy(DEFAULT_POLICY)
    defaults = settings("http://127.0.0.1:9", tmp_path, transport=TransportConfig())
    assert defaults.watchdog_for(thinking) == pytest.approx(600 + 32768 / 10)
    assert defaults.watchdog_for(plain) == 1800  # 600 + 3,000 / 10 is shorter
    slow = settings("http://127.0.0.1:9", tmp_path, transport=TransportConfig(slowest_tokens_per_second=2.0))
    assert slow.watchdog_for(plain) == 600 + 3000 / 2
    capped = settings("http://127.0.0.1:9", tmp_path, transport=TransportConfig(),
                      config=SolveConfig.from_dict({"sampling": {"max_tokens": 8192}}))
    assert capped.watchdog_for(thinking) == 1800  # the sampling cap, not the policy's, bounds a sample
    assert settings("http://127.0.0.1:9", tmp_path, watchdog_seconds=5.0).watchdog_for(thinking) == 5.0


def test_a_budget_in_tokens_is_for_the_planner_alone(tmp_path):
    write_problems(tmp_path / "problems.jsonl", 1)
    common = ["run", "--endpoint", "http://127.0.0.1:9", "--input", str(tmp_path / "problems.jsonl"), "-o",
              str(tmp_path / "out.jsonl"), "--budget-tokens", "1000"]
    both = cli(*common, "--budget", "4")
    assert both.returncode == 2 and "not both" in both.stderr
    forced = cli(*common, "--strategy", "majority", "--size", "4")
    assert forced.returncode == 1 and "--budget-tokens" in forced.stderr and "forced --strategy" in forced.stderr
    assert not (tmp_path / "out.jsonl").exists()
