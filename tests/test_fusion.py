"""Fusion: hand-computed stack prices (one core, and a stack spanning cores), the exact partition
against brute force over every valid partition of small graphs, the simulator on stacks that span
cores, and the `monet fuse` command."""

import itertools
import json
import random

import networkx as nx
import pytest

from hw_fixtures import toy
from monet_opt.cli import main
from monet_opt.families.fusion.family import solve_fusion
from monet_opt.families.fusion.heuristics import repair, rule_partition
from monet_opt.families.fusion.space import FusionObjective, connected_sets, fusion_space, is_convex, plan_of, priced
from monet_opt.model.cost import CostTable, price
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.schedule import simulate
from monet_opt.schedule.plan import Plan, serial_sequence
from monet_opt.solving.common import Deadline, SolverOptions

OPTIONS = SolverOptions(workers=2, progress=False)


def conv_relu_conv():
    g = GraphBuilder("crc")
    h = g.conv("conv1", g.input("x", (1, 4, 8, 8)), g.weight("w", (8, 4, 3, 3)), padding=(1, 1, 1, 1))
    y = g.conv("conv2", g.relu("relu", h), g.weight("w2", (8, 8, 3, 3)), padding=(1, 1, 1, 1))
    return g.build([y])


def test_conv_relu_conv_fused_on_one_small_core_by_hand():
    """One vector core that runs MACs too, 16 lanes, a DRAM port of 8 bits/cycle. fp32 sizes: x 1024 B,
    w 1152 B, conv1 out 2048 B, relu out 2048 B, w2 2304 B, y 2048 B."""
    hw = toy(**{"cores.1.op_kinds": ["vector", "mac"], "memories.1.capacity_bytes": 3456 + 2048,
                "dram.bandwidth_bits_per_cycle": 8})
    g = conv_relu_conv()
    ops = [g.op_by_name[n] for n in ("conv1", "relu", "conv2")]
    fused = price(g, ops, hw.core("vec"), hw)
    # weights 3456 B stay; so do the halos of the two 3x3 convolutions (stride 1): 2 rows of x
    # (2 x 4 channels x 8 x 4 B = 256 B) and 2 rows of the relu output (2 x 8 x 8 x 4 = 512 B);
    # x + conv1 out + relu out + y = 7168 B stream in what is left, 5504 - 3456 - 768 = 1280 B:
    # ceil(7168 / 5) = 1434 does not fit, ceil(7168 / 6) = 1195 does: 6 tiles
    assert fused.tiles == 6 and fused.working_set_bytes == 3456 + 768 + 1195
    # DRAM: x, w, w2 in, y out; the two intermediates never leave
    assert fused.dram_read_bytes == 1024 + 1152 + 2304 and fused.dram_write_bytes == 2048
    # compute: 18432 + 512 + 36864 vector steps on 16 lanes = 1152 + 32 + 2304 cycles < DRAM 6528 * 8 / 8
    assert fused.compute_cycles == 1152 + 32 + 2304 and fused.dram_cycles == 6528
    assert fused.latency_cycles == 6528  # a vector unit has no fill/drain; one core: no ramp
    alone = [price(g, [op], hw.core("vec"), hw) for op in ops]
    assert [c.latency_cycles for c in alone] == [(1024 + 1152 + 2048), 2 * 2048, (2048 + 2304 + 2048)]
    assert sum(c.dram_bytes for c in alone) - fused.dram_bytes == 2 * (2048 + 2048)


def test_a_stack_spanning_two_cores_by_hand():
    """mm (64x32 @ 32x32) on the PE array, relu on the vector unit, mm2 back on the PE array: the
    intermediates cross the 64-bit pe-vec link once each (8 KiB each way), nothing else is slow."""
    g = GraphBuilder("mm")
    y = g.matmul("mm2", g.relu("relu", g.matmul("mm", g.input("x", (64, 32)), g.weight("w", (32, 32)))),
                 g.weight("w2", (32, 32)))
    g = g.build([y])
    hw = toy()
    ops = [g.op_by_name[n] for n in ("mm", "relu", "mm2")]
    cost = price(g, ops, [hw.core("pe"), hw.core("vec"), hw.core("pe")], hw)
    assert cost.cores == ("pe", "vec") and cost.tiles == 1
    assert cost.dram_read_bytes == 8192 + 4096 + 4096 and cost.dram_write_bytes == 8192
    assert cost.link_cycles == 2 * 8192 * 8 // 64 and cost.link_energy_pj == 2 * 8192 * 8 * 1.0
    # busy: pe 64 + 64 cycles, vec 2048 / 16 = 128; ramp (256 - 128) / 1 tile; fill 64 + 64 once per tile
    assert cost.compute_cycles == 128 and cost.latency_cycles == 2048 + 128 + 128
    assert dict(cost.working_set_by_memory) == {"sram": 4096 + 4096 + 4 * 8192, "vsram": 2 * 8192}
    small = toy(**{"memories.1.capacity_bytes": 4096})  # the vector memory holds a quarter: 4 tiles
    tiled = price(g, ops, [small.core("pe"), small.core("vec"), small.core("pe")], small)
    assert tiled.tiles == 4 and tiled.latency_cycles == 2048 + 128 // 4 + 4 * 128
    parts = sum(e for _, e in tiled.energy_by_part)
    assert tiled.energy_pj == pytest.approx(tiled.compute_energy_pj + tiled.dram_energy_pj + parts, rel=1e-12)
    unlinked = toy(**{"links": [{"name": "bus", "endpoints": ["dram", "pe"], "bandwidth_bits_per_cycle": 64,
                                 "energy_pj_per_bit": 1.0},
                                {"name": "vbus", "endpoints": ["dram", "vec"], "bandwidth_bits_per_cycle": 64,
                                 "energy_pj_per_bit": 1.0}]})
    refused = price(g, ops, [unlinked.core("pe"), unlinked.core("vec"), unlinked.core("pe")], unlinked)
    assert "no link" in refused.reason


