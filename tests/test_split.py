"""Layers split across cores: the price of the parts (`_price_split`), the simulator running them, the
plan family choosing them (against brute force)."""

import pytest
from hw_fixtures import toy_data
from plan_reference import brute_force

from monet_opt.errors import InputError
from monet_opt.families.checkpoint.space import OBJECTIVES
from monet_opt.families.plan.family import PLAN
from monet_opt.families.plan.problem import PlanProblem
from monet_opt.model.cost import CostTable
from monet_opt.model.cost.model import Cost, Unavailable, _split_along, split_parts
from monet_opt.model.hardware import accelerator_from_dict
from monet_opt.model.training.derive import Optimizer, derive_training_graph
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.model.workload.ir import DType
from monet_opt.schedule.plan import Plan
from monet_opt.schedule.simulate import simulate
from monet_opt.solving.common import Deadline, SolverOptions, SolveStatus
from monet_opt.solving.contract import CostUnderBudget, solve


def twin_data():
    """The toy accelerator's description (DRAM and local memories at 2^30 bits per cycle: compute
    binds) with a second 32 x 32 array, pe2, on its own SRAM, on the DRAM bus."""
    data = toy_data()
    data["memories"].append(dict(data["memories"][0], name="sram2"))
    data["cores"].append(dict(data["cores"][0], name="pe2", memory="sram2"))
    data["links"][1]["endpoints"].append("pe2")
    return data


def twin_fast_arrays():
    """`twin_data` as an accelerator."""
    return accelerator_from_dict(twin_data(), "twin-fast.yaml")


def fc_relu():
    """x (64 x 32) @ w (32 x 64), then ReLU; fp32."""
    g = GraphBuilder("fc-relu")
    h = g.matmul("fc", g.input("x", (64, 32)), g.weight("w", (32, 64)))
    return g.build([g.relu("relu", h)])


def test_split_parts_are_nearly_equal():
    assert split_parts(64, 2) == [32, 32] and split_parts(10, 4) == [3, 3, 2, 2]


def test_a_matmul_split_over_two_arrays_halves_its_compute_and_reads_its_input_twice():
    """fc on pe (unrolled K = N = 64 over 32, C = 32 over 32; 64 rows): 2 x 1 x 64 = 128 temporal
    cycles + 64 of fill and drain = 192. Split along N over pe and pe2: each part 1 x 1 x 64 = 64 +
    64 = 128 cycles, the parts at once. DRAM: x (8,192 B) read by each part, w (8,192 B) and the
    output (16,384 B) in halves: 24,576 B read instead of 16,384, 16,384 written either way; the
    131,072 MACs cost 131,072 pJ either way."""
    graph, hw = fc_relu(), twin_fast_arrays()
    table = CostTable(graph, hw)
    alone, split = table.get(("fc",), "pe"), table.get(("fc",), ("pe", "pe2"))
    assert isinstance(alone, Cost) and isinstance(split, Cost)
    assert (alone.compute_cycles, alone.latency_cycles, split.compute_cycles, split.latency_cycles) == (128, 192, 64, 128)
    assert (alone.dram_read_bytes, split.dram_read_bytes) == (16_384, 24_576)
    assert alone.dram_write_bytes == split.dram_write_bytes == 16_384
    assert alone.compute_energy_pj == split.compute_energy_pj == 131_072
    assert split.cores == ("pe", "pe2") and dict(split.working_set_by_memory) == {"sram": 20_480, "sram2": 20_480}
    assert isinstance(table.get(("relu",), ("vec", "pe")), Unavailable)  # a vector op is not split
    assert isinstance(table.get(("fc",), ("pe", "vec")), Unavailable)  # vec cannot run a matmul


def test_a_tall_matmul_is_split_along_its_rows():
    """x (256 x 32) @ w (32 x 8) on twin_fast_arrays: on one array 1 x 1 x 256 temporal cycles + 64
    of fill and drain = 320. Split along its 8 output columns, each part still runs 256 rows (320
    cycles) and reads all of x (2 x 32,768 B); split along its 256 rows, each part runs 128 (192
    cycles), reads half of x and all of w (1,024 B): 34,816 B read, against 33,792 on one array.
    The rows win."""
    g = GraphBuilder("tall")
    graph = g.build([g.matmul("fc", g.input("x", (256, 32)), g.weight("w", (32, 8)))])
    hw = twin_fast_arrays()
    table = CostTable(graph, hw)
    alone, split = table.get(("fc",), "pe"), table.get(("fc",), ("pe", "pe2"))
    columns = _split_along(graph, graph.op_by_name["fc"], [hw.core("pe"), hw.core("pe2")], hw, None, "N")
    assert (alone.latency_cycles, alone.dram_read_bytes) == (320, 33_792)
    assert (columns.latency_cycles, columns.dram_read_bytes) == (320, 66_560)
    assert (split.latency_cycles, split.dram_read_bytes, split.dram_write_bytes) == (192, 34_816, 8_192)


