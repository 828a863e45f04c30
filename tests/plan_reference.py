"""Exhaustive reference for the parallel plan of small training graphs: every residency of every
saved activation (DRAM; recomputed, for a candidate; ON_CHIP, where eligible) x every set of disjoint
candidate groups among the recomputations (each fused into one task) x every core of every task (op,
fused stack of the problem's partition, recomputation alone or in a group; with `spread`, also every set
of cores a MAC op is split across and every spread placement of a fused stack) such that each value on chip is
written and read in one local memory x every order in which the tasks start, each turned into the
earliest schedule with that start order and judged by the simulator alone.

Why that covers every plan: take any feasible schedule and list its tasks by start. Starting each
task, in that order, at the earliest cycle no earlier than the previous task's start at which its
inputs are written, its core is free, its DRAM link is free and the memory level *at that cycle*
(values written and not yet released by readers that have all ended, working sets running) leaves
room for its outputs and working set gives starts no later than the original's, task by task (every
value is released no later, and memory rises only when a task starts, so checking the level at each
start suffices). Its makespan is no larger and its energy the same; so the minimum over these
schedules is the minimum over all plans."""

import itertools

import networkx as nx

from hw_fixtures import toy_data
from monet_opt.families.plan.family import PLAN
from monet_opt.families.plan.problem import ParallelPlan
from monet_opt.model.hardware import accelerator_from_dict
from monet_opt.model.training.derive import Optimizer, derive_training_graph
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.model.workload.ir import DType, Phase
from monet_opt.schedule.plan import RECOMPUTE_SUFFIX
from monet_opt.schedule.simulate import recompute_graph
from monet_opt.solving.contract import CostUnderBudget


def seven_op_step(shape=(8, 4), classes=16):
    """x -> fc1 -> GELU -> cross-entropy, trained with SGD: fc1, gelu, loss, loss.backward,
    gelu.backward, fc1.dw, w1.update (seven ops; fc1 and gelu are the candidates)."""
    g = GraphBuilder("seven")
    x = g.input("x", shape)
    h = g.matmul("fc1", x, g.weight("w1", (shape[1], classes)))
    a = g.gelu("gelu", h)
    loss = g.softmax_xent("loss", a, g.input("labels", (shape[0],), DType.INT32))
    return derive_training_graph(g.build([loss]), Optimizer.SGD)


def nine_op_chain():
    """x -> fc1 -> GELU -> GELU -> cross-entropy, trained with SGD: nine ops, three candidates (fc1,
    gelu1, gelu2)."""
    g = GraphBuilder("chain")
    x = g.input("x", (8, 4))
    a = g.gelu("gelu2", g.gelu("gelu1", g.matmul("fc1", x, g.weight("w1", (4, 16)))))
    return derive_training_graph(g.build([g.softmax_xent("loss", a, g.input("labels", (8,), DType.INT32))]),
                                 Optimizer.SGD)


def residual_chain():
    """x -> fc1 -> GELU -> ReLU -> + fc1 (residual) -> cross-entropy, trained with SGD: eleven ops.
    GELU's output is read only by ReLU and saved for no backward op, so GELU -> ReLU is a candidate
    group: recomputing ReLU's output, the two may run as one stack."""
    g = GraphBuilder("residual")
    h = g.matmul("fc1", g.input("x", (8, 64)), g.weight("w1", (64, 16)))
    y = g.add("res", g.relu("relu", g.gelu("gelu", h)), h)
    return derive_training_graph(g.build([g.softmax_xent("loss", y, g.input("labels", (8,), DType.INT32))]),
                                 Optimizer.SGD)


