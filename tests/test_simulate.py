"""The validation scheduler: hand-computed schedules, one broken plan per violation kind,
recomputation, claim checking, and properties on random plans."""

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monet_opt.errors import InputError
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import accelerator_from_dict, load_accelerator
from monet_opt.model.training import Optimizer, derive_training_graph, inference_graph
from monet_opt.model.workload import DType, Phase, builtin_forward_graph
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.schedule import Claim, Plan, Residency, check, default_plan, simulate
from hw_fixtures import toy, toy_data
from test_training import tiny_mlp
from test_training_properties import cnns, mlps, transformers


def two_pe_hw(dram_bits_per_cycle=64):
    data = toy_data()
    data["cores"].insert(1, {**data["cores"][0], "name": "pe1"})
    data["links"][1]["endpoints"] = ["dram", "pe", "pe1", "vec"]
    data["links"][0]["endpoints"] = ["pe", "pe1"]
    data["links"].append({"name": "pe1-vec", "endpoints": ["pe1", "vec"], "bandwidth_bits_per_cycle": 64,
                          "energy_pj_per_bit": 1.0})
    data["dram"]["bandwidth_bits_per_cycle"] = dram_bits_per_cycle
    return accelerator_from_dict(data, "two-pe")


def single_stack_plan(graph, core_of):
    order = {}
    for op in graph.ops:
        order.setdefault(core_of[op.name], []).append(op.name)
    return Plan({op.name: (op.name,) for op in graph.ops}, dict(core_of), {c: tuple(o) for c, o in order.items()})


def test_reserved_dram_bus_serialises_two_cores():
    g = GraphBuilder("pair")
    a = g.matmul("mm1", g.input("x1", (64, 32)), g.weight("w1", (32, 32)))
    b = g.matmul("mm2", g.input("x2", (64, 32)), g.weight("w2", (32, 32)))
    graph = g.build([a, b])
    hw = two_pe_hw()
    result = simulate(graph, hw, single_stack_plan(graph, {"mm1": "pe", "mm2": "pe1"}))
    # each matmul moves 20,480 DRAM bytes = 2,560 cycles at 64 bits/cycle and lasts 2,560 + 64 (fill/drain);
    # the second waits for the bus: it starts at 2,560 and ends at 5,184
    assert [(t.name, t.start_cycle, t.end_cycle) for t in result.tasks] == [("mm1", 0, 2624), ("mm2", 2560, 5184)]
    assert result.latency_cycles == 5184 and result.valid
    assert result.energy_pj == sum(result.energy_breakdown_pj.values())


def test_on_chip_value_is_copied_over_the_link():
    g = GraphBuilder("hop")
    h = g.relu("relu", g.matmul("mm1", g.input("x", (64, 32)), g.weight("w1", (32, 32))))
    y = g.matmul("mm2", h, g.weight("w2", (32, 32)))
    forward = g.build([g.softmax_xent("loss", y, g.input("labels", (64,), DType.INT64))])
    graph = derive_training_graph(forward, Optimizer.SGD)
    hw = toy()
    cores = {op.name: ("pe" if op.kind.value == "matmul" else "vec") for op in graph.ops}
    plan = single_stack_plan(graph, cores)
    kept = Plan(plan.stacks, plan.core_of, plan.core_order, {"relu": Residency.ON_CHIP})
    result = simulate(graph, hw, kept)
    # relu's output (64x32 fp32 = 8 KiB) stays in vec's memory; mm2 and mm2.dw on the pe read it: one
    # copy into the pe's SRAM over the 64 bits/cycle pe-vec link = 1,024 cycles; relu.backward reads it
    # in place
    hops = [x for x in result.transfers if x.what == "relu"]
    assert [(x.link, x.size_bytes, x.end_cycle - x.start_cycle) for x in hops] == [("pe-vec", 8192, 1024)]
    relu = next(t for t in result.tasks if t.name == "relu")
    assert relu.dram_write_bytes == 0  # kept on chip: no DRAM write
    assert result.energy_breakdown_pj["link:pe-vec"] == 8192 * 8 * 1.0
    assert result.valid
    assert simulate(graph, hw, plan).peak_memory_bytes["dram"] - result.peak_memory_bytes["dram"] == 8192