def test_the_parts_share_a_dram_link():
    """With the DRAM link at 256 bits (32 B) per cycle the parts queue on it: 40,960 B take 1,280
    cycles, against 1,024 for the 32,768 B of the op on one array; with the 64 cycles of fill and
    drain, 1,344 against 1,088: the split is slower there."""
    data = twin_data()
    data["dram"]["bandwidth_bits_per_cycle"] = data["links"][1]["bandwidth_bits_per_cycle"] = 256
    table = CostTable(fc_relu(), accelerator_from_dict(data, "twin-slow.yaml"))
    assert table.get(("fc",), "pe").latency_cycles == 1_088
    assert table.get(("fc",), ("pe", "pe2")).latency_cycles == 1_344


def test_the_simulator_runs_a_split_op_on_both_arrays():
    """fc split over pe and pe2 (128 cycles), then ReLU on vec (4,096 elements over 16 lanes: 256
    cycles): 384 cycles, against 192 + 256 = 448 unsplit; the energy is the parts' prices."""
    graph, hw = fc_relu(), twin_fast_arrays()
    table = CostTable(graph, hw)
    stacks, core_of = {"fc": ("fc",), "relu": ("relu",)}, {"fc": "pe", "relu": "vec"}
    split = simulate(graph, hw, Plan(stacks, core_of, {"pe": ("fc",), "pe2": ("fc",), "vec": ("relu",)},
                                     split={"fc": ("pe", "pe2")}), table)
    alone = simulate(graph, hw, Plan(stacks, core_of, {"pe": ("fc",), "vec": ("relu",)}), table)
    assert (split.latency_cycles, split.violations, alone.latency_cycles) == (384, (), 448)
    [fc] = [task for task in split.tasks if task.name == "fc"]
    assert (fc.cores, fc.start_cycle, fc.end_cycle) == (("pe", "pe2"), 0, 128)
    assert split.energy_pj == pytest.approx(table.get(("fc",), ("pe", "pe2")).energy_pj
                                            + table.get(("relu",), "vec").energy_pj, rel=1e-12)
    # listed on one array only, the split op breaks the order rule and waits for pe2 for ever
    unlisted = simulate(graph, hw, Plan(stacks, core_of, {"pe": ("fc",), "vec": ("relu",)},
                                        split={"fc": ("pe", "pe2")}), table)
    assert [v.message for v in unlisted.violations] == [
        "stack 'fc' runs on pe, pe2 but is listed in the order of ['pe']",
        "the per-core orders deadlock: pe waits at 'fc' for its other cores; vec waits at 'relu' for fc"]


def test_a_malformed_split_is_refused():
    graph, hw = fc_relu(), twin_fast_arrays()
    base = Plan({"fc": ("fc",), "relu": ("relu",)}, {"fc": "pe", "relu": "vec"},
                {"pe": ("fc",), "pe2": ("fc",), "vec": ("relu",)})
    for split, message in (({"fc": ("pe",)}, "not two or more distinct known cores"),
                           ({"fc": ("pe2", "pe")}, "do not start with its core"),
                           ({"fc": ("pe", "gpu")}, "not two or more distinct known cores"),
                           ({"fc+1": ("pe", "pe2")}, "not a stack of one op")):
        with pytest.raises(InputError, match=message):
            simulate(graph, hw, Plan(base.stacks, base.core_of, base.core_order, split=split), CostTable(graph, hw))


def wide_step():
    """x (64 x 32) @ w (32 x 64) -> cross-entropy over 64 classes, trained with SGD: fc, loss,
    loss.backward, fc.dw, w.update."""
    g = GraphBuilder("wide")
    h = g.matmul("fc", g.input("x", (64, 32)), g.weight("w", (32, 64)))
    return derive_training_graph(g.build([g.softmax_xent("loss", h, g.input("labels", (64,), DType.INT32))]),
                                 Optimizer.SGD)


