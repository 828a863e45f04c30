"""Fusion and checkpointing together under an activation budget (formulations/fusion.md, section 6).

Joint search, exact, on graphs of at most JOINT_MAX_OPS ops: every candidate stack (unpruned) is
priced at its floor, the least latency and the least energy over every set of the saved
activations around it that some plan keeps off DRAM, a lower bound of what that stack costs in any
checkpoint plan of any partition. The partition model over the floors yields partitions in order of increasing bound
(each solve excludes the partitions already seen); the exact checkpoint model values each under
the budget; the search stops, proven, when the next bound is no better than the best plan found.
The answer is optimal over every partition into stacks of at most max_stack ops (placement rule)
combined with every checkpoint plan of it. Stopped by the time limit or JOINT_MAX_PARTITIONS, it
keeps the best plan and the bound, and the alternation below continues with the time left.

Alternation to a fixed point (larger graphs, or after an unfinished joint search): the fusion
partition that is optimal given the current checkpoint decisions (`fusion_space(..., residency)`,
the exact set partitioning), then the checkpoint plan that is optimal for that partition under the
budget (`CheckpointSpace(stacks=...)`, the exact
checkpoint model), and again, until a partition repeats or the plan stops improving. The first
fusion step keeps every value in DRAM. The checkpoint plan of the unfused graph is a candidate too,
so the answer is never worse than checkpointing alone. The answer is the best checkpoint plan
found, a result of the checkpoint family on its fused partition: the validation scheduler
simulates it and its status is proven over that partition only.

Refutations: every checkpoint solve goes through `solve()`, whose referee rejects a plan that breaks
the budget or disagrees with its claim (`SolverBug`). Such a rejection never discards what the
search already has: the partition is treated as unsolved (the joint search keeps its floor as an
unproven bound; the alternation stops), the best validated answer found so far is returned, and
the rejection is recorded in the answer's `refuted` key (the step, the referee's message and the
partition's fused stacks, enough to rebuild the checkpoint problem); the first one is printed on
stderr. With no validated answer at all, the rejection is raised.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.family import CHECKPOINT, CheckpointProblem, smallest_feasible_budget
from monet_opt.families.checkpoint.heuristics import decisions_for, lowest_peak_plan
from monet_opt.families.checkpoint.space import CheckpointSpace, CostWeights, Evaluation
from monet_opt.families.fusion.cpsat import solve_fusion_cpsat
from monet_opt.families.fusion.heuristics import layer_by_layer, rule_partition, start_partition
from monet_opt.families.fusion.space import Candidate, FusionObjective, FusionSpace, fusion_space
from monet_opt.model.cost.model import Cost, CostTable
from monet_opt.model.hardware.model import DRAM, Accelerator
from monet_opt.model.workload.ir import Graph, Phase, TensorRole
from monet_opt.schedule.plan import Residency
from monet_opt.solving.common import Deadline, SolverOptions, SolveStatus
from monet_opt.solving.contract import CostUnderBudget, Family, Result, SolverBug, solve

JOINT_MAX_OPS = 40
"""Largest graph (ops) the joint search is tried on."""
FLOOR_MAX_VALUES = 10
"""Most saved activations a candidate stack may touch in the joint search (2**10 prices for its floor)."""
JOINT_MAX_PARTITIONS = 1000
"""Most partitions the joint search checkpoints before it stops unproven."""
MAX_ROUNDS = 6
SHARE_PER_SOLVE = 0.5
"""Each solve of the alternation may use half of the time left when it starts."""


@dataclass(frozen=True)
class FusedCheckpointProblem:
    """Fusion and checkpointing together: the graph on the accelerator, stacks of at most
    `max_stack` ops, the cost to minimise, the dynamic DRAM budget (bytes of activations) and
    budgets below the capacities of local memories (the cost model tiles to fit them, the
    simulator checks them)."""

    graph: Graph
    hw: Accelerator
    max_stack: int
    weights: CostWeights
    budget_bytes: int
    local_budget_bytes: Mapping[str, int] = field(default_factory=dict)

    @property
    def objective(self) -> FusionObjective:
        return FusionObjective.LATENCY if self.weights.energy_weight == 0 else FusionObjective.ENERGY

    def table(self) -> CostTable:
        return CostTable(self.graph, self.hw, self.local_budget_bytes)

    def checkpoint(self, partition: Sequence[Candidate] | None = None, diagnose: bool = True) -> CheckpointProblem:
        """The checkpoint problem of a partition (None: unfused, the default allocation)."""
        stacks = None if partition is None else [(c.ops, c.cores) for c in partition]
        space = CheckpointSpace(self.graph, self.hw, local_budget_bytes=self.local_budget_bytes, stacks=stacks)
        return CheckpointProblem(space, self.weights, diagnose)


@dataclass(frozen=True)
class Round:
    """One fusion step and the checkpoint step on its partition."""

    fused_stacks: int
    stacks: int
    objective: float | None  # the checkpoint plan's (None: no plan within the budget)
    status: str


@dataclass(frozen=True)
class Refutation:
    """A checkpoint answer the referee rejected (module docstring, "Refutations"): where in the
    search, the referee's message, and the fused stacks of the partition (empty: unfused)."""

    step: str
    message: str
    fused_stacks: tuple[tuple[str, ...], ...]


