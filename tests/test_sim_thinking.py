"""The long-thinking profile: DeepConf-style confidence with the configured AUROC, realistic lengths (wrong traces
longer, cut traces without an answer), answers at the problem's rate from the skewed wrong pool, streaming and
abort of long traces, determinism, the sglang frontend's chat template, and the CLI flag."""

import signal
import statistics

import numpy as np
import pytest
from sim_http import RATE_FIELD, RATES, SOLUTIONS, Stream, ok, sample_records, sim_stats, stream_and_abort, wait_idle
from test_sim_server_cli import start

from sglang_plugin.sim.engine import SimConfig, SimEngine
from sglang_plugin.sim.problems import last_boxed
from sglang_plugin.sim.protocol import parse_generate
from sglang_plugin.sim.server import SimServer
from sglang_plugin.sim.thinking import ThinkingParams

SHORT = ThinkingParams(easy_median_tokens=400, hard_median_tokens=1600)  # fast traces for statistics
ABORT = {"type": "abort", "message": "Aborted", "status_code": None, "err_type": None}


def question(i: int) -> str:
    return f"<｜User｜>Problem {i}: how many ways are there to choose {i + 2} of {2 * i + 5} books?<｜Assistant｜>"


def token_confidences(meta: dict) -> np.ndarray:
    """DeepConf's token confidence from the answer's output_top_logprobs: -(mean of the k top logprobs)."""
    return np.array([-sum(e[0] for e in top) / len(top) for top in meta["output_top_logprobs"]])


def lowest_window(conf: np.ndarray, window: int) -> float:
    if len(conf) < window:
        return float(conf.mean())
    sums = np.concatenate([[0.0], np.cumsum(conf)])
    return float(((sums[window:] - sums[:-window]) / window).min())


def auroc(groups: dict) -> float:
    """Within-problem AUROC: over pairs (correct, wrong) of traces of the same problem."""
    wins = pairs = 0.0
    for traces in groups.values():
        right = [s for s, ok_ in traces if ok_]
        wrong = [s for s, ok_ in traces if not ok_]
        for a in right:
            for b in wrong:
                wins += 1.0 if a > b else 0.5 if a == b else 0.0
                pairs += 1
    return wins / pairs


def test_client_computed_confidence_is_the_designed_score():
    """Over HTTP with k = 20 and the default 2048-token window, the lowest group confidence a client computes
    from streamed top logprobs is the trace's designed score (base - depth), the quantity whose AUROC is set."""
    with SimServer(thinking=True, seed=11) as running:
        engine = running.engine
        for i in range(3):
            body = {"text": question(i), "sampling_params": {"max_new_tokens": 60000, "stream_interval": 256,
                                                             "sampling_seed": i},
                    "return_logprob": True, "top_logprobs_num": 20}
            chunks = list(Stream(running.url, body))
            conf = np.concatenate([token_confidences(c["meta_info"]) for c in chunks])
            assert len(conf) == sum(len(c["output_ids"]) for c in chunks) == chunks[-1]["meta_info"]["completion_tokens"]
            assert len(conf) > 2048
            logprobs = engine.generate(parse_generate(body).items[0]).logprobs  # the same (seeded) draw
            assert np.allclose(conf, np.array(logprobs.levels) / 100, atol=2e-3)
            assert lowest_window(conf, 2048) == pytest.approx(logprobs.plan.base / 100 - logprobs.plan.depth,
                                                              abs=0.02)


