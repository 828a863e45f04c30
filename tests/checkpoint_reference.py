"""Exhaustive reference for checkpointing small training graphs: every residency of every saved
activation and every set of disjoint candidate fused groups, each judged by the simulator alone."""

import itertools

from monet_opt.model.training.derive import Optimizer, derive_training_graph
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.model.workload.ir import DType
from monet_opt.schedule.plan import Residency
from monet_opt.schedule.simulate import insert_recomputation


def two_layer_block():
    """fc1 -> layer-norm -> GELU -> + fc1 (residual) -> ReLU -> fc2 -> GELU -> fc3 -> cross-entropy.
    Seven saved activations; GELU -> add -> ReLU is a fusable chain of unsaved values."""
    g = GraphBuilder("block")
    x = g.input("x", (8, 16))
    h = g.matmul("fc1", x, g.weight("w1", (16, 16)))
    ln = g.layernorm("ln", h, g.weight("ln.g", (16,)), None)
    s = g.add("res", g.gelu("act", ln), h)
    r = g.relu("relu", s)
    u = g.gelu("act2", g.matmul("fc2", r, g.weight("w2", (16, 16))))
    y = g.matmul("fc3", u, g.weight("w3", (16, 4)))
    loss = g.softmax_xent("loss", y, g.input("labels", (8,), DType.INT32))
    return derive_training_graph(g.build([loss]), Optimizer.SGD)


def all_plans(space):
    """(decisions residency, groups, evaluation) of every plan of the checkpoint space (RECOMPUTE where
    `recomputable_value`, ON_CHIP where eligible) that the simulator accepts."""
    from monet_opt.families.checkpoint.space import Decisions

    choices = [(Residency.DRAM,) + ((Residency.RECOMPUTE,) if space.recomputable_value(a) else ())
               + ((Residency.ON_CHIP,) if a in space.on_chip_eligible else ()) for a in space.decisions]
    for combo in itertools.product(*choices):
        residency = {a: r for a, r in zip(space.decisions, combo, strict=True) if r is not Residency.DRAM}
        graph, _ = insert_recomputation(space.graph, space.plan(Decisions(residency)))
        recomputed = {op.forward_op for op in graph.ops if op.forward_op and op.name.endswith(".recompute")}
        groups = [g.ops for g in space.groups if set(g.ops) <= recomputed]
        for k in range(len(groups) + 1):
            for chosen in itertools.combinations(groups, k):
                members = [o for g in chosen for o in g]
                if len(members) != len(set(members)):
                    continue
                evaluation = space.evaluate(Decisions(residency, tuple(chosen)))
                if evaluation.simulation.valid:
                    yield residency, tuple(chosen), evaluation


def brute_force(space, objective, budget_bytes):
    """The smallest objective of a plan within the DRAM and local budgets (None if none fits)."""
    costs = [e.objective(objective) for _, _, e in all_plans(space)
             if e.dynamic_dram_peak_bytes <= budget_bytes and e.local_overflow_bytes == 0]
    return min(costs, default=None)


def smallest_peak(space):
    return min(e.dynamic_dram_peak_bytes for _, _, e in all_plans(space) if e.local_overflow_bytes == 0)
