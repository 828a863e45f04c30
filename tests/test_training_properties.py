"""Property tests on random small CNN, MLP and transformer training graphs."""

import networkx as nx
from hypothesis import given, settings
from hypothesis import strategies as st

from monet_opt.model.training import Optimizer, derive_training_graph, memory_report
from monet_opt.model.workload import DType, GPTConfig, OpKind, Phase, TensorRole
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.model.workload.models import gpt2


@st.composite
def cnns(draw):
    b = draw(st.integers(1, 2))
    c = draw(st.integers(1, 4))
    size = draw(st.integers(4, 9))
    g = GraphBuilder("cnn")
    x = g.input("x", (b, c, size, size))
    for i in range(draw(st.integers(1, 3))):
        k = draw(st.sampled_from([1, 3]))
        stride = draw(st.sampled_from([1, 2]))
        c_out = draw(st.integers(1, 5))
        y = g.conv(f"conv{i}", x, g.weight(f"w{i}", (c_out, c, k, k)), stride=(stride, stride), padding=(k // 2,) * 4,
                   bias=g.weight(f"b{i}", (c_out,)) if draw(st.booleans()) else None)
        if draw(st.booleans()):
            y = g.batchnorm(f"bn{i}", y, g.weight(f"g{i}", (c_out,)), g.weight(f"be{i}", (c_out,)),
                            g.buffer(f"m{i}", (c_out,)), g.buffer(f"v{i}", (c_out,)))
        y = g.unary(f"act{i}", draw(st.sampled_from([OpKind.RELU, OpKind.GELU])), y)
        if g.shape(y) == g.shape(x) and i > 0 and draw(st.booleans()):
            y = g.add(f"res{i}", y, x)
        if draw(st.booleans()) and g.shape(y)[2] >= 2:
            y = g.pool(f"pool{i}", draw(st.sampled_from([OpKind.MAXPOOL, OpKind.AVGPOOL])), y, (2, 2), (2, 2))
        x, c = y, c_out
    pooled = g.view("flat", g.global_avgpool("gap", x), (b, c))
    classes = draw(st.integers(2, 5))
    logits = g.matmul("fc", pooled, g.weight("fc.w", (c, classes)), bias=g.weight("fc.b", (classes,)))
    return g.build([g.softmax_xent("loss", logits, g.input("labels", (b,), DType.INT64))])


@st.composite
def mlps(draw):
    b = draw(st.integers(1, 3))
    width = draw(st.integers(1, 6))
    g = GraphBuilder("mlp")
    x = g.input("x", (b, width))
    for i in range(draw(st.integers(1, 4))):
        out = draw(st.integers(1, 6))
        y = g.matmul(f"fc{i}", x, g.weight(f"w{i}", (width, out)), bias=g.weight(f"b{i}", (out,)) if draw(st.booleans()) else None)
        if draw(st.booleans()):
            y = g.layernorm(f"ln{i}", y, g.weight(f"lg{i}", (out,)), g.weight(f"lb{i}", (out,)))
        y = g.unary(f"act{i}", draw(st.sampled_from([OpKind.RELU, OpKind.GELU])), y)
        if draw(st.booleans()):
            y = g.mul(f"gate{i}", y, g.weight(f"s{i}", (out,)))
        if out == width and draw(st.booleans()):
            y = g.concat(f"cat{i}", [y, x], axis=-1)
            out *= 2
        x, width = y, out
    logits = g.softmax("sm", x) if draw(st.booleans()) else x
    return g.build([g.softmax_xent("loss", logits, g.input("labels", (b,), DType.INT64))])


@st.composite
def transformers(draw):
    heads = draw(st.integers(1, 3))
    return gpt2(GPTConfig(
        layers=draw(st.integers(1, 2)), heads=heads, d_model=heads * draw(st.integers(1, 3)),
        d_ff=draw(st.integers(1, 6)), vocab=draw(st.integers(2, 9)), context_length=6,
        seq_len=draw(st.integers(1, 6)), batch=draw(st.integers(1, 2)),
        tied_embeddings=draw(st.booleans()), head_groups=draw(st.sampled_from([d for d in (1, 2, 3) if heads % d == 0])),
    ))


graphs = st.one_of(cnns(), mlps(), transformers())
optimizers = st.sampled_from(list(Optimizer))


def simulate_peak(graph) -> tuple[int, list[int]]:
    """Independent step-by-step liveness: allocate outputs when an op runs (inputs up front), free a
    value after its last reader by reference counting."""
    remaining = {name: 0 for name in graph.tensors}
    for op in graph.ops:
        for t in set(op.inputs):
            remaining[t] += 1
    static = sum(t.size_bytes for t in graph.tensors.values() if t.role in (
        TensorRole.WEIGHT, TensorRole.WEIGHT_GRAD, TensorRole.OPTIMIZER_STATE, TensorRole.BUFFER, TensorRole.MASTER_WEIGHT))
    live = {n: t.size_bytes for n, t in graph.tensors.items() if t.role is TensorRole.INPUT}
    curve = []
    for op in graph.ops:
        for t in op.outputs:
            if graph.tensors[t].role is not TensorRole.WEIGHT_GRAD:
                live[t] = graph.tensors[t].size_bytes
        curve.append(static + sum(live.values()))
        for t in set(op.inputs):
            remaining[t] -= 1
            if remaining[t] == 0:
                live.pop(t, None)
        for t in op.outputs:
            if remaining[t] == 0:
                live.pop(t, None)
        for t in [n for n in live if remaining[n] == 0 and graph.tensors[n].role is TensorRole.INPUT]:
            live.pop(t)  # unread inputs are freed after step 0
    return max(curve), curve


@settings(max_examples=60, deadline=None)
@given(graphs, optimizers)
def test_training_graph_is_a_dag_with_complete_saved_set(forward, optimizer):
    t = derive_training_graph(forward, optimizer)
    assert nx.is_directed_acyclic_graph(t.dag)
    forward_values = {n for n, x in forward.tensors.items() if x.role in (TensorRole.ACTIVATION, TensorRole.INPUT)}
    read_by_backward = {}
    for op in t.ops_in_phase(Phase.BACKWARD):
        for x in op.inputs:
            if x in forward_values:
                read_by_backward.setdefault(x, set()).add(op.name)
    assert set(t.saved_for_backward) == set(read_by_backward)
    for value, ops in t.saved_for_backward.items():
        assert ops and set(ops) == read_by_backward[value]
        assert all(t.op_by_name[o].phase is Phase.BACKWARD and value in t.op_by_name[o].inputs for o in ops)


@settings(max_examples=60, deadline=None)
@given(graphs, optimizers)
def test_every_weight_has_exactly_one_update(forward, optimizer):
    t = derive_training_graph(forward, optimizer)
    for name, tensor in forward.tensors.items():
        if tensor.role is TensorRole.WEIGHT:
            updates = [op for op in t.ops if name in op.updates]
            assert len(updates) == 1 and updates[0].phase is Phase.OPTIMIZER
            assert f"grad/{name}" in updates[0].inputs
            assert t.tensors[f"grad/{name}"].shape == tensor.shape


@settings(max_examples=60, deadline=None)
@given(graphs, optimizers)
def test_liveness_peak_matches_step_by_step_simulation(forward, optimizer):
    t = derive_training_graph(forward, optimizer)
    peak, _ = simulate_peak(t)
    assert memory_report(t).store_all_peak_bytes == peak


@settings(max_examples=60, deadline=None)
@given(graphs)
def test_mac_ops_backward_shapes_and_counts(forward):
    t = derive_training_graph(forward)
    no_dx = 0
    for op in forward.ops:
        if op.kind not in (OpKind.CONV, OpKind.MATMUL):
            continue
        a, b = op.inputs[:2]
        dw = t.op_by_name[f"{op.name}.dw"] if f"{op.name}.dw" in t.op_by_name else None
        if forward.tensors[b].role is TensorRole.WEIGHT or dw is not None:
            assert dw.macs == op.macs and t.tensors[dw.outputs[0]].shape == forward.tensors[b].shape
        if forward.tensors[a].role is TensorRole.INPUT:
            assert f"{op.name}.dx" not in t.op_by_name
            no_dx += op.macs
        else:
            dx = t.op_by_name[f"{op.name}.dx"]
            assert dx.macs == op.macs and t.tensors[dx.outputs[0]].shape == forward.tensors[a].shape
    assert t.macs() == 3 * forward.macs() - no_dx
