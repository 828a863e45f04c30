"""Exact CP-SAT model of checkpointing on a training graph (formulations/checkpointing.md, section 5).

Decisions: per saved activation a, one of d_a (DRAM), c_a (ON_CHIP, when eligible), r_a
(RECOMPUTE); per recomputable forward op o, R_o (recomputed) and its slot A_o; per candidate
group G, z_G (its members' recomputations run fused). Every step of the serial plan (original op,
recomputation, fused group) has one literal per on-chip combination of its operands, priced by
the cost model; the objective adds their weighted costs. Memory: every value is an (optional) interval on
the coordinate axis of `CheckpointSpace`; one cumulative constraint bounds the DRAM values by the
budget, one per local memory with ON_CHIP candidates bounds its values and working sets.
"""

from __future__ import annotations

from collections.abc import Sequence

from ortools.sat.python import cp_model

from monet_opt.families.checkpoint.space import CheckpointSpace, CostWeights, Decisions, Price
from monet_opt.model.hardware.model import DRAM
from monet_opt.model.workload.ir import TensorRole
from monet_opt.schedule.plan import Residency
from monet_opt.solving.common import Deadline, SolverOptions, SolveStats
from monet_opt.solving.contract import CostUnderBudget, MinimumPeak
from monet_opt.solving.cpsat_runner import interruptible_solve, run_cpsat