def test_a_two_core_stack_takes_the_tile_count_that_balances_ramp_and_fill():
    """mm (1024x32 @ 32x32, 1024 cycles on the PE array, fill 64 per tile) -> relu (32768 / 16 lanes =
    2048 cycles): ramp R = 3072 - 2048 = 1024. ceil(1024 / n) + 64 n is 1088, 640, 534, 512, 525 for
    n = 1..5: 4 tiles, though one fits. The 128 KiB intermediate crosses the 64-bit link: 16384 cycles."""
    g = GraphBuilder("mr")
    g = g.build([g.relu("relu", g.matmul("mm", g.input("x", (1024, 32)), g.weight("w", (32, 32))))])
    hw = toy()
    cost = price(g, [g.op_by_name["mm"], g.op_by_name["relu"]], [hw.core("pe"), hw.core("vec")], hw)
    assert cost.tiles == 4 and cost.fill_drain_cycles == 4 * 64
    assert cost.latency_cycles == 1024 * 32 * 4 * 8 // 64 + 1024 // 4 + 4 * 64
    assert dict(cost.working_set_by_memory) == {"sram": 4096 + (131072 + 131072) // 4, "vsram": 131072 // 2}


def test_esu_enumerates_each_connected_set_once():
    g = random_graph(9, random.Random(3))
    found = list(connected_sets(g, 4))
    assert len(found) == len(set(found))
    undirected = g.dag.to_undirected()
    expected = {tuple(sorted(s, key=[o.name for o in g.ops].index))
                for k in range(2, 5) for s in itertools.combinations(undirected.nodes, k)
                if nx.is_connected(undirected.subgraph(s))}
    assert set(found) == expected


def random_graph(n_ops: int, rng: random.Random):
    """A random DAG of matmul, relu and add ops on 16x16 fp32 tensors."""
    g = GraphBuilder("random")
    values = [g.input("x", (16, 16))]
    for i in range(n_ops):
        kind = rng.choice(["matmul", "relu", "add"] if len(values) > 1 else ["matmul", "relu"])
        a = rng.choice(values[-3:])
        if kind == "matmul":
            values.append(g.matmul(f"mm{i}", a, g.weight(f"w{i}", (16, 16))))
        elif kind == "relu":
            values.append(g.relu(f"relu{i}", a))
        else:
            values.append(g.add(f"add{i}", a, rng.choice([v for v in values if v != a])))
    used = {t for op in g.build(values[-1:]).ops for t in op.inputs}
    return g.build([v for v in values[1:] if v not in used] or values[-1:])


def valid_partitions(space):
    """Every valid partition (set partitions of the ops whose blocks are connected, convex, priced
    candidates of at most max_stack ops, with an acyclic stack graph), as lists of candidates."""
    graph, table = space.graph, space.table
    names = [op.name for op in graph.ops]
    position = {n: i for i, n in enumerate(names)}
    blocks: dict[tuple[str, ...], object] = {}

    def candidate(block):
        key = tuple(sorted(block, key=position.__getitem__))
        if key not in blocks:
            ok = (len(key) <= space.max_stack and nx.is_weakly_connected(graph.dag.subgraph(key))
                  and is_convex(graph, key, position))
            blocks[key] = priced(table, key) if ok else None
        return blocks[key]

    def visit(i, partition):
        if i == len(names):
            chosen = [candidate(b) for b in partition]
            if None in chosen:
                return
            stack_of = {op: k for k, b in enumerate(partition) for op in b}
            quotient = nx.DiGraph((stack_of[u], stack_of[v]) for u, v in graph.dag.edges if stack_of[u] != stack_of[v])
            if nx.is_directed_acyclic_graph(quotient):
                yield chosen
            return
        for b in partition:  # a block may become connected only when a later op joins it
            if len(b) < space.max_stack:
                b.append(names[i])
                yield from visit(i + 1, partition)
                b.pop()
        partition.append([names[i]])
        yield from visit(i + 1, partition)
        partition.pop()

    yield from visit(0, [])


def brute_force(space):
    """The best value of every objective over all valid partitions, each partition valued by its
    candidates' prices."""
    best = {o: float("inf") for o in FusionObjective}
    for chosen in valid_partitions(space):
        latency = sum(c.latency_cycles for c in chosen)
        energy = sum(c.energy_pj for c in chosen)
        dram = sum(c.dram_bytes for c in chosen)
        for o, v in ((FusionObjective.LATENCY, latency), (FusionObjective.ENERGY, energy),
                     (FusionObjective.DRAM, dram), (FusionObjective.EDP, latency * energy)):
            best[o] = min(best[o], v)
    return best


def hand_made_graph():
    """A residual block: mm -> relu -> mm2 -> add(x) -> relu2, plus a side matmul on the input."""
    g = GraphBuilder("block")
    x = g.input("x", (16, 16))
    h = g.matmul("mm2", g.relu("relu", g.matmul("mm", x, g.weight("w", (16, 16)))), g.weight("w2", (16, 16)))
    y = g.relu("relu2", g.add("add", h, x))
    side = g.matmul("side", x, g.weight("w3", (16, 16)))
    return g.build([y, side])


@pytest.mark.parametrize("graph_seed", [None, 1, 2, 5, 8])
def test_exact_partition_equals_brute_force_for_every_objective(graph_seed):
    graph = hand_made_graph() if graph_seed is None else random_graph(8 + graph_seed % 3, random.Random(graph_seed))
    hw = toy(**{"memories.1.capacity_bytes": 3 * 1024 + 512, "dram.bandwidth_bits_per_cycle": 256,
                "links.0.bandwidth_bits_per_cycle": 128})
    table = CostTable(graph, hw)
    for max_stack in (3, 4):
        expected = brute_force(fusion_space(graph, table, max_stack, FusionObjective.LATENCY))
        for objective in FusionObjective:
            space = fusion_space(graph, table, max_stack, objective)
            result = solve_fusion(space, "cpsat", OPTIONS)
            assert result.validated and result.status.value == "optimal"
            # energy is rounded to 1 pJ per stack in the model
            tolerance = {FusionObjective.ENERGY: 0.5 * len(graph.ops),
                         FusionObjective.EDP: 0.5 * len(graph.ops) * sum(c.latency_cycles for c in space.singles.values())
                         }.get(objective, 0)
            assert expected[objective] - 1e-6 <= result.objective <= expected[objective] + tolerance + 1e-6, objective
            for method in ("rule", "none", "ga"):
                other = solve_fusion(space, method, SolverOptions(progress=False), Deadline.start(5))
                assert other.validated and other.objective >= expected[objective] - 1e-6


def test_serial_order_of_a_stack_whose_last_op_comes_late():
    """Stack {a1, a3} feeds b2 (through a1); sorting stacks by their last op would run b2 first."""
    g = GraphBuilder("late")
    a1 = g.relu("a1", g.input("x", (64,)))
    b2 = g.relu("b2", a1)
    a3 = g.relu("a3", a1)
    graph = g.build([b2, a3])
    assert serial_sequence(graph, {"A": ("a1", "a3"), "B": ("b2",)}) == ["A", "B"]
    hw = toy()
    plan = Plan({"A": ("a1", "a3"), "B": ("b2",)}, {"A": "vec", "B": "vec"}, {"vec": ("A", "B")}, serial=True)
    result = simulate(graph, hw, plan)
    table = CostTable(graph, hw)
    assert result.valid
    assert result.latency_cycles == table.get(("a1", "a3"), "vec").latency_cycles + table.get(("b2",), "vec").latency_cycles


def test_a_stack_on_two_cores_occupies_both():
    """S = mm (pe) + relu (vec) runs on both cores: the independent relu2 on vec cannot overlap it."""
    g = GraphBuilder("two")
    x = g.input("x", (64, 32))
    y = g.relu("relu", g.matmul("mm", x, g.weight("w", (32, 32))))
    z = g.relu("relu2", x)
    graph = g.build([y, z])
    hw = toy()
    plan = Plan({"S": ("mm", "relu"), "R": ("relu2",)}, {"S": "pe", "R": "vec"}, {"pe": ("S",), "vec": ("S", "R")},
                placement={"relu": "vec"})
    result = simulate(graph, hw, plan)
    assert result.valid
    s, r = sorted(result.tasks, key=lambda t: t.start_cycle)
    assert s.cores == ("pe", "vec") and r.start_cycle >= s.end_cycle
    missing = Plan(plan.stacks, plan.core_of, {"pe": ("S",), "vec": ("R",)}, placement={"relu": "vec"})
    assert any(v.kind == "order" for v in simulate(graph, hw, missing).violations)


def test_repair_breaks_a_cyclic_partition():
    graph = hand_made_graph()
    space = fusion_space(graph, CostTable(graph, toy()), 4, FusionObjective.LATENCY)
    # {mm, add} and {relu, mm2}: mm -> relu -> mm2 -> add makes the two stacks depend on each other
    partition = repair(space, [["mm", "add"], ["relu", "mm2"], ["relu2"], ["side"]])
    assert sorted(op for c in partition for op in c.ops) == sorted(op.name for op in graph.ops)
    result = simulate(graph, toy(), plan_of(graph, partition))
    assert result.valid


def test_rule_fuses_each_matmul_with_the_elementwise_ops_after_it():
    graph = hand_made_graph()
    space = fusion_space(graph, CostTable(graph, toy()), 6, FusionObjective.LATENCY)
    stacks = {c.ops for c in rule_partition(space)}
    assert ("mm", "relu") in stacks and ("mm2", "add", "relu2") in stacks and ("side",) in stacks


def test_fuse_command_on_resnet18_cifar(tmp_path):
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["fuse", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--max-stack", "4",
                     "--time-limit", "25", "--json", "--out", str(tmp_path), "--schedule"])
    data = json.loads(out.getvalue())
    assert code == 0 and data["validated"] and data["status"] == "optimal"
    multi = data["multi_core"]
    assert multi["validated"] and multi["latency_cycles"] <= data["latency_cycles"]
    assert multi["energy_pj"] == pytest.approx(data["energy_pj"], rel=1e-9)  # the same stacks, moved
    assert (tmp_path / "multi_core" / "gantt.png").exists()
    assert data["latency_cycles"] == data["objective"] < data["layer_by_layer"]["latency_cycles"]
    assert data["dram_bytes"] < data["layer_by_layer"]["dram_bytes"] and data["fused_stacks"] > 0
    assert all(len(s["ops"]) <= 4 for s in data["stacks"])
    assert {p.name for p in tmp_path.iterdir()} >= {"fusion.json", "result.json", "gantt.png", "memory.png"}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["fuse", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--max-stack", "0"]) == 2
        assert main(["fuse", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--objective", "x"]) == 2
        assert main(["fuse", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--ga-preset", "x"]) == 2
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["fuse", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--method", "ga",
                     "--ga-preset", "stream", "--generations", "2", "--max-stack", "4", "--json"])
    ga = json.loads(out.getvalue())
    assert code == 0 and ga["validated"] and ga["status"] == "heuristic" and ga["objective"] >= data["objective"]


def test_fused_stacks_scheduled_on_every_core():
    """Two PE arrays and one vector unit. Stack A = mmA (PE) + reluA (vector) holds a PE array and
    the vector unit; mmB runs on the other PE array meanwhile; reluB waits for the vector unit:
    makespan = max(A, mmB) + reluB, below the serial sum."""
    from hw_fixtures import toy_data
    from monet_opt.model.hardware import accelerator_from_dict
    from monet_opt.families.fusion.family import schedule_on_cores
    from monet_opt.families.fusion.space import Candidate

    data = toy_data()
    data["memories"].append(dict(data["memories"][0], name="sram2"))
    data["cores"].append(dict(data["cores"][0], name="pe2", memory="sram2"))
    data["links"].insert(1, dict(data["links"][0], name="pe2-vec", endpoints=["pe2", "vec"]))
    data["links"][-1]["endpoints"] = ["dram", "pe", "vec", "pe2"]
    hw = accelerator_from_dict(data, "two-pe.yaml")
    g = GraphBuilder("branches")
    x = g.input("x", (64, 32))
    a = g.relu("reluA", g.matmul("mmA", x, g.weight("wa", (32, 32))))
    b = g.relu("reluB", g.matmul("mmB", x, g.weight("wb", (32, 32))))
    graph = g.build([a, b])
    table = CostTable(graph, hw)
    space = fusion_space(graph, table, 2, FusionObjective.LATENCY)
    stack_a = priced(table, ("mmA", "reluA"))
    assert stack_a.cores == ("pe", "vec")
    partition = [stack_a, space.singles["mmB"], space.singles["reluB"]]
    result = schedule_on_cores(space, partition, "cpsat", OPTIONS)
    assert result.validated and result.status.value == "optimal"
    mm_b = table.get(("mmB",), "pe").latency_cycles
    relu_b = table.get(("reluB",), "vec").latency_cycles
    assert result.objective == max(stack_a.latency_cycles, mm_b) + relu_b
    assert result.objective < sum(c.latency_cycles for c in partition)
    assert isinstance(partition[0], Candidate) and set(result.to_dict()["cores_used"]) == {"pe", "pe2", "vec"}


FUSED_CHECKPOINT_HARDWARE = {
    "separate": {"dram.bandwidth_bits_per_cycle": 64},
    "shared": {"dram.bandwidth_bits_per_cycle": 64, "cores.1.memory": "sram"},
    "small vector memory": {"dram.bandwidth_bits_per_cycle": 64, "memories.1.capacity_bytes": 2600},
}


@pytest.mark.parametrize("which", list(FUSED_CHECKPOINT_HARDWARE))
def test_checkpointing_a_fused_plan_equals_exhaustive_enumeration(which):
    """The checkpoint model on a fused partition (the exact fusion of the block, with stacks that
    pass saved activations inside) against every checkpoint plan of that partition, each judged by
    the simulator alone, at every distinct activation peak, for latency and energy. With a small
    vector memory, recomputing a value its stack passes inside is optimal at the tight budgets."""
    from checkpoint_reference import all_plans, two_layer_block
    from monet_opt.schedule.plan import Residency
    from monet_opt.families.checkpoint.family import solve_checkpoint
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace

    graph = two_layer_block()
    hw = toy(**FUSED_CHECKPOINT_HARDWARE[which])
    fused = solve_fusion(fusion_space(graph, CostTable(graph, hw), 4, FusionObjective.LATENCY), "cpsat", OPTIONS)
    space = CheckpointSpace(graph, hw, stacks=[(c.ops, c.cores) for c in fused.payload])
    assert any(len(ops) > 1 for ops, _ in space.stacks) and space.recomputed_inside
    plans = list(all_plans(space))
    peaks = sorted({e.dynamic_dram_peak_bytes for _, _, e in plans if e.local_overflow_bytes == 0})
    if len(peaks) > 8:  # one memory: every value may stay on chip, many peak levels; a spread of them
        peaks = peaks[:: len(peaks) // 6] + [peaks[-1]]
    recomputed_inside = set()
    for objective in ("latency", "energy"):
        goal = OBJECTIVES[objective]
        for budget in peaks:
            expected = min(e.objective(goal) for _, _, e in plans
                           if e.dynamic_dram_peak_bytes <= budget and e.local_overflow_bytes == 0)
            result = solve_checkpoint(space, goal, budget, "cpsat", OPTIONS)
            assert result.status.value == "optimal" and result.validated
            assert result.objective == pytest.approx(expected, rel=1e-12), (objective, budget)
            recomputed_inside |= {a for a, r in result.payload.residency.items()
                                  if r is Residency.RECOMPUTE and a in space.recomputed_inside}
    assert bool(recomputed_inside) == (which == "small vector memory")


def test_fusion_and_checkpointing_alternated_never_lose_to_checkpointing_alone():
    """The alternation on the block with a small vector memory: at the unfused store-all peak the
    first fused partition needs more activation memory than the budget allows, so its answer is the
    unfused plan; 20 % above it the fused partition's checkpoint plan wins. The joint search (stacks
    of 2 ops, proven optimal) does better at the tighter budget: the best partition there is one that
    the alternation, which fuses before it checkpoints, never visits."""
    from checkpoint_reference import two_layer_block
    from monet_opt.errors import InfeasibleError
    from monet_opt.families.checkpoint.family import solve_checkpoint
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
    from monet_opt.solving.common import Deadline
    from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, alternate, fuse_and_checkpoint

    graph = two_layer_block()
    hw = toy(**FUSED_CHECKPOINT_HARDWARE["small vector memory"])
    unfused = CheckpointSpace(graph, hw)
    peak = unfused.store_all.dynamic_dram_peak_bytes
    goal = OBJECTIVES["latency"]
    for budget, fused_wins in ((peak, False), (int(1.2 * peak), True)):
        alone = solve_checkpoint(unfused, goal, budget, "cpsat", OPTIONS)
        found = alternate(FusedCheckpointProblem(graph, hw, 4, goal, budget), OPTIONS, Deadline.start(60), [])
        best = found.best
        assert best.validated and best.measurement.peak <= budget and found.unfused_error is None
        assert (best.objective < alone.objective) == fused_wins and best.objective <= alone.objective
        assert bool(found.fused_stacks) == fused_wins and found.rounds
    error = alternate(FusedCheckpointProblem(graph, hw, 4, goal, peak // 2), OPTIONS, Deadline.start(60),
                      []).unfused_error
    assert isinstance(error, InfeasibleError) and "smallest feasible budget" in str(error)
    joint = fuse_and_checkpoint(FusedCheckpointProblem(graph, hw, 2, goal, peak), OPTIONS, Deadline.start(60))
    assert joint.validated and joint.status.value == "optimal" and joint.measurement.peak <= peak
    assert joint.objective < solve_checkpoint(unfused, goal, peak, "cpsat", OPTIONS).objective
    assert joint.details["fused_stacks"] and not joint.details["rounds"]


def small_mlp():
    """fc1 -> GELU -> fc2 -> cross-entropy, SGD: 11 training ops, three saved activations."""
    from monet_opt.model.training.derive import Optimizer, derive_training_graph
    from monet_opt.model.workload.ir import DType

    g = GraphBuilder("mlp")
    h = g.gelu("act", g.matmul("fc1", g.input("x", (8, 16)), g.weight("w1", (16, 16))))
    y = g.matmul("fc2", h, g.weight("w2", (16, 4)))
    return derive_training_graph(g.build([g.softmax_xent("loss", y, g.input("labels", (8,), DType.INT32))]),
                                 Optimizer.SGD)


@pytest.fixture(scope="module")
def joint_plans():
    """small_mlp on the toy with the small vector memory: (graph, hw, plans) with plans the
    (latency, energy, dynamic DRAM peak, fused) of every plan of every valid partition (stacks of up
    to 3 ops) x every checkpoint plan of it that fits the local memories, each judged by the
    simulator alone."""
    from checkpoint_reference import all_plans
    from monet_opt.families.checkpoint.space import CheckpointSpace

    graph = small_mlp()
    hw = toy(**FUSED_CHECKPOINT_HARDWARE["small vector memory"])
    space = fusion_space(graph, CostTable(graph, hw), 3, FusionObjective.LATENCY, prune=False)
    plans = []
    for partition in valid_partitions(space):
        checkpoint_space = CheckpointSpace(graph, hw, stacks=[(c.ops, c.cores) for c in partition])
        fused = any(len(c.ops) > 1 for c in partition)
        plans += [(e.latency_cycles, e.energy_pj, e.dynamic_dram_peak_bytes, fused)
                  for _, _, e in all_plans(checkpoint_space) if e.local_overflow_bytes == 0]
    return graph, hw, plans


def joint_search_agrees(graph, hw, plans, budget: int, objective: str) -> None:
    """The joint search at `budget` returns the least `objective` of the plans within it, proven
    optimal over the joint space."""
    from monet_opt.families.checkpoint.space import OBJECTIVES
    from monet_opt.solving.common import Deadline
    from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, fuse_and_checkpoint

    column = {"latency": 0, "energy": 1}[objective]
    expected = min(p[column] for p in plans if p[2] <= budget)
    result = fuse_and_checkpoint(FusedCheckpointProblem(graph, hw, 3, OBJECTIVES[objective], budget), OPTIONS,
                                 Deadline.start(60))
    assert result.validated and result.measurement.peak <= budget
    assert result.status.value == "optimal" and "every partition" in result.space
    assert result.objective == pytest.approx(expected, rel=1e-12), (budget, objective)
    assert result.details["combination"].startswith("joint search, exact")


def test_joint_fusion_and_checkpointing_equals_brute_force(joint_plans):
    """Against the enumeration: the joint search returns the least latency or energy within the
    unfused store-all peak and the largest peak, proven optimal over the joint space; fusion pays
    there; below the smallest feasible peak, infeasible, with the unfused plan's distance."""
    from checkpoint_reference import all_plans
    from monet_opt.errors import InfeasibleError
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
    from monet_opt.solving.common import Deadline
    from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, fuse_and_checkpoint

    graph, hw, plans = joint_plans
    peaks = sorted({p[2] for p in plans})
    store_all = CheckpointSpace(graph, hw).store_all.dynamic_dram_peak_bytes
    assert peaks[0] < store_all < peaks[-1]
    for budget, objective in ((store_all, "latency"), (store_all, "energy"), (peaks[-1], "energy")):
        joint_search_agrees(graph, hw, plans, budget, objective)
    best_fused = min(p[0] for p in plans if p[3] and p[2] <= store_all)
    assert best_fused < min(p[0] for p in plans if not p[3] and p[2] <= store_all)  # fusion pays here
    unfused_floor = min(e.dynamic_dram_peak_bytes for _, _, e in all_plans(CheckpointSpace(graph, hw)))
    assert unfused_floor > peaks[0]  # a value recomputed inside a stack never reaches DRAM
    # every partition into stacks of up to 2 ops (fewer to prove infeasible) needs at least peaks[0]
    with pytest.raises(InfeasibleError, match=f"budget {peaks[0] - 1} bytes is infeasible for every partition "
                       rf".*the unfused plan needs {unfused_floor} bytes \({unfused_floor - peaks[0] + 1} above"):
        fuse_and_checkpoint(FusedCheckpointProblem(graph, hw, 2, OBJECTIVES["latency"], peaks[0] - 1), OPTIONS,
                            Deadline.start(120))


@pytest.mark.slow  # 25-40 s: the tightest budgets are the joint search's hardest
def test_joint_search_at_the_smallest_feasible_peak_equals_brute_force(joint_plans):
    graph, hw, plans = joint_plans
    joint_search_agrees(graph, hw, plans, min(p[2] for p in plans), "latency")


def test_sequential_combination_is_provably_worse_than_joint_on_a_hand_made_instance():
    """small_mlp on the toy with the small vector memory, stacks of up to 3 ops, least latency,
    activation budget = the unfused store-all peak (2,176 bytes). Derived by hand:

    Sizes (fp32, batch 8): x, fc1, act, grad/act, grad/fc1 8x16x4 = 512 bytes each; fc2 and
    grad/fc2 8x4x4 = 128; labels 8x4 = 32; loss 4. Weights and their gradients are static.

    Sequential. Fusion prices every value in DRAM; its unique optimum is F = {fc1,act,fc2} 512 +
    loss 21 + {loss.backward,fc2.dx,act.backward} 268 + {fc2.dw,w2.update} 216 +
    {fc1.dw,w1.update} 464 = 1,481 cycles. Its store-all peak is at the backward stack, which
    writes grad/fc2 and grad/fc1 at once (grad/act stays inside it) while x, labels, fc1, act and
    fc2 are live: 512+32+512+512+128+128+512 = 2,336 > 2,176, and no plan of F goes lower
    (grad/fc2 and grad/fc1 are not decisions; fc1 and act are read in that stack or after it).
    Peak splitting breaks that stack into its three ops; {fc2.dw,w2.update} runs last, so act and
    grad/fc2 stay live across act.backward: x+fc1+act+grad/fc2+grad/act+grad/fc1 = 512+512+512+
    128+512+512 = 2,688, the floor of all 8 checkpoint plans of that partition. The sequential
    combination has no plan within the budget.

    Joint. J = {fc1,act,fc2} 512 + loss 21 + {loss.backward,fc2.dw,w2.update} 244 +
    {fc2.dx,act.backward} 248 + {fc1.dw,w1.update} 464 = 1,489 cycles, 8 more than F under
    fusion's pricing, stores everything: act and fc2 die in the second stack, grad/act stays
    inside the third, so the peak is at the second stack: x+labels+fc1+act+fc2+grad/fc2 =
    512+32+512+512+128+128 = 1,824 bytes, within the budget."""
    from checkpoint_reference import all_plans
    from monet_opt.errors import InfeasibleError
    from monet_opt.families.checkpoint.family import CHECKPOINT
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
    from monet_opt.solving.common import Deadline
    from monet_opt.solving.contract import CostUnderBudget, solve
    from monet_opt.families.fusion.family import FUSION
    from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, fuse_and_checkpoint, fuse_within_reach

    graph = small_mlp()
    hw = toy(**FUSED_CHECKPOINT_HARDWARE["small vector memory"])
    budget = CheckpointSpace(graph, hw).store_all.dynamic_dram_peak_bytes
    assert budget == 512 + 512 + 512 + 128 + 512  # unfused, at fc2.dx: x, fc1, act, grad/fc2, grad/act
    space = fusion_space(graph, CostTable(graph, hw), 3, FusionObjective.LATENCY, prune=False)
    price_of = {c.ops: c.latency_cycles for c in space.candidates}
    forward, loss = ("fc1", "act", "fc2"), ("loss",)
    f_stacks = [forward, loss, ("loss.backward", "fc2.dx", "act.backward"), ("fc2.dw", "w2.update"),
                ("fc1.dw", "w1.update")]
    j_stacks = [forward, loss, ("loss.backward", "fc2.dw", "w2.update"), ("fc2.dx", "act.backward"),
                ("fc1.dw", "w1.update")]
    assert [price_of[s] for s in f_stacks] == [512, 21, 268, 216, 464]
    assert [price_of[s] for s in j_stacks] == [512, 21, 244, 248, 464]
    values = sorted((space.value(p), sorted(c.ops for c in p)) for p in valid_partitions(space))
    assert values[0] == (1481, sorted(f_stacks)) and values[1][0] > 1481  # F is the unique fusion optimum

    cores_of = {c.ops: c.cores for c in space.candidates}

    def floor(stacks):  # the least activation peak over every checkpoint plan of the partition
        checkpoint_space = CheckpointSpace(graph, hw, stacks=[(s, cores_of[s]) for s in stacks])
        return min(e.dynamic_dram_peak_bytes for _, _, e in all_plans(checkpoint_space))

    split = [forward, loss, ("loss.backward",), ("fc2.dx",), ("act.backward",), ("fc2.dw", "w2.update"),
             ("fc1.dw", "w1.update")]
    assert floor(f_stacks) == 2336 and floor(split) == 2688

    problem = FusedCheckpointProblem(graph, hw, 3, OBJECTIVES["latency"], budget)
    fused, fused_space = fuse_within_reach(FUSION, fusion_space(graph, CostTable(graph, hw), 3,
                                                                FusionObjective.LATENCY),
                                           "cpsat", problem, OPTIONS, Deadline.start(60))
    assert sorted(c.ops for c in fused.payload) == sorted(split)
    assert fused_space.alone == {"loss.backward", "fc2.dx", "act.backward"}
    with pytest.raises(InfeasibleError, match="smallest feasible budget is 2688 bytes"):
        solve(CHECKPOINT, problem.checkpoint(fused.payload), CostUnderBudget(budget), "cpsat", OPTIONS)

    joint = fuse_and_checkpoint(problem, OPTIONS, Deadline.start(60))
    assert joint.validated and joint.status.value == "optimal"
    assert joint.objective == 512 + 21 + 244 + 248 + 464 == 1489
    assert joint.measurement.peak == 512 + 32 + 512 + 512 + 128 + 128 == 1824
    assert sorted(map(tuple, joint.details["fused_stacks"])) == sorted(s for s in j_stacks if len(s) > 1)


LOCAL_BUDGET_BYTES = 1300  # of the vector memory's 2,600


def test_joint_search_under_a_local_budget_equals_brute_force():
    """A budget on the vector memory below its capacity: candidates and checkpoint plans are priced
    and checked against it (stacks tile to fit it), and the joint optimum equals brute force over
    every partition (stacks of up to 2 ops) and plan that the simulator finds within both budgets;
    the budget binds (the optimum without it is lower)."""
    from checkpoint_reference import all_plans
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
    from monet_opt.solving.common import Deadline
    from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, fuse_and_checkpoint

    graph = small_mlp()
    hw = toy(**FUSED_CHECKPOINT_HARDWARE["small vector memory"])
    limits = {"vsram": LOCAL_BUDGET_BYTES}
    budget = CheckpointSpace(graph, hw, local_budget_bytes=limits).store_all.dynamic_dram_peak_bytes
    space = fusion_space(graph, CostTable(graph, hw, limits), 2, FusionObjective.LATENCY, prune=False)
    expected = min(e.latency_cycles for partition in valid_partitions(space)
                   for _, _, e in all_plans(CheckpointSpace(graph, hw, local_budget_bytes=limits,
                                                            stacks=[(c.ops, c.cores) for c in partition]))
                   if e.local_overflow_bytes == 0 and e.dynamic_dram_peak_bytes <= budget)
    goal = OBJECTIVES["latency"]
    result = fuse_and_checkpoint(FusedCheckpointProblem(graph, hw, 2, goal, budget, limits), OPTIONS,
                                 Deadline.start(60))
    assert result.validated and result.status.value == "optimal" and result.objective == expected
    assert result.measurement.peak_memory_bytes["vsram"] <= LOCAL_BUDGET_BYTES
    free = fuse_and_checkpoint(FusedCheckpointProblem(graph, hw, 2, goal, budget), OPTIONS, Deadline.start(60))
    assert free.objective < expected


def test_fuse_with_checkpointing_command(capsys):
    from monet_opt.families.checkpoint.family import solve_checkpoint
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
    from monet_opt.model.workload import builtin_forward_graph
    from monet_opt.model.training import derive_training_graph
    from monet_opt.model.hardware import load_accelerator

    argv = ["fuse", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--max-stack", "2"]
    for extra, message in ((["--with-checkpointing"], "--budget B|P% is required"),
                           (["--local-budget", "sram=50%"], "--local-budget needs --with-checkpointing"),
                           (["--with-checkpointing", "--budget", "80%", "--local-budget", "nosuch=1"],
                            "MEMORY one of"),
                           (["--budget", "80%"], "--budget needs --with-checkpointing"),
                           (["--with-checkpointing", "--budget", "80%", "--objective", "edp"], "latency or energy"),
                           (["--with-checkpointing", "--budget", "80%", "--mode", "inference"], "no backward pass")):
        assert main(argv + extra) == 2
        assert message in capsys.readouterr().err
    assert main(argv + ["--with-checkpointing", "--budget", "90%", "--time-limit", "30", "--json", "--quiet"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["validated"] and data["rounds"] and data["peak_memory"] <= data["budget"]
    graph = derive_training_graph(builtin_forward_graph("resnet18-cifar"))
    space = CheckpointSpace(graph, load_accelerator("edge-tpu-quad"))
    alone = solve_checkpoint(space, OBJECTIVES["latency"], data["budget"], "cpsat", SolverOptions(progress=False),
                             deadline=Deadline.start(30))
    assert data["objective"] <= alone.objective


def test_a_recomputation_before_a_stack_whose_last_op_comes_late_runs_in_serial_order(tmp_path):
    """conv_b.dw comes before relu_a.backward in the reference order but waits for the stack that
    ends with it; relu_a's recomputation, anchored at that stack, must run before it on every core
    (a per-core order by last-op position deadlocked the simulator). The checkpoint model's plan
    with that recomputation is simulated exactly as claimed."""
    from monet_opt.schedule.plan import Residency
    from monet_opt.families.checkpoint.family import solve_checkpoint
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace, Decisions
    from monet_opt.model.training import derive_training_graph
    from monet_opt.model.workload import import_onnx
    from onnx_models import branchy_cnn_onnx, save

    graph = derive_training_graph(import_onnx(save(branchy_cnn_onnx(), tmp_path / "cnn.onnx")))
    hw = toy(**{"dram.bandwidth_bits_per_cycle": 64, "memories.1.capacity_bytes": 2600})
    table = CostTable(graph, hw)
    fused = [("conv_a", "relu_a"), ("conv_b", "cat"), ("gate", "pool"), ("logits", "loss.backward", "logits.dx"),
             ("pool.backward", "gate.d0", "gate.d1"), ("cat.grad_accumulate1", "cat.backward", "relu_a.backward"),
             ("conv_a.dw", "wa.update")]
    inside = {op for ops in fused for op in ops}
    partition = [priced(table, ops) for ops in fused] + [priced(table, (op.name,)) for op in graph.ops
                                                         if op.name not in inside]
    space = CheckpointSpace(graph, hw, stacks=[(c.ops, c.cores) for c in partition])
    assert graph.ops.index(graph.op_by_name["conv_b.dw"]) < graph.ops.index(graph.op_by_name["relu_a.backward"])
    evaluation = space.evaluate(Decisions({"relu_a": Residency.RECOMPUTE}))
    assert evaluation.simulation.valid, evaluation.simulation.violations[:1]
    budget = int(0.8 * CheckpointSpace(graph, hw).store_all.dynamic_dram_peak_bytes)
    result = solve_checkpoint(space, OBJECTIVES["latency"], budget, "cpsat", OPTIONS)
    assert result.validated and result.status.value == "optimal"


def late_stack_mlp():
    """x (4x16) -> fc1 (16) -> ReLU -> fc2 (4) -> GELU -> fc3 (8) -> cross-entropy, SGD, fp32, on
    the toy machine, with loss.backward, fc3.dw and w3.update fused: the stack's last op is an
    update at the end of the step, yet fc3.dx waits for it, so it runs first in the backward pass
    and every recomputation of the step runs before it (one slot, several anchors)."""
    from monet_opt.model.training.derive import Optimizer, derive_training_graph
    from monet_opt.families.checkpoint.space import CheckpointSpace
    from monet_opt.model.workload.ir import DType

    g = GraphBuilder("late-mlp")
    a1 = g.relu("act1", g.matmul("fc1", g.input("x", (4, 16)), g.weight("w1", (16, 16))))
    a2 = g.gelu("act2", g.matmul("fc2", a1, g.weight("w2", (16, 4))))
    y = g.matmul("fc3", a2, g.weight("w3", (4, 8)))
    graph = derive_training_graph(g.build([g.softmax_xent("loss", y, g.input("labels", (4,), DType.INT32))]),
                                  Optimizer.SGD)
    hw = toy()
    table = CostTable(graph, hw)
    fused = ("loss.backward", "fc3.dw", "w3.update")
    partition = [priced(table, fused)] + [priced(table, (op.name,)) for op in graph.ops if op.name not in fused]
    return CheckpointSpace(graph, hw, stacks=[(c.ops, c.cores) for c in partition])


def test_recomputations_before_one_stack_run_in_the_order_of_their_anchors():
    """Recomputing act1 (its anchor: fc2.dw) and act2 (anchor: fc3.dw, earlier in the backward
    pass) of `late_stack_mlp`: both run before the fused stack, act2's first. By hand (bytes, fp32,
    batch 4): while act1.recompute runs, DRAM holds x 256 and labels 16 (read by fc1.dw and
    loss.backward), fc3's output 128 (loss.backward), fc2's output 64 (GELU's backward reads its
    input), act2's copy 64, fc1's recomputed output 256 and act1's copy 256: 1040 bytes, the peak.
    Ordering the two recomputations by forward index instead (act1's chain first) never has act2's
    copy and fc1's output live together, and would claim 1024 bytes. The exact model now agrees
    with the simulator on this plan and on every other plan of the partition."""
    from checkpoint_reference import all_plans
    from monet_opt.schedule.plan import Residency
    from monet_opt.families.checkpoint.cpsat import modelled_peak_bytes
    from monet_opt.families.checkpoint.family import solve_checkpoint
    from monet_opt.families.checkpoint.space import OBJECTIVES, Decisions

    space = late_stack_mlp()
    decisions = Decisions({"act1": Residency.RECOMPUTE, "act2": Residency.RECOMPUTE})
    evaluation = space.evaluate(decisions)
    order = [t.name for t in sorted(evaluation.simulation.tasks, key=lambda t: t.start_cycle)]
    assert order[order.index("loss") + 1:order.index("loss.backward+2")] == [
        "act2.recompute", "fc1.recompute", "act1.recompute"]
    assert evaluation.dynamic_dram_peak_bytes == 1040
    assert modelled_peak_bytes(space, decisions) == 1040
    plans = list(all_plans(space))
    assert len(plans) >= 8
    for residency, groups, plan_evaluation in plans:
        assert modelled_peak_bytes(space, Decisions(residency, groups)) == plan_evaluation.dynamic_dram_peak_bytes
    result = solve_checkpoint(space, OBJECTIVES["latency"], 1039, "cpsat", OPTIONS)
    assert result.validated and result.measurement.peak <= 1039


@pytest.mark.parametrize("search", ["alternation", "joint search"])
def test_a_refuted_answer_never_loses_the_validated_one(monkeypatch, capsys, search):
    """An injected checkpoint method that misstates the latency of every fused partition's plan:
    the referee rejects each of those answers, and the search still returns the validated unfused
    optimum it had (the alternation's first step; a partition of the joint space), lists the
    rejected answers, and never claims optimality over the joint space. The joint search is cut
    to 20 partitions (JOINT_MAX_PARTITIONS) so that the alternation after it has time."""
    from dataclasses import replace

    from checkpoint_reference import two_layer_block
    from monet_opt.schedule.simulate import Claim as PlanClaim
    from monet_opt.families.checkpoint.family import CHECKPOINT, solve_checkpoint
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
    from monet_opt.solving.common import Deadline
    from monet_opt.solving.contract import Claim, Method, MethodKind
    from monet_opt.families.fusion_checkpoint import joint

    exact = CHECKPOINT.methods["cpsat"].run

    def misstating(problem, target, options, deadline):
        proposal = exact(problem, target, options, deadline)
        if proposal.payload is None or all(len(ops) == 1 for ops, _ in problem.space.stacks):
            return proposal
        return replace(proposal, claim=Claim(plan=PlanClaim(latency_cycles=1)))

    monkeypatch.setattr(joint, "CHECKPOINT", CHECKPOINT.with_method(
        Method("cpsat", misstating, MethodKind.EXACT, "misstates fused plans")))
    monkeypatch.setattr(joint, "JOINT_MAX_PARTITIONS", 20)
    if search == "alternation":
        monkeypatch.setattr(joint, "JOINT_MAX_OPS", 0)
    graph = two_layer_block()
    hw = toy(**FUSED_CHECKPOINT_HARDWARE["small vector memory"])
    unfused = CheckpointSpace(graph, hw)
    budget = int(1.2 * unfused.store_all.dynamic_dram_peak_bytes)
    goal = OBJECTIVES["latency"]
    result = joint.fuse_and_checkpoint(joint.FusedCheckpointProblem(graph, hw, 2, goal, budget), OPTIONS,
                                       Deadline.start(60))
    alone = solve_checkpoint(unfused, goal, budget, "cpsat", OPTIONS)
    assert alone.status.value == "optimal"
    assert result.validated and result.objective == alone.objective and result.details["fused_stacks"] == []
    refuted = result.details["refuted"]
    assert refuted and all(r["fused_stacks"] and "latency: claimed 1 cycles" in r["message"] for r in refuted)
    joint_space = result.space.startswith("every partition")
    assert joint_space == (search == "joint search") and not (joint_space and result.status.value == "optimal")
    assert capsys.readouterr().err.count("the referee rejected a checkpoint answer") == 1
