"""The execution order of a training graph as a checkpointing decision: valid orders only, the
free-order optimum against a brute force over every order and every plan (judged by the simulator
alone), a lower bound that proves infeasibility over all orders, and the CLI."""

import json

import pytest

from checkpoint_reference import all_plans
from hw_fixtures import toy
from monet_opt.cli import main
from monet_opt.errors import InfeasibleError, InputError
from monet_opt.families.checkpoint.family import CHECKPOINT, CheckpointProblem
from monet_opt.families.checkpoint.order import candidate_orders, enumerate_orders, order_dependencies, reorder
from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.training import derive_training_graph
from monet_opt.model.training.derive import Optimizer, UpdatePlacement
from monet_opt.model.workload import load_forward_graph
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.model.workload.ir import DType, Phase
from monet_opt.solving.common import SolverOptions, SolveStatus
from monet_opt.solving.contract import CostUnderBudget, solve

OPTIONS = SolverOptions(workers=2, seed=0)
SEPARATE = {"dram.bandwidth_bits_per_cycle": 64}


def two_branches(updates: UpdatePlacement = UpdatePlacement.END):
    """fc1 -> (GELU, ReLU) -> add -> cross-entropy: the two branches may run in either order, forward
    and backward, and the loss value (which no backward op reads) anywhere between the add and the
    update at the end: 2 x 2 x 6 = 24 orders."""
    g = GraphBuilder("branches")
    h = g.matmul("fc1", g.input("x", (8, 16)), g.weight("w1", (16, 16)))
    s = g.add("res", g.gelu("act", h), g.relu("relu", h))
    loss = g.softmax_xent("loss", s, g.input("labels", (8,), DType.INT32))
    return derive_training_graph(g.build([loss]), Optimizer.SGD, updates=updates)


def test_the_branch_graph_has_24_orders_and_the_reference_is_first():
    graph = two_branches()
    orders = enumerate_orders(graph)
    reference = tuple(op.name for op in graph.ops)
    assert len(orders) == 24 and orders[0] == reference and len(set(orders)) == 24
    assert {order.index("loss") - order.index("res") for order in orders} == {1, 2, 3, 4, 5, 6}
    forward = {tuple(o for o in order if o in ("act", "relu")) for order in orders}
    backward = {tuple(o for o in order if o in ("act.backward", "relu.backward")) for order in orders}
    assert forward == {("act", "relu"), ("relu", "act")}
    assert backward == {("act.backward", "relu.backward"), ("relu.backward", "act.backward")}
    candidates = candidate_orders(graph)
    assert candidates.exhaustive and [o for _, o in candidates.orders] == orders


@pytest.mark.parametrize("updates", list(UpdatePlacement))
def test_candidate_orders_respect_updates_and_in_place_writes(updates):
    graph = derive_training_graph(load_forward_graph("resnet18"), updates=updates)
    candidates = candidate_orders(graph)
    assert not candidates.exhaustive
    assert [name for name, _ in candidates.orders][0] == "reference"
    for _, order in candidates.orders:
        reorder(graph, order)  # raises on a broken dependency
        position = {name: k for k, name in enumerate(order)}
        for op in graph.ops:
            for t in op.updates:  # every reader of a weight runs before its update
                assert all(position[r] < position[op.name] for r in graph.consumers[t] if r != op.name)
        if updates is UpdatePlacement.END:  # updates at the end stay after every other op
            last_other = max(position[op.name] for op in graph.ops if op.phase is not Phase.OPTIMIZER)
            assert all(position[op.name] > last_other for op in graph.ops if op.phase is Phase.OPTIMIZER)


def test_reorder_refuses_an_update_before_a_reader_of_its_weight():
    graph = two_branches(UpdatePlacement.BACKWARD)
    order = [op.name for op in graph.ops]
    assert ("fc1", "w1.update") in order_dependencies(graph).edges
    order.remove("w1.update")
    order.insert(order.index("fc1.dw"), "w1.update")  # w1.update reads the gradient fc1.dw writes
    with pytest.raises(InputError, match="before"):
        reorder(graph, order)