class _Model:
    """The exact checkpoint model (formulations/checkpointing.md), built section by section in the
    formulation's order: the choice per saved value, the recomputed forward ops and their anchors,
    the fused recompute groups and step positions, the steps with their prices, the memory intervals
    and their capacities, the objective."""

    Interval = tuple[str, int, cp_model.LinearExprT, cp_model.LinearExprT, cp_model.IntVar]

    def __init__(self, space: CheckpointSpace, weights: CostWeights, target: CostUnderBudget | MinimumPeak) -> None:
        self.space = space
        self.weights = weights
        self.model = cp_model.CpModel()
        self._choices()
        self._recomputations()
        self._groups()
        self._steps()
        intervals = self._intervals()
        self._capacities(intervals, target.budget if isinstance(target, CostUnderBudget) else None)
        if self.peak is not None:
            self.model.minimize(self.peak)
        else:
            self.model.minimize(sum(round(weights.of(p.latency_cycles, p.energy_pj)) * literal
                                    for literal, p, _, _ in self.steps))

    def _lit(self, a: str, r: Residency) -> cp_model.IntVar:
        return self.choice.get((a, r), self.false)

    def _choices(self) -> None:
        """One literal per (saved value, residency it may take), exactly one per value."""
        s, m = self.space, self.model
        self.choice: dict[tuple[str, Residency], cp_model.IntVar] = {}
        for a in s.decisions:
            options = ([Residency.DRAM] + ([Residency.RECOMPUTE] if s.recomputable_value(a) else [])
                       + ([Residency.ON_CHIP] if a in s.on_chip_eligible else []))
            for r in options:
                self.choice[a, r] = m.new_bool_var(f"{r.value}[{a}]")
            m.add_exactly_one(self.choice[a, r] for r in options)
        self.true = m.new_constant(1)
        self.false = m.new_constant(0)

    def _recomputations(self) -> None:
        """Which forward ops are recomputed (R), and where: the earliest anchor of those needing them (A)."""
        s, m, lit = self.space, self.model, self._lit
        self.R = {o: m.new_bool_var(f"R[{o}]") for o in s.recomputable}
        self.A = {o: m.new_int_var_from_domain(cp_model.Domain.from_values(list(s.anchors[o])), f"A[{o}]")
                  for o in s.recomputable}
        for o in reversed(s.recomputable):
            terms: list[tuple[cp_model.IntVar, int | cp_model.IntVar]] = []
            for kind, x, u in s.sources(o):
                if kind == "own":
                    terms.append((lit(x, Residency.RECOMPUTE), s.first_backward_reader(x)))
                elif s.needs_when_recomputed(u):
                    terms.append((self.R[x], self.A[x]))
                else:
                    both = m.new_bool_var(f"need[{o},{x}]")
                    m.add_multiplication_equality(both, [self.R[x], lit(u, Residency.RECOMPUTE)])
                    terms.append((both, self.A[x]))
            m.add_bool_or([t for t, _ in terms] + [self.R[o].negated()])
            for t, _ in terms:
                m.add_implication(t, self.R[o])
            picks = []
            for i, (t, value) in enumerate(terms):
                m.add(self.A[o] <= value).only_enforce_if(t)
                pick = t if len(terms) == 1 else m.new_bool_var(f"argmin[{o},{i}]")
                if len(terms) > 1:
                    m.add_implication(pick, t)
                    m.add(self.A[o] == value).only_enforce_if(pick)
                picks.append(pick)
            m.add(sum(picks) == self.R[o])
            m.add(self.A[o] == s.anchors[o][0]).only_enforce_if(self.R[o].negated())

    def _groups(self) -> None:
        """Fused recompute groups (z), a recomputation alone otherwise, and each one's step position (Q)."""
        s, m = self.space, self.model
        self.z = [m.new_bool_var(f"z[{'+'.join(gr.ops)}]") for gr in s.groups]
        in_groups: dict[str, list[int]] = {o: [] for o in s.recomputable}
        for j, gr in enumerate(s.groups):
            for o in gr.ops:
                in_groups[o].append(j)
                m.add_implication(self.z[j], self.R[o])
                m.add(self.A[o] == self.A[gr.ops[0]]).only_enforce_if(self.z[j])
        self.alone = {}
        width = s.width
        self.Q = {}
        for o in s.recomputable:
            self.alone[o] = m.new_bool_var(f"alone[{o}]")
            m.add(self.alone[o] + sum(self.z[j] for j in in_groups[o]) == self.R[o])
            shift = sum(self.z[j] * (s.forward_index[s.groups[j].ops[-1]] - s.forward_index[o])
                        for j in in_groups[o] if s.groups[j].ops[-1] != o)
            self.Q[o] = m.new_int_var(0, s.horizon, f"Q[{o}]")
            m.add(self.Q[o] == self.A[o] * width + s.forward_index[o] + shift)
        self.internal: dict[str, list[int]] = {}
        for j, gr in enumerate(s.groups):
            for t in gr.links:
                self.internal.setdefault(t, []).append(j)

    def _steps(self) -> None:
        """The steps, one literal per on-chip combination of each (original steps, recomputations
        alone, fused groups): (literal, price, memory, coordinate)."""
        s, m, g, lit = self.space, self.model, self.space.graph, self._lit
        self.steps: list[tuple[cp_model.IntVar, Price, str, cp_model.LinearExprT]] = []  # literal, price, memory, coordinate

        def dram_free(a: str, step: int | None) -> cp_model.LinearExprT:
            """1 when the step never moves `a` through DRAM: kept ON_CHIP, or recomputed when the
            step is the fused stack that produces `a` and passes it inside."""
            if a in s.recomputed_inside and step == s.step(g.producer[a]):
                return lit(a, Residency.ON_CHIP) + lit(a, Residency.RECOMPUTE)
            return lit(a, Residency.ON_CHIP)

        def add_step(active: cp_model.IntVar, prices: Sequence[Price], memory: str, where: cp_model.LinearExprT,
                     eligible: Sequence[str], step: int | None = None) -> None:
            if len(prices) == 1:
                self.steps.append((active, prices[0], memory, where))
                return
            picks = []
            for price in prices:
                pick = m.new_bool_var("combo")
                for a in dict.fromkeys(eligible):  # in order: a set of names would vary with the hash seed
                    m.add(dram_free(a, step) == (1 if a in price.on_chip else 0)).only_enforce_if(pick)
                picks.append(pick)
                self.steps.append((pick, price, memory, where))
            m.add(sum(picks) == active)

        for j, (ops, _) in enumerate(s.stacks):
            add_step(self.true, s.step_prices[j], s.memory_of_op(ops[0]), s.coordinate(j), s.step_eligible(j), j)
        clone_eligible = {o: [t for t in g.op_by_name[o].inputs if t in s.on_chip_eligible] for o in s.recomputable}
        for o in s.recomputable:
            add_step(self.alone[o], s.recompute_prices[o], s.memory_of_op(o), self.Q[o], clone_eligible[o])
        for j, gr in enumerate(s.groups):
            eligible = [t for o in gr.ops for t in clone_eligible[o] if t not in gr.links]
            add_step(self.z[j], gr.prices, s.memory_of_op(gr.ops[0]), self.Q[gr.ops[-1]], eligible)

    def _intervals(self) -> list[Interval]:
        """Memory intervals: (memory, size, start, end inclusive, presence) of every dynamic value,
        each saved value as each residency keeps it, and each recomputed output."""
        s, m, g, lit, true = self.space, self.model, self.space.graph, self._lit, self.true
        horizon = s.horizon
        intervals: list[_Model.Interval] = []

        def end_var(name: str, fixed: int, readers: list[tuple[list[cp_model.IntVar], cp_model.IntVar]]):
            if not readers:
                return fixed
            end = m.new_int_var(fixed, horizon, f"end[{name}]")
            for condition, position in readers:
                m.add(end >= position).only_enforce_if(condition)
            return end

        for name, tensor in g.tensors.items():
            if tensor.is_static or tensor.size_bytes == 0 or name in s.decisions or name in s.internal_values:
                continue
            producer = g.producer.get(name)
            readers = g.consumers[name]
            if producer is None and not readers:
                continue
            start = s.coordinate(s.step(producer)) if producer is not None else 0
            last = s.last_reader(name)
            fixed = s.coordinate(last) if last is not None else start
            clone_readers = []
            if tensor.role is TensorRole.INPUT:
                clone_readers = [([self.R[c]], self.Q[c]) for c in readers if c in self.R]
            intervals.append((DRAM, tensor.size_bytes, start, end_var(name, fixed, clone_readers), true))
        for a in s.decisions:
            size = g.tensors[a].size_bytes
            start = s.coordinate(s.step(g.producer[a]))
            last_forward = s.last_reader(a, forward_only=True)
            if a not in s.recomputed_inside:  # else, recomputed, it never leaves its stack
                intervals.append((DRAM, size, start, s.coordinate(last_forward) if last_forward is not None else start,
                                  lit(a, Residency.RECOMPUTE)))
            end = end_var(a, s.coordinate(s.last_reader(a)),
                          [([self.R[c], lit(a, Residency.RECOMPUTE).negated()], self.Q[c])
                           for c in s.forward_consumers(a) if c in self.R])
            intervals.append((DRAM, size, start, end, lit(a, Residency.DRAM)))
            if a in s.on_chip_eligible:
                intervals.append((s.memory_of_op(g.producer[a]), size, start, end, lit(a, Residency.ON_CHIP)))
        for o in s.recomputable:
            for t in g.op_by_name[o].outputs:
                size = g.tensors[t].size_bytes
                if size == 0:
                    continue
                readers = []
                if t in s.decisions:
                    readers.append(([lit(t, Residency.RECOMPUTE)], s.coordinate(s.last_backward_reader(t))))
                for c in s.forward_consumers(t):
                    if c in self.R:
                        condition = [self.R[c]] if s.needs_when_recomputed(t) else [self.R[c], lit(t, Residency.RECOMPUTE)]
                        readers.append((condition, self.Q[c]))
                end = m.new_int_var(0, horizon, f"end[{t}@recompute]")
                m.add(end >= self.Q[o])
                for condition, position in readers:
                    m.add(end >= position).only_enforce_if(condition)
                present = self.R[o]
                if t in self.internal:
                    present = m.new_bool_var(f"stored[{t}@recompute]")
                    inside = sum(self.z[j] for j in self.internal[t])
                    m.add(present + inside == self.R[o])
                intervals.append((DRAM, size, self.Q[o], end, present))
        return intervals

    def _capacities(self, intervals: list[Interval], budget_bytes: int | None) -> None:
        """Each memory's intervals and step working sets within its capacity: the DRAM budget (or the
        peak variable, minimum-peak target) bounded by the DRAM capacity, the local budgets."""
        s, m, horizon = self.space, self.model, self.space.horizon
        self.peak = None
        dram_capacity = s.dram_dynamic_capacity_bytes
        if budget_bytes is None:
            largest = sum(size for memory, size, *_rest in intervals if memory == DRAM)
            self.peak = m.new_int_var(0, max(0, min(largest, dram_capacity)), "peak")
        else:
            budget_bytes = min(budget_bytes, dram_capacity)
        by_memory: dict[str, tuple[list, list]] = {}
        for memory, size, start, end, present in intervals:
            interval = m.new_optional_interval_var(start, m.new_int_var(1, horizon + 1, ""), end + 1, present, "")
            if isinstance(start, int) and isinstance(end, int):
                interval = m.new_optional_fixed_size_interval_var(start, end - start + 1, present, "")
            by_memory.setdefault(memory, ([], []))[0].append(interval)
            by_memory[memory][1].append(size)
        local = {memory for memory, *_ in intervals if memory != DRAM}
        for literal, price, memory, where in self.steps:
            for used, working_set in price.working_sets or ((memory, price.working_set_bytes),):
                if used in local and working_set:
                    by_memory[used][0].append(m.new_optional_fixed_size_interval_var(where, 1, literal, ""))
                    by_memory[used][1].append(working_set)
        for memory, (items, demands) in by_memory.items():
            capacity = (budget_bytes if self.peak is None else self.peak) if memory == DRAM else s.local_budget_bytes[memory]
            m.add_cumulative(items, demands, capacity)

    def hint(self, decisions: Decisions) -> None:
        s = self.space
        for (a, r), var in self.choice.items():
            self.model.add_hint(var, decisions.residency.get(a, Residency.DRAM) is r)
        anchors = s.recompute_anchors(decisions.residency)
        grouped = {o for group in decisions.groups for o in group}
        for o in s.recomputable:
            self.model.add_hint(self.R[o], o in anchors)
            self.model.add_hint(self.A[o], anchors.get(o, s.anchors[o][0]))
            self.model.add_hint(self.alone[o], o in anchors and o not in grouped)
        for j, gr in enumerate(s.groups):
            self.model.add_hint(self.z[j], gr.ops in decisions.groups)

    def decisions(self, solver: cp_model.CpSolver) -> Decisions:
        residency = {a: r for (a, r), var in self.choice.items() if solver.value(var) and r is not Residency.DRAM}
        groups = tuple(gr.ops for j, gr in enumerate(self.space.groups) if solver.value(self.z[j]))
        return Decisions(residency, groups)

    def claim(self, solver: cp_model.CpSolver) -> tuple[int, float]:
        """(latency cycles, energy pJ) of the chosen steps, summed from the cost model's prices."""
        chosen = [p for literal, p, _, _ in self.steps if solver.value(literal)]
        return sum(p.latency_cycles for p in chosen), sum(p.energy_pj for p in chosen)