def checkpoint_refereed(problem: FusedCheckpointProblem, partition: Sequence[Candidate] | None, diagnose: bool,
                        options: SolverOptions, deadline: Deadline, step: str, refuted: list[Refutation]
                        ) -> Result | None:
    """The exact checkpoint model's answer on `partition` (None: unfused) under the problem's budget,
    refereed by `solve()`; None when the referee rejects it, the rejection appended to `refuted` (the
    first one of a search also printed on stderr). InfeasibleError passes through (a proof, not a rejection)."""
    try:
        return solve(CHECKPOINT, problem.checkpoint(partition, diagnose), CostUnderBudget(problem.budget_bytes),
                     "cpsat", options, deadline)
    except SolverBug as bug:
        stacks = tuple(c.ops for c in partition or () if len(c.ops) > 1)
        if not refuted:
            print(f"monet: the referee rejected a checkpoint answer ({step}, {len(stacks)} fused stacks): {bug}; "
                  "the search keeps its best validated answer (every rejection is in the answer's 'refuted' key)",
                  file=sys.stderr, flush=True)
        refuted.append(Refutation(step, str(bug), stacks))
        return None


def fuse_and_checkpoint(problem: FusedCheckpointProblem, options: SolverOptions, deadline: Deadline) -> Result:
    """The best (partition, checkpoint plan) found (module docstring), as the checkpoint family's
    result on its partition with `combination`, `partitions_checkpointed`, `rounds`, `fused_stacks`
    and `refuted` in its details. After a joint search its status and bound hold over the joint
    space (`space` says so); after the alternation alone, over the answer's partition only.
    InfeasibleError, with the smallest feasible budget, when no plan fits the budget (proven over
    the joint space, or over the unfused checkpoint model when the alternation decides); SolverBug
    when every answer was rejected by the referee."""
    quiet = replace(options, progress=False, export_model=None)
    graph, hw, max_stack, budget_bytes = problem.graph, problem.hw, problem.max_stack, problem.budget_bytes
    refuted: list[Refutation] = []
    joint = joint_search(problem, quiet, deadline, refuted)
    joint_space = (f"every partition into stacks of at most {max_stack} ops (placement rule), run serially, "
                   "combined with every checkpoint plan of it (per saved activation DRAM, on chip or recompute)")
    if joint is not None and joint.proven:
        if joint.best is None:
            raise _joint_infeasible(problem, joint, quiet, deadline)
        return _answer(joint.best, joint.best_partition, "joint search, exact (branch and bound over partitions, "
                       f"the exact checkpoint model on each), max_stack {max_stack}", joint, [], refuted, deadline,
                       joint_space)
    found = alternate(problem, quiet, deadline, refuted)
    best, best_partition = found.best, found.best_partition
    if joint is not None and joint.best is not None and (best is None or not best.validated
                                                         or joint.best.objective <= best.objective):
        best, best_partition = joint.best, joint.best_partition
    if best is None and refuted:  # nothing validated, and a partition not settled either way
        raise SolverBug(f"every checkpoint answer was rejected by the referee: {refuted[0].message}")
    if best is None or not best.validated:
        if found.unfused_error is not None:
            raise InfeasibleError(f"{found.unfused_error} (the unfused plan; no fused partition visited fits either)")
        if best is None:
            raise InfeasibleError(f"{graph.name} on {hw.name}: no plan within {budget_bytes} bytes of activations")
    combination = ("alternating fusion (exact given the checkpoint decisions) and checkpointing (exact given "
                   f"the stacks) to a fixed point, max_stack {max_stack}")
    if joint is not None:
        combination = f"joint search stopped unproven after {joint.partitions} partitions, then " + combination
    return _answer(best, best_partition, combination, joint, found.rounds, refuted, deadline, joint_space)