def test_free_order_equals_a_brute_force_over_every_order_and_plan():
    graph = two_branches()
    hw = toy(**SEPARATE)
    spaces = [CheckpointSpace(reorder(graph, order), hw) for order in enumerate_orders(graph)]
    reference = spaces[0]
    goal = OBJECTIVES["latency"]
    plans = [[(e.dynamic_dram_peak_bytes, e.objective(goal)) for _, _, e in all_plans(s) if e.local_overflow_bytes == 0]
             for s in spaces]
    peaks = sorted({peak for by_order in plans for peak, _ in by_order})
    gained = False
    for budget in [peaks[0] - 1, *peaks]:
        best_by_order = [min((cost for peak, cost in by_order if peak <= budget), default=None) for by_order in plans]
        best = min((c for c in best_by_order if c is not None), default=None)
        problem = CheckpointProblem(reference, goal, free_order=True)
        if best is None:
            with pytest.raises(InfeasibleError):
                solve(CHECKPOINT, problem, CostUnderBudget(budget), "cpsat", OPTIONS)
            continue
        result = solve(CHECKPOINT, problem, CostUnderBudget(budget), "cpsat", OPTIONS)
        assert result.stats.status is SolveStatus.OPTIMAL and result.validated
        assert result.objective == pytest.approx(best, rel=1e-12)
        assert result.measurement.peak <= budget
        gained |= best_by_order[0] is None or best < best_by_order[0]
    assert gained  # some budget is cheaper (or only feasible) in another order


def test_an_accumulation_of_tied_embedding_gradients_bounds_every_order():
    """GPT-2 mini with updates in the backward pass: the accumulation of the tied token-embedding
    gradient reads two partial gradients and writes their sum, all three in DRAM at once, so no order
    and no plan peaks below three gradients; store-all peaks exactly there."""
    graph = derive_training_graph(load_forward_graph("gpt2-mini"), updates=UpdatePlacement.BACKWARD)
    space = CheckpointSpace(graph, load_accelerator("edge-tpu-quad"))
    gradient = graph.tensors["grad/wte"].size_bytes
    assert space.op_peak_bound_bytes == 3 * gradient == space.store_all.dynamic_dram_peak_bytes
    problem = CheckpointProblem(space, OBJECTIVES["latency"], free_order=True)
    with pytest.raises(InfeasibleError, match=f"smallest feasible budget is {3 * gradient} bytes, 1 above it"):
        solve(CHECKPOINT, problem, CostUnderBudget(3 * gradient - 1), "cpsat", OPTIONS)


def test_cli_free_order_and_whole_dram_budget(tmp_path, capsys):
    common = ["checkpoint", "training", "--workload", "resnet18", "--updates", "backward", "--hardware",
              "edge-tpu-quad", "--time-limit", "40", "--json", "--quiet"]
    assert main([*common, "--budget", "70%", "--order", "free"]) == 0
    free = json.loads(capsys.readouterr().out)
    assert free["order"] == "free" and free["validated"] and not free["orders_exhaustive"]
    assert [o["order"] for o in free["orders"]] == ["reference", "frees_first", "least_memory"]
    fixed_cost = free["orders"][0]["objective"]
    assert free["objective"] == min(o["objective"] for o in free["orders"]) <= fixed_cost
    assert free["status"] == "feasible" and free["bound"] <= free["objective"]
    assert "3 candidate orders" in free["space"]
    graph = derive_training_graph(load_forward_graph("resnet18"), updates=UpdatePlacement.BACKWARD)
    assert free["order_chosen"] == "least_memory"
    reorder(graph, free["op_order"])  # a valid order of the training graph's ops
    # the whole DRAM peak: static bytes + dynamic budget
    static = free["static_dram_bytes"]
    assert free["peak_memory_bytes"]["dram"] == static + free["peak_memory"]
    assert main([*common, "--budget", str(static + free["peak_memory"]), "--budget-scope", "dram"]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert whole["order"] == "fixed" and whole["budget"] == free["peak_memory"]
    assert main([*common, "--budget", str(static), "--budget-scope", "dram"]) == 2
    assert "does not even hold" in capsys.readouterr().err