def solve_checkpoint_cpsat(space: CheckpointSpace, weights: CostWeights, target: CostUnderBudget | MinimumPeak,
                           options: SolverOptions, deadline: Deadline, hint: Decisions | None = None
                           ) -> tuple[Decisions | None, tuple[int, float] | None, SolveStats]:
    """Minimise the weighted step cost with the dynamic DRAM peak within the target's budget, or
    (MinimumPeak) the dynamic DRAM peak itself; every local memory within its budget, and the
    dynamic DRAM peak within the DRAM capacity left by the static bytes. Returns the
    decisions, the claimed (latency, energy) and the solve statistics."""
    model = _Model(space, weights, target)
    if hint is not None:
        model.hint(hint)
    solver, stats = run_cpsat(model.model, options, deadline)
    if stats.objective is None:
        return None, None, stats
    return model.decisions(solver), model.claim(solver), stats


def modelled_peak_bytes(space: CheckpointSpace, decisions: Decisions) -> int:
    """The dynamic DRAM peak (bytes) that the exact model assigns to `decisions`: the minimum-peak
    model with every residency and fused group fixed to theirs, so that only the anchors and
    lifetimes the model derives from them remain. For every plan it must equal the validation
    scheduler's dynamic DRAM peak (`CheckpointSpace.evaluate`): the tests hold the model to it."""
    model = _Model(space, CostWeights("latency", 1.0, 0.0), MinimumPeak())
    for (a, r), var in model.choice.items():
        model.model.add(var == int(decisions.residency.get(a, Residency.DRAM) is r))
    for j, group in enumerate(space.groups):
        model.model.add(model.z[j] == int(group.ops in decisions.groups))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.catch_sigint_signal = False
    if interruptible_solve(solver, model.model) != cp_model.OPTIMAL:
        raise ValueError("the model has no solution for these decisions (a recomputation it does not allow)")
    return round(solver.objective_value)
