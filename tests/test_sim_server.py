"""The simulated SGLang server's protocol over real HTTP on loopback: response shapes, stop strings, lengths,
prefix-cache accounting, logprob formats, errors, tokenizer endpoints, streaming, determinism."""

import json
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from sim_http import RATE_FIELD, RATES, SOLUTIONS, call, ok, prompt, sample_records

from sglang_plugin.sim.server import SimServer

EOS = 0xC002  # "<|im_end|>"


@pytest.fixture(scope="module")
def server():
    with SimServer(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS, seed=7) as running:
        yield running


@pytest.fixture(scope="module")
def problem():
    return sample_records()[1]  # 13 reference steps


def generate(url, text, **sampling):
    return ok(url, "/generate", {"text": text, "sampling_params": sampling})


def tokens(url, text):
    return ok(url, "/tokenize", {"prompt": text})["tokens"]


def test_model_and_server_info(server):
    for path in ("/get_model_info", "/model_info"):
        info = ok(server.url, path)
        assert info["model_path"] == "Qwen/Qwen2.5-Math-1.5B-Instruct"
        assert info["is_generation"] is True and info["simulated"] is True
        assert "SIMULATED" in info["simulator"]["description"]
        assert info["simulator"]["known_problems"] == 12
        assert (info["simulator"]["step_tag_id"], info["simulator"]["plus_token_id"],
                info["simulator"]["minus_token_id"]) == (12902, 648, 387)
    for path in ("/get_server_info", "/server_info"):
        info = ok(server.url, path)
        assert info["simulated"] is True and info["port"] == server.port
        assert "sim_stats" in info["internal_states"][0]
    assert call(server.url, "/health") == (200, "")


