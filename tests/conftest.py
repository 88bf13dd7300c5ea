import json
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def read_sample(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="session")
def train_sample() -> list[dict]:
    return read_sample("math_train_sample.jsonl")


@pytest.fixture(scope="session")
def test_sample() -> list[dict]:
    return read_sample("math_test_sample.jsonl")


@pytest.fixture(scope="session")
def small_model(train_sample):
    """A real predictor fitted on 300 MATH train problems, small enough to train in seconds."""
    from planner.predictor import DifficultyPredictor

    texts = [r["problem"] for r in train_sample]
    rates = np.array([r["pass_rate"] for r in train_sample])
    return DifficultyPredictor(tree_rounds=40, stack_rounds=40, min_df=3).fit(texts, rates)
