import copy
import json
import zipfile

import numpy as np
import pytest
from scipy.stats import spearmanr

from planner.errors import InputError, ModelFileError
from planner.prediction.model_store import load_model, resolve_model_path, shipped_model_path
from planner.prediction.predictor import DifficultyPredictor


def test_predictions_are_probabilities_that_rank_held_out_problems(small_model, test_sample):
    texts = [r["problem"] for r in test_sample]
    predicted = small_model.predict(texts)
    assert predicted.shape == (len(texts),)
    assert ((predicted >= 0) & (predicted <= 1)).all()
    assert predicted.std() > 0.01  # not a constant
    rho = spearmanr(predicted, [r["pass_rate"] for r in test_sample]).statistic
    assert rho > 0.2, rho  # 300 training problems already carry signal about unseen ones


def test_one_text_predicts_the_same_as_inside_a_batch(small_model, test_sample):
    texts = [r["problem"] for r in test_sample[:20]]
    together = small_model.predict(texts)
    alone = np.array([small_model.predict([t])[0] for t in texts])
    np.testing.assert_allclose(alone, together, rtol=0, atol=1e-12)


def test_large_batches_split_into_chunks_give_the_same_answers(small_model, test_sample, monkeypatch):
    import planner.prediction.predictor as predictor_module

    texts = [r["problem"] for r in test_sample]
    whole = small_model.predict(texts)
    monkeypatch.setattr(predictor_module, "CHUNK", 7)
    seen = []
    chunked = small_model.predict(texts, progress=seen.append)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12)
    assert sum(seen) == len(texts) and max(seen) == 7


def test_save_and_load_round_trip(small_model, test_sample, tmp_path):
    path = tmp_path / "model.npz"
    model = copy.deepcopy(small_model).set_params(policy="Qwen/Qwen2.5-Math-1.5B-Instruct")
    model.save(path, {"note": "test"})
    loaded = DifficultyPredictor.load(path)
    texts = [r["problem"] for r in test_sample[:50]]
    np.testing.assert_array_equal(loaded.predict(texts), model.predict(texts))
    assert DifficultyPredictor.read_card(path)["note"] == "test" and loaded.policy == "Qwen/Qwen2.5-Math-1.5B-Instruct"
    assert loaded.get_params() == model.get_params()


def test_follows_scikit_learn_conventions(small_model, train_sample):
    """Parameters only in __init__ and get/set_params, learned state ending in "_" and set by fit alone, fit
    returns self, and an unfitted estimator refuses to predict."""
    params = small_model.get_params()
    fresh = DifficultyPredictor(**params)
    assert fresh.get_params() == params
    assert not [k for k in vars(fresh) if k.endswith("_")]
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh.predict(["What is 1+1?"])
    texts = [r["problem"] for r in train_sample]
    rates = np.array([r["pass_rate"] for r in train_sample])
    assert fresh.fit(texts, rates) is fresh
    learned = {k for k in vars(fresh) if k not in params}
    assert learned and all(k.endswith("_") for k in learned)
    assert fresh.set_params(min_df=5) is fresh and fresh.min_df == 5
    with pytest.raises(ValueError, match="unknown parameter"):
        fresh.set_params(depth=3)


def test_truncated_model_file_fails_clearly(small_model, tmp_path):
    path = tmp_path / "model.npz"
    small_model.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        DifficultyPredictor.load(path)


def test_other_format_version_fails_clearly(small_model, tmp_path):
    path = tmp_path / "model.npz"
    small_model.save(path)
    rewritten = tmp_path / "v99.npz"
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(arrays["header"].tobytes())
    header["format_version"] = 99
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(rewritten, **arrays)
    with pytest.raises(ModelFileError, match="format version 99.*reads version 1"):
        DifficultyPredictor.load(rewritten)


def test_files_that_are_not_models_fail_clearly(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip file")
    with pytest.raises(ModelFileError, match="garbage.npz"):
        DifficultyPredictor.load(garbage)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    with pytest.raises(ModelFileError, match="no header"):
        DifficultyPredictor.load(other)
    with pytest.raises(ModelFileError, match="no such model file"):
        DifficultyPredictor.load(tmp_path / "missing.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ModelFileError):
        DifficultyPredictor.load(tmp_path / "empty.npz")


def test_fit_rejects_mismatched_or_tiny_data():
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        DifficultyPredictor().fit(["a", "b", "c"], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 10"):
        DifficultyPredictor().fit(["a", "b", "c"], [0.1, 0.2, 0.3])


def test_unfitted_model_says_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        DifficultyPredictor().predict(["x"])


def test_model_names_resolve_to_shipped_files_or_paths(tmp_path):
    assert resolve_model_path(None) == shipped_model_path("Qwen/Qwen2.5-Math-1.5B-Instruct")
    assert resolve_model_path("qwen2.5-math-7b-instruct").name == "qwen2.5-math-7b-instruct.npz"
    assert resolve_model_path(str(tmp_path / "mine.npz")) == tmp_path / "mine.npz"
    with pytest.raises(InputError, match="unknown policy 'Llama-3-8B'.*known:"):
        load_model("Llama-3-8B")