def test_model_path_is_configurable():
    with SimServer(model_path="meta-llama/Llama-3.1-8B-Instruct") as running:
        assert ok(running.url, "/get_model_info")["model_path"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_generate_shape_and_whole_solution(server, problem):
    text = prompt(problem["problem"])
    answer = generate(server.url, text, max_new_tokens=3000, temperature=0.7)
    assert set(answer) == {"text", "output_ids", "meta_info"}
    meta = answer["meta_info"]
    assert {"id", "finish_reason", "prompt_tokens", "completion_tokens", "cached_tokens",
            "e2e_latency"} <= set(meta)
    assert meta["finish_reason"] == {"type": "stop", "matched": EOS}
    assert meta["prompt_tokens"] == len(tokens(server.url, text))
    assert meta["completion_tokens"] == len(answer["output_ids"]) and answer["output_ids"][-1] == EOS
    assert "\\boxed{" in answer["text"] and "<|im_end|>" not in answer["text"]
    spec = server.reasoner.spec_for(problem["problem"])
    assert answer["text"].count("\n\n") == spec.num_steps - 1
    decoded = ok(server.url, "/detokenize", {"tokens": answer["output_ids"]})["text"]
    assert decoded == answer["text"]


def test_stop_string_is_trimmed_and_counted(server, problem):
    text = prompt(problem["problem"])
    answer = generate(server.url, text, max_new_tokens=500, stop="\n\n", temperature=0.7)
    meta = answer["meta_info"]
    assert meta["finish_reason"] == {"type": "stop", "matched": "\n\n"}
    assert "\n\n" not in answer["text"] and answer["text"]
    assert meta["completion_tokens"] == len(tokens(server.url, answer["text"])) + 1
    kept = generate(server.url, text, max_new_tokens=500, stop=["\n\n"], no_stop_trim=True, temperature=0)
    assert kept["text"].endswith("\n\n") and kept["text"].count("\n\n") == 1
    first = generate(server.url, text, max_new_tokens=500, stop=["\\boxed", "$"], temperature=0)
    assert first["meta_info"]["finish_reason"]["matched"] == "$"  # the stop string that appears first


def test_max_new_tokens_zero_caches_the_prompt(server):
    text = prompt("What is 19 + 23? A question the simulator has never seen.")
    empty = generate(server.url, text, max_new_tokens=0)
    meta = empty["meta_info"]
    assert empty["text"] == "" and empty["output_ids"] == []
    assert meta["finish_reason"] == {"type": "length", "length": 0}
    assert meta["completion_tokens"] == 0 and meta["cached_tokens"] < meta["prompt_tokens"] - 1
    again = generate(server.url, text, max_new_tokens=0)
    assert again["meta_info"]["cached_tokens"] == meta["prompt_tokens"] - 1  # one token is always computed


def test_length_finish_cuts_mid_step(server, problem):
    answer = generate(server.url, prompt(problem["problem"]), max_new_tokens=5, temperature=0.7)
    assert answer["meta_info"]["finish_reason"] == {"type": "length", "length": 5}
    assert answer["meta_info"]["completion_tokens"] == 5 == len(answer["output_ids"])
    assert answer["text"] == ok(server.url, "/detokenize", {"tokens": answer["output_ids"]})["text"]


def test_cached_tokens_on_crafted_sequences(server):
    head, base = "alpha beta gamma", "alpha beta gamma delta:\n"
    assert tokens(server.url, base) == tokens(server.url, head) + tokens(server.url, " delta:\n")
    assert len(tokens(server.url, head)) == 3 and len(tokens(server.url, base)) == 6
    ok(server.url, "/flush_cache", method="POST")
    first = generate(server.url, head, max_new_tokens=0)["meta_info"]
    assert first["cached_tokens"] == 0 and first["prompt_tokens"] == 3
    second = generate(server.url, base, max_new_tokens=0)["meta_info"]
    assert second["cached_tokens"] == 3 and second["prompt_tokens"] == 6
    assert generate(server.url, "alpha beta omega", max_new_tokens=0)["meta_info"]["cached_tokens"] == 2
    # a generated sequence is cached without its last token (it was never fed back), like SGLang
    out = generate(server.url, base, max_new_tokens=4, temperature=0.7)
    follow = base + out["text"] + " zeta"
    assert tokens(server.url, follow)[:6 + 4] == tokens(server.url, base) + out["output_ids"]
    assert generate(server.url, follow, max_new_tokens=0)["meta_info"]["cached_tokens"] == 6 + 4 - 1
    # with logprobs from position s, at most s tokens come from the cache
    capped = ok(server.url, "/generate", {"text": base, "sampling_params": {"max_new_tokens": 0},
                                          "return_logprob": True, "logprob_start_len": 2})
    assert capped["meta_info"]["cached_tokens"] == 2
    assert call(server.url, "/flush_cache")[0] == 200
    assert generate(server.url, base, max_new_tokens=0)["meta_info"]["cached_tokens"] == 0


def test_batch_and_n(server, problem):
    texts = [prompt(problem["problem"]), prompt("Compute 2 + 2 for an unknown problem.")]
    answers = ok(server.url, "/generate", {"text": texts, "sampling_params": {"max_new_tokens": 40}})
    assert isinstance(answers, list) and len(answers) == 2
    assert [a["meta_info"]["prompt_tokens"] for a in answers] == [len(tokens(server.url, t)) for t in texts]
    copies = ok(server.url, "/generate", {"text": texts[0], "sampling_params": {"max_new_tokens": 300, "n": 6},
                                          "rid": "job"})
    assert len(copies) == 6 and [c["meta_info"]["id"] for c in copies] == [f"job_{i}" for i in range(6)]
    assert len({c["text"] for c in copies}) > 1  # identical requests get different draws
    by_ids = ok(server.url, "/generate", {"input_ids": tokens(server.url, texts[0]),
                                          "sampling_params": {"max_new_tokens": 0}})
    assert by_ids["meta_info"]["prompt_tokens"] == answers[0]["meta_info"]["prompt_tokens"]


def test_output_logprobs_format(server, problem):
    answer = ok(server.url, "/generate", {
        "text": prompt(problem["problem"]), "sampling_params": {"max_new_tokens": 60, "temperature": 0.7},
        "return_logprob": True, "top_logprobs_num": 3, "return_text_in_logprobs": True})
    meta = answer["meta_info"]
    out = meta["output_token_logprobs"]
    assert len(out) == meta["completion_tokens"] == len(meta["output_top_logprobs"])
    assert [e[1] for e in out] == answer["output_ids"]
    assert "".join(e[2] for e in out) == answer["text"]
    assert all(e[0] <= 0 for e in out)
    for entry, top in zip(out, meta["output_top_logprobs"]):
        assert len(top) == 3 and [t[0] for t in top] == sorted((t[0] for t in top), reverse=True)
        assert entry[1] in [t[1] for t in top] or entry[0] <= top[-1][0]
    assert meta["input_token_logprobs"] == [[None, meta["input_token_logprobs"][0][1],
                                             meta["input_token_logprobs"][0][2]]]  # default start: last token
    plain = ok(server.url, "/generate", {"text": "one two", "sampling_params": {"max_new_tokens": 2},
                                         "return_logprob": True})["meta_info"]
    assert plain["output_token_logprobs"][0][2] is None and "output_top_logprobs" not in plain


def test_input_logprobs_and_token_ids(server):
    text = "The quick brown fox jumps over the lazy dog"
    ids = tokens(server.url, text)
    meta = ok(server.url, "/generate", {
        "text": text, "sampling_params": {"max_new_tokens": 0}, "return_logprob": True,
        "logprob_start_len": 2, "top_logprobs_num": 2, "token_ids_logprob": [648, 387]})["meta_info"]
    rows = meta["input_token_logprobs"]
    assert [r[1] for r in rows] == ids[2:]
    assert rows[0][0] is None and all(r[0] < 0 for r in rows[1:])
    assert meta["input_top_logprobs"][0] is None and all(len(t) == 2 for t in meta["input_top_logprobs"][1:])
    chosen = meta["input_token_ids_logprobs"]
    assert len(chosen) == len(ids) - 2 and chosen[0] is None
    assert all([e[1] for e in position] == [648, 387] for position in chosen[1:])
    # the next-token position after the prompt, as Engine.score reads it
    assert len(meta["output_token_ids_logprobs"]) == 1 and len(meta["output_token_ids_logprobs"][0]) == 2
    assert meta["completion_tokens"] == 0


def test_malformed_requests_get_sglang_4xx(server):
    url = server.url
    cases = [
        (call(url, "/generate", raw=b"{not json"), 400, "object"),
        (call(url, "/generate", raw=b"[1, 2]"), 400, "object"),
        (call(url, "/generate", raw=b""), 400, "object"),
        (call(url, "/generate", {"text": 5}), 400, "object"),
        (call(url, "/generate", {"text": "hi", "sampling_params": "fast"}), 400, "object"),
        (call(url, "/generate", {"text": "hi", "return_logprob": "yes"}), 400, "object"),
        (call(url, "/generate", {"sampling_params": {}}), 400, "error"),
        (call(url, "/generate", {"text": "hi", "sampling_params": {"max_new_tokens": -1}}), 400, "error"),
        (call(url, "/generate", {"text": "hi", "sampling_params": {"temperature": -0.5}}), 400, "error"),
        (call(url, "/generate", {"text": "hi", "sampling_params": {"top_p": 0}}), 400, "error"),
        (call(url, "/generate", {"text": "hi", "sampling_params": {"top_k": 0}}), 400, "error"),
        (call(url, "/generate", {"text": "hi", "sampling_params": {"max_new_tokens": "9"}}), 400, "error"),
        (call(url, "/generate", {"text": "hi", "sampling_params": {"bogus": 1}}), 400, "error"),
        (call(url, "/generate", {"text": "hi", "sampling_params": {"regex": "[0-9]+"}}), 400, "error"),
        (call(url, "/generate", {"text": "hi", "sampling_params": {"max_new_tokens": 5000}}), 400, "error"),
        (call(url, "/generate", {"text": "hi there", "return_logprob": True, "logprob_start_len": 9}), 400, "error"),
        (call(url, "/generate", {"input_ids": [0xC100]}), 400, "error"),
        (call(url, "/classify", {"rid": "x"}), 400, "error"),
        (call(url, "/classify", {"text": ["a", 3]}), 400, "object"),
    ]
    for (status, body), expected, key in cases:
        assert status == expected, body
        assert key in body
        assert isinstance(body.get("message") or body["error"]["message"], str)
    assert call(url, "/generate", {"sampling_params": {}})[1]["error"]["message"] == \
        "Either text, input_ids or input_embeds should be provided."
    assert call(url, "/generate", {"text": "x", "sampling_params": {"max_new_tokens": -1}})[1]["error"][
        "message"] == "max_new_tokens must be at least 0, got -1."
    assert call(url, "/nowhere") == (404, {"detail": "Not Found"})
    assert call(url, "/generate", method="GET") == (405, {"detail": "Method Not Allowed"})
    assert call(url, "/get_model_info", {}, method="POST")[0] == 405
    assert call(url, "/health")[0] == 200  # still serving after all that


def test_tokenize_endpoints(server):
    answer = ok(server.url, "/tokenize", {"prompt": ["a b", "<|im_end|>"]})
    assert answer["count"] == [2, 1] and answer["tokens"][1] == [EOS]
    assert ok(server.url, "/v1/detokenize", {"tokens": answer["tokens"][0]})["text"] == "a b"
    assert ok(server.url, "/detokenize", {"tokens": [EOS], "skip_special_tokens": False})["text"] == "<|im_end|>"
    assert call(server.url, "/detokenize", {"tokens": [0xC100]})[0] == 400


def test_streaming(server, problem):
    payload = {"text": prompt(problem["problem"]), "sampling_params": {"max_new_tokens": 80, "stop": "\n\n",
                                                                      "temperature": 0}, "stream": True}
    request = urllib.request.Request(server.url + "/generate", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        events = [line[len(b"data: "):] for line in response.read().split(b"\n\n") if line]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    final = generate(server.url, payload["text"], max_new_tokens=80, stop="\n\n", temperature=0)
    assert chunks[-1]["text"] == final["text"]
    assert chunks[-1]["meta_info"]["finish_reason"] == final["meta_info"]["finish_reason"]
    assert all(c["meta_info"]["finish_reason"] is None for c in chunks[:-1])
    texts = [c["text"] for c in chunks]
    assert all(b.startswith(a) for a, b in zip(texts[:-2], texts[1:-1]))  # cumulative


def test_greedy_and_sampling_seed_are_fixed_draws(server, problem):
    text = prompt(problem["problem"])
    greedy = {generate(server.url, text, max_new_tokens=3000, temperature=0)["text"] for _ in range(4)}
    assert len(greedy) == 1
    seeded = {generate(server.url, text, max_new_tokens=3000, sampling_seed=11)["text"] for _ in range(4)}
    assert len(seeded) == 1


def test_draws_are_deterministic_whatever_the_thread_order(problem):
    text = prompt(problem["problem"])

    def outcomes(parallel: bool):
        with SimServer(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS, seed=3) as running:
            work = lambda _: generate(running.url, text, max_new_tokens=3000, temperature=0.7)["text"]
            if parallel:
                with ThreadPoolExecutor(8) as pool:
                    return sorted(pool.map(work, range(16)))
            return sorted(work(i) for i in range(16))

    sequential = outcomes(False)
    assert outcomes(True) == sequential
    assert len(set(sequential)) > 1
    with SimServer(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS, seed=4) as other:
        different = sorted(generate(other.url, text, max_new_tokens=3000, temperature=0.7)["text"]
                           for _ in range(16))
    assert different != sequential


def test_concurrent_requests_are_served_together():
    with SimServer(token_delay_ms=20) as running:
        barrier = threading.Barrier(6)

        def work(_):
            barrier.wait()
            return generate(running.url, "Unknown problem: add 3 and 4.", max_new_tokens=10, temperature=0.7)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(work, range(6)))
        stats = ok(running.url, "/get_server_info")["internal_states"][0]["sim_stats"]
    assert stats["peak_in_flight"] > 1
    assert all(a["meta_info"]["e2e_latency"] >= 0.02 * a["meta_info"]["completion_tokens"] for a in answers)


def test_stop_regex_of_newer_releases_is_honoured():
    """The current sglang frontend sends `stop_regex` with every gen; the stand-in accepts it as SGLang does."""
    record = sample_records()[0]
    with SimServer(seed=1) as server:
        status, body = call(server.url, "/generate", {"text": prompt(record["problem"]),
                                                      "sampling_params": {"max_new_tokens": 200, "stop_regex": []}})
        assert status == 200, body
        status, body = call(server.url, "/generate", {"text": prompt(record["problem"]),
                                                      "sampling_params": {"max_new_tokens": 200,
                                                                          "stop_regex": [r"Step \d:"]}})
        assert status == 200 and body["meta_info"]["finish_reason"]["type"] == "stop", body
        status, body = call(server.url, "/generate", {"text": "x", "sampling_params": {"stop_regex": ["("]}})
        assert status == 400 and "stop_regex" in json.dumps(body)
