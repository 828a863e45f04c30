"""Import an ONNX inference graph as a forward graph with a softmax cross-entropy loss attached.

Supported node types: Conv, Gemm, MatMul, Relu, Gelu, Add, Mul, BatchNormalization,
LayerNormalization, MaxPool, AveragePool, GlobalAveragePool, Flatten, Reshape, Transpose, Softmax,
Gather (embedding lookup in an initializer table), Concat, plus Identity, Dropout and Constant.

Decisions:
- Shapes come from onnx shape inference (strict mode) after binding symbolic input dimensions:
  `batch` replaces the first dimension of every graph input, `seq_len` any other symbolic one.
- Initializers are weights, except batch-norm running statistics (buffers), integer tensors
  (constant indices, or shapes consumed by Reshape) and Gather indices.
- Reshape, Flatten, Transpose, Identity and Dropout (inference: identity) are layout views: free,
  no buffer of their own (see `GraphBuilder.view`).
- BatchNormalization is imported as training-mode batch norm (batch statistics), since the graph
  is trained.
- The loss: the graph must have one output, the logits (..., classes); an int64 `labels` input of
  shape (...) and a softmax_xent op are appended.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from monet_opt.errors import InputError
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.model.workload.ir import DType, Graph, OpKind, topological_op_order

SUPPORTED_OPS = (
    "Conv", "Gemm", "MatMul", "Relu", "Gelu", "Add", "Mul", "BatchNormalization", "LayerNormalization",
    "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Transpose", "Softmax", "Gather",
    "Concat", "Identity", "Dropout", "Constant",
)

_ONNX_DTYPE = {
    onnx.TensorProto.FLOAT: DType.FP32,
    onnx.TensorProto.FLOAT16: DType.FP16,
    onnx.TensorProto.BFLOAT16: DType.BF16,
    onnx.TensorProto.INT64: DType.INT64,
    onnx.TensorProto.INT32: DType.INT32,
    onnx.TensorProto.INT8: DType.INT8,
}


def _load(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        model = onnx.load_model_from_string(path.read_bytes())
    except Exception as exc:  # protobuf raises several types for truncated or foreign bytes
        raise InputError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None
    if not model.graph.node:
        raise InputError(f"{path}: not a readable ONNX model (the graph has no nodes)")
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"


def _bind_input_dims(model: onnx.ModelProto, path: Path, batch: int | None, seq_len: int | None) -> None:
    """Make every graph input's shape concrete (in place)."""
    initializers = {i.name for i in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if axis == 0 and batch is not None:
                dim.ClearField("dim_param")
                dim.dim_value = batch
            elif dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            elif dim.HasField("dim_value") and dim.dim_value <= 0 and not dim.dim_param:
                raise InputError(f"{path}: input {value.name!r} has dimension {axis} = {dim.dim_value} (must be > 0)")
            elif axis == 0:
                raise InputError(f"{path}: input {value.name!r} has a symbolic batch dimension; pass --batch")
            elif seq_len is not None:
                dim.ClearField("dim_param")
                dim.dim_value = seq_len
            else:
                raise InputError(
                    f"{path}: input {value.name!r} dimension {axis} is symbolic ({dim.dim_param!r}); pass --seq-len"
                )


def _shape_of(value: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    t = value.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return tuple(dims)


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def import_onnx(path: str | Path, *, batch: int | None = None, seq_len: int | None = None) -> Graph:
    """Forward graph (with loss) of the ONNX model at `path`; InputError on anything it cannot take."""
    path = Path(path)
    model = _load(path)
    order = _node_order(model, path)
    _bind_input_dims(model, path, batch, seq_len)
    try:
        model = shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise InputError(f"{path}: inconsistent shapes ({_first_line(exc)})") from None
    return _Importer(model, path).run(order)


def _node_order(model: onnx.ModelProto, path: Path) -> list[int]:
    """Node indices in dependency order; InputError naming the nodes of a cycle."""
    nodes = list(model.graph.node)
    keys = [f"#{i}" for i in range(len(nodes))]
    reads = {keys[i]: tuple(x for x in n.input if x) for i, n in enumerate(nodes)}
    writes = {keys[i]: tuple(n.output) for i, n in enumerate(nodes)}
    try:
        return [int(key[1:]) for key in topological_op_order(keys, reads, writes)]
    except InputError as exc:
        message = str(exc)
        for i in reversed(range(len(nodes))):  # reversed: "#12" is replaced before "#1"
            message = message.replace(keys[i], nodes[i].name or nodes[i].output[0])
        raise InputError(f"{path}: {message}") from None


class _Importer:
    def __init__(self, model: onnx.ModelProto, path: Path) -> None:
        self.path = path
        self.graph = model.graph
        self.builder = GraphBuilder(path.stem)
        self.initializers = {i.name: i for i in self.graph.initializer}
        self.constants: dict[str, np.ndarray] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        for value in list(self.graph.value_info) + list(self.graph.input) + list(self.graph.output):
            shape = _shape_of(value)
            if shape is not None:
                self.shapes[value.name] = shape
        self.env: dict[str, str] = {}  # ONNX value name -> builder tensor (or view) name

    def error(self, node: onnx.NodeProto, problem: str) -> InputError:
        return InputError(f"{self.path}: node {node.name or node.output[0]!r} ({node.op_type}): {problem}")

    # ------------------------------------------------------------------ values
    def value(self, node: onnx.NodeProto, name: str, *, role: str = "weight") -> str:
        """Builder name of ONNX value `name`, creating initializers on first use with `role`
        (weight, buffer or constant)."""
        if name in self.env:
            return self.env[name]
        if name in self.initializers:
            init = self.initializers[name]
            shape = tuple(int(d) for d in init.dims) or (1,)
            dtype = _ONNX_DTYPE.get(init.data_type)
            if dtype is None:
                raise self.error(node, f"initializer {name!r} has an unsupported element type {init.data_type}")
            if not dtype.is_float or role == "constant":
                created = self.builder.constant(name, shape, dtype)
            elif role == "buffer":
                created = self.builder.buffer(name, shape)
            else:
                created = self.builder.weight(name, shape)
            self.env[name] = created
            return created
        raise self.error(node, f"reads {name!r}, which no earlier node produces (the graph has a cycle or a dangling input)")

    def constant_array(self, node: onnx.NodeProto, name: str) -> np.ndarray:
        if name in self.constants:
            return self.constants[name]
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        raise self.error(node, f"input {name!r} must be a constant")

    def op_name(self, node: onnx.NodeProto) -> str:
        base = node.name or node.output[0]
        name, i = base, 1
        while self.builder.is_taken(name) or name in self.initializers:
            name, i = f"{base}_{i}", i + 1
        return name

    def bind(self, node: onnx.NodeProto, created: str) -> None:
        """Map the node's output to `created` and check the builder agrees with ONNX's shape."""
        out = node.output[0]
        self.env[out] = created
        expected = self.shapes.get(out)
        actual = self.builder.shape(created)
        if expected is not None and math.prod(expected) != math.prod(actual):
            raise self.error(node, f"output shape {actual} disagrees with the inferred shape {expected}")

    # ------------------------------------------------------------------ run
    def run(self, order: list[int]) -> Graph:
        initializers = set(self.initializers)
        for value in self.graph.input:
            if value.name in initializers:
                continue
            shape = self.shapes.get(value.name)
            elem = _ONNX_DTYPE.get(value.type.tensor_type.elem_type)
            if shape is None or elem is None:
                raise InputError(f"{self.path}: input {value.name!r} needs a known shape and a supported element type")
            if any(d <= 0 for d in shape):
                raise InputError(f"{self.path}: input {value.name!r} has a non-positive dimension {shape}")
            self.env[value.name] = self.builder.input(value.name, shape, elem)
        for index in order:
            node = self.graph.node[index]
            if node.op_type not in SUPPORTED_OPS:
                raise self.error(node, f"unsupported op type {node.op_type!r} (supported: {', '.join(SUPPORTED_OPS)})")
            getattr(self, f"_op_{node.op_type}")(node)
        if len(self.graph.output) != 1:
            raise InputError(
                f"{self.path}: the graph has {len(self.graph.output)} outputs; training needs one (the logits) to attach the loss to"
            )
        logits = self.env[self.graph.output[0].name]
        labels = self.builder.input("labels", self.builder.shape(logits)[:-1] or (1,), DType.INT64)
        loss = self.builder.softmax_xent("loss", logits, labels)
        return self.builder.build([loss])

    # ------------------------------------------------------------------ handlers
    def _op_Constant(self, node: onnx.NodeProto) -> None:
        value = _attrs(node).get("value")
        if value is None:
            raise self.error(node, "only the 'value' form of Constant is supported")
        self.constants[node.output[0]] = numpy_helper.to_array(value)

    def _spatial(self, node: onnx.NodeProto, kernel: tuple[int, int], in_hw: tuple[int, int], strides, dilations):
        """ONNX pads [y_begin, x_begin, y_end, x_end] (or auto_pad) -> (top, left, bottom, right)."""
        a = _attrs(node)
        auto_pad = a.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad in ("NOTSET", "VALID"):
            pads = list(a.get("pads", [0, 0, 0, 0])) if auto_pad == "NOTSET" else [0, 0, 0, 0]
            if len(pads) != 4:
                raise self.error(node, f"only 2-D spatial ops are supported (pads {pads})")
            return tuple(int(p) for p in pads)
        begin, end = [], []
        for i in range(2):
            out = math.ceil(in_hw[i] / strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - in_hw[i], 0)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        return (begin[0], begin[1], end[0], end[1])

    def _op_Conv(self, node: onnx.NodeProto) -> None:
        x = self.value(node, node.input[0])
        w = self.value(node, node.input[1])
        ws = self.builder.shape(w)
        if len(ws) != 4:
            raise self.error(node, f"only 2-D convolutions are supported (weight shape {ws})")
        a = _attrs(node)
        strides = tuple(a.get("strides", (1, 1)))
        dilations = tuple(a.get("dilations", (1, 1)))
        pads = self._spatial(node, (ws[2], ws[3]), self.builder.shape(x)[2:], strides, dilations)
        bias = self.value(node, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        self.bind(node, self.builder.conv(self.op_name(node), x, w, stride=strides, padding=pads,
                                          dilation=dilations, groups=int(a.get("group", 1)), bias=bias))

    def _op_Gemm(self, node: onnx.NodeProto) -> None:
        a = _attrs(node)
        name = self.op_name(node)
        lhs = self.value(node, node.input[0])
        rhs = self.value(node, node.input[1])
        if len(self.builder.shape(lhs)) != 2 or len(self.builder.shape(rhs)) != 2:
            raise self.error(node, "Gemm operands must be 2-D")
        if a.get("transA", 0):
            lhs = self.builder.view(f"{name}.A_T", lhs, self.builder.shape(lhs)[::-1])
        if a.get("transB", 0):
            rhs = self.builder.view(f"{name}.B_T", rhs, self.builder.shape(rhs)[::-1])
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = self.value(node, node.input[2])
            n = self.builder.shape(rhs)[1]
            if math.prod(self.builder.shape(bias)) != n:
                raise self.error(node, f"bias C of shape {self.builder.shape(bias)} is not a per-column vector of {n}")
            if self.builder.shape(bias) != (n,):
                bias = self.builder.view(f"{name}.C_flat", bias, (n,))
        self.bind(node, self.builder.matmul(name, lhs, rhs, bias=bias))

    def _op_MatMul(self, node: onnx.NodeProto) -> None:
        lhs, rhs = (self.value(node, x) for x in node.input[:2])
        self.bind(node, self.builder.matmul(self.op_name(node), lhs, rhs))

    def _unary(self, node: onnx.NodeProto, kind: OpKind) -> None:
        self.bind(node, self.builder.unary(self.op_name(node), kind, self.value(node, node.input[0])))

    def _op_Relu(self, node: onnx.NodeProto) -> None:
        self._unary(node, OpKind.RELU)

    def _op_Gelu(self, node: onnx.NodeProto) -> None:
        self._unary(node, OpKind.GELU)

    def _binary(self, node: onnx.NodeProto, kind: OpKind) -> None:
        lhs, rhs = (self.value(node, x) for x in node.input[:2])
        self.bind(node, self.builder.binary(self.op_name(node), kind, lhs, rhs))

    def _op_Add(self, node: onnx.NodeProto) -> None:
        self._binary(node, OpKind.ADD)

    def _op_Mul(self, node: onnx.NodeProto) -> None:
        self._binary(node, OpKind.MUL)

    def _op_BatchNormalization(self, node: onnx.NodeProto) -> None:
        if len(node.input) != 5:
            raise self.error(node, "needs inputs X, scale, B, mean, var")
        x, scale, bias = (self.value(node, t) for t in node.input[:3])
        mean, var = (self.value(node, t, role="buffer") for t in node.input[3:5])
        self.bind(node, self.builder.batchnorm(self.op_name(node), x, scale, bias, mean, var))

    def _op_LayerNormalization(self, node: onnx.NodeProto) -> None:
        x, scale = self.value(node, node.input[0]), self.value(node, node.input[1])
        bias = self.value(node, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        axis = int(_attrs(node).get("axis", -1))
        self.bind(node, self.builder.layernorm(self.op_name(node), x, scale, bias, axis))

    def _pool(self, node: onnx.NodeProto, kind: OpKind) -> None:
        x = self.value(node, node.input[0])
        a = _attrs(node)
        kernel = tuple(a.get("kernel_shape", ()))
        if len(kernel) != 2:
            raise self.error(node, f"only 2-D pooling is supported (kernel_shape {kernel})")
        strides = tuple(a.get("strides", (1, 1)))
        dilations = tuple(a.get("dilations", (1, 1)))
        if dilations != (1, 1):
            raise self.error(node, "dilated pooling is not supported")
        pads = self._spatial(node, kernel, self.builder.shape(x)[2:], strides, dilations)
        self.bind(node, self.builder.pool(self.op_name(node), kind, x, kernel, strides, pads,
                                          ceil_mode=bool(a.get("ceil_mode", 0))))

    def _op_MaxPool(self, node: onnx.NodeProto) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise self.error(node, "the Indices output of MaxPool is not supported")
        self._pool(node, OpKind.MAXPOOL)

    def _op_AveragePool(self, node: onnx.NodeProto) -> None:
        self._pool(node, OpKind.AVGPOOL)

    def _op_GlobalAveragePool(self, node: onnx.NodeProto) -> None:
        self.bind(node, self.builder.global_avgpool(self.op_name(node), self.value(node, node.input[0])))

    def _view(self, node: onnx.NodeProto, shape: tuple[int, ...]) -> None:
        self.bind(node, self.builder.view(self.op_name(node), self.value(node, node.input[0]), shape))

    def _op_Flatten(self, node: onnx.NodeProto) -> None:
        shape = self.builder.shape(self.value(node, node.input[0]))
        axis = int(_attrs(node).get("axis", 1)) % (len(shape) + 1)
        self._view(node, (math.prod(shape[:axis]), math.prod(shape[axis:])))

    def _op_Reshape(self, node: onnx.NodeProto) -> None:
        shape = self.shapes.get(node.output[0])
        if shape is None:
            source = self.builder.shape(self.value(node, node.input[0]))
            target = [int(d) for d in self.constant_array(node, node.input[1])]
            target = [source[i] if d == 0 else d for i, d in enumerate(target)]
            if target.count(-1) == 1:
                known = math.prod(d for d in target if d != -1)
                target[target.index(-1)] = math.prod(source) // known if known else 0
            shape = tuple(target)
        self._view(node, shape)

    def _op_Transpose(self, node: onnx.NodeProto) -> None:
        shape = self.builder.shape(self.value(node, node.input[0]))
        perm = list(_attrs(node).get("perm", range(len(shape) - 1, -1, -1)))
        if sorted(perm) != list(range(len(shape))):
            raise self.error(node, f"perm {perm} is not a permutation of {len(shape)} axes")
        self._view(node, tuple(shape[p] for p in perm))

    def _op_Identity(self, node: onnx.NodeProto) -> None:
        self._view(node, self.builder.shape(self.value(node, node.input[0])))

    def _op_Dropout(self, node: onnx.NodeProto) -> None:
        self._op_Identity(node)

    def _op_Softmax(self, node: onnx.NodeProto) -> None:
        axis = int(_attrs(node).get("axis", -1))
        self.bind(node, self.builder.softmax(self.op_name(node), self.value(node, node.input[0]), axis))

    def _op_Gather(self, node: onnx.NodeProto) -> None:
        if node.input[0] not in self.initializers:
            raise self.error(node, "only Gather from an initializer table (an embedding lookup) is supported")
        if int(_attrs(node).get("axis", 0)) != 0:
            raise self.error(node, "only Gather along axis 0 (row lookup) is supported")
        table = self.value(node, node.input[0])
        ids = self.value(node, node.input[1], role="constant")
        self.bind(node, self.builder.embedding(self.op_name(node), table, ids))

    def _op_Concat(self, node: onnx.NodeProto) -> None:
        inputs = [self.value(node, x) for x in node.input]
        axis = int(_attrs(node).get("axis", 0))
        self.bind(node, self.builder.concat(self.op_name(node), inputs, axis))
