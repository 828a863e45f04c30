"""The exact fusion partition (formulations/fusion.md, section 3): CP-SAT set partitioning over
the candidate stacks with an acyclic stack graph, minimising the serial step's latency, energy,
DRAM bytes or energy-delay product."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ortools.sat.python import cp_model

from monet_opt.families.fusion.space import Candidate, FusionObjective, FusionSpace
from monet_opt.solving.common import Deadline, OutOfTime, SolverOptions, SolveStats, SolveStatus
from monet_opt.solving.cpsat_runner import edp_energy_unit_pj, run_cpsat


def _upper_bounds(space: FusionSpace) -> tuple[int, float]:
    """Upper bounds of any partition's latency (cycles) and energy (pJ): per op, the largest value
    of a candidate that contains it, summed (a candidate is counted once per op, an overestimate)."""
    latency: dict[str, int] = {}
    energy: dict[str, float] = {}
    for c in space.candidates:
        for op in c.ops:
            latency[op] = max(latency.get(op, 0), c.latency_cycles)
            energy[op] = max(energy.get(op, 0.0), c.energy_pj)
    return sum(latency.values()), sum(energy.values())


def energy_unit_pj(space: FusionSpace) -> int:
    """pJ per model energy unit: 1, except for EDP (`edp_energy_unit_pj` of the largest latency and
    energy; each candidate's energy is rounded to it in the model)."""
    if space.objective is not FusionObjective.EDP:
        return 1
    latency, energy = _upper_bounds(space)
    return edp_energy_unit_pj(latency, energy, len(space.candidates))


def solve_fusion_cpsat(space: FusionSpace, options: SolverOptions, deadline: Deadline,
                       hint: Sequence[Candidate] | None = None, exclude: Sequence[Sequence[Candidate]] = ()
                       ) -> tuple[list[Candidate] | None, SolveStats]:
    """The best partition of the space's candidates (or None) other than the partitions in
    `exclude`, and the solve's statistics; the objective and bound are in the objective's reported
    unit (pJ for energy, cycles x pJ for EDP; energies are rounded to `energy_unit_pj` per candidate
    in the model). Status INFEASIBLE once `exclude` holds every partition."""
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
        index = {c.ops: x for c, x in zip(candidates, chosen, strict=True)}
        for partition in exclude:  # a no-good cut: not every stack of that partition again
            model.add(sum(index[c.ops] for c in partition) <= len(partition) - 1)
    except OutOfTime:
        return None, SolveStats(SolveStatus.UNKNOWN, None, None, deadline.elapsed_s(), None, None, ())
    unit = energy_unit_pj(space)
    values = [(c.latency_cycles, round(c.energy_pj / unit)) for c in candidates]
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
        top_latency, top_energy_pj = _upper_bounds(space)
        top_energy = round(top_energy_pj / unit) + len(candidates)
        latency_var = model.new_int_var(0, top_latency, "latency")
        energy_var = model.new_int_var(0, top_energy, "energy")
        model.add(latency_var == latency)
        model.add(energy_var == energy)
        product = model.new_int_var(0, top_latency * top_energy, "edp")
        model.add_multiplication_equality(product, [latency_var, energy_var])
        model.minimize(product)
        scale = float(unit)
    if hint is not None:
        picked = {c.ops for c in hint}
        for candidate, x in zip(candidates, chosen, strict=True):
            model.add_hint(x, candidate.ops in picked)
    solver, stats = run_cpsat(model, options, deadline, scale=scale)
    if stats.objective is None:
        return None, stats
    return [c for c, x in zip(candidates, chosen, strict=True) if solver.boolean_value(x)], stats
