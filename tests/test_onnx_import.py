"""ONNX import: mirrors of the built-in models, the supported op set, and bad input."""

import onnx
import pytest
from onnx import TensorProto, helper

from monet_opt.errors import InputError
from monet_opt.model.training import derive_training_graph, memory_report
from monet_opt.model.workload import OpKind, builtin_forward_graph, import_onnx
from onnx_models import branchy_cnn_onnx, gpt2_onnx, resnet18_onnx, save


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    return save(resnet18_onnx(), tmp_path_factory.mktemp("onnx") / "resnet18.onnx")


def test_resnet18_mirror_imports_to_identical_counts(resnet18_file):
    imported = import_onnx(resnet18_file, batch=1)
    builtin = builtin_forward_graph("resnet18")
    assert imported.params == builtin.params == 11_689_512
    assert imported.macs() == builtin.macs()
    ti, tb = derive_training_graph(imported), derive_training_graph(builtin)
    assert ti.macs() == tb.macs()
    mi, mb = memory_report(ti), memory_report(tb)
    assert (mi.static_bytes, mi.saved_activation_bytes, mi.store_all_peak_bytes) == (
        mb.static_bytes, mb.saved_activation_bytes, mb.store_all_peak_bytes)


def test_resnet18_mirror_batch_is_bound_at_import(resnet18_file):
    assert import_onnx(resnet18_file, batch=4).macs() == 4 * builtin_forward_graph("resnet18").macs()


def test_gpt2_mirror_imports_to_identical_counts(tmp_path):
    path = save(gpt2_onnx(layers=2, heads=6, d=384, d_ff=1536, vocab=20000, context=256), tmp_path / "gpt.onnx")
    imported = import_onnx(path, batch=1, seq_len=256)
    builtin = builtin_forward_graph("gpt2-mini")
    assert imported.params == builtin.params
    assert imported.macs() == builtin.macs()
    assert derive_training_graph(imported).macs() == derive_training_graph(builtin).macs()
    qk = [op for op in imported.ops if op.name.endswith(".qk")][0]
    assert dict(qk.dims) == {"B": 6, "M": 256, "N": 256, "K": 64}  # Reshape/Transpose are views


def test_branchy_cnn_covers_concat_mul_pool_and_same_padding(tmp_path):
    g = import_onnx(save(branchy_cnn_onnx(), tmp_path / "b.onnx"))
    kinds = [op.kind for op in g.ops]
    assert kinds == [OpKind.CONV, OpKind.RELU, OpKind.CONV, OpKind.CONCAT, OpKind.MUL, OpKind.AVGPOOL,
                     OpKind.MATMUL, OpKind.SOFTMAX_XENT]
    conv_b = g.op_by_name["conv_b"]
    assert (conv_b.dims["OY"], conv_b.dims["OX"]) == (8, 8)  # SAME_UPPER keeps 8x8
    # 3x3 conv 3->4 on 8x8 (batch 2) + 1x1 conv 3->4 + the 128->5 Gemm
    assert g.macs() == 2 * 4 * 3 * 9 * 64 + 2 * 4 * 3 * 64 + 2 * 128 * 5
    assert g.params == 4 * 3 * 9 + 4 * 3 + 4 + 128 * 5
    t = derive_training_graph(g)
    assert t.op_by_name["cat.backward"].kind is OpKind.SPLIT
    assert len(t.op_by_name["cat.backward"].outputs) == 2


def _model(nodes, inputs, outputs=None, initializers=()):
    outputs = outputs or [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)]
    return helper.make_model(helper.make_graph(nodes, "bad", inputs, outputs, list(initializers)),
                             opset_imports=[helper.make_opsetid("", 17)])


X = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])


@pytest.mark.parametrize(
    "model, options, message",
    [
        (_model([helper.make_node("Sigmoid", ["x"], ["y"], name="sig")], [X]), {}, "node 'sig' \\(Sigmoid\\): unsupported op type"),
        (_model([helper.make_node("Add", ["x", "b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2"),
                 helper.make_node("Relu", ["a"], ["y"], name="n3")], [X]), {}, "cycle: n1 -> n2 -> n1"),
        (_model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [X],
                initializers=[onnx.numpy_helper.from_array(__import__("numpy").zeros((5, 3), "float32"), "w")]),
         {}, "inconsistent shapes"),
        (_model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 0])]), {}, "dimension 1 = 0"),
        (_model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, -3])]), {}, "dimension 1 = -3"),
        (_model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])]), {}, "symbolic batch dimension; pass --batch"),
        (_model([helper.make_node("Relu", ["x"], ["y"], name="r")],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", "S"])]), {"batch": 2}, "pass --seq-len"),
        (_model([helper.make_node("Relu", ["x"], ["y"], name="r"), helper.make_node("Relu", ["x"], ["z"], name="r2")], [X],
                outputs=[helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "z")]),
         {}, "2 outputs; training needs one"),
    ],
    ids=["unsupported", "cycle", "shapes", "zero-dim", "negative-dim", "symbolic-batch", "symbolic-seq", "two-outputs"],
)
def test_bad_models_give_one_line_errors(tmp_path, model, options, message):
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InputError, match=message) as info:
        import_onnx(path, **options)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_truncated_and_garbage_files(tmp_path, cut):
    data = branchy_cnn_onnx().SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(InputError, match="not a readable ONNX model"):
        import_onnx(path)
    path.write_bytes(b"\x00\x01 this is not a protobuf")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        import_onnx(path)
    with pytest.raises(InputError, match="no such file"):
        import_onnx(tmp_path / "missing.onnx")
