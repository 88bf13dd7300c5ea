"""Result files for the report tests, written line by line as `tts-planner run` writes them (contract 2: the
input record plus problem_id, answer, correct, plan, prediction, cost, strategy, status, errors, branches),
and a reader for the markdown tables the report writes."""

import json
import random
import struct
from pathlib import Path

from planner.difficulty import difficulty_bin

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def problems(count: int, seed: int = 0) -> list[tuple[str, float]]:
    """(problem id, predicted pass@1), spread over every bin."""
    rng = random.Random(seed)
    return [(f"test/algebra/{i}.json", round(rng.random() ** 1.5, 4)) for i in range(count)]


def result_line(problem_id: str, p: float, strategy: str, size: int, correct: bool | None, tokens: int, *,
                adaptive: bool = False, budget: float | None = None, status: str = "ok") -> dict:
    plan = {"strategy": strategy, "size": size, "expected_accuracy": round(min(1.0, p + 0.05), 4),
            "expected_cost": float(tokens)}
    if adaptive:
        plan.update(adaptive=True, chosen_by=strategy, budget=budget, probe_size=2,
                    stop_reason="searched" if strategy in ("beam_search", "dvts", "particle_filter") else "planned")
    line = {"problem": f"Problem {problem_id}", "reference_answer": "7", "problem_id": problem_id,
            "answer": "7" if correct else "8", "plan": plan,
            "prediction": {"pass_at_1": p, "difficulty": difficulty_bin(p),
                           "model": "Qwen/Qwen2.5-Math-1.5B-Instruct"},
            "cost": {"prompt_tokens": 120 * size, "completion_tokens": tokens - 120, "cached_tokens": 120 * (size - 1),
                     "reward_tokens": 0, "requests": size + 1, "wall_time": 0.5, "tokens": tokens},
            "strategy": strategy, "status": status, "errors": [] if status == "ok" else ["EndpointError: 500"],
            "branches": size}
    if correct is not None:
        line["correct"] = correct
    return line


def write_lines(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def uniform_run(path: Path, items: list[tuple[str, float]], strategy: str, size: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    lines = [result_line(pid, p, strategy, size, rng.random() < min(1.0, p * 1.2), 150 + 600 * size + rng.randrange(50))
             for pid, p in items]
    write_lines(path, lines)
    return lines


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


def markdown_tables(text: str) -> list[list[dict]]:
    """Every table of a markdown document as rows keyed by header."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(dict(zip(header, (c.strip() for c in lines[i].strip("|").split("|")))))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables
