"""The exact CP-SAT model of the parallel plan (formulations/plan.md, section 3).

Per task (every op or fused stack of `PlanProblem.stack_ops`, and the recomputation `c_p` of every
op p that some choice recomputes, `PlanProblem.cloneable`): a start S and an end E, one optional
fixed-size interval per option (exactly one present for a stack; for c_p, one exactly when its
presence literal r_p is true) on every core the option occupies, NoOverlap per core; an optional
interval of the option's DRAM cycles from S on each of its DRAM links, NoOverlap per link. Per
candidate t a literal rc_t (recomputed); per value eligible on chip a literal on_t.

The rule of `simulate.recompute_graph`, written as conditions on those literals (`_uses`): a stack
with a backward op reads candidate t, or its copy made by c_p when rc_t (a stack reads the values
its ops read from outside it); c_q reads each activation input x of q, or x's copy when x is not
kept (unsaved, or rc_x); r_p is exactly the disjunction of rc_t over the candidates t that p
produces and of the conditions under which a present recomputation reads a copy of p's outputs.
Each use is a precedence S_reader >= E_writer under its condition; and S_cp >= E_p (a
recomputation repeats an op that has run).

A task's options are its cores x the subsets of the values it may absorb (a fused stack,
`PlanProblem.absorbable`: chosen exactly when rc_v, and v then never reaches DRAM) x the subsets of
the values it touches that may stay on chip (`PlanProblem.touching`: chosen exactly when on_v, in
the memory its writer keeps v in).

Memory: a value in DRAM (not internal to a fused stack, absorbed or on chip), or a copy (present
with r_p), occupies DRAM over [S_writer, L) where L = the exact maximum of the writer's end and the
ends of the readers that read it (each reader's end counted under its condition, the writer's end
otherwise); Cumulative on DRAM with capacity min(activation budget, DRAM capacity - static bytes);
on each local memory, a Cumulative of the working sets and of the values on chip there (over the
same lifetimes), with its capacity (or budget). Identical cores are used in order
(`_break_symmetry`). Objective: the makespan M = max E (latency), the sum of the chosen options'
energies, each rounded down to a whole pJ (energy), or M x that sum in units of `edp_energy_unit_pj`
(EDP, each energy rounded down to whole units); for latency, ties are broken by energy
(`TIE_BREAK`). Redundant: each core's and each DRAM link's load <= M.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from monet_opt.families.allocation.problem import interchangeable
from monet_opt.families.plan.problem import ParallelPlan, PlanProblem
from monet_opt.model.workload.ir import Phase, TensorRole
from monet_opt.schedule.plan import RECOMPUTE_SUFFIX
from monet_opt.solving.common import Deadline, Incumbent, SolverOptions, SolveStats, SolveStatus
from monet_opt.solving.cpsat_runner import edp_energy_unit_pj, run_cpsat

Literal = cp_model.IntVar | cp_model.NotBooleanVariable
WINDOW_TASKS = 150
"""Above this many tasks, CP-SAT searches the whole model for WHOLE_SHARE of the time, then windows of
this many tasks (`improve_by_windows`)."""
WHOLE_SHARE = 0.4
WINDOW_S = 5.0
"""The longest one window is searched."""
HINT_SHARE = 0.1
"""The share of the time left that completing the warm start into a full hint may take (`PlanModel.hint`)."""
TIE_BREAK = 1 << 20
"""Minimising latency, the model minimises makespan x TIE_BREAK + energy in units of (the largest
energy of any plan) / (TIE_BREAK - 1): among the fastest plans, (nearly) the least energy."""


@dataclass(frozen=True)
class Use:
    """`reader` reads `tensor` (`copy`: its recomputed copy) when every literal of `when` is true."""

    reader: str
    tensor: str
    copy: bool
    when: tuple[Literal, ...]


def clone(op: str) -> str:
    return op + RECOMPUTE_SUFFIX


def model_tasks(problem: PlanProblem) -> list[str]:
    """The model's tasks: every stack, then every recomputation."""
    return [*problem.stack_ops, *(clone(q) for q in problem.cloneable)]


def horizon_cycles(problem: PlanProblem) -> int:
    """H: the sum over every task (recomputations included) of its longest option, in cycles (its
    latency or its DRAM cycles): no plan of the model ends later."""
    return sum(max(max(o.duration_cycles, o.bus_cycles) for o in problem.options[t]) for t in model_tasks(problem))


def largest_energy_pj(problem: PlanProblem) -> float:
    """Every task's largest energy, summed: no plan of the model costs more (pJ)."""
    return sum(max(o.energy_pj for o in problem.options[t]) for t in model_tasks(problem))


def edp_energy_unit(problem: PlanProblem) -> int:
    """pJ per energy unit of the EDP model (`edp_energy_unit_pj` of H and `largest_energy_pj`)."""
    return edp_energy_unit_pj(horizon_cycles(problem), largest_energy_pj(problem), 0)


class PlanModel:
    """The model of the module docstring for one budget (bytes of dynamic DRAM); without a budget,
    the model of the smallest dynamic DRAM peak (the Cumulative's capacity is then a variable,
    minimised)."""

    def __init__(self, problem: PlanProblem, budget_bytes: int | None) -> None:
        self.problem = p = problem
        m = self.model = cp_model.CpModel()
        self.clones = {clone(q): q for q in p.cloneable}
        tasks = model_tasks(p)
        self.horizon = horizon_cycles(p)
        self.rc = {t: m.new_bool_var(f"rc[{t}]") for t in p.candidates}
        self.on = {t: m.new_bool_var(f"on[{t}]") for t in p.on_chip_eligible}
        for t in set(self.rc) & set(self.on):
            m.add(self.rc[t] + self.on[t] <= 1)
        self.on_memory: dict[str, list] = defaultdict(list)  # local memory -> (interval, bytes)
        self.present: dict[str, Literal | None] = {t: None for t in p.stack_ops}  # None: always
        self.present.update({c: m.new_bool_var(f"r[{q}]") for c, q in self.clones.items()})
        self.S = {t: m.new_int_var(0, self.horizon, f"S[{t}]") for t in tasks}
        self.E = {t: m.new_int_var(0, self.horizon, f"E[{t}]") for t in tasks}
        self.x: dict[tuple[str, int], cp_model.IntVar] = {}  # (task, index of its option) -> chosen
        self.variants: dict[str, list[tuple[tuple[str, ...], Literal]]] = {}  # recomputation -> (its ops, literal)
        self.grouped: dict[tuple[str, ...], Literal] = {}  # candidate group -> recomputed as one stack
        self.member_of: dict[str, list[Literal]] = defaultdict(list)  # op -> the groups it is in, not last
        self._tasks(tasks)
        uses = self._uses()
        self._presence(uses)
        for use in uses:
            writer = self._writer(use.tensor, use.copy)
            if writer is not None:
                m.add(self.S[use.reader] >= self.E[writer]).only_enforce_if(list(use.when))
            for grouped, last in self._group_writers(use.tensor) if use.copy else ():
                m.add(self.S[use.reader] >= self.E[last]).only_enforce_if([*use.when, grouped])
        for c, q in self.clones.items():  # a recomputation repeats an op that has run
            m.add(self.S[c] >= self.E[p.task_of[q]]).only_enforce_if(self.present[c])
        self.dram_peak = m.new_int_var(0, p.dynamic_dram_capacity_bytes(), "dram_peak")
        if budget_bytes is not None:
            m.add(self.dram_peak <= budget_bytes)
        self._dram(uses, self.dram_peak)
        for memory, items in self.on_memory.items():
            m.add_cumulative([i for i, _ in items], [d for _, d in items], p.local_capacity_bytes(memory))
        self.makespan = m.new_int_var(0, self.horizon, "makespan")
        m.add_max_equality(self.makespan, list(self.E.values()))
        for terms in self._loads().values():
            m.add(sum(terms) <= self.makespan)
        self.objective_scale = 1  # reported objective units (cycles, pJ, cycles x pJ) per model unit
        if budget_bytes is None:
            m.minimize(self.dram_peak)
        elif p.weights.product:
            self._edp()
        elif p.weights.latency_weight:
            # lexicographic: the makespan, then the energy in units that sum to less than TIE_BREAK
            unit = max(largest_energy_pj(p) / (TIE_BREAK - 1), 1e-9)
            self.tie_break = sum(math.floor(p.options[t][k].energy_pj / unit) * lit for (t, k), lit in self.x.items())
            m.minimize(self.makespan * TIE_BREAK + self.tie_break)
        else:
            m.minimize(sum(math.floor(p.options[t][k].energy_pj) * lit for (t, k), lit in self.x.items()))

    def _edp(self) -> None:
        """Minimise makespan x energy, the energy counted in units of `edp_energy_unit_pj` pJ, each
        option's energy rounded down to whole units (so the model's product, and its bound, never
        exceed the true EDP of the same plan)."""
        m, p = self.model, self.problem
        unit = edp_energy_unit(p)
        top = math.floor(largest_energy_pj(p) / unit)
        energy = m.new_int_var(0, top, "energy_units")
        m.add(energy == sum(math.floor(p.options[t][k].energy_pj / unit) * lit for (t, k), lit in self.x.items()))
        product = m.new_int_var(0, self.horizon * top, "edp")
        m.add_multiplication_equality(product, [self.makespan, energy])
        m.minimize(product)
        self.objective_scale = unit

    def _group_writers(self, tensor: str) -> list[tuple[Literal, str]]:
        """The groups that write the copy of `tensor` (an output of one of their ops but the last,
        not passed inside), each with its literal and its task (an absent recomputation starts and
        ends at 0, so the copy's own writer needs no other condition)."""
        producer = self.problem.graph.producer.get(tensor)
        return [(lit, clone(group[-1])) for group, lit in self.grouped.items()
                if producer in group[:-1] and group[group.index(producer) + 1] not in self.problem.graph.consumers[tensor]]

    def _writer(self, tensor: str, copy: bool) -> str | None:
        """The task that writes `tensor` (its recomputation, for the copy); None for a network input."""
        producer = self.problem.graph.producer.get(tensor)
        if producer is None:
            return None
        return clone(producer) if copy else self.problem.task_of[producer]

    def _tasks(self, tasks: list[str]) -> None:
        """Starts, ends, one optional interval per option; NoOverlap per core and per DRAM link;
        Cumulative of working sets per local memory."""
        m, p = self.model, self.problem
        on_core: dict[str, list] = defaultdict(list)
        on_bus: dict[str, list] = defaultdict(list)
        for t in tasks:
            chosen = []
            for k, o in enumerate(p.options[t]):
                lit = self.x[t, k] = m.new_bool_var(f"x[{t},{o.core},{k}]")
                interval = m.new_optional_fixed_size_interval_var(self.S[t], o.duration_cycles, lit, "")
                for core in o.cores:
                    on_core[core].append(interval)
                if o.buses:
                    bus_interval = m.new_optional_fixed_size_interval_var(self.S[t], o.bus_cycles, lit, "")
                    for bus in o.buses:
                        on_bus[bus].append(bus_interval)
                for memory, size in o.working_sets:
                    if o.duration_cycles:
                        self.on_memory[memory].append((interval, size))
                chosen.append(lit)
            present = self.present[t]
            if present is None:
                m.add_exactly_one(chosen)
            else:
                m.add(sum(chosen) == present)
                m.add(self.S[t] == 0).only_enforce_if(~present)
            m.add(self.E[t] == self.S[t] + sum(o.duration_cycles * self.x[t, k] for k, o in enumerate(p.options[t])))
            for v in p.absorbable.get(t, ()):  # the stack passes v inside exactly when v is recomputed
                m.add(sum(self.x[t, k] for k, o in enumerate(p.options[t]) if v in o.absorbed) == self.rc[v])
            for v in dict.fromkeys(v for o in p.options[t] for v in o.touching):
                # priced with v on chip exactly when v is and the chosen option touches it
                chosen_on = sum(self.x[t, k] for k, o in enumerate(p.options[t]) if v in o.on_chip)
                touches = self._touches(t, v)
                if isinstance(touches, int):
                    m.add(chosen_on == self.on[v])
                    continue
                m.add(chosen_on <= self.on[v])
                m.add(chosen_on <= touches)
                m.add(chosen_on >= self.on[v] + touches - 1)
            self._variants(t)
        for intervals in [*on_core.values(), *on_bus.values()]:
            m.add_no_overlap(intervals)
        self._same_memory()
        self._break_symmetry(tasks)

    def _touches(self, task: str, value: str) -> cp_model.LinearExpr | int:
        """1 when the option `task` runs touches `value` (an int when every option of a task that
        always runs does)."""
        options = self.problem.options[task]
        if self.present[task] is None and all(value in o.touching for o in options):
            return 1
        return sum(self.x[task, k] for k, o in enumerate(options) if value in o.touching)

    def _variants(self, task: str) -> None:
        """For a recomputation: the ops it runs under each of its variants (its op alone, or a group
        ending at that op), with the literal of that variant."""
        if task not in self.clones:
            return
        options = self.problem.options[task]
        groups = list(dict.fromkeys(o.group for o in options if o.group))
        if not groups:
            self.variants[task] = [((self.clones[task],), self.present[task])]
            return
        self.variants[task] = []
        for group in [(), *groups]:
            lit = self.model.new_bool_var(f"g[{task},{len(group)}]")
            self.model.add(sum(self.x[task, k] for k, o in enumerate(options) if o.group == group) == lit)
            self.variants[task].append((group or (self.clones[task],), lit))
            if group:
                self.grouped[group] = lit
                for op in group[:-1]:
                    self.member_of[op].append(lit)

    def _break_symmetry(self, tasks: list[str]) -> None:
        """Identical cores (`allocation.problem.interchangeable`, with equal local budgets) are used in
        order: a core of a class runs a task only if the class's previous core runs an earlier one
        (tasks in the model's order). Any plan maps onto one that does by renaming identical cores
        (their memories with them), so no optimum is lost. Not for a class that an option spanning
        several cores touches (renaming would move a fused stack's fixed cores)."""
        p, m = self.problem, self.model
        for group in dict.fromkeys(interchangeable(p.hw, c.name) for c in p.hw.cores):
            memories = {p.hw.core(c).memory for c in group}
            if len(group) < 2 or len(memories) < len(group) or len({p.local_capacity_bytes(x) for x in memories}) > 1:
                continue
            if any(len(o.cores) > 1 and set(o.cores) & set(group) for t in tasks for o in p.options[t]):
                continue
            runs = {c: [sum(self.x[t, k] for k, o in enumerate(p.options[t]) if o.core == c) for t in tasks]
                    for c in group}
            for a, b in itertools.pairwise(group):
                for i in range(1, len(tasks)):
                    if not isinstance(runs[b][i], int):
                        m.add(runs[b][i] <= sum(runs[a][:i]))
                if not isinstance(runs[b][0], int):
                    m.add(runs[b][0] == 0)

    def _on_chip_in(self, task: str, value: str, memory: str) -> cp_model.LinearExpr:
        """1 when `task` runs with `value` on chip in `memory`."""
        options = self.problem.options[task]
        return sum(self.x[task, k] for k, o in enumerate(options) if value in o.on_chip and o.memories == (memory,))

    def _same_memory(self) -> None:
        """A value kept on chip is written and read in one local memory: every task that touches it
        runs it on chip in the memory its writer does (a recomputation, only when it runs)."""
        p, m = self.problem, self.model
        touching: dict[str, list[str]] = defaultdict(list)  # value -> the tasks some option of which touches it
        for t in (*p.stack_ops, *self.clones):
            for v in dict.fromkeys(v for o in p.options[t] for v in o.touching):
                touching[v].append(t)
        for v in p.on_chip_eligible:
            writer = p.task_of[p.graph.producer[v]]
            for memory in p.hw.memories:
                written = self._on_chip_in(writer, v, memory)
                for t in touching[v]:
                    if t == writer:
                        continue
                    here, touches = self._on_chip_in(t, v, memory), self._touches(t, v)
                    if isinstance(touches, int):
                        m.add(here == written)
                    else:
                        m.add(here <= written)
                        m.add(here >= written + touches - 1)

    def _conjunction(self, literals: tuple[Literal, ...]) -> Literal:
        if len(literals) == 1:
            return literals[0]
        z = self.model.new_bool_var("")
        for lit in literals:
            self.model.add_implication(z, lit)
        self.model.add_bool_or([z, *(~lit for lit in literals)])
        return z

    def _uses(self) -> list[Use]:
        """Every read of a value or of a recomputed copy by a task from outside it, with its
        condition (module docstring)."""
        graph, rc = self.problem.graph, self.rc
        uses = []
        for task, ops in self.problem.stack_ops.items():
            backward = {t for op in ops if graph.op_by_name[op].phase is Phase.BACKWARD
                        for t in graph.op_by_name[op].inputs}
            for t in self.problem.outside_inputs[task]:
                if t in rc and t in backward:
                    uses += [Use(task, t, False, (~rc[t],)), Use(task, t, True, (rc[t],))]
                else:
                    uses.append(Use(task, t, False, ()))
        for c in self.clones:
            for ops, runs in self.variants[c]:  # the values its ops read from outside them
                produced = {t for op in ops for t in graph.op_by_name[op].outputs}
                for x in dict.fromkeys(x for op in ops for x in graph.op_by_name[op].inputs if x not in produced):
                    activation = graph.tensors[x].role is TensorRole.ACTIVATION
                    if activation and x not in graph.saved_for_backward:
                        uses.append(Use(c, x, True, (runs,)))
                    elif x in rc:
                        uses += [Use(c, x, False, (runs, ~rc[x])), Use(c, x, True, (runs, rc[x]))]
                    else:
                        uses.append(Use(c, x, False, (runs,)))
        return [Use(u.reader, u.tensor, u.copy, (self._conjunction(u.when),) if u.when else ()) for u in uses]

    def _presence(self, uses: list[Use]) -> None:
        """r_p is exactly: p produces a recomputed candidate, or a use of a copy of p's outputs holds."""
        graph = self.problem.graph
        reasons: dict[str, list[Literal]] = defaultdict(list)
        for t, lit in self.rc.items():
            reasons[clone(graph.producer[t])].append(lit)
        for use in uses:
            if use.copy and use.reader in self.clones:
                reasons[clone(graph.producer[use.tensor])].append(use.when[0])
        for c, q in self.clones.items():
            if not self.member_of[q]:
                self.model.add_max_equality(self.present[c], reasons[c])
                continue
            # needed, q runs alone (or last of its own group) unless a chosen group runs it inside
            needed, covered = self.model.new_bool_var(f"need[{q}]"), sum(self.member_of[q])
            self.model.add_max_equality(needed, reasons[c])
            self.model.add(covered <= 1)
            self.model.add(self.present[c] <= needed)
            self.model.add(self.present[c] + covered <= 1)
            self.model.add(self.present[c] >= needed - covered)

    def _dram(self, uses: list[Use], capacity_bytes: cp_model.IntVar) -> None:
        """Each dynamic value (not internal to a stack) and each copy occupies DRAM over [writer
        start, exact last end); a copy that a group may write, once per writer."""
        m, graph = self.model, self.problem.graph
        readers: dict[tuple[str, bool], list[Use]] = defaultdict(list)
        for use in uses:
            readers[use.tensor, use.copy].append(use)
        self.dram_items: list[tuple[str, cp_model.IntVar | int, cp_model.IntVar, int, Literal | None]] = []
        self.on_chip_items: list[tuple[str, str, cp_model.IntVar | int, cp_model.IntVar, cp_model.IntVar]] = []
        values = [(t, False) for t, tensor in graph.tensors.items()
                  if not tensor.is_static and t not in self.problem.internal]
        absorbed = {v for values_of in self.problem.absorbable.values() for v in values_of}  # internal when recomputed
        copies = [t for q in self.clones.values() for t in graph.op_by_name[q].outputs]
        items = [(t, copy, self._writer(t, copy), None) for t, copy in values + [(t, True) for t in copies]]
        items += [(t, True, last, grouped) for t in copies for grouped, last in self._group_writers(t)]
        intervals, demands = [], []
        for t, copy, writer, grouped in items:
            start = 0 if writer is None else self.S[writer]
            base = 0 if writer is None else self.E[writer]
            ends = [base]
            for use in readers[t, copy]:
                if not use.when:
                    ends.append(self.E[use.reader])
                    continue
                end = m.new_int_var(0, self.horizon, "")
                m.add(end == self.E[use.reader]).only_enforce_if(use.when[0])
                m.add(end == base).only_enforce_if(~use.when[0])
                ends.append(end)
            last = m.new_int_var(0, self.horizon, f"L[{t}{'@copy' if copy else ''}]")
            m.add_max_equality(last, ends)
            size = m.new_int_var(0, self.horizon, "")
            present = grouped if grouped is not None else self.present[writer] if copy else self._in_dram(
                t, t in absorbed)
            if not copy and t in self.on:
                self._on_chip_lifetime(t, writer, start, last)
            if present is None:
                intervals.append(m.new_interval_var(start, size, last, ""))
            else:
                intervals.append(m.new_optional_interval_var(start, size, last, present, ""))
            demands.append(graph.tensors[t].size_bytes)
            self.dram_items.append((t, start, last, graph.tensors[t].size_bytes, present))
        m.add_cumulative(intervals, demands, capacity_bytes)

    def _in_dram(self, value: str, absorbable: bool) -> Literal | None:
        """The literal of `value` held in DRAM: neither on chip nor passed inside its stack (None: always)."""
        outside = ([~self.on[value]] if value in self.on else []) + ([~self.rc[value]] if absorbable else [])
        return self._conjunction(tuple(outside)) if outside else None

    def _on_chip_lifetime(self, value: str, writer: str, start: cp_model.IntVar, last: cp_model.IntVar) -> None:
        """A value on chip occupies its writer's local memory over the lifetime it would have in DRAM."""
        m = self.model
        for memory in self.problem.hw.memories:
            written = self._on_chip_in(writer, value, memory)
            if isinstance(written, int):
                continue
            here = m.new_bool_var("")
            m.add(here == written)
            size = m.new_int_var(0, self.horizon, "")
            self.on_memory[memory].append((m.new_optional_interval_var(start, size, last, here, ""),
                                           self.problem.graph.tensors[value].size_bytes))
            self.on_chip_items.append((value, memory, start, last, here))

    def _loads(self) -> dict[str, list]:
        loads: dict[str, list] = defaultdict(list)
        for (t, k), lit in self.x.items():
            option = self.problem.options[t][k]
            for occupied in option.cores:
                loads[f"core:{occupied}"].append(option.duration_cycles * lit)
            for bus in option.buses:
                loads[f"bus:{bus}"].append(option.bus_cycles * lit)
        return loads

    def touches(self, task: str) -> set[str]:
        """The values the task writes or reads."""
        graph = self.problem.graph
        ops = self.problem.stack_ops.get(task) or {op for ops, _ in self.variants[task] for op in ops}
        return {t for op in ops for t in (*graph.op_by_name[op].inputs, *graph.op_by_name[op].outputs)}

    def decisions(self, plan: ParallelPlan) -> list[tuple[cp_model.IntVar, int]]:
        """The model's decision variables with their values in `plan`."""
        values = [(lit, int(t in plan.recomputed)) for t, lit in self.rc.items()]
        values += [(lit, int(t in plan.on_chip)) for t, lit in self.on.items()]
        chosen = {t: plan.option(self.problem, t) for t in plan.core_of}
        values += [(lit, int(chosen.get(t) == self.problem.options[t][k])) for (t, k), lit in self.x.items()]
        values += [(var, plan.start_cycles.get(t, 0)) for t, var in self.S.items()]
        return values

    def hint(self, plan: ParallelPlan, options: SolverOptions, deadline: Deadline) -> cp_model.CpSolver | None:
        """Every variable hinted: the plan's decisions fixed, the model solved for the rest within
        `deadline` (its auxiliary variables follow from them by propagation), the solution as hint; the
        decisions alone when that finds nothing in time (CP-SAT then repairs a partial hint, slowly on
        large models). Returns the solver holding the completed solution (None: not completed)."""
        proto = self.model.proto
        fixed = self.decisions(plan)
        saved = {var.index: list(proto.variables[var.index].domain) for var, _ in fixed}
        for var, value in fixed:
            _set_domain(self.model, var.index, [value, value])
        solver, stats = run_cpsat(self.model, replace(options, progress=False, export_model=None), deadline)
        for index, domain in saved.items():
            _set_domain(self.model, index, domain)
        if stats.objective is not None:
            solution = list(solver.response_proto.solution)
            proto.solution_hint.vars.extend(range(len(solution)))
            proto.solution_hint.values.extend(solution)
            return solver
        for var, value in fixed:
            self.model.add_hint(var, value)
        return None

    def answer(self, solver: cp_model.CpSolver) -> ParallelPlan:
        present = [t for t in self.S if self.present[t] is None or solver.boolean_value(self.present[t])]
        chosen = {t: self.problem.options[t][k] for (t, k), lit in self.x.items() if solver.boolean_value(lit)}
        return ParallelPlan(frozenset(t for t, lit in self.rc.items() if solver.boolean_value(lit)),
                            {t: chosen[t].core for t in present}, {t: solver.value(self.S[t]) for t in present},
                            frozenset(t for t, lit in self.on.items() if solver.boolean_value(lit)),
                            frozenset(g for g, lit in self.grouped.items() if solver.boolean_value(lit)),
                            {t: chosen[t].cores for t in present if chosen[t].spread})

    def claimed_peaks(self, solver: cp_model.CpSolver) -> dict[str, int]:
        """Each memory's peak as the model's own intervals give it (DRAM with its static bytes)."""
        p = self.problem
        events: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for _, start, last, size, present in self.dram_items:
            if present is None or solver.boolean_value(present):
                begin, end = solver.value(start), solver.value(last)
                if end > begin:
                    events["dram"] += [(begin, size), (end, -size)]
        for (t, k), lit in self.x.items():
            option = p.options[t][k]
            if solver.boolean_value(lit) and option.duration_cycles:
                begin = solver.value(self.S[t])
                for memory, size in option.working_sets:
                    events[memory] += [(begin, size), (begin + option.duration_cycles, -size)]
        for _, memory, start, last, here in self.on_chip_items:
            if solver.boolean_value(here) and solver.value(last) > solver.value(start):
                size = p.graph.tensors[_].size_bytes
                events[memory] += [(solver.value(start), size), (solver.value(last), -size)]
        peaks = {memory: sweep_peak(events.get(memory, [])) for memory in ["dram", *p.hw.memories]}
        peaks["dram"] += p.static_dram_bytes
        return peaks


