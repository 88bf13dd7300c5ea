"""The difficulty predictor: a problem's pass@1 for one policy, from the problem's text alone.

Two base learners read the hashed n-grams and disagree usefully: ridge regressions on tf-idf (one per
target: the policy's own logit pass rate, and optional auxiliary targets such as the consensus rate of
other policies or the human level, which are less noisy views of the same difficulty) and gradient-boosted
trees on raw n-gram counts, which catch keyword interactions a linear model cannot. A second LightGBM,
trained on their out-of-fold predictions plus structure counts with a cross-entropy objective, gives the
final pass@1 so it is calibrated as a probability, not only ranked.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np
from scipy import sparse
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

from planner.errors import ModelFileError
from planner.files import atomic_path
from planner.prediction.features import Batch, FeatureConfig, featurize, padded

FORMAT_VERSION = 1
FORMAT_KIND = "tts-planner/difficulty-predictor"
LOGIT_EPS = 0.02
CHUNK = 8192
_BLOCKS = ("chars", "words")


def logit_rate(rate: np.ndarray) -> np.ndarray:
    """Smoothed logit of a pass rate, so 0 and 1 stay finite."""
    return np.log((rate + LOGIT_EPS) / (1.0 - rate + LOGIT_EPS))


class DifficultyPredictor:
    """Estimates pass@1 of a problem for one policy model, in scikit-learn's conventions: parameters are set in
    `__init__` (`get_params` / `set_params`), `fit` learns every attribute ending in "_" and returns self,
    `predict` reads only those. `save` / `load` persist it as one .npz with a format version; a model card (the
    training data, held-out metrics) rides along in the file, apart from the estimator (`read_card`)."""

    def __init__(self, features: FeatureConfig = FeatureConfig(char_bits=17, word_bits=17),
                 ridge_alpha: float = 4.0, n_folds: int = 5, min_df: int = 20, tree_rounds: int = 400,
                 stack_rounds: int = 300, n_threads: int = 2, random_state: int = 0,
                 policy: str | None = None) -> None:
        self.features = features
        self.ridge_alpha = ridge_alpha
        self.n_folds = n_folds
        self.min_df = min_df
        self.tree_rounds = tree_rounds
        self.stack_rounds = stack_rounds
        self.n_threads = n_threads
        self.random_state = random_state
        self.policy = policy  # the policy whose pass@1 it predicts

    def _tree_params(self, rounds: int, learning_rate: float, colsample: float, min_child: int) -> dict:
        # Fixed thread count and deterministic mode: the same data gives the same model on any machine.
        return dict(objective="cross_entropy", n_estimators=rounds, learning_rate=learning_rate,
                    num_leaves=15, min_child_samples=min_child, subsample=0.8, subsample_freq=1,
                    colsample_bytree=colsample, reg_lambda=1.0, random_state=self.random_state,
                    n_jobs=self.n_threads, deterministic=True, force_col_wise=True, verbose=-1)

    # ----------------------------------------------------------------------------------------- fit
    def fit(self, texts: list[str], y: np.ndarray, sample_weight: np.ndarray | None = None,
            aux: dict[str, np.ndarray] | None = None) -> DifficultyPredictor:
        """Learn from texts and their measured pass rates; `aux` adds ridge targets (name -> values)."""
        y = np.asarray(y, dtype=float)
        if len(texts) != len(y):
            raise ValueError(f"{len(texts)} texts but {len(y)} labels")
        if len(texts) < 2 * self.n_folds:
            raise ValueError(f"need at least {2 * self.n_folds} labeled problems to fit, got {len(texts)}")
        weight = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        batch = featurize(texts, self.features)
        counts = {name: getattr(batch, name).counts() for name in _BLOCKS}

        self.norm_weight_ = {}
        tfidf_blocks = []
        for name in _BLOCKS:
            df = np.bincount(counts[name].indices, minlength=counts[name].shape[1])
            idf = (np.log((1.0 + len(texts)) / (1.0 + df)) + 1.0).astype(np.float32)
            self.norm_weight_[name] = idf ** 2
            tfidf_blocks.append(_normalize(counts[name], idf))
        tfidf = sparse.hstack(tfidf_blocks).tocsr()

        targets = {"own": logit_rate(y), **{k: np.asarray(v, dtype=float) for k, v in (aux or {}).items()}}
        self.ridge_targets_ = list(targets)
        target_matrix = np.column_stack(list(targets.values()))
        folds = list(KFold(self.n_folds, shuffle=True, random_state=self.random_state).split(tfidf))

        linear_oof = np.zeros_like(target_matrix)
        for train, held in folds:
            model = Ridge(alpha=self.ridge_alpha).fit(tfidf[train], target_matrix[train], weight[train])
            linear_oof[held] = model.predict(tfidf[held]).reshape(len(held), -1)
        ridge = Ridge(alpha=self.ridge_alpha).fit(tfidf, target_matrix, weight)
        coef = np.atleast_2d(ridge.coef_)
        self.intercept_ = np.atleast_1d(ridge.intercept_).astype(np.float64)
        split = counts["chars"].shape[1]
        self.linear_ = {  # idf folded into the coefficients: score = sum over occurrences / norm
            "chars": (coef[:, :split] * np.sqrt(self.norm_weight_["chars"])).astype(np.float32),
            "words": (coef[:, split:] * np.sqrt(self.norm_weight_["words"])).astype(np.float32),
        }

        self.tree_columns_ = {name: np.flatnonzero(
            np.bincount(counts[name].indices, minlength=counts[name].shape[1]) >= self.min_df
        ).astype(np.int32) for name in _BLOCKS}
        tree_input = sparse.hstack([*(counts[name][:, self.tree_columns_[name]] for name in _BLOCKS),
                                    sparse.csr_matrix(batch.structure)], format="csr").astype(np.float32)
        tree_params = self._tree_params(self.tree_rounds, 0.05, 0.3, 20)
        tree_oof = np.zeros(len(y))
        for train, held in folds:
            model = lgb.LGBMRegressor(**tree_params).fit(tree_input[train], y[train], sample_weight=weight[train])
            tree_oof[held] = model.predict(tree_input[held], raw_score=True)
        self.tree_model_ = lgb.LGBMRegressor(**tree_params).fit(tree_input, y, sample_weight=weight).booster_
        self._index()

        stack_input = _stack_input(linear_oof, tree_oof, batch.structure)
        stack_params = self._tree_params(self.stack_rounds, 0.015, 0.8, 40)
        self.stack_model_ = lgb.LGBMRegressor(**stack_params).fit(stack_input, y, sample_weight=weight).booster_
        return self

    # ------------------------------------------------------------------------------------- predict
    def predict(self, texts: list[str], progress: Callable[[int], object] | None = None) -> np.ndarray:
        """Predicted pass@1 in [0, 1] for each text; `progress(n)` is told as each chunk of n finishes."""
        self._check_fitted()
        chunks = [texts[i:i + CHUNK] for i in range(0, len(texts), CHUNK)] or [[]]

        def run(chunk: list[str]) -> np.ndarray:
            result = self._predict_chunk(chunk)
            if progress is not None:
                progress(len(chunk))
            return result

        if len(chunks) == 1:
            return run(chunks[0])
        with ThreadPoolExecutor(self.n_threads) as pool:
            return np.concatenate(list(pool.map(run, chunks)))

    def _predict_chunk(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        batch = featurize(texts, self.features)
        linear = self._linear_scores(batch)
        tree = self.tree_model_.predict(self._tree_input(batch), raw_score=True, num_threads=1)
        stack = self.stack_model_.predict(_stack_input(linear, tree, batch.structure), num_threads=1)
        return np.clip(stack, 0.0, 1.0)

    def _linear_scores(self, batch: Batch) -> np.ndarray:
        scores = np.tile(self.intercept_, (batch.structure.shape[0], 1))
        for name in _BLOCKS:
            sums = getattr(batch, name).sums(self.block_weights_[name])  # column 0: squared norm
            norm = np.sqrt(sums[:, :1])
            norm[norm == 0] = 1.0
            scores += sums[:, 1:] / norm
        return scores

    def _tree_input(self, batch: Batch) -> sparse.csr_matrix:
        """Counts of the tree columns of both blocks, then the structure counts, built as one matrix."""
        docs, columns, offset = [], [], 0
        for name in _BLOCKS:
            block_docs, block_columns = getattr(batch, name).occurrences(self.column_of_bucket_[name])
            docs.append(block_docs)
            columns.append(block_columns + offset)
            offset += len(self.tree_columns_[name])
        n, width = batch.structure.shape
        docs.append(np.repeat(np.arange(n), width))
        columns.append(np.tile(np.arange(offset, offset + width), n))
        values = np.concatenate([np.ones(sum(len(d) for d in docs[:-1]), dtype=np.float32),
                                 batch.structure.ravel().astype(np.float32)])
        return sparse.csr_matrix((values, (np.concatenate(docs), np.concatenate(columns))),
                                 shape=(n, offset + width))

    def _index(self) -> None:
        """Lookups the batch path needs, derived from the learned state: per block, a bucket x (squared norm
        weight, linear weights) matrix with the reserved bucket appended, and bucket -> tree-input column
        (-1 for buckets no tree splits on, so columns the trees ignore are never built)."""
        self.block_weights_ = {name: padded(np.column_stack([self.norm_weight_[name], self.linear_[name].T]))
                               for name in _BLOCKS}
        used = self.tree_model_.feature_importance("split") > 0
        self.column_of_bucket_ = {}
        offset = 0
        for name in _BLOCKS:
            columns = self.tree_columns_[name]
            positions = np.flatnonzero(used[offset:offset + len(columns)])
            lookup = np.full(len(self.norm_weight_[name]) + 1, -1, dtype=np.int64)
            lookup[columns[positions]] = positions
            self.column_of_bucket_[name] = lookup
            offset += len(columns)

    def _check_fitted(self) -> None:
        if not hasattr(self, "stack_model_"):
            raise RuntimeError("this DifficultyPredictor is not fitted yet; call fit() or load()")

    # ---------------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike, card: dict | None = None) -> None:
        """Write one self-describing .npz file (no pickle) with its model card; the write is atomic."""
        self._check_fitted()
        params = self.get_params()
        metadata = {**(card or {}), "policy": params.pop("policy")}  # the file keeps the policy in its card
        params.pop("features")
        header = {"kind": FORMAT_KIND, "format_version": FORMAT_VERSION, "features": self.features.to_dict(),
                  "params": params, "ridge_targets": self.ridge_targets_, "metadata": metadata}
        arrays = {"header": _text_array(json.dumps(header, sort_keys=True)),
                  "intercept": self.intercept_,
                  "tree_model": _text_array(self.tree_model_.model_to_string()),
                  "stack_model": _text_array(self.stack_model_.model_to_string())}
        for name in _BLOCKS:
            arrays[f"norm_weight_{name}"] = self.norm_weight_[name]
            arrays[f"linear_{name}"] = self.linear_[name]
            arrays[f"tree_columns_{name}"] = self.tree_columns_[name]
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DifficultyPredictor:
        """Read a model file; a truncated, corrupt or other-version file raises ModelFileError."""
        name = str(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except FileNotFoundError as exc:
            raise ModelFileError(f"{name}: no such model file") from exc
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
            raise ModelFileError(_unreadable(path, exc)) from None
        header = _read_header(arrays, name)
        model = cls(features=FeatureConfig.from_dict(header["features"]), policy=header["metadata"].get("policy"),
                    **header["params"])
        try:
            model.ridge_targets_ = header["ridge_targets"]
            model.intercept_ = arrays["intercept"]
            model.norm_weight_ = {b: arrays[f"norm_weight_{b}"] for b in _BLOCKS}
            model.linear_ = {b: arrays[f"linear_{b}"] for b in _BLOCKS}
            model.tree_columns_ = {b: arrays[f"tree_columns_{b}"] for b in _BLOCKS}
            model.tree_model_ = lgb.Booster(model_str=_array_text(arrays["tree_model"]))
            model.stack_model_ = lgb.Booster(model_str=_array_text(arrays["stack_model"]))
            model._index()
        except (KeyError, lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{name}: model file is incomplete or corrupt ({exc})") from exc
        return model

    def get_params(self, deep: bool = True) -> dict:
        return {"features": self.features, "ridge_alpha": self.ridge_alpha, "n_folds": self.n_folds,
                "min_df": self.min_df, "tree_rounds": self.tree_rounds, "stack_rounds": self.stack_rounds,
                "n_threads": self.n_threads, "random_state": self.random_state, "policy": self.policy}

    def set_params(self, **params) -> DifficultyPredictor:
        unknown = set(params) - set(self.get_params())
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(sorted(unknown))} for DifficultyPredictor")
        for key, value in params.items():
            setattr(self, key, value)
        return self

    @staticmethod
    def read_card(path: str | os.PathLike) -> dict:
        """The model card stored in a model file (training data, held-out metrics, policy)."""
        name = str(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                header = _read_header({"header": data["header"]} if "header" in data.files else {}, name)
        except FileNotFoundError as exc:
            raise ModelFileError(f"{name}: no such model file") from exc
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ModelFileError(_unreadable(path, exc)) from None
        return header["metadata"]


def _unreadable(path: str | os.PathLike, exc: Exception) -> str:
    """Why a file is not a model file, in the user's terms: model files are .npz archives (zip), so anything
    else (a model card, a text file) is named for what it is, never by the loader's internals."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError as error:
        return f"{path}: cannot read the model file ({error.strerror or error})"
    if not head.startswith(b"PK"):
        kind = "JSON (a model card? give the .npz model file beside it)" if head.lstrip()[:1] in (b"{", b"[") \
            else "empty" if not head else "not a zip archive"
        return (f"{path}: not a tts-planner model file: it is {kind}; model files are the .npz files "
                "`tts-planner train` writes")
    return f"{path}: not a readable tts-planner model file (truncated or corrupt: {type(exc).__name__})"