def _answer(best: Result, partition: Sequence[Candidate] | None, combination: str, joint: JointOutcome | None,
            rounds: list[Round], refuted: list[Refutation], deadline: Deadline, joint_space: str) -> Result:
    """`best` (a checkpoint plan of `partition`; None: unfused) with the combination in its details:
    `stacks`, the whole partition as (ops, cores) per stack in the serial order's input (None:
    unfused, the default allocation), and `fused_stacks`, the ops of its fused stacks; with a joint
    search, its status and bound over the joint space."""
    details: dict[str, Any] = {
        **best.details,
        "combination": combination,
        "partitions_checkpointed": None if joint is None else joint.partitions,
        "rounds": [r.__dict__ for r in rounds],
        "stacks": None if partition is None else [[list(c.ops), list(c.cores)] for c in partition],
        "fused_stacks": [] if partition is None else [list(c.ops) for c in partition if len(c.ops) > 1],
        "refuted": [{"step": r.step, "message": r.message, "fused_stacks": [list(ops) for ops in r.fused_stacks]}
                    for r in refuted],
    }
    stats = replace(best.stats, solve_time_s=deadline.elapsed_s())
    if joint is None or best.objective is None:  # no joint search, or no answer to bound
        return replace(best, details=details, stats=stats)
    bound = min(joint.bound, best.objective)
    status = SolveStatus.OPTIMAL if joint.proven or bound >= best.objective else SolveStatus.FEASIBLE
    return replace(best, details=details, space=joint_space, stats=replace(stats, status=status, bound=bound))


def _joint_infeasible(problem: FusedCheckpointProblem, joint: JointOutcome, options: SolverOptions,
                      deadline: Deadline) -> InfeasibleError:
    """No partition has a checkpoint plan within the budget (each proven by the checkpoint model);
    how far off it is, from the unfused plan's smallest feasible budget (fused partitions may need
    less: a value recomputed inside a stack never reaches DRAM)."""
    graph, hw, budget_bytes = problem.graph, problem.hw, problem.budget_bytes
    unfused = smallest_feasible_budget(problem.checkpoint(), options, deadline)
    above = "" if unfused.achieved is None else (
        f"; the unfused plan needs {unfused.achieved} bytes ({unfused.achieved - budget_bytes} above it"
        + ("" if unfused.exact else ", not proven smallest") + "), fused partitions may need less")
    return InfeasibleError(f"{graph.name} on {hw.name}, dynamic DRAM: budget {budget_bytes} bytes is infeasible for "
                           f"every partition into stacks of at most {problem.max_stack} ops ({joint.partitions} "
                           f"partitions, each proven by the checkpoint model){above}")


@dataclass(frozen=True)
class Alternation:
    """Where the alternation ended: its best result (None: none; not validated when neither the
    unfused solve nor any round found a plan in time), that result's fused stacks, the rounds, and
    the unfused checkpoint model's infeasibility (None: the unfused plan has an answer, or was not
    proven infeasible)."""

    best: Result | None
    best_partition: Sequence[Candidate] | None  # None: the unfused plan
    rounds: list[Round]
    unfused_error: InfeasibleError | None

    @property
    def fused_stacks(self) -> list[tuple[str, ...]]:
        return [c.ops for c in self.best_partition or () if len(c.ops) > 1]


