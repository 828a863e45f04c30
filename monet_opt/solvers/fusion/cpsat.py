"""The exact fusion partition (formulations/fusion.md, section 3): CP-SAT set partitioning over
the candidate stacks with an acyclic stack graph, minimising the serial step's latency, energy,
DRAM bytes or energy-delay product."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ortools.sat.python import cp_model

from monet_opt.solvers.common import Deadline, OutOfTime, SolverOptions, SolveStats, SolveStatus
from monet_opt.solvers.cpsat_runner import run_cpsat
from monet_opt.solvers.fusion.space import Candidate, FusionObjective, FusionSpace

PJ_PER_ENERGY_UNIT_EDP = 1000
"""The EDP model counts energy in nJ (latency x energy must stay far below 2^63)."""


def _model_values(space: FusionSpace, candidate: Candidate) -> tuple[int, int]:
    """(latency, energy) of a candidate in model units: cycles, and pJ (nJ for EDP) rounded."""
    unit = PJ_PER_ENERGY_UNIT_EDP if space.objective is FusionObjective.EDP else 1
    return candidate.latency_cycles, round(candidate.energy_pj / unit)


def solve_fusion_cpsat(space: FusionSpace, options: SolverOptions, deadline: Deadline,
                       hint: Sequence[Candidate] | None = None) -> tuple[list[Candidate] | None, SolveStats]:
    """The best partition of the space's candidates (or None) and the solve's statistics; the
    objective and bound are in the objective's reported unit (pJ for energy, cycles x pJ for EDP)."""
    graph = space.graph
    candidates = space.candidates
    names = [op.name for op in graph.ops]
    model = cp_model.CpModel()
    chosen = [model.new_bool_var(f"x{i}") for i in range(len(candidates))]
    covering: dict[str, list[cp_model.IntVar]] = defaultdict(list)
    together: dict[tuple[str, str], list[cp_model.IntVar]] = defaultdict(list)
    for candidate, x in zip(candidates, chosen, strict=True):
        for op in candidate.ops:
            covering[op].append(x)
        members = set(candidate.ops)
        for op in candidate.ops:
            for successor in graph.dag.successors(op):
                if successor in members:
                    together[op, successor].append(x)
    try:
        for op in names:
            deadline.check()
            model.add_exactly_one(covering[op])
        # stack levels: equal inside a stack, strictly increasing along every edge between stacks
        level = {op: model.new_int_var(0, len(names) - 1, f"level[{op}]") for op in names}
        for u, v in graph.dag.edges:
            model.add(level[v] >= level[u] + 1 - sum(together[u, v]))
        for candidate, x in zip(candidates, chosen, strict=True):
            deadline.check()
            for op in candidate.ops[1:]:
                model.add(level[op] == level[candidate.ops[0]]).only_enforce_if(x)
    except OutOfTime:
        return None, SolveStats(SolveStatus.UNKNOWN, None, None, deadline.elapsed_s(), None, None, ())
    values = [_model_values(space, c) for c in candidates]
    latency = sum(v[0] * x for v, x in zip(values, chosen, strict=True))
    energy = sum(v[1] * x for v, x in zip(values, chosen, strict=True))
    scale = 1.0
    if space.objective is FusionObjective.LATENCY:
        model.minimize(latency)
    elif space.objective is FusionObjective.ENERGY:
        model.minimize(energy)
    elif space.objective is FusionObjective.DRAM:
        model.minimize(sum(c.dram_bytes * x for c, x in zip(candidates, chosen, strict=True)))
    else:
        top_latency = sum(max(v[0] for v, c in zip(values, candidates, strict=True) if op in c.ops) for op in names)
        top_energy = sum(max(v[1] for v, c in zip(values, candidates, strict=True) if op in c.ops) for op in names)
        latency_var = model.new_int_var(0, top_latency, "latency")
        energy_var = model.new_int_var(0, top_energy, "energy")
        model.add(latency_var == latency)
        model.add(energy_var == energy)
        product = model.new_int_var(0, top_latency * top_energy, "edp")
        model.add_multiplication_equality(product, [latency_var, energy_var])
        model.minimize(product)
        scale = float(PJ_PER_ENERGY_UNIT_EDP)
    if hint is not None:
        picked = {c.ops for c in hint}
        for candidate, x in zip(candidates, chosen, strict=True):
            model.add_hint(x, candidate.ops in picked)
    solver, stats = run_cpsat(model, options, deadline, scale=scale)
    if stats.objective is None:
        return None, stats
    return [c for c, x in zip(candidates, chosen, strict=True) if solver.boolean_value(x)], stats
