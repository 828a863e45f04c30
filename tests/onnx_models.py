"""ONNX test models written with onnx.helper (no downloads).

`resnet18_onnx` mirrors the built-in ResNet-18 the way torch.onnx exports torchvision's model
(Conv without bias, BatchNormalization, Relu, MaxPool, Add, GlobalAveragePool, Flatten, Gemm with
transB). `gpt2_onnx` mirrors the built-in GPT-2 the way a Hugging Face export looks (Gather
embeddings, LayerNormalization, MatMul + Add bias, Reshape/Transpose into heads, Softmax, Gelu).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Net:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, name: str, shape: tuple[int, ...], dtype=np.float32, value=None) -> str:
        array = np.zeros(shape, dtype=dtype) if value is None else np.asarray(value, dtype=dtype)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def model(self, inputs, outputs, opset: int = 17) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "test", inputs, outputs, self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def resnet18_onnx(batch: int = 1, image_size: int = 224, classes: int = 1000) -> onnx.ModelProto:
    n = _Net()

    def conv_bn(prefix: str, x: str, c_in: int, c_out: int, k: int, stride: int, pad: int) -> str:
        w = n.init(f"{prefix}.weight", (c_out, c_in, k, k))
        y = n.node("Conv", [x, w], f"{prefix}_out", kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
        bn = f"{prefix}_bn"
        params = [n.init(f"{bn}.{p}", (c_out,)) for p in ("scale", "bias", "mean", "var")]
        return n.node("BatchNormalization", [y, *params], bn)

    y = n.node("Relu", [conv_bn("conv1", "image", 3, 64, 7, 2, 3)], "relu")
    y = n.node("MaxPool", [y], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = 64
    for stage, c_out in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = 2 if (block == 0 and stage > 1) else 1
            h = n.node("Relu", [conv_bn(f"{p}.conv1", y, c_in, c_out, 3, stride, 1)], f"{p}.relu1")
            h = conv_bn(f"{p}.conv2", h, c_out, c_out, 3, 1, 1)
            skip = conv_bn(f"{p}.downsample", y, c_in, c_out, 1, stride, 0) if (stride != 1 or c_in != c_out) else y
            y = n.node("Relu", [n.node("Add", [h, skip], f"{p}.add")], f"{p}.relu2")
            c_in = c_out
    y = n.node("Flatten", [n.node("GlobalAveragePool", [y], "avgpool")], "flatten", axis=1)
    n.node("Gemm", [y, n.init("fc.weight", (classes, 512)), n.init("fc.bias", (classes,))], "logits", transB=1)
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, image_size, image_size])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    del batch  # the batch is bound at import time (--batch)
    return n.model([image], [out])


def gpt2_onnx(layers: int, heads: int, d: int, d_ff: int, vocab: int, context: int) -> onnx.ModelProto:
    """Symbolic batch "N" and sequence "S" inputs; positions come from a constant initializer of
    length `context` sliced by Gather (so seq_len must equal `context`)."""
    n = _Net()
    d_head = d // heads
    tok = n.node("Gather", [n.init("wte", (vocab, d)), "tokens"], "tok_emb")
    positions = n.init("positions", (context,), np.int64, np.arange(context))
    pos = n.node("Gather", [n.init("wpe", (context, d)), positions], "pos_emb")
    x = n.node("Add", [tok, pos], "embed")

    def linear(prefix: str, x: str, d_in: int, d_out: int) -> str:
        y = n.node("MatMul", [x, n.init(f"{prefix}.w", (d_in, d_out))], f"{prefix}.mm")
        return n.node("Add", [y, n.init(f"{prefix}.b", (d_out,))], prefix)

    def layernorm(prefix: str, x: str) -> str:
        return n.node("LayerNormalization", [x, n.init(f"{prefix}.g", (d,)), n.init(f"{prefix}.b", (d,))], prefix, axis=-1)

    heads_shape = n.init("heads_shape", (4,), np.int64, [0, 0, heads, d_head])
    merged_shape = n.init("merged_shape", (3,), np.int64, [0, 0, d])
    for layer in range(layers):
        p = f"h{layer}"
        h = layernorm(f"{p}.ln1", x)
        split = {}
        for part, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
            y = n.node("Reshape", [linear(f"{p}.{part}", h, d, d), heads_shape], f"{p}.{part}.split")
            split[part] = n.node("Transpose", [y], f"{p}.{part}.heads", perm=perm)
        probs = n.node("Softmax", [n.node("MatMul", [split["q"], split["k"]], f"{p}.qk")], f"{p}.softmax", axis=-1)
        av = n.node("Transpose", [n.node("MatMul", [probs, split["v"]], f"{p}.av")], f"{p}.av.t", perm=[0, 2, 1, 3])
        attn = n.node("Reshape", [av, merged_shape], f"{p}.merge")
        x = n.node("Add", [x, linear(f"{p}.proj", attn, d, d)], f"{p}.res1")
        h = n.node("Gelu", [linear(f"{p}.fc", layernorm(f"{p}.ln2", x), d, d_ff)], f"{p}.gelu")
        x = n.node("Add", [x, linear(f"{p}.fc2", h, d_ff, d)], f"{p}.res2")
    h = layernorm("ln_f", x)
    head = n.node("Transpose", ["wte"], "wte_T", perm=[1, 0])
    n.node("MatMul", [h, head], "logits")
    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, ["N", "S"])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    return n.model([tokens], [out], opset=20)


def branchy_cnn_onnx() -> onnx.ModelProto:
    """Two conv branches (one with bias and SAME padding) joined by Concat, a Mul gate, AveragePool,
    Identity and Dropout, then Flatten and Gemm: the remaining supported op types."""
    n = _Net()
    a = n.node("Relu", [n.node("Conv", ["x", n.init("wa", (4, 3, 3, 3))], "conv_a", pads=[1, 1, 1, 1])], "relu_a")
    b = n.node("Conv", ["x", n.init("wb", (4, 3, 1, 1)), n.init("bb", (4,))], "conv_b", auto_pad="SAME_UPPER")
    cat = n.node("Concat", [a, b], "cat", axis=1)
    gated = n.node("Mul", [cat, n.node("Identity", [cat], "ident")], "gate")
    pooled = n.node("AveragePool", [n.node("Dropout", [gated], "drop")], "pool", kernel_shape=[2, 2], strides=[2, 2])
    flat = n.node("Flatten", [pooled], "flat", axis=1)
    n.node("Gemm", [flat, n.init("fc", (8 * 4 * 4, 5))], "logits")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    return n.model([x], [out])


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path
