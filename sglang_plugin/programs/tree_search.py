"""Step-level tree search guided by the scorer: beam_search and DVTS (Beeching et al., "Scaling test-time
compute with open models", Hugging Face 2024; Snell et al., arXiv 2408.03314).

Both run the same loop over groups of candidates: every running candidate generates one step, all are
scored in one batched call, and within each group the `keep` best running candidates survive (ties to the
older branch) and each is expanded `expand` ways for the next step (itself plus expand - 1 forks);
candidates that finished leave the search with their score. beam_search is one group, keep = M,
expand = N / M. DVTS is N / M independent groups (subtrees) of M candidates, keep = 1: each subtree
follows its own best step, so the subtrees stay diverse. The final answer is the finished candidate
with the best trajectory score. N is rounded down to a multiple of M (M is capped at N).
"""

from __future__ import annotations

from sglang_plugin.programs.result import Branch, Selection
from sglang_plugin.programs.search_run import SearchRun


def beam_search(run: SearchRun) -> Selection:
    width = min(run.config.search.beam_width, run.budget)
    expand = run.budget // width
    size = {"n": width * expand, "beam_width": width, "expand": expand}
    return _tree_search(run, groups=1, keep=width, expand=expand, size=size)


def dvts(run: SearchRun) -> Selection:
    width = min(run.config.search.beam_width, run.budget)
    subtrees = run.budget // width
    size = {"n": width * subtrees, "subtrees": subtrees, "beam_width": width}
    return _tree_search(run, groups=subtrees, keep=1, expand=width, size=size)


def _tree_search(run: SearchRun, *, groups: int, keep: int, expand: int, size: dict) -> Selection:
    candidates = run.spawn(groups * keep * expand)
    for index, branch in enumerate(candidates):
        branch.group = index // (keep * expand)
    for depth in range(run.config.search.max_steps):
        run.advance(candidates)
        run.canonicalize(candidates)
        run.score_latest(candidates)
        survivors: list[Branch] = []
        for group in range(groups):
            members = [b for b in candidates if b.group == group]
            running = sorted((b for b in members if not b.finished), key=lambda b: (-b.step_scores[-1], b.id))
            kept, pruned = running[:keep], running[keep:]
            for branch in pruned:
                run.close(branch, "pruned")
            run.trace.append({
                "step": depth, "group": group, "candidates": [b.id for b in members],
                "scores": [b.step_scores[-1] if b.step_scores and not b.failed else None for b in members],
                "kept": [b.id for b in kept], "pruned": [b.id for b in pruned],
                "finished": [b.id for b in members if b.finished and b.finish_reason != "pruned"],
            })
            for branch in kept:
                survivors += [branch] + run.spawn(expand - 1, parent=branch)
        candidates = survivors
        if not candidates:
            break
    finished = [b for b in run.branches if b.finish_reason not in ("pruned", "failed", None)]
    chosen, votes = run.pick_by_score(finished)
    return Selection(chosen, votes, size)

