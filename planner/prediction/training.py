"""Retraining the difficulty predictor on a user's own outcomes, measured on a held-out share and judged against
the predictor the planner would otherwise use for that policy, on the same held-out problems.

A model that is clearly worse than that predictor is not written without `force` (fitting takes minutes, and a
worse model silently replacing a better one costs every plan after it); a held-out share too small to tell the two
apart is written with a warning saying so. Fitting logs what it is doing and how long it has taken.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from planner.errors import InputError, PlannerError
from planner.files import sha256_of
from planner.jsonl import DEFAULT_MAX_CHARS, SkipLog
from planner.logs import logger
from planner.policies import known_policy, policy
from planner.prediction.labels import load_labels
from planner.prediction.metrics import difficulty_metrics, format_metrics, paired_spearman_gap
from planner.prediction.predictor import FORMAT_VERSION, DifficultyPredictor

MIN_PROBLEMS = 20
# Held-out problems needed before a new model is judged against the one it would replace: with fewer, the
# Spearman of either moves by more than 0.1 from one held-out draw to the next.
MIN_JUDGED = 50
# A model is "clearly worse" when it ranks the held-out problems worse than the reference predictor in at least
# this share of paired bootstrap resamples of them.
WORSE_SHARE = 0.9
HEARTBEAT_SECONDS = 10.0

log = logger(__name__)


def train_from_file(data_path: Path, label_field: str, output: Path, *, total_field: str | None = None,
                    group_field: str | None = "problem_id", text_field: str | None = None,
                    policy_name: str | None = None, policy_params: float | None = None, holdout: float = 0.2,
                    refit: bool = False, seed: int = 0, force: bool = False, skip: SkipLog | None = None,
                    max_chars: int = DEFAULT_MAX_CHARS) -> dict:
    """Fit on (1 - holdout) of the problems, measure on the rest against the reference predictor, save;
    returns the metadata written. Raises PlannerError, writing nothing, when the new model is clearly worse and
    `force` is False."""
    name, params = _policy(policy_name, policy_params)
    data = load_labels(data_path, label_field, text_field=text_field, total_field=total_field,
                       group_field=group_field, skip=skip, max_chars=max_chars)
    if name is None:
        name = _policy_of_records(data.records)
    if len(data) < MIN_PROBLEMS:
        raise InputError(f"only {len(data)} distinct problems with labels; training needs at least "
                         f"{MIN_PROBLEMS}", path=str(data_path), field=label_field)
    order = np.random.default_rng(seed).permutation(len(data))
    n_held = max(1, int(round(holdout * len(data))))
    held, kept = order[:n_held], order[n_held:]
    texts = np.array(data.texts, dtype=object)
    steps = 3 if refit else 2
    log.info(f"[1/{steps}] training on {len(kept)} problems ({data.lines_read} lines), holding out {n_held}")
    with _ticking("fitting"):
        model = DifficultyPredictor(random_state=seed, policy=name).fit(list(texts[kept]), data.labels[kept],
                                                                        data.weights[kept])
    log.info(f"[2/{steps}] measuring on the {n_held} held-out problems")
    predicted = model.predict(list(texts[held]))
    metrics = difficulty_metrics(predicted, data.labels[held])
    log.info(f"held-out: {format_metrics(metrics)}")
    comparison = _compare(name, list(texts[held]), predicted, data.labels[held], metrics, force, output)
    if refit:
        log.info(f"[3/{steps}] refitting on all {len(data)} problems")
        with _ticking("fitting"):
            model = DifficultyPredictor(random_state=seed, policy=name).fit(data.texts, data.labels, data.weights)
    card = {
        "policy_params": params,
        "label_column": label_field,
        "training_data": {"file": Path(data_path).name, "sha256": sha256_of(Path(data_path)),
                          "lines": data.lines_read, "problems": len(data), "samples": float(data.weights.sum()),
                          "total_field": total_field, "refit_on_all": refit},
        "held_out_metrics": {"holdout": metrics},
        "compared_with": comparison,
        "format_version": FORMAT_VERSION,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    model.save(output, card)
    log.info(f"wrote {output}")
    return {"policy": name, **card}


def _policy(name: str | None, params: float | None) -> tuple[str | None, float | None]:
    """The policy name to record (a known policy's registry name, else the name as given) and its size (the
    registry's, or the one given; None when neither is known, and `plan` then asks for it)."""
    if name is None:
        if params is not None:
            raise InputError("--policy-params describes a policy: give its name with --policy", field="policy_params")
        return None, None
    found = known_policy(name)
    if found is not None or params is not None:
        described = policy(name, params)
        return described.name, described.params
    if not name.strip():
        raise InputError(f"expected a policy name, got {name!r}", field="policy")
    return name.strip(), None


def _policy_of_records(records: list[dict]) -> str | None:
    """The policy named by outcome records (`tts-planner run` writes it), when they all name the same one; a
    policy tts-planner does not know keeps its name."""
    named = {r["policy"].strip() for r in records if isinstance(r.get("policy"), str) and r["policy"].strip()}
    if len(named) != 1:
        return None
    name = named.pop()
    found = known_policy(name)
    log.info(f"policy {found.name if found else name} (from the records' 'policy' field)")
    return found.name if found else name


def _compare(policy_name: str | None, texts: list[str], predicted: np.ndarray, labels: np.ndarray, metrics: dict,
             force: bool, output: Path) -> dict | None:
    """The reference predictor's metrics on the same held-out problems, and the verdict; refuses a clearly worse
    model unless `force`."""
    from planner.prediction.model_store import predictor_for

    try:
        reference, path = predictor_for(policy_name)
    except PlannerError as exc:
        log.warning(f"no shipped predictor to compare with ({exc})")
        return None
    whose = f"the shipped predictor {path.name}" + ("" if reference.policy == policy_name or policy_name is None
                                                    else f" (of {reference.policy}, which plan would borrow)")
    theirs = reference.predict(texts)
    shipped = difficulty_metrics(theirs, labels)
    log.info(f"{whose} on the same problems: {format_metrics(shipped)}")
    result = {"file": path.name, "policy": reference.policy, "metrics": shipped, "verdict": "not judged"}
    if len(labels) < MIN_JUDGED or metrics["spearman"] is None or shipped["spearman"] is None:
        log.warning(f"{len(labels)} held-out problems are too few to judge this model (at least {MIN_JUDGED} are "
             f"needed to tell it from {whose}; give more data or a larger --holdout). It may well be worse.")
        return result
    gap, low, high, worse_share = paired_spearman_gap(predicted, theirs, labels)
    result.update(spearman_gap=gap, gap_interval=[low, high], worse_share=worse_share)
    summary = (f"Spearman {metrics['spearman']:.3f} against {shipped['spearman']:.3f} ({gap:+.3f}, 90% interval "
               f"{low:+.3f} to {high:+.3f} over paired resamples)")
    if worse_share >= WORSE_SHARE:
        result["verdict"] = "worse"
        if not force:
            raise PlannerError(f"the new model ranks the held-out problems clearly worse than {whose}: {summary}. "
                               f"{output} was not written; --force writes it anyway")
        log.warning(f"the new model is clearly worse than {whose}: {summary}; written because of --force")
    elif gap < 0:
        result["verdict"] = "not clearly different"
        log.warning(f"the new model is not better than {whose}: {summary}")
    else:
        result["verdict"] = "better" if low > 0 else "not clearly different"
        log.info(f"compared with {whose}: {summary}")
    return result


@contextmanager
def _ticking(what: str, every: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Say every `every` seconds that `what` is still running, then how long it took (fitting gives no progress
    of its own and takes minutes on a few thousand problems)."""
    started = time.perf_counter()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            log.info(f"  {what}... {time.perf_counter() - started:.0f} s")

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        log.info(f"  {what} done in {time.perf_counter() - started:.1f} s")