def test_recomputation_inserts_the_chain_it_needs():
    graph = derive_training_graph(tiny_mlp(), Optimizer.SGD)
    hw = toy()
    cores = {op.name: ("pe" if op.kind.value == "matmul" else "vec") for op in graph.ops}
    plan = single_stack_plan(graph, cores)
    stored = simulate(graph, hw, plan)
    recompute = Plan(plan.stacks, plan.core_of, plan.core_order, {"relu": Residency.RECOMPUTE})
    result = simulate(graph, hw, recompute)
    names = [t.name for t in result.tasks]
    # relu's input (fc1's output) is not saved, so fc1 is recomputed first; both run before fc2.dw,
    # the first backward reader of relu
    assert names.index("fc1.recompute") < names.index("relu.recompute") < names.index("fc2.dw")
    assert {t.phase for t in result.tasks if t.name.endswith(".recompute")} == {Phase.RECOMPUTE.value}
    assert result.valid and result.latency_cycles > stored.latency_cycles


def test_violation_capacity():
    graph = derive_training_graph(tiny_mlp(), Optimizer.SGD)
    hw = toy(**{"dram.capacity_bytes": 300})  # static bytes alone are 216, the activations exceed it
    cores = {op.name: ("pe" if op.kind.value == "matmul" else "vec") for op in graph.ops}
    result = simulate(graph, hw, single_stack_plan(graph, cores))
    assert [v.kind for v in result.violations] == ["capacity"]
    assert "'dram'" in result.violations[0].message and "more than its capacity 300" in result.violations[0].message


def test_violation_dependency():
    graph = derive_training_graph(tiny_mlp(), Optimizer.SGD)
    cores = {op.name: ("pe" if op.kind.value == "matmul" else "vec") for op in graph.ops}
    plan = single_stack_plan(graph, cores)
    order = list(plan.core_order["vec"])
    i, j = order.index("relu"), order.index("relu.backward")
    order[i], order[j] = order[j], order[i]  # relu.backward reads relu's output but now runs first
    broken = Plan(plan.stacks, plan.core_of, {**plan.core_order, "vec": tuple(order)})
    result = simulate(graph, toy(), broken)
    assert "dependency" in {v.kind for v in result.violations}
    assert any("'relu.backward' is ordered before 'relu'" in v.message for v in result.violations)


def test_violation_ineligible():
    graph = derive_training_graph(tiny_mlp(), Optimizer.SGD)
    cores = {op.name: ("pe" if op.kind.value == "matmul" else "vec") for op in graph.ops}
    cores["relu"] = "pe"  # the PE array runs only MAC kinds
    result = simulate(graph, toy(), single_stack_plan(graph, cores))
    assert [v.kind for v in result.violations] == ["ineligible"]
    assert "cannot run relu" in result.violations[0].message


def test_violation_order():
    graph = derive_training_graph(tiny_mlp(), Optimizer.SGD)
    cores = {op.name: ("pe" if op.kind.value == "matmul" else "vec") for op in graph.ops}
    plan = single_stack_plan(graph, cores)
    # relu.backward is listed on no core: everything after it waits forever
    missing = Plan(plan.stacks, plan.core_of,
                   {c: tuple(s for s in o if s != "relu.backward") for c, o in plan.core_order.items()})
    result = simulate(graph, toy(), missing)
    assert {v.kind for v in result.violations} == {"order"}
    assert any("deadlock" in v.message for v in result.violations)
    # a cross-core wait cycle with every same-core order consistent: pe runs fc2.dw before fc2 ... no:
    # vec waits at loss for fc2 (pe), pe waits at fc2 for relu (vec, listed after loss)
    vec = list(plan.core_order["vec"])
    vec.remove("relu")
    vec.insert(vec.index("loss") + 1, "relu")
    cyclic = Plan(plan.stacks, plan.core_of, {**plan.core_order, "vec": tuple(vec)})
    result = simulate(graph, toy(), cyclic)
    assert "order" in {v.kind for v in result.violations}


