"""Training-graph derivation and memory accounting against hand-computed values."""

import pytest

from monet_opt.errors import InputError
from monet_opt.model.training import PRECISIONS, Optimizer, derive_training_graph, memory_curve, memory_report
from monet_opt.model.workload import DType, OpKind, Phase, TensorRole, builtin_forward_graph
from monet_opt.model.workload.builder import GraphBuilder


def tiny_mlp():
    """x (2,4) -> matmul W1 (4,3) -> relu -> matmul W2 (3,5) -> softmax_xent; fp32 throughout."""
    g = GraphBuilder("mlp")
    x = g.input("x", (2, 4))
    labels = g.input("labels", (2,), DType.INT64)
    h = g.matmul("fc1", x, g.weight("W1", (4, 3)))
    r = g.relu("relu", h)
    logits = g.matmul("fc2", r, g.weight("W2", (3, 5)))
    return g.build([g.softmax_xent("loss", logits, labels)])


def test_tiny_mlp_training_graph_by_hand():
    t = derive_training_graph(tiny_mlp(), Optimizer.SGD)
    assert [op.name for op in t.ops] == [
        "fc1", "relu", "fc2", "loss",
        "loss.backward", "fc2.dx", "fc2.dw", "relu.backward", "fc1.dw",  # no fc1.dx: x is the network input
        "W1.update", "W2.update",
    ]
    # saved for backward: logits (loss), relu output (fc2.dw and relu.backward), x and labels (inputs)
    assert dict(t.saved_for_backward) == {
        "fc2": ("loss.backward",), "labels": ("loss.backward",), "relu": ("fc2.dw", "relu.backward"), "x": ("fc1.dw",),
    }
    m = memory_report(t)
    assert m.static_bytes == 2 * (48 + 60)  # W1, W2 and their gradients (SGD has no state), fp32
    assert m.saved_activation_bytes == 40 + 24  # logits (2,5) + relu (2,3)
    assert m.saved_input_bytes == 32 + 16  # x (2,4) fp32 + labels (2,) int64
    # Live dynamic bytes per step, by hand (x 32, labels 16, h 24, r 24, logits 40, loss 4, dlogits 40,
    # drelu 24, dh 24): step 4 (loss.backward) holds x, labels, r, logits and dlogits = 152.
    assert list(memory_curve(t) - m.static_bytes) == [72, 96, 112, 116, 152, 120, 120, 104, 56, 0, 0]
    assert m.store_all_peak_bytes == 152 + 216 and m.peak_op == "loss.backward"
    fc2_dw = t.op_by_name["fc2.dw"]  # reads relu (24) and dlogits (40), writes dW2 (60)
    assert (t.read_bytes(fc2_dw), t.write_bytes(fc2_dw)) == (64, 60)
    update = t.op_by_name["W2.update"]  # SGD reads W2 and its gradient, rewrites W2 in place
    assert (t.read_bytes(update), t.write_bytes(update)) == (120, 60)


def test_optimizer_states_and_precision():
    f = tiny_mlp()
    params = 12 + 15
    assert memory_report(derive_training_graph(f, Optimizer.MOMENTUM)).static_bytes == params * 4 * 3
    adam = derive_training_graph(f, Optimizer.ADAM)
    assert memory_report(adam).static_bytes_by_role == {"weight": 108, "weight_grad": 108, "optimizer_state": 216}
    assert [op.kind for op in adam.ops_in_phase(Phase.OPTIMIZER)] == [OpKind.ADAM_UPDATE] * 2
    mixed = derive_training_graph(f, Optimizer.ADAMW, PRECISIONS["bf16-mixed"])
    # bf16 weight (2) + fp32 gradient (4) + two fp32 states (8) + fp32 master copy (4) = 18 bytes/param
    assert memory_report(mixed).static_bytes == 18 * params
    assert mixed.tensors["relu"].dtype is DType.BF16 and mixed.tensors["labels"].dtype is DType.INT64
    update = mixed.op_by_name["W1.update"]
    assert update.updates == ("W1", "state/W1/exp_avg", "state/W1/exp_avg_sq", "master/W1")