def _normalize(counts: sparse.csr_matrix, idf: np.ndarray) -> sparse.csr_matrix:
    """tf-idf rows scaled by the occurrence norm the batch path computes with bincount."""
    norm = np.sqrt(np.asarray(counts @ (idf.astype(np.float64) ** 2)).ravel())
    norm[norm == 0] = 1.0
    return sparse.diags(1.0 / norm) @ counts @ sparse.diags(idf.astype(np.float64))


def _stack_input(linear: np.ndarray, tree: np.ndarray, structure: np.ndarray) -> np.ndarray:
    return np.column_stack([linear, tree, structure])


def _text_array(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)


def _array_text(array: np.ndarray) -> str:
    return array.tobytes().decode("utf-8")


def _read_header(arrays: dict, name: str) -> dict:
    if "header" not in arrays:
        raise ModelFileError(f"{name}: not a tts-planner model file (no header)")
    try:
        header = json.loads(_array_text(arrays["header"]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{name}: model header is corrupt ({exc})") from exc
    if header.get("kind") != FORMAT_KIND:
        raise ModelFileError(f"{name}: not a tts-planner difficulty model (kind {header.get('kind')!r})")
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{name}: model format version {version}, but this tts-planner reads version "
                             f"{FORMAT_VERSION}; retrain it with `tts-planner train` or use a matching "
                             "tts-planner release")
    return header