def test_confidence_auroc_matches_the_setting():
    """Thousands of complete traces (engine calls: the same code the server runs per request, whose scores the
    HTTP test above ties to what a client computes): the within-problem AUROC of the lowest window mean is the
    setting; the mean token confidence separates less; a trace's first half already carries information."""
    engine = SimEngine(SimConfig(thinking=True, confidence_auroc=0.8, confidence_window=256, seed=4,
                                 thinking_params=SHORT))
    lowest, mean, half = {}, {}, {}
    for i in range(80):
        for _ in range(40):
            request = parse_generate({"text": question(i), "sampling_params": {"max_new_tokens": 30000},
                                      "return_logprob": True, "top_logprobs_num": 20}).items[0]
            generation = engine.generate(request)
            correct = last_boxed(generation.final_text) == engine.reasoner.spec_for(question(i)).answer
            conf = np.array(generation.logprobs.levels) / 100
            lowest.setdefault(i, []).append((lowest_window(conf, 256), correct))
            mean.setdefault(i, []).append((float(conf.mean()), correct))
            half.setdefault(i, []).append((lowest_window(conf[:len(conf) // 2], 256), correct))
    assert auroc(lowest) == pytest.approx(0.8, abs=0.03)
    assert 0.5 < auroc(mean) < auroc(lowest) - 0.05
    assert 0.55 < auroc(half) < auroc(lowest)


def test_lengths_answers_and_cut_traces():
    with SimServer(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS, thinking=True, seed=2,
                   default_rate=0.4) as running:
        records = sample_records()
        lengths = {True: [], False: []}
        per_problem = []
        for record in records[:6]:
            text = f"<｜User｜>{record['problem']}<｜Assistant｜><think>\n"
            spec = running.reasoner.spec_for(record["problem"])
            counts = []
            for _ in range(12):
                answer = ok(running.url, "/generate", {"text": text, "sampling_params": {"max_new_tokens": 130000}})
                meta = answer["meta_info"]
                assert meta["finish_reason"]["type"] == "stop" and "</think>" in answer["text"]
                assert not answer["text"].startswith("<think>")  # the prompt opened it
                _, after = answer["text"].split("</think>")
                assert after.rstrip().endswith("}$.") and len(after) < 1500
                boxed = last_boxed(after)
                assert boxed == spec.answer or boxed in spec.wrong_answers
                lengths[boxed == spec.answer].append(meta["completion_tokens"])
                counts.append(meta["completion_tokens"])
            per_problem.append(statistics.median(counts))
            assert len(set(counts)) == len(counts)  # every trace its own length
        assert statistics.median(lengths[False]) > 1.2 * statistics.median(lengths[True])
        assert max(per_problem) > 2 * min(per_problem)  # lengths vary by problem
        assert 1000 < statistics.median(lengths[True] + lengths[False]) < 20000
        cut = ok(running.url, "/generate", {"text": question(1), "sampling_params": {"max_new_tokens": 300}})
        assert cut["meta_info"]["finish_reason"] == {"type": "length", "length": 300}
        assert cut["text"].startswith("<think>") and "</think>" not in cut["text"] and "boxed" not in cut["text"]


def test_answers_follow_the_rate_and_the_skewed_wrong_pool():
    with SimServer(thinking=True, seed=8, default_rate=0.3, thinking_params=SHORT) as running:
        spec = running.reasoner.spec_for(question(3))
        answers = [last_boxed(ok(running.url, "/generate", {"text": question(3), "sampling_params": {
            "max_new_tokens": 20000}})["text"]) for _ in range(300)]
    assert sum(a == spec.answer for a in answers) / len(answers) == pytest.approx(0.3, abs=0.08)
    wrong = [a for a in answers if a != spec.answer]
    assert set(wrong) <= set(spec.wrong_answers)
    top = max(set(wrong), key=wrong.count)
    assert top == spec.wrong_answers[0] and wrong.count(top) > len(wrong) / 3  # voting can be fooled


def test_determinism_under_seed():
    def draw(seed):
        with SimServer(thinking=True, seed=seed, thinking_params=SHORT) as running:
            return [ok(running.url, "/generate", {"text": question(i), "sampling_params": {
                "max_new_tokens": 20000}, "return_logprob": True, "top_logprobs_num": 5}) for i in range(3)
                    for _ in range(2)]
    first, again, other = draw(1), draw(1), draw(2)
    strip = [{**a, "meta_info": {k: v for k, v in a["meta_info"].items() if k not in ("e2e_latency", "id")}}
             for a in first]
    assert strip == [{**a, "meta_info": {k: v for k, v in a["meta_info"].items() if k not in ("e2e_latency", "id")}}
                     for a in again]
    assert [a["text"] for a in first] != [a["text"] for a in other]
    assert first[0]["text"] != first[1]["text"]  # repeated requests draw different traces


def test_streamed_thinking_trace_and_abort():
    with SimServer(thinking=True, seed=3, token_delay_ms=0.5) as running:
        before = sim_stats(running.url)
        body = {"text": question(5), "rid": "deep-1", "sampling_params": {"max_new_tokens": 100000,
                                                                         "stream_interval": 64},
                "return_logprob": True, "top_logprobs_num": 20}
        stream, chunks, elapsed = stream_and_abort(running.url, body, after=4)
        after = wait_idle(running.url)
    assert stream.done and chunks[-1]["meta_info"]["finish_reason"] == ABORT
    delivered = sum(len(c["output_ids"]) for c in chunks)
    # incremental chunks (the profile's default): new text, ids and logprobs only
    assert all(len(c["meta_info"]["output_top_logprobs"]) == len(c["output_ids"]) for c in chunks)
    assert [len(c["output_ids"]) for c in chunks[1:4]] == [64, 64, 64]
    assert delivered == chunks[-1]["meta_info"]["completion_tokens"] < 2000
    assert after["completion_tokens"] - before["completion_tokens"] == delivered
    assert elapsed < 2.0


def test_frontend_uses_the_thinking_models_template():
    sgl = pytest.importorskip("sglang")

    @sgl.function
    def solve(s, problem):
        s += sgl.user(problem)
        s += sgl.assistant(sgl.gen("answer", max_tokens=60000))

    with SimServer(thinking=True, seed=4, thinking_params=SHORT) as running:
        backend = sgl.RuntimeEndpoint(running.url)
        assert backend.get_chat_template().name == "deepseek-v3"
        state = solve.run(problem="How many primes are below 30?", backend=backend)
        assert state.error() is None
        assert "</think>" in state["answer"] and "\\boxed{" in state["answer"]
        assert state.get_meta_info("answer")["finish_reason"]["type"] == "stop"


def test_cli_thinking_flag():
    process, line = start("--port", "0", "--thinking", "--confidence-auroc", "0.7", "--stream-interval", "32")
    try:
        url = line.split("ready at ")[1].split()[0]
        assert "long-thinking" in line
        info = ok(url, "/get_model_info")
        assert info["model_path"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
        assert info["simulator"]["confidence_auroc"] == 0.7
        server = ok(url, "/get_server_info")
        assert server["stream_interval"] == 32 and server["incremental_streaming_output"] is True
        assert server["context_length"] == 131072
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
