"""The simulator's model of reasoning over real HTTP: success rates reproduced by whole-solution and
step-by-step generation, the wrong-answer pool, trajectory state read back from prompts, reward models
with the configured AUROC, and policy confidence. Statistical checks use fixed seeds and wide margins."""

import pytest
from math_verify import parse, verify
from sim_http import RATE_FIELD, RATES, SOLUTIONS, call, ok, prompt, sample_records
from sklearn.metrics import roc_auc_score

from planner.errors import InputError
from sglang_plugin.sim.problems import Problem, ProblemBank, last_boxed
from sglang_plugin.sim.server import SimServer

RECORDS = sample_records()
# (record, rate): multi-step reference solutions given chosen success rates
RATED = [(RECORDS[1], 0.2), (RECORDS[2], 0.5), (RECORDS[6], 0.9)]


@pytest.fixture(scope="module")
def rated():
    problems = [Problem(r["problem"], r["answer"], rate, r["solution"]) for r, rate in RATED]
    with SimServer(problems, seed=5, reward_auroc=0.8) as server:
        yield server


def batch(url, texts, **sampling):
    return ok(url, "/generate", {"text": texts, "sampling_params": sampling})


def whole(url, text, count):
    return [a["text"] for a in batch(url, [text] * count, max_new_tokens=3000, temperature=0.7)]


def stepwise(url, text, count):
    """Trajectories grown one step per request (stop at the blank line), all in flight as one batch."""
    trajectories, done = [text] * count, [False] * count
    for _ in range(40):
        open_ = [i for i in range(count) if not done[i]]
        if not open_:
            break
        answers = batch(url, [trajectories[i] for i in open_], max_new_tokens=1000, stop="\n\n", temperature=0.7)
        for i, answer in zip(open_, answers):
            trajectories[i] += answer["text"]
            if answer["meta_info"]["finish_reason"]["matched"] == "\n\n":
                trajectories[i] += "\n\n"
            else:
                done[i] = True
    assert all(done)
    return [t[len(text):] for t in trajectories]


def test_rates_are_reproduced(rated):
    for record, rate in RATED:
        spec = rated.reasoner.spec_for(record["problem"])
        assert spec.num_steps >= 3 and spec.rate == rate
        text = prompt(record["problem"])
        for samples in (whole(rated.url, text, 400), stepwise(rated.url, text, 200)):
            correct = [last_boxed(s) == record["answer"] for s in samples]
            assert abs(sum(correct) / len(correct) - rate) < 0.1, (record["answer"], rate)


def test_wrong_answers_come_from_a_skewed_pool():
    record = RECORDS[1]
    with SimServer([Problem(record["problem"], record["answer"], 0.0, record["solution"])], seed=2) as server:
        spec = server.reasoner.spec_for(record["problem"])
        answers = [last_boxed(s) for s in whole(server.url, prompt(record["problem"]), 600)]
    assert set(answers) <= set(spec.wrong_answers) and record["answer"] not in answers
    counts = [answers.count(a) / len(answers) for a in spec.wrong_answers]
    assert counts == sorted(counts, reverse=True)
    for observed, expected in zip(counts, spec.wrong_weights):
        assert abs(observed - expected) < 0.07


def test_wrong_answers_are_really_different():
    server = SimServer(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS)
    for record in RECORDS:
        spec = server.reasoner.spec_for(record["problem"])
        pool = spec.wrong_answers
        assert len(pool) == 4 and spec.answer == record["answer"]
        gold = parse(f"${record['answer']}$")
        for i, wrong in enumerate(pool):
            assert not verify(gold, parse(f"${wrong}$")), (record["answer"], wrong)
            for other in pool[i + 1:]:
                assert not verify(parse(f"${wrong}$"), parse(f"${other}$")), (wrong, other)


def test_wrong_steps_are_detectably_different(rated):
    record = RATED[0][0]
    spec = rated.reasoner.spec_for(record["problem"])
    for sample in whole(rated.url, prompt(record["problem"]), 60):
        steps = sample.split("\n\n")
        labels = [any(o.text == s and o.correct for o in spec.options[j]) for j, s in enumerate(steps)]
        wrong = [any(o.text == s and not o.correct for o in spec.options[j]) for j, s in enumerate(steps)]
        assert all(a != b for a, b in zip(labels, wrong))  # every step is one of the two kinds
        assert labels == sorted(labels, reverse=True)  # once wrong, stays wrong
        assert labels[-1] == (last_boxed(sample) == record["answer"])