def normalised_residual():
    """residual_chain with batch normalisation in place of GELU: x -> fc1 -> BN -> ReLU -> + fc1 ->
    cross-entropy, thirteen ops. BN's output goes only to ReLU and is saved for no backward op; its
    batch statistics are saved for BN's backward: BN -> ReLU is a candidate group one op of which
    (not the last) writes a value its recomputation must write again (for BN's backward, when the
    statistics are recomputed)."""
    g = GraphBuilder("normalised")
    h = g.matmul("fc1", g.input("x", (8, 64)), g.weight("w1", (64, 16)))
    b = g.batchnorm("bn", h, g.weight("bn.g", (16,)), g.weight("bn.b", (16,)), g.buffer("bn.rm", (16,)),
                    g.buffer("bn.rv", (16,)))
    y = g.add("res", g.relu("relu", b), h)
    return derive_training_graph(g.build([g.softmax_xent("loss", y, g.input("labels", (8,), DType.INT32))]),
                                 Optimizer.SGD)


def three_cores():
    """The toy accelerator with a second, smaller PE array (pe2, its own SRAM) and a DRAM link of 256
    bits per cycle, so that DRAM transfers take cycles and the two arrays compete for them."""
    data = toy_data()
    data["memories"].append({"name": "sram2", "capacity_bytes": 1 << 20, "bandwidth_bits_per_cycle": 256,
                             "read_energy_pj_per_bit": 0.4, "write_energy_pj_per_bit": 0.2})
    data["cores"].append({"name": "pe2", "memory": "sram2", "op_kinds": ["mac"],
                          "pe_array": {"unroll": {"K": 8, "C": 8}, "mac_energy_pj": 0.5}})
    data["links"][1]["endpoints"].append("pe2")
    data["dram"]["bandwidth_bits_per_cycle"] = data["links"][1]["bandwidth_bits_per_cycle"] = 256
    return accelerator_from_dict(data, "three-cores.yaml")


def twin_arrays():
    """The toy accelerator with a second PE array identical to the first (pe2, its own SRAM of the
    same size) and the DRAM link of `three_cores`: interchangeable cores, whose symmetry the exact
    model breaks."""
    data = toy_data()
    data["memories"].append(dict(data["memories"][0], name="sram2"))
    data["cores"].append(dict(data["cores"][0], name="pe2", memory="sram2"))
    data["links"][1]["endpoints"].append("pe2")
    data["dram"]["bandwidth_bits_per_cycle"] = data["links"][1]["bandwidth_bits_per_cycle"] = 256
    return accelerator_from_dict(data, "twin-arrays.yaml")


def two_cores():
    """The toy accelerator (pe for MACs, vec for the rest) with the DRAM link of `three_cores`."""
    data = toy_data()
    data["dram"]["bandwidth_bits_per_cycle"] = data["links"][1]["bandwidth_bits_per_cycle"] = 256
    return accelerator_from_dict(data, "two-cores.yaml")


def _tasks(problem, graph, groups=()):
    """task -> its ops: the problem's stacks, and every recomputation of `graph` alone but those of
    `groups`, each group one task named after its last op's recomputation."""
    grouped = {op + RECOMPUTE_SUFFIX for group in groups for op in group}
    tasks = {**problem.stack_ops, **{op.name: (op.name,) for op in graph.ops
                                     if op.phase is Phase.RECOMPUTE and op.name not in grouped}}
    tasks.update({group[-1] + RECOMPUTE_SUFFIX: tuple(op + RECOMPUTE_SUFFIX for op in group) for group in groups})
    return tasks


def _group_choices(problem, graph):
    """Every set of disjoint candidate groups whose ops `graph` all recomputes."""
    recomputed = {op.forward_op for op in graph.ops if op.phase is Phase.RECOMPUTE}
    groups = [g for g in problem.groups if set(g) <= recomputed]
    for k in range(len(groups) + 1):
        for chosen in itertools.combinations(groups, k):
            members = [op for g in chosen for op in g]
            if len(members) == len(set(members)):
                yield frozenset(chosen)


def _internal(graph, tasks):
    """Values that a fused stack writes and only its own ops read (the simulator's rule, on the graph
    with its recomputations): they never reach DRAM."""
    task_of = {op: task for task, ops in tasks.items() for op in ops}
    return {t for task, ops in tasks.items() if len(ops) > 1 for op in ops for t in graph.op_by_name[op].outputs
            if graph.consumers[t] and t not in graph.outputs and all(task_of[r] == task for r in graph.consumers[t])}