def alternate(problem: FusedCheckpointProblem, quiet: SolverOptions, deadline: Deadline,
              refuted: list[Refutation]) -> Alternation:
    """The alternation (module docstring); rejected answers are appended to `refuted`."""
    table = problem.table()
    best: Result | None = None
    best_partition: Sequence[Candidate] | None = None  # the best plan's partition (None: unfused)
    unfused_error: InfeasibleError | None = None
    try:
        best = checkpoint_refereed(problem, None, True, quiet, deadline.share(SHARE_PER_SOLVE), "unfused plan",
                                   refuted)
    except InfeasibleError as exc:
        unfused_error = exc
    rounds: list[Round] = []
    seen: set[frozenset[tuple[str, ...]]] = set()
    residency: dict = {}
    while len(rounds) < MAX_ROUNDS and not deadline.expired():
        space = fusion_space(problem.graph, table, problem.max_stack, problem.objective,
                             deadline.share(SHARE_PER_SOLVE), residency)
        partition = _fitting_partition(problem, space, quiet, deadline)
        key = frozenset(c.ops for c in partition)
        if key in seen:
            break
        seen.add(key)
        fused = sum(1 for c in partition if len(c.ops) > 1)
        if deadline.expired():
            rounds.append(Round(fused, len(partition), None, "not checkpointed (time limit)"))
            break
        try:
            result = checkpoint_refereed(problem, partition, True, quiet, deadline.share(SHARE_PER_SOLVE),
                                         f"alternation round {len(rounds) + 1}", refuted)
        except InfeasibleError:
            rounds.append(Round(fused, len(partition), None, "infeasible"))
            break
        if result is None:
            rounds.append(Round(fused, len(partition), None, "rejected by the referee"))
            break
        rounds.append(Round(fused, len(partition), result.objective, result.status.value))
        if not result.validated or (best is not None and best.validated and result.objective >= best.objective):
            break
        best = result
        best_partition = partition
        residency = dict(result.payload.residency)
    return Alternation(best, best_partition, rounds, unfused_error)


def _fitting_partition(problem: FusedCheckpointProblem, space: FusionSpace, options: SolverOptions,
                       deadline: Deadline) -> list[Candidate]:
    """The best partition of `space` whose heuristic checkpoint plans reach the budget, by peak
    splitting (`peak_split`), re-solving the partition model until no split is needed."""
    while True:
        hint = min((layer_by_layer(space), rule_partition(space), start_partition(space)), key=space.value)
        partition, _ = solve_fusion_cpsat(space, options, deadline.share(SHARE_PER_SOLVE), hint)
        partition = partition or hint
        if deadline.expired():
            return partition
        split = peak_split(space, partition, problem.checkpoint, problem.budget_bytes, deadline)
        if split is None:
            return partition
        space = split


def fuse_within_reach(family: Family, space: FusionSpace, method: str, problem: FusedCheckpointProblem,
                      options: SolverOptions, deadline: Deadline) -> tuple[Result, FusionSpace]:
    """The sequential combination's fusion stage: `family`'s answer by `method` over `space`,
    peak-split (`peak_split`) and solved again until the heuristic checkpoint plans of its partition
    reach `problem`'s budget (or no fused stack is at their peak, or time is up); each solve may use
    half of the time left. Returns the last answer and the space it was solved over (which names
    the ops kept alone)."""
    while True:
        share = deadline.share(SHARE_PER_SOLVE)
        result = solve(family, space, space.objective, method, options, share)
        if result.payload is None or deadline.expired():
            return result, space
        split = peak_split(space, result.payload, problem.checkpoint, problem.budget_bytes, deadline)
        if split is None:
            return result, space
        space = split


def peak_split(space: FusionSpace, partition: Sequence[Candidate],
               checkpoint_of: Callable[[Sequence[Candidate]], CheckpointProblem], budget_bytes: int,
               deadline: Deadline) -> FusionSpace | None:
    """Peak splitting of a fusion answer: while the fused stack at the activation peak
    (`stack_at_activation_peak`) of the partition's checkpoint problem (`checkpoint_of`) keeps the
    budget out of the heuristics' reach, break that stack into single ops, in the partition itself.
    None when nothing was split; else `space` keeping every broken stack's ops alone and starting
    from the split partition, for the fusion method to solve again (it may fuse elsewhere, so the
    caller splits its new answer in turn; every round keeps more ops alone, so it ends)."""
    alone: set[str] = set()
    current = list(partition)
    residency: Mapping[str, Residency] | None = None
    while not deadline.expired():
        ops, residency = stack_at_activation_peak(checkpoint_of(current), budget_bytes, residency, deadline)
        if not ops:
            break
        alone.update(ops)
        current = [c for c in current if c.ops != ops] + [space.singles[op] for op in ops]
    return space.keeping_alone(alone, current) if alone else None


