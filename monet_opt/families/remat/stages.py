"""Stage form of a frontier-advancing schedule: R[t] = nodes executed in stage t (node t and the
recomputations before it, in index order); S[t] = values kept from stage t-1 into stage t."""

from __future__ import annotations

from collections.abc import Sequence

from monet_opt.families.remat.problem import RematProblem


def stages_to_sequence(recompute: Sequence[Sequence[int]]) -> list[int]:
    """The execution sequence of stages whose recomputations are `recompute[t]` (node t last)."""
    return [i for t, extra in enumerate(recompute) for i in [*sorted(extra), t]]


def sequence_to_stages(problem: RematProblem, sequence: Sequence[int]) -> tuple[list[set[int]], list[set[int]]]:
    """(R, S) of a frontier-advancing sequence: R[t] the recomputed nodes of stage t (without t
    itself), S[t] the values whose copy is still needed when stage t begins."""
    n = problem.n
    recompute: list[set[int]] = [set() for _ in range(n)]
    first = [-1] * n
    stage_of_pos = []
    stage = 0
    for pos, v in enumerate(sequence):
        if first[v] < 0:
            first[v] = pos
            stage = v
            stage_of_pos.append(v)
        else:
            stage_of_pos.append(stage + 1)  # a recomputation belongs to the stage of the next first execution
            recompute[stage + 1].add(v)
    return recompute, kept_into_stages(problem, sequence, stage_of_pos)


def kept_into_stages(problem: RematProblem, sequence: Sequence[int], stage_of_pos: Sequence[int]) -> list[set[int]]:
    """S[t] of a sequence whose position p belongs to stage stage_of_pos[p]: the values whose copy
    is read in a later stage than the one that computed it are kept into every stage in between."""
    latest: dict[int, int] = {}
    last_use: dict[int, int] = {}
    for pos, v in enumerate(sequence):
        for p in problem.preds[v]:
            last_use[latest[p]] = pos
        latest[v] = pos
    kept: list[set[int]] = [set() for _ in range(problem.n)]
    for pos, end in last_use.items():
        for t in range(stage_of_pos[pos] + 1, stage_of_pos[end] + 1):
            kept[t].add(sequence[pos])
    return kept