def test_check_compares_claims():
    graph = derive_training_graph(tiny_mlp(), Optimizer.SGD)
    hw = toy()
    plan = default_plan(graph, CostTable(graph, hw))
    truth = simulate(graph, hw, plan)
    agreed = check(graph, hw, plan, Claim(truth.latency_cycles, truth.energy_pj, dict(truth.peak_memory_bytes)))
    assert agreed.ok and not agreed.differences
    wrong = check(graph, hw, plan, Claim(latency_cycles=truth.latency_cycles - 5, energy_pj=truth.energy_pj * 1.01))
    assert not wrong.ok
    assert any(d.startswith(f"latency: claimed {truth.latency_cycles - 5} cycles, simulated {truth.latency_cycles} (+5)")
               for d in wrong.differences)
    assert any(d.startswith("energy: claimed") for d in wrong.differences)


@pytest.mark.parametrize("workload, hardware", [
    ("resnet18-cifar", "edge-tpu-quad"), ("resnet18-cifar", "edge-hetero"), ("gpt2-mini", "fusemax-dc"),
    ("gpt2-mini", "dc-mesh4"),
])
def test_default_plans_are_valid_and_training_costs_more_than_inference(workload, hardware):
    forward = builtin_forward_graph(workload)
    hw = load_accelerator(hardware)
    results = {}
    for mode, graph in (("training", derive_training_graph(forward)), ("inference", inference_graph(forward))):
        table = CostTable(graph, hw)
        results[mode] = simulate(graph, hw, default_plan(graph, table), table)
        assert results[mode].valid, results[mode].violations
    assert results["training"].latency_cycles > 2 * results["inference"].latency_cycles
    assert results["training"].energy_pj > 2 * results["inference"].energy_pj


# ---------------------------------------------------------------- properties on random plans
@st.composite
def scenarios(draw):
    forward = draw(st.one_of(cnns(), mlps(), transformers()))
    graph = derive_training_graph(forward, draw(st.sampled_from(list(Optimizer))))
    data = toy_data()
    data["cores"].insert(1, {**data["cores"][0], "name": "pe1",
                             "pe_array": {"unroll": {"OX": draw(st.sampled_from([2, 4, 8])), "K": 4}, "mac_energy_pj": 0.5}})
    data["links"][1]["endpoints"] = ["dram", "pe", "pe1", "vec"]
    data["memories"][0]["capacity_bytes"] = draw(st.integers(1 << 10, 1 << 16))
    data["dram"]["bandwidth_bits_per_cycle"] = draw(st.sampled_from([16, 64, 512]))
    hw = accelerator_from_dict(data, "random")
    core_of = {}
    for op in graph.ops:
        eligible = [c.name for c in hw.cores if c.can_run(op.kind)]
        core_of[op.name] = draw(st.sampled_from(eligible))
    plan = single_stack_plan(graph, core_of)
    saved = sorted(t for t in graph.saved_for_backward if graph.tensors[t].role.value == "activation")
    residency = {t: draw(st.sampled_from(list(Residency))) for t in saved}
    return graph, hw, Plan(plan.stacks, plan.core_of, plan.core_order, residency)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_simulation_properties(scenario):
    graph, hw, plan = scenario
    result = simulate(graph, hw, plan)
    assert not [v for v in result.violations if v.kind in ("order", "dependency", "ineligible")]
    tasks = {t.name: t for t in result.tasks}
    # makespan >= every core's busy time
    for core in {t.core for t in result.tasks}:
        assert result.latency_cycles >= sum(t.end_cycle - t.start_cycle for t in result.tasks if t.core == core)
    # makespan >= the critical path of task durations (resources ignored)
    from monet_opt.schedule import insert_recomputation
    exec_graph, exec_plan = insert_recomputation(graph, plan)
    stack_of = {op: s for s, ops in exec_plan.stacks.items() for op in ops}
    dag = nx.DiGraph()
    dag.add_nodes_from(tasks)
    for u, v in exec_graph.dag.edges:
        if stack_of[u] != stack_of[v]:
            dag.add_edge(stack_of[u], stack_of[v])
    earliest = {}
    for s in nx.topological_sort(dag):
        earliest[s] = max((earliest[p] + tasks[p].end_cycle - tasks[p].start_cycle for p in dag.predecessors(s)), default=0)
        assert tasks[s].start_cycle >= earliest[s]
    assert result.latency_cycles >= max(earliest[s] + tasks[s].end_cycle - tasks[s].start_cycle for s in tasks)
    # memory curves end at their static level: DRAM at the static bytes, local memories empty
    assert result.memory_curves["dram"][-1][1] == result.static_dram_bytes
    assert all(points[-1][1] == 0 for m, points in result.memory_curves.items() if m != "dram")
    # bytes are conserved: every byte a task writes to DRAM is a produced value (or an in-place update)
    # that does not stay on chip, and every link copy carries exactly its tensor
    on_chip = {t for t, r in plan.residency.items() if r is Residency.ON_CHIP}
    written = sum(exec_graph.tensors[t].size_bytes for op in exec_graph.ops for t in op.outputs + op.updates
                  if t not in on_chip)
    assert sum(t.dram_write_bytes for t in result.tasks) == written
    for x in result.transfers:
        if not x.what.startswith("dram traffic of "):
            assert x.what in on_chip and x.size_bytes == exec_graph.tensors[x.what].size_bytes
    assert result.energy_pj == pytest.approx(sum(result.energy_breakdown_pj.values()), rel=1e-12)