def stack_at_activation_peak(checkpoint: CheckpointProblem, budget_bytes: int,
                             residency: Mapping[str, Residency] | None = None, deadline: Deadline | None = None
                             ) -> tuple[tuple[str, ...], Mapping[str, Residency]]:
    """The ops of the fused stack that runs at the activation peak of the heuristic plan of least
    peak (`lowest_peak_plan`: the rule plans and Chen's sweep) when that peak is above
    `budget_bytes`, () when it is not or no fused stack runs at that peak; and that plan's
    residencies. A fused stack allocates all its outputs at once, which can lift the activation
    floor above what recomputation reaches; keeping that stack's ops alone
    (`FusionSpace.keeping_alone`) lowers it: peak splitting. `residency` (the previous answer's
    plan, when splitting one partition repeatedly) is tried first: when it reaches the budget or a
    fused stack runs at its peak, the sweep (about 25 simulations) is not needed; it stops at
    `deadline` (`greedy_plan`)."""
    space = checkpoint.space
    if residency is not None:
        evaluation = space.evaluate(decisions_for(space, residency, checkpoint.weights))
        ops = _fused_at_peak(evaluation) if evaluation.dynamic_dram_peak_bytes > budget_bytes else ()
        if evaluation.dynamic_dram_peak_bytes <= budget_bytes or ops:
            return ops, residency
    decisions, lowest = lowest_peak_plan(space, checkpoint.weights, budget_bytes, deadline)
    if lowest.dynamic_dram_peak_bytes <= budget_bytes:
        return (), decisions.residency
    return _fused_at_peak(lowest), decisions.residency


def _fused_at_peak(evaluation: Evaluation) -> tuple[str, ...]:
    """The ops of a fused stack that runs when the plan's DRAM occupancy peaks (() if none)."""
    curve = evaluation.simulation.memory_curves[DRAM]
    at = max(curve, key=lambda point: point[1])[0]
    running = [t for t in evaluation.simulation.tasks if t.start_cycle <= at < t.end_cycle and len(t.ops) > 1]
    return tuple(running[0].ops) if running else ()


@dataclass(frozen=True)
class JointOutcome:
    """Where the joint search ended: its best plan (None: none within the budget), a lower bound
    of every (partition, checkpoint plan) of the joint space, whether that best plan is proven
    optimal over it, and how many partitions it checkpointed."""

    best: Result | None
    best_partition: Sequence[Candidate] | None
    bound: float
    proven: bool
    partitions: int


def floor_space(space: FusionSpace) -> FusionSpace | None:
    """`space` (unpruned) with every candidate priced at its floor (module docstring): for each of
    latency and energy, the least over every subset of the values that some checkpoint plan may
    keep off DRAM around it (`off_dram_possible`), `CostTable.get(ops, cores, on_chip)`. A
    checkpoint plan of any partition prices the stack with one such subset and adds recomputations,
    so the sum of a partition's floors bounds its cost from below. None when a candidate has more
    than FLOOR_MAX_VALUES such values."""
    table = space.table
    memory_of_core = {c.name: c.memory for c in table.hw.cores}
    memories = {op: {memory_of_core[c] for c in table.eligible_cores((op,))} for op in space.singles}

    def floored(c: Candidate) -> Candidate | None:
        touched = off_dram_possible(space.graph, c, memory_of_core, memories)
        if len(touched) > FLOOR_MAX_VALUES:
            return None
        latency, energy = c.latency_cycles, c.energy_pj
        for mask in range(1, 2 ** len(touched)):
            cost = table.get(c.ops, c.cores, frozenset(t for i, t in enumerate(touched) if mask >> i & 1))
            if not isinstance(cost, Cost):
                continue  # a subset that does not fit is no plan's price
            latency, energy = min(latency, cost.latency_cycles), min(energy, cost.energy_pj)
        return replace(c, latency_cycles=latency, energy_pj=energy)

    singles = {op: floored(c) for op, c in space.singles.items()}
    stacks = tuple(floored(c) for c in space.stacks)
    if None in singles.values() or None in stacks:
        return None
    return replace(space, singles=singles, stacks=stacks)  # type: ignore[arg-type]


