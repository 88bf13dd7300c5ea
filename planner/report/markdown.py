"""report.md: every number behind the plots, beside them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from planner.report.inputs import Run
from planner.report.numbers import Calibration, Summary


def _f(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def markdown(runs: Sequence[Run], rows: Sequence[Summary], mix: Sequence[dict], calib: Calibration | None,
             outcome_files: Sequence[str], accuracy_png: str, calibration_png: str | None) -> str:
    out = ["# tts-planner report", "", "## Inputs", ""]
    out += _table(("run", "file", "arm", "method", "problems", "failed", "superseded lines"),
                  ((r.label, r.path, r.arm, r.method, len(r.lines), sum(x.status == "failed" for x in r.lines),
                    r.superseded) for r in runs))
    if outcome_files:
        out += ["", "Outcome records: " + ", ".join(outcome_files)]
    out += ["", "## Accuracy against cost", "", f"![accuracy against cost]({accuracy_png})", "",
            "Accuracy is the share of judged lines (with a `correct` field) that are correct; tokens are "
            "`cost.tokens` averaged over every line, failed ones included. Expected values are the plan's.", ""]
    out += _table(("run", "method", "bin", "problems", "judged", "correct", "failed", "accuracy", "95% CI",
                   "mean tokens", "expected accuracy", "expected tokens"),
                  ((r.label, r.method, r.panel, r.problems, r.judged, r.correct, r.failed, _f(r.accuracy, 4),
                    "-" if r.interval is None else f"{r.interval[0]:.3f}-{r.interval[1]:.3f}",
                    _f(r.mean_tokens, 1), _f(r.expected_accuracy, 4), _f(r.expected_cost, 1)) for r in rows))
    thinking = [r for r in rows if r.mean_thinking is not None]
    if thinking:
        out += ["", "## Thinking and answer tokens", "",
                "Long-thinking policies: generated tokens per problem (every line), those spent thinking (up to "
                "the end of the thinking; a trace cut inside it counts whole) and the rest, answering.", ""]
        out += _table(("run", "method", "bin", "problems", "generated", "thinking", "answering", "thinking share"),
                      ((r.label, r.method, r.panel, r.problems, _f(r.mean_generated, 1), _f(r.mean_thinking, 1),
                        _f(r.mean_generated - r.mean_thinking, 1),
                        _f(r.mean_thinking / r.mean_generated if r.mean_generated else None, 3)) for r in thinking))
    if mix:
        out += ["", "## How the adaptive runs chose their answers", "",
                "Per bin, the rule that chose each answer (`plan.chosen_by`: the posterior's most probable "
                "answer, a planned strategy's rule, or a tree search).", ""]
        out += _table(("run", "bin", "strategy", "problems", "accuracy", "mean tokens"),
                      ((m["label"], m["bin"], m["strategy"], m["problems"], _f(m["accuracy"], 4),
                        _f(m["mean_tokens"], 1)) for m in mix))
    out += ["", "## Calibration of the predicted pass@1", ""]
    if calib is None:
        out += ["No result line carries a `prediction.pass_at_1` with an observed outcome: nothing to plot."]
    else:
        what = ("Observed pass@1 is each problem's share of correct independent samples (outcome records of "
                "cot, majority, best_of_n and weighted_vote branches, else its cot answers)."
                if calib.source == "samples" else
                "No independent samples in the inputs: observed is each problem's share of correct final "
                "answers over the runs, which is the strategies' accuracy, not pass@1.")
        rho = calib.spearman
        out += [f"![predicted against observed]({calibration_png})", "", what, "",
                f"{len(calib.predicted)} problems, {int(calib.samples.sum())} observations; weighted mean "
                f"|predicted - observed| over bins {calib.mean_abs_error:.4f}; Spearman "
                f"{_f(rho, 4)}.", ""]
        out += _table(("predicted pass@1", "problems", "observations", "mean predicted", "mean observed",
                       "std. error"),
                      ((f"{b.low:.1f}-{b.high:.1f}", b.problems, b.samples, f"{b.mean_predicted:.4f}",
                        f"{b.mean_observed:.4f}", f"{b.stderr:.4f}") for b in calib.bins))
    return "\n".join(out) + "\n"


