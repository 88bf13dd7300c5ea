"""Closing the loop on a small scale: the outcome records of a run are accepted as they are by
`tts-planner train --label correct`, and the predictor it writes drives the next run."""

import json

import numpy as np
from click.testing import CliRunner
from conftest import SAMPLE, lines, settings, write_problems

from planner.prediction.predictor import DifficultyPredictor
from sglang_plugin.cli.main import main
from sglang_plugin.runs.batch import run_batch
from sglang_plugin.sim.server import SimServer


def test_outcome_records_retrain_the_predictor_that_plans_the_next_run(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write_problems(first / "problems.jsonl", 40)
    later = write_problems(second / "problems.jsonl", 6, start=40)
    with SimServer(SAMPLE, seed=5) as server:
        run_batch(settings(server.url, first, concurrency=6))
        outcomes = first / "results.jsonl.outcomes.jsonl"
        records = lines(outcomes)
        policy = records[0]["policy"]
        trained = CliRunner().invoke(main, ["train", str(outcomes), "--label", "correct", "--output",
                                            str(tmp_path / "mine.npz"), "--policy", policy], catch_exceptions=False)
        assert trained.exit_code == 0, trained.output
        card = json.loads(trained.stdout.replace("NaN", "null"))
        # Every sample counted once, pooled per problem by problem_id.
        assert card["training_data"]["lines"] == len(records) == 4 * 40
        assert card["training_data"]["problems"] == 40 and card["training_data"]["samples"] == 160
        assert card["policy"] == policy
        report = run_batch(settings(server.url, second, model=str(tmp_path / "mine.npz"), strategy=None, size=None,
                                    budget=2))
    model = DifficultyPredictor.load(tmp_path / "mine.npz")
    expected = np.round(model.predict([r["problem"] for r in later]), 4)
    results = {line["problem_id"]: line for line in lines(second / "results.jsonl")}
    for record, p in zip(later, expected):
        line = results[record["unique_id"]]
        assert line["prediction"]["model"] == "mine.npz" and line["prediction"]["pass_at_1"] == float(p)
        assert line["plan"]["adaptive"]["prior_pass_at_1"] == float(p)
    assert report.session.written == 6