def test_state_is_read_back_from_the_prompt(rated):
    record = RATED[1][0]
    text = prompt(record["problem"])
    spec = rated.reasoner.spec_for(record["problem"])
    # a step cut by max_new_tokens resumes where it stopped
    start = batch(rated.url, [text], max_new_tokens=6, temperature=0.7)[0]["text"]
    rest = batch(rated.url, [text + start], max_new_tokens=1000, stop="\n\n", temperature=0.7)[0]["text"]
    assert any(o.text == start + rest for o in spec.options[0])
    # a prompt ending after a step without the blank line: the model writes the separator first
    after = batch(rated.url, [text + spec.options[0][0].text], max_new_tokens=1000, stop="\n\n")[0]
    assert after["text"] == "" and after["meta_info"]["finish_reason"]["matched"] == "\n\n"
    # a finished solution: only the end of sequence is left
    done = "\n\n".join(o[0].text for o in spec.options)
    assert batch(rated.url, [text + done], max_new_tokens=100)[0]["meta_info"]["completion_tokens"] == 1
    # text the simulator did not write, in place of its steps, derails the trajectory for good
    foreign = text + spec.options[0][0].text + "\n\nI will now guess instead of computing.\n\n"
    outcomes = [last_boxed(s) for s in whole(rated.url, foreign, 40)]
    assert all(o in spec.wrong_answers for o in outcomes)
    # text before the simulator's first step is just prompt
    chatty = text + "Sure! Here is my solution.\n"
    assert any(last_boxed(s) == record["answer"] for s in whole(rated.url, chatty, 40))


def test_unknown_and_solution_less_problems():
    with SimServer(RATES, rate_field=RATE_FIELD, default_rate=0.3, seed=1) as server:
        record = RECORDS[0]
        known = whole(server.url, prompt(record["problem"]), 200)
        assert all(s.startswith("Step 1: ") for s in known)  # no reference solution: synthetic steps
        rate = server.reasoner.spec_for(record["problem"]).rate
        assert abs(sum(last_boxed(s) == record["answer"] for s in known) / 200 - rate) < 0.12
        unknown_text = prompt("Find the number of pebbles in a jar the simulator has never heard of.")
        samples = stepwise(server.url, unknown_text, 300)
        finals = [last_boxed(s) for s in samples]
        spec, _, is_known = server.reasoner.locate(unknown_text)
        assert not is_known and spec.rate == 0.3
        assert abs(finals.count(spec.answer) / len(finals) - 0.3) < 0.1
        assert set(finals) <= {spec.answer} | set(spec.wrong_answers)
        # a reward model sees the problem in another template, so it judges the synthetic steps by their
        # own arithmetic
        other = "Question: Find the number of pebbles in a jar the simulator has never heard of.\nAnswer: "
        answers = ok(server.url, "/classify", {"text": [other + s for s in samples]})
        labels = [f == spec.answer for f in finals]
        assert abs(roc_auc_score(labels, [a["embedding"][0] for a in answers]) - 0.9) < 0.08


def test_outcome_reward_auroc(rated):
    labels, scores = [], []
    for record, _ in RATED:
        text = prompt(record["problem"])
        samples = whole(rated.url, text, 150)
        # the way an ORM scorer formats it: the response inside the reward model's chat template
        answers = ok(rated.url, "/classify", {"text": [text + s + "<|im_end|>\n<|endoftext|>" for s in samples]})
        labels += [last_boxed(s) == record["answer"] for s in samples]
        scores += [a["embedding"][0] for a in answers]
        assert all(set(a["meta_info"]) >= {"prompt_tokens", "finish_reason", "id"} for a in answers)
    assert abs(roc_auc_score(labels, scores) - 0.8) < 0.08
    single = ok(rated.url, "/encode", {"text": "just text"})
    assert isinstance(single["embedding"], list) and len(single["embedding"]) == 1