def off_dram_possible(graph: Graph, candidate: Candidate, memory_of_core: Mapping[str, str],
                      memories: Mapping[str, set[str]]) -> list[str]:
    """The saved activations that the candidate's ops read or write and that some checkpoint plan of
    some partition containing it keeps off DRAM: ON_CHIP needs one memory shared by the producer's
    core and every reader's (the candidate's ops on their cores, other ops on any core that runs
    them: `memories`, op -> those cores' memories); a value recomputed inside needs every forward
    reader in the candidate (`CheckpointSpace.on_chip_eligible`, `recomputed_inside`)."""
    inside = {op: {memory_of_core[core]} for op, core in zip(candidate.ops, candidate.cores, strict=True)}
    out = []
    operands = (t for op in candidate.ops for t in graph.op_by_name[op].inputs + graph.op_by_name[op].outputs)
    for t in dict.fromkeys(operands):
        if (graph.tensors[t].role is not TensorRole.ACTIVATION or t not in graph.producer
                or t not in graph.saved_for_backward or t in graph.outputs):
            continue
        shared = set.intersection(*(inside.get(o, memories[o]) for o in [graph.producer[t], *graph.consumers[t]]))
        forward_readers = [r for r in graph.consumers[t] if graph.op_by_name[r].phase is Phase.FORWARD]
        passed_inside = (len(candidate.ops) > 1 and graph.producer[t] in inside and bool(forward_readers)
                         and set(forward_readers) <= set(inside))
        if shared or passed_inside:
            out.append(t)
    return out


def joint_search(problem: FusedCheckpointProblem, options: SolverOptions, deadline: Deadline,
                 refuted: list[Refutation]) -> JointOutcome | None:
    """The joint search of the module docstring; None when the graph is too large for it (more than
    JOINT_MAX_OPS ops, or a candidate beyond FLOOR_MAX_VALUES) or the weights mix latency and energy.
    A partition whose answer the referee rejects (appended to `refuted`) counts as unsolved: its
    floor stays an unproven bound."""
    graph, weights = problem.graph, problem.weights
    if len(graph.ops) > JOINT_MAX_OPS or (weights.latency_weight != 0 and weights.energy_weight != 0):
        return None  # too large, or a weighted sum, which the floors do not bound
    quiet = replace(options, progress=False, export_model=None)
    objective = problem.objective
    space = fusion_space(graph, problem.table(), problem.max_stack, objective, deadline, prune=False)
    floors = floor_space(space)
    if floors is None or not space.complete:
        return None
    # the model rounds each candidate's energy to 1 pJ: a partition's true floor may be that much lower
    slack = 0.5 * len(graph.ops) if objective is FusionObjective.ENERGY else 0.0
    seen: list[list[Candidate]] = []
    best: Result | None = None
    best_partition: Sequence[Candidate] | None = None
    unproven_bounds: list[float] = []  # bounds of partitions whose checkpoint plan is not proven optimal
    proven, bound = False, 0.0
    while len(seen) < JOINT_MAX_PARTITIONS and not deadline.expired():
        partition, stats = solve_fusion_cpsat(floors, quiet, deadline.share(SHARE_PER_SOLVE), exclude=seen)
        # partitions come in order of their bound: the last one bounds every partition not seen
        if partition is None:
            proven = stats.status is SolveStatus.INFEASIBLE  # every partition seen
            bound = float("inf") if proven else max(bound, (stats.bound or 0.0) - slack)
            break
        bound = max(bound, (stats.objective if stats.status is SolveStatus.OPTIMAL else stats.bound or 0.0) - slack)
        if best is not None and bound >= best.objective:
            proven = stats.status is SolveStatus.OPTIMAL
            break
        seen.append(partition)
        try:
            result = checkpoint_refereed(problem, partition, False, quiet, deadline.share(SHARE_PER_SOLVE),
                                         f"joint search, partition {len(seen)}", refuted)
        except InfeasibleError:  # proven: no checkpoint plan of this partition fits the budget
            continue
        if result is None:
            unproven_bounds.append(bound)
            continue
        if result.status is not SolveStatus.OPTIMAL:
            unproven_bounds.append(max(result.stats.bound or 0.0, bound))  # its floor bounds it too
        if result.validated and (best is None or result.objective < best.objective):
            best = result
            best_partition = partition
    proven = proven and all(best is not None and b >= best.objective for b in unproven_bounds)
    lower = min([bound, *unproven_bounds] + ([best.objective] if best is not None else []))
    return JointOutcome(best, best_partition, lower, proven, len(seen))