def _set_domain(model: cp_model.CpModel, index: int, domain: list[int]) -> None:
    model.proto.variables[index].domain.clear()
    model.proto.variables[index].domain.extend(domain)


def sweep_peak(events: list[tuple[int, int]]) -> int:
    """The highest level of (time, +/- bytes) events over half-open intervals (a release before an
    allocation at the same time)."""
    level = peak = 0
    for _, delta in sorted(events):
        level += delta
        peak = max(peak, level)
    return peak


def improve_by_windows(model: PlanModel, solver: cp_model.CpSolver, stats: SolveStats, options: SolverOptions,
                       deadline: Deadline, window_tasks: int) -> tuple[cp_model.CpSolver, SolveStats]:
    """Large-neighbourhood search by time windows of the model, from the incumbent in `solver`: the
    tasks in start order, a window of `window_tasks` consecutive ones free (core, variant, start); the
    tasks before it fixed at their incumbent core, variant and start, those after it at their core and
    variant (their starts free, so that they may move earlier); the residency of a value fixed unless
    a task of the window writes or reads it. Each window is solved for at most WINDOW_S from the
    incumbent; an improvement becomes the incumbent. Windows advance by half their length, wrapping,
    until the deadline. The bound stays the whole model's."""
    proto = model.model.proto
    best = solver
    incumbents = list(stats.incumbents)
    position = 0
    while deadline.remaining_s() > 0.1:
        values = list(best.response_proto.solution)
        present = [t for t in model.S if model.present[t] is None or values[model.present[t].index]]
        order = sorted(present, key=lambda t: (values[model.S[t].index], t))
        position = position % max(len(order), 1)
        window = set(order[position:position + window_tasks])
        if position + window_tasks > len(order):
            window |= set(order[:position + window_tasks - len(order)])
        before = set(order[:position]) - window
        fixed = [(lit, values[lit.index]) for (t, _), lit in model.x.items() if t not in window and t in order]
        fixed += [(model.S[t], values[model.S[t].index]) for t in before]
        touched = {v for t in window for v in model.touches(t)}
        fixed += [(lit, values[lit.index]) for v, lit in (*model.rc.items(), *model.on.items()) if v not in touched]
        saved = {var.index: list(proto.variables[var.index].domain) for var, _ in fixed}
        for var, value in fixed:
            _set_domain(model.model, var.index, [value, value])
        model.model.clear_hints()
        proto.solution_hint.vars.extend(range(len(values)))
        proto.solution_hint.values.extend(values)
        trial, trial_stats = run_cpsat(model.model, replace(options, progress=False, export_model=None),
                                       Deadline(time.perf_counter(), min(WINDOW_S, deadline.remaining_s())))
        for index, domain in saved.items():
            _set_domain(model.model, index, domain)
        if trial_stats.objective is not None and trial.objective_value < best.objective_value:
            best = trial
            incumbents.append(Incumbent(deadline.elapsed_s(), trial.objective_value * model.objective_scale,
                                        stats.incumbents[-1].bound if stats.incumbents else float("nan")))
        position += max(window_tasks // 2, 1)
    return best, replace(stats, status=SolveStatus.FEASIBLE, objective=best.objective_value * model.objective_scale,
                         time_to_best_s=incumbents[-1].time_s if incumbents else stats.time_to_best_s,
                         incumbents=tuple(incumbents))


@dataclass(frozen=True)
class ModelAnswer:
    plan: ParallelPlan | None
    peaks_bytes: Mapping[str, int] | None
    makespan_cycles: int | None
    stats: SolveStats


def solve_plan_cpsat(problem: PlanProblem, budget_bytes: int | None, options: SolverOptions, deadline: Deadline,
                     hint: ParallelPlan | None = None, window_tasks: int = WINDOW_TASKS) -> ModelAnswer:
    """The model for `budget_bytes` (None: the smallest dynamic DRAM peak), solved by the deadline: on
    models of more than `window_tasks` tasks, the whole model until WHOLE_SHARE of the time has
    passed and it has an incumbent, or the hint was completed (its bound is the answer's), then
    windows of it (`improve_by_windows`) for the rest, from the whole model's incumbent or, when it
    has none, from the completed hint."""
    model = PlanModel(problem, budget_bytes)
    completed = None if hint is None else model.hint(hint, options, deadline.share(HINT_SHARE))
    lexicographic = budget_bytes is not None and bool(problem.weights.latency_weight)
    windows = len(model.S) > window_tasks
    whole_until = deadline.elapsed_s() + WHOLE_SHARE * deadline.remaining_s() if windows else None
    solver, stats = run_cpsat(model.model, options, deadline, stop_after_s=whole_until, scale=model.objective_scale,
                              stop_after_without_solution=completed is not None)
    if windows and stats.objective is None and completed is not None and stats.status is SolveStatus.UNKNOWN:
        # the whole model found nothing, not even the hint: the windows start from the completed hint
        solver, stats = completed, replace(stats, objective=completed.objective_value * model.objective_scale)
    if windows and stats.objective is not None and stats.status is not SolveStatus.OPTIMAL:
        solver, stats = improve_by_windows(model, solver, stats, options, deadline, window_tasks)
    if lexicographic:  # objective and bound in cycles: the bound of makespan x T + tie-break is below (M + 1) x T
        stats = replace(stats, objective=None if stats.objective is None else stats.objective // TIE_BREAK,
                        bound=None if stats.bound is None else stats.bound // TIE_BREAK,
                        incumbents=tuple(replace(i, objective=i.objective // TIE_BREAK, bound=i.bound // TIE_BREAK)
                                         for i in stats.incumbents))
    if stats.objective is None:
        return ModelAnswer(None, None, None, stats)
    return ModelAnswer(model.answer(solver), model.claimed_peaks(solver), solver.value(model.makespan), stats)