def _earliest_start(graph, problem, plan_of, tasks, order, dram_capacity):
    """Starts of `tasks` started in `order` as the module docstring says (None: some task never
    fits); `plan_of(starts)` is the plan whose options give durations and resources."""
    task_of = {op: task for task, ops in tasks.items() for op in ops}
    internal = _internal(graph, tasks)
    on_chip = plan_of({}).on_chip
    start, end = {}, {}
    bus_free, core_free = {}, {}
    previous = 0
    for task in order:
        ops = [graph.op_by_name[op] for op in tasks[task]]
        option = plan_of(start).option(problem, task)
        t = max([previous, *(core_free.get(c, 0) for c in option.cores)]
                + [end[task_of[graph.producer[x]]] for op in ops for x in op.inputs
                   if x in graph.producer and task_of[graph.producer[x]] != task]
                + [end[task_of[op.forward_op]] for op in ops if op.phase is Phase.RECOMPUTE])
        for bus in option.buses:
            t = max(t, bus_free.get(bus, 0))
        written = [x for op in ops for x in op.outputs if not graph.tensors[x].is_static and x not in internal]
        need = sum(graph.tensors[x].size_bytes for x in written if x not in on_chip)
        kept = {option.memories[0]: sum(graph.tensors[x].size_bytes for x in written if x in on_chip)}
        while True:
            dram = _dram_level(graph, task_of, internal | on_chip, start, end, t) + need
            running = [plan_of(start).option(problem, other) for other in start if start[other] <= t < end[other]]
            held = _on_chip_level(problem, graph, task_of, on_chip, plan_of(start), start, end, t)
            local_fits = all(
                own + kept.get(memory, 0) + held.get(memory, 0)
                + sum(size for o in running for m, size in o.working_sets if m == memory)
                <= problem.local_capacity_bytes(memory)
                for memory, own in {**dict.fromkeys(kept, 0), **dict(option.working_sets)}.items())
            if dram <= dram_capacity and local_fits:
                break
            later = [e for e in end.values() if e > t]
            if not later:
                return None
            t = min(later)
        start[task], end[task] = t, t + option.duration_cycles
        for core in option.cores:
            core_free[core] = end[task]
        for bus in option.buses:
            bus_free[bus] = t + option.bus_cycles
        previous = t
    return start


def _lives(graph, task_of, name, start, end, t):
    """Whether the value `name` is held at cycle t (its writer placed; released when the readers
    outside its writer have all ended, else still held)."""
    producer = graph.producer.get(name)
    writer = task_of[producer] if producer is not None else None
    if writer is not None and writer not in start:
        return False
    readers = {task_of[r] for r in graph.consumers[name]} - {writer}
    if not readers:
        released = end[writer] if writer is not None else 0
    elif all(r in end for r in readers):
        released = max(end[r] for r in readers)
    else:
        released = None
    began = start[writer] if writer is not None else 0
    return began <= t and (released is None or released > t)


def _on_chip_level(problem, graph, task_of, on_chip, plan, start, end, t):
    """Bytes held on chip at cycle t, by local memory (the writer's)."""
    level = {}
    for name in on_chip:
        writer = task_of[graph.producer[name]]
        if _lives(graph, task_of, name, start, end, t):
            memory = plan.option(problem, writer).memories[0]
            level[memory] = level.get(memory, 0) + graph.tensors[name].size_bytes
    return level


def _dram_level(graph, task_of, outside, start, end, t):
    """Bytes in DRAM at cycle t: every dynamic value held then, but those in `outside`."""
    return sum(tensor.size_bytes for name, tensor in graph.tensors.items()
               if not tensor.is_static and name not in outside and _lives(graph, task_of, name, start, end, t))