def test_step_tag_prm(rated):
    """Math-Shepherd style: " ки\\n" after each step; P("+") is read right after each tag."""
    info = ok(rated.url, "/get_model_info")["simulator"]
    tag_id, plus, minus = info["step_tag_id"], info["plus_token_id"], info["minus_token_id"]
    labels, rewards = [], []
    for record, _ in RATED:
        spec = rated.reasoner.spec_for(record["problem"])
        start = len(ok(rated.url, "/tokenize", {"prompt": record["problem"]})["tokens"]) - 1
        for sample in whole(rated.url, prompt(record["problem"]), 60):
            steps = sample.split("\n\n")
            text = record["problem"] + " " + "".join(f"{s} {info['step_tag']}\n" for s in steps)
            meta = ok(rated.url, "/generate", {"text": text, "sampling_params": {"max_new_tokens": 0},
                                               "return_logprob": True, "logprob_start_len": start,
                                               "token_ids_logprob": [plus, minus]})["meta_info"]
            tags = [i for i, e in enumerate(meta["input_token_logprobs"]) if e[1] == tag_id]
            assert len(tags) == len(steps)
            correct = True
            for j, (i, step) in enumerate(zip(tags, steps)):
                pair = {e[1]: e[0] for e in meta["input_token_ids_logprobs"][i + 1]}
                rewards.append(pair[plus] - pair[minus])
                correct = correct and any(o.text == step and o.correct for o in spec.options[j])
                labels.append(correct)
    assert 0.1 < sum(labels) / len(labels) < 0.9
    assert abs(roc_auc_score(labels, rewards) - 0.8) < 0.08


def test_policy_confidence_is_mildly_higher_on_correct_trajectories(rated):
    record = RATED[1][0]
    answers = ok(rated.url, "/generate", {"text": [prompt(record["problem"])] * 300, "return_logprob": True,
                                          "sampling_params": {"max_new_tokens": 3000, "temperature": 0.7}})
    labels = [last_boxed(a["text"]) == record["answer"] for a in answers]
    confidence = [sum(e[0] for e in a["meta_info"]["output_token_logprobs"]) / a["meta_info"]["completion_tokens"]
                  for a in answers]
    auroc = roc_auc_score(labels, confidence)
    assert 0.55 < auroc < 0.95


def test_problem_file_errors_name_file_line_and_field(tmp_path):
    good = '{"problem": "What is 1+1?", "answer": "2", "pass_rate": 0.5}\n'
    cases = {
        '{"problem": "What is 1+1?", "answer": "2"}\n': ("pass_rate", "missing"),
        '{"problem": "What is 1+1?", "answer": "2", "pass_rate": 1.5}\n': ("pass_rate", "outside"),
        '{"problem": "What is 1+1?", "pass_rate": 0.5}\n': ("answer", "missing"),
        '{"problem": 7, "answer": "2", "pass_rate": 0.5}\n': ("problem", "expected text"),
        '{"problem": "What?", "answer": "2", "pass_rate": 0.5, "solution": 3}\n': ("solution", "expected text"),
        '{"problem": "What is 1+1?", "answer": [2], "pass_rate": 0.5}\n': ("answer", "expected text"),
        '{"problem": "What is 1+1?"\n': (None, "malformed JSON"),
    }
    for bad, (field, reason) in cases.items():
        path = tmp_path / "problems.jsonl"
        path.write_text(good + bad, encoding="utf-8")
        with pytest.raises(InputError) as error:
            ProblemBank.from_jsonl(path)
        assert error.value.path == str(path) and error.value.line == 2 and error.value.field == field
        assert reason in str(error.value)
    with pytest.raises(InputError, match="cannot open"):
        ProblemBank.from_jsonl(tmp_path / "missing.jsonl")


def test_rates_file_joined_with_solutions():
    bank = ProblemBank.from_jsonl(RATES, rate_field=RATE_FIELD, solutions=SOLUTIONS)
    assert len(bank) == len(RECORDS)
    assert all(bank.get(r["problem"]).solution == r["solution"] for r in RECORDS)
    alone = ProblemBank.from_jsonl(RATES, rate_field=RATE_FIELD)
    assert all(alone.get(r["problem"]).solution is None and alone.get(r["problem"]).answer == r["answer"]
               for r in RECORDS)
    found = bank.find("Intro text. " + RECORDS[3]["problem"].replace(" ", "   ") + " Answer:")
    assert found is not None and found[0].text == RECORDS[3]["problem"]


def test_answers_past_pythons_integer_digit_limit_are_served():
    from sglang_plugin.sim.steps import wrong_answer_pool

    huge = "7" * 5000
    pool = wrong_answer_pool(huge, 4, "salt")
    assert len(pool) == 4 and huge not in pool
    with SimServer([Problem("What is the big number?", huge, 1.0)]) as server:
        status, answer = call(server.url, "/generate", {"text": "What is the big number?",
                                                        "sampling_params": {"max_new_tokens": 32}})
    assert status == 200 and answer["meta_info"]["completion_tokens"] == 32