def test_the_plan_family_splits_a_layer_where_it_shortens_the_plan_as_brute_force_does():
    """wide_step on twin_fast_arrays (compute binds). fc and fc.dw take 192 cycles on one array,
    128 split over both (2 x 1 x 64 and 2 x 2 x 32 temporal cycles halved, + 64 of fill and drain);
    on vec the loss and its backward take 64 x 64 x 5 / 16 = 1,280 cycles each, the update 2,048 x 2
    / 16 = 256. fc, then loss.backward and loss on vec (fc.dw on the arrays meanwhile), then the
    update: 128 + 1,280 + 1,280 + 256 = 2,944 cycles split, 3,008 with fc on one array. The exact
    model equals brute force over every core, split and order: 2,944 cycles with the split, 3,008
    without it; the least energy (14,330,246.4 pJ) splits nothing (a split reads x twice)."""
    graph, hw = wide_step(), twin_fast_arrays()
    for spread, fastest in ((False, 3008), (True, 2944)):
        problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {}, spread=spread)
        assert brute_force(problem, 10**6) == (fastest, pytest.approx(14_330_246.4))
        result = solve(PLAN, problem, CostUnderBudget(10**6), "cpsat", SolverOptions(workers=2), Deadline.start(30))
        assert result.status is SolveStatus.OPTIMAL and result.validated
        assert result.measurement.latency_cycles == fastest
        assert result.payload.spread == ({"fc": ("pe", "pe2")} if spread else {})
    problem = PlanProblem(graph, hw, OBJECTIVES["energy"], {}, spread=True)
    result = solve(PLAN, problem, CostUnderBudget(10**6), "cpsat", SolverOptions(workers=2), Deadline.start(30))
    assert result.status is SolveStatus.OPTIMAL and result.payload.spread == {}
    assert result.measurement.energy_pj == pytest.approx(14_330_246.4)
    assert "split along its channels or rows" in problem.space()


def mlp():
    """x (64 x 32) -> fc1 (32 x 64) -> ReLU -> fc2 (64 x 64); fp32, inference."""
    g = GraphBuilder("mlp")
    h = g.matmul("fc1", g.input("x", (64, 32)), g.weight("w1", (32, 64)))
    return g.build([g.matmul("fc2", g.relu("relu", h), g.weight("w2", (64, 64)))])


def test_a_fused_stack_spread_over_two_arrays_pipelines_its_tiles_as_brute_force_finds():
    """fc1 -> ReLU -> fc2 fused, on twin_fast_arrays with the pe-vec link made fast too. On pe alone
    the stack keeps pe busy 128 + 256 cycles (fc1, fc2), vec 256: one tile, ramp (640 - 384) / 1 =
    256 and fill 2 x 64: 768 cycles. Spread (fc2 on pe2), the busiest core does 256: two tiles, ramp
    ceil((640 - 256) / 2) = 192, fill 2 x 64 x 2 = 256: 704 cycles. The exact model equals brute
    force: 768 without spreading, 704 with."""
    data = twin_data()
    data["links"][0]["bandwidth_bits_per_cycle"] = 1 << 30
    hw, graph = accelerator_from_dict(data, "twin-linked.yaml"), mlp()
    stacks = ((("fc1", "relu", "fc2"), ("pe", "vec", "pe")),)
    for spread, fastest in ((False, 768), (True, 704)):
        problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {}, stacks, spread=spread)
        everything = problem.dynamic_dram_capacity_bytes()
        assert brute_force(problem, everything)[0] == fastest
        result = solve(PLAN, problem, CostUnderBudget(everything), "cpsat", SolverOptions(workers=2), Deadline.start(30))
        assert result.status is SolveStatus.OPTIMAL and result.measurement.latency_cycles == fastest
        assert result.payload.spread == ({"fc1+2": ("pe", "vec", "pe2")} if spread else {})
        assert result.details["spread_stacks"] == ({"fc1+2": ["pe", "vec", "pe2"]} if spread else {})


def test_a_stack_whose_tiles_and_dram_traffic_share_one_bus_is_priced_whole():
    """fc1 -> ReLU -> fc2 on pe2 and vec of twin_fast_arrays: the tiles pass over the bus that also
    carries the DRAM traffic; the energy of both on that bus is the stack's, in the simulation too."""
    graph, hw = mlp(), twin_fast_arrays()
    table = CostTable(graph, hw)
    cost = table.get(("fc1", "relu", "fc2"), ("pe2", "vec", "pe2"))
    plan = Plan({"s": ("fc1", "relu", "fc2")}, {"s": "pe2"}, {"pe2": ("s",), "vec": ("s",)}, placement={"relu": "vec"})
    simulated = simulate(graph, hw, plan, table)
    assert simulated.violations == () and cost.link_energy_pj > 0 and cost.dram_link_energy_pj > 0
    assert simulated.energy_pj == pytest.approx(cost.energy_pj, rel=1e-12)
    assert simulated.energy_breakdown_pj["link:bus"] == pytest.approx(cost.link_energy_pj + cost.dram_link_energy_pj)