@pytest.mark.parametrize("change, message", [
    (lambda p: Plan({**p.stacks, "ghost": ("nope",)}, {**p.core_of, "ghost": "pe"}, p.core_order), "unknown op 'nope'"),
    (lambda p: Plan({**p.stacks, "twice": ("fc1",)}, {**p.core_of, "twice": "pe"}, p.core_order), "op 'fc1' is in stacks"),
    (lambda p: Plan(p.stacks, {**p.core_of, "fc1": "gpu"}, p.core_order), "unknown core 'gpu'"),
    (lambda p: Plan(p.stacks, p.core_of, p.core_order, {"fc1": Residency.RECOMPUTE}), "not saved for backward"),
    (lambda p: Plan(p.stacks, p.core_of, p.core_order, {"x": Residency.ON_CHIP}), "network input"),
])
def test_malformed_plans_are_input_errors(change, message):
    graph = derive_training_graph(tiny_mlp(), Optimizer.SGD)
    plan = default_plan(graph, CostTable(graph, toy()))
    with pytest.raises(InputError, match=message):
        simulate(graph, toy(), change(plan))


def test_fused_recomputation_keeps_its_intermediate_on_chip():
    # x -> mm1 -> relu -> mm2 -> loss. relu's output is saved (mm2.dw and relu.backward read it);
    # mm1's output is not (only relu reads it), so recomputing relu recomputes mm1 first.
    g = GraphBuilder("refuse")
    h = g.relu("relu", g.matmul("mm1", g.input("x", (64, 32)), g.weight("w1", (32, 32))))
    y = g.matmul("mm2", h, g.weight("w2", (32, 32)))
    graph = derive_training_graph(g.build([g.softmax_xent("loss", y, g.input("labels", (64,), DType.INT64))]),
                                  Optimizer.SGD)
    hw = toy(**{"cores.1.op_kinds": ["vector", "pool", "optimizer", "mac"]})  # vec also runs matmuls
    plan = single_stack_plan(graph, {op.name: "vec" for op in graph.ops})
    separate = Plan(plan.stacks, plan.core_of, plan.core_order, {"relu": Residency.RECOMPUTE})
    fused = Plan(plan.stacks, plan.core_of, plan.core_order, {"relu": Residency.RECOMPUTE},
                 recompute_groups=(("mm1", "relu"),))
    a, b = simulate(graph, hw, separate), simulate(graph, hw, fused)
    assert a.valid and b.valid
    assert [t.ops for t in b.tasks if t.phase == "recompute"] == [("mm1.recompute", "relu.recompute")]
    # unfused, mm1's recomputed output (64 x 32 fp32 = 8 KiB) is written to DRAM and read back
    dram = lambda r: sum(t.dram_read_bytes + t.dram_write_bytes for t in r.tasks)  # noqa: E731
    assert dram(a) - dram(b) == 2 * 8192
    with pytest.raises(InputError, match="not recomputed"):
        simulate(graph, hw, Plan(plan.stacks, plan.core_of, plan.core_order, {"relu": Residency.RECOMPUTE},
                                 recompute_groups=(("mm2",),)))