def test_conv_and_matmul_backward_shapes_and_macs():
    forward = builtin_forward_graph("resnet18-cifar")
    t = derive_training_graph(forward)
    checked = 0
    for op in forward.ops:
        if op.kind not in (OpKind.CONV, OpKind.MATMUL):
            continue
        x, w = op.inputs[:2]
        dw = t.op_by_name[f"{op.name}.dw"]
        assert t.tensors[dw.outputs[0]].shape == t.tensors[w].shape
        assert dw.macs == op.macs
        if op.name != "conv1":
            dx = t.op_by_name[f"{op.name}.dx"]
            assert t.tensors[dx.outputs[0]].shape == t.tensors[x].shape
            assert dx.macs == op.macs
        checked += 1
    assert checked == 21  # 20 convs + fc
    assert "conv1.dx" not in t.op_by_name


def test_training_macs_are_three_times_forward_minus_first_dx():
    for name in ("resnet18", "resnet18-cifar", "gpt2-mini"):
        f = builtin_forward_graph(name)
        t = derive_training_graph(f)
        first_dx = f.op_by_name["conv1"].macs if name.startswith("resnet") else 0  # GPT-2 starts with a lookup
        assert t.macs() == 3 * f.macs() - first_dx


def test_saved_tensors_per_op_kind():
    t = derive_training_graph(builtin_forward_graph("gpt2-mini"))
    saved = t.saved_for_backward
    assert saved["h0.attn.softmax"] == ("h0.attn.av.dw", "h0.attn.softmax.backward")  # softmax output
    assert "h0.ln_1" in saved and "h0.ln_1.stats" in saved  # layer-norm input of the Q proj, stats
    assert t.op_by_name["h0.ln_1.backward"].inputs[1:3] == ("embed", "h0.ln_1.stats")  # LN reads its input
    assert t.op_by_name["h0.mlp.gelu.backward"].inputs[0] == "h0.mlp.fc"  # GELU reads its input
    assert "h0.mlp.gelu" in saved  # read by the proj dW
    assert set(t.op_by_name["h0.attn.qk.dx"].inputs) == {"grad/h0.attn.qk", "h0.attn.k"}
    r = derive_training_graph(builtin_forward_graph("resnet18"))
    assert r.op_by_name["maxpool.backward"].inputs == ("relu", "grad/maxpool")
    assert r.op_by_name["bn1.backward"].inputs == ("grad/bn1", "conv1", "bn1.stats", "bn1.weight")
    assert r.op_by_name["relu.backward"].inputs == ("relu", "grad/relu")  # ReLU reads its output
    assert "avgpool.backward" not in r.saved_for_backward.get("layer4.1.relu2", ())


def test_gradient_fan_in_is_accumulated():
    t = derive_training_graph(builtin_forward_graph("gpt2-mini"))
    # tied embedding: the lookup and the LM head both produce a gradient of wte, summed once
    acc = t.op_by_name["wte.grad_accumulate1"]
    assert acc.outputs == ("grad/wte",) and t.tensors["grad/wte"].role is TensorRole.WEIGHT_GRAD
    # the LM head's contribution comes first and is the gradient buffer (static); the lookup's is a
    # transient added to it at once
    assert acc.inputs == ("grad/wte@lm_head.1", "grad/wte@wte.lookup.0")
    assert t.tensors["grad/wte@lm_head.1"].role is TensorRole.WEIGHT_GRAD
    assert t.tensors["grad/wte@wte.lookup.0"].role is TensorRole.GRADIENT
    assert t.ops.index(acc) == t.ops.index(t.op_by_name["wte.lookup.backward"]) + 1
    assert [op.name for op in t.ops if "wte" in op.updates] == ["wte.update"]
    # residual stream: each block input is read by ln_1 and the residual add -> one accumulation
    assert t.op_by_name["embed.grad_accumulate1"].phase is Phase.BACKWARD
    # wpe is broadcast over the batch: its gradient is a reduce_sum of the embedding-add gradient
    assert t.op_by_name["embed.d1"].kind is OpKind.REDUCE_SUM