def all_plans(problem, budget_bytes):
    """Every plan of the module docstring that the referee validates within `budget_bytes`, with its
    measurement."""
    target = CostUnderBudget(budget_bytes)
    seen = set()
    values = list(dict.fromkeys((*problem.candidates, *problem.on_chip_eligible)))
    choices_of = [["dram"] + (["recompute"] if v in problem.candidates else [])
                  + (["on_chip"] if v in problem.on_chip_eligible else []) for v in values]
    for residency in itertools.product(*choices_of):
        recomputed = tuple(v for v, r in zip(values, residency) if r == "recompute")
        on_chip = frozenset(v for v, r in zip(values, residency) if r == "on_chip")
        graph = recompute_graph(problem.graph, recomputed)
        for groups in _group_choices(problem, graph):
            yield from _plans_of(problem, target, graph, recomputed, on_chip, groups, seen)


def _plans_of(problem, target, graph, recomputed, on_chip, groups, seen):
    """The plans of one residency and one choice of fused recomputation groups (see `all_plans`)."""
    tasks = _tasks(problem, graph, groups)
    task_of = {op: task for task, ops in tasks.items() for op in ops}
    dag = nx.DiGraph()
    dag.add_nodes_from(tasks)
    dag.add_edges_from((task_of[graph.producer[x]], task) for task, ops in tasks.items() for op in ops
                       for x in graph.op_by_name[op].inputs
                       if x in graph.producer and task_of[graph.producer[x]] != task)
    dag.add_edges_from((task_of[graph.op_by_name[op].forward_op], c) for c, ops in tasks.items()
                       if c not in problem.stack_ops for op in ops)
    names = list(tasks)
    group_of = {g[-1] + RECOMPUTE_SUFFIX: g for g in groups}
    choices = [list(dict.fromkeys((o.core, o.cores if o.spread else None) for o in problem.options[task]
                                  if o.group == group_of.get(task, ()))) for task in names]
    for placements in itertools.product(*choices):
        core_of = {task: core for task, (core, _) in zip(names, placements)}
        spread = {task: cores for task, (_, cores) in zip(names, placements) if cores}

        def plan_of(starts, core_of=core_of, spread=spread):
            return ParallelPlan(frozenset(recomputed), core_of, starts, on_chip, groups, spread)

        if not _one_memory_each(problem, graph, tasks, plan_of({}), on_chip):
            continue
        for order in nx.all_topological_sorts(dag):
            starts = _earliest_start(graph, problem, plan_of, tasks, order, target.budget)
            if starts is None:
                continue
            plan = plan_of(starts)
            key = (plan.recomputed, plan.on_chip, plan.groups, tuple(sorted(core_of.items())),
                   tuple(sorted(spread.items())), tuple(sorted(starts.items())))
            if key in seen:
                continue
            seen.add(key)
            measured = PLAN.referee(problem, target, plan, None).measurement
            if not measured.violations:
                yield plan, measured


def _one_memory_each(problem, graph, tasks, plan, on_chip):
    """Whether every value on chip is written and read in one local memory (and every task has an
    option priced so)."""
    task_of = {op: task for task, ops in tasks.items() for op in ops}
    for name in on_chip:
        touching = {task_of[graph.producer[name]]} | {task_of[r] for r in graph.consumers[name]}
        try:
            memories = {plan.option(problem, task).memories for task in touching}
        except StopIteration:  # no option priced with the value on chip there
            return False
        if len(memories) != 1 or len(next(iter(memories))) != 1:
            return False
    return True


def optima(problem, budget_bytes):
    """objective -> its least value over every plan within the budget (None: none fits): latency
    (cycles), energy (pJ), edp (latency x energy, cycles x pJ)."""
    values = {"latency": [], "energy": [], "edp": []}
    for _, measured in all_plans(problem, budget_bytes):
        values["latency"].append(measured.latency_cycles)
        values["energy"].append(measured.energy_pj)
        values["edp"].append(measured.latency_cycles * measured.energy_pj)
    return {objective: min(found, default=None) for objective, found in values.items()}


def brute_force(problem, budget_bytes):
    """(least latency, least energy) over every plan within the budget (None, None: none fits)."""
    best = optima(problem, budget_bytes)
    return best["latency"], best["energy"]