def test_derivation_needs_exactly_one_loss():
    g = GraphBuilder("noloss")
    x = g.input("x", (2, 4))
    graph = g.build([g.matmul("fc", x, g.weight("W", (4, 3)))])
    with pytest.raises(InputError, match="exactly one softmax_xent loss"):
        derive_training_graph(graph)


def test_memory_order_must_be_topological():
    t = derive_training_graph(tiny_mlp())
    order = [op.name for op in t.ops]
    order[0], order[1] = order[1], order[0]
    with pytest.raises(InputError, match="before its producer"):
        memory_report(t, order)


def test_optimizer_updates_in_the_backward_pass_free_each_weight_gradient_by_hand():
    """x (4x8) -> l1 (w1 8x16) -> l2 (w2 16x16) -> l3 (w3 16x2) -> softmax_xent, fp32, SGD. Bytes: x
    128, l1 256, l2 256, l3 32, labels 16 (int32), loss 4, grad/l3 32, grad/l2 256, grad/l1 256;
    weights and their gradients 512 + 1024 + 128 = 1664 each. Ops: l1 l2 l3 loss loss.backward
    l3.dx l3.dw l2.dx l2.dw l1.dw (steps 0-9), then the updates.
    Updates at the end: static 1664 + 1664 = 3328. At l3.dx (step 5) live x (read at 9), l1 (read
    at 8), l2 (read at 6), grad/l3 (4-6), grad/l2 (5-8): 128 + 256 + 256 + 32 + 256 = 928; peak 4256.
    Updates in the backward pass (w3.update after l3.dw, w2.update after l2.dw, w1.update after
    l1.dw): static 1664. At l2.dw (step 9) live x, l1, grad/l2, grad/l1 (8-11) and grad/w2 (9-10):
    128 + 256 + 256 + 256 + 1024 = 1920; peak 3584. The serial simulation measures the same."""
    from dataclasses import replace

    from hw_fixtures import toy_data
    from monet_opt.model.cost import CostTable
    from monet_opt.model.hardware.model import accelerator_from_dict
    from monet_opt.schedule import default_plan, simulate
    from monet_opt.model.training import UpdatePlacement
    from monet_opt.model.workload.serialize import graph_from_dict, graph_to_dict

    g = GraphBuilder("mlp3")
    h1 = g.matmul("l1", g.input("x", (4, 8)), g.weight("w1", (8, 16)))
    h2 = g.matmul("l2", h1, g.weight("w2", (16, 16)))
    h3 = g.matmul("l3", h2, g.weight("w3", (16, 2)))
    forward = g.build([g.softmax_xent("loss", h3, g.input("labels", (4,), DType.INT32))])
    hw = accelerator_from_dict(toy_data(), "toy")
    expected = {UpdatePlacement.END: (3328, 4256), UpdatePlacement.BACKWARD: (1664, 3584)}
    for updates, (static, peak) in expected.items():
        graph = derive_training_graph(forward, Optimizer.SGD, updates=updates)
        report = memory_report(graph)
        assert (report.static_bytes, report.store_all_peak_bytes) == (static, peak)
        table = CostTable(graph, hw)
        simulated = simulate(graph, hw, replace(default_plan(graph, table), serial=True), table)
        assert not simulated.violations
        assert (simulated.static_dram_bytes, simulated.peak_memory_bytes["dram"]) == (static, peak)
        assert graph_from_dict(graph_to_dict(graph), "round trip") == graph
    names = [op.name for op in derive_training_graph(forward, Optimizer.SGD, updates=UpdatePlacement.BACKWARD).ops]
    assert names[6:] == ["l3.dw", "w3.update", "l2.dx", "l2.dw", "w2.update", "l1.dw", "w1.update"]
