"""Build forward graphs op by op, with shape inference and shape checks.

Built-in models and the ONNX importer both go through `GraphBuilder`, so there is one place that
knows how each op kind's output shape and loop dimensions follow from its inputs. Every check
failure raises InputError naming the graph, the node and the problem.

Layout changes (reshape, flatten, transpose) are *views*: they cost nothing and allocate nothing
(an accelerator handles them by addressing), so a view name resolves to its base tensor in the
graph while keeping its own shape for computing the loop dimensions of the ops that read it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from monet_opt.errors import InputError
from monet_opt.model.workload.ir import DType, Graph, Op, OpKind, Phase, Tensor, TensorRole

_ELEMENTWISE_UNARY = (OpKind.RELU, OpKind.GELU)
_ELEMENTWISE_BINARY = (OpKind.ADD, OpKind.MUL)


class GraphBuilder:
    """Mutable helper that accumulates tensors and forward ops, then freezes them into a Graph."""

    def __init__(self, name: str, dtype: DType = DType.FP32) -> None:
        self.name = name
        self.dtype = dtype
        self._tensors: dict[str, Tensor] = {}
        self._ops: list[Op] = []
        self._op_names: set[str] = set()
        self._inputs: list[str] = []
        self._view_base: dict[str, str] = {}
        self._view_shape: dict[str, tuple[int, ...]] = {}

    # ----------------------------------------------------------------- tensors
    def _error(self, node: str, kind: str, problem: str) -> InputError:
        return InputError(f"{self.name}: node {node!r} ({kind}): {problem}")

    def _new_tensor(self, name: str, shape: Sequence[int], role: TensorRole, dtype: DType | None = None) -> str:
        shape = tuple(int(d) for d in shape)
        if name in self._tensors or name in self._view_base:
            raise InputError(f"{self.name}: tensor name {name!r} is used twice")
        if any(d <= 0 for d in shape):
            raise InputError(f"{self.name}: tensor {name!r} has a non-positive dimension {shape}")
        self._tensors[name] = Tensor(name, shape, dtype or self.dtype, role)
        return name

    def input(self, name: str, shape: Sequence[int], dtype: DType | None = None) -> str:
        self._inputs.append(name)
        return self._new_tensor(name, shape, TensorRole.INPUT, dtype)

    def constant(self, name: str, shape: Sequence[int], dtype: DType) -> str:
        """A non-trainable constant input (e.g. position indices): loaded, never recomputed."""
        return self._new_tensor(name, shape, TensorRole.INPUT, dtype)

    def weight(self, name: str, shape: Sequence[int]) -> str:
        return self._new_tensor(name, shape, TensorRole.WEIGHT)

    def buffer(self, name: str, shape: Sequence[int]) -> str:
        return self._new_tensor(name, shape, TensorRole.BUFFER)

    def is_taken(self, name: str) -> bool:
        return name in self._tensors or name in self._view_base or name in self._op_names

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self._view_shape:
            return self._view_shape[name]
        if name not in self._tensors:
            raise InputError(f"{self.name}: unknown tensor {name!r}")
        return self._tensors[name].shape

    def role(self, name: str) -> TensorRole:
        return self._tensors[self.base(name)].role

    def base(self, name: str) -> str:
        return self._view_base.get(name, name)

    def view(self, name: str, source: str, shape: Sequence[int]) -> str:
        """A reshape/transpose of `source`: same buffer, new shape (element count must match)."""
        shape = tuple(int(d) for d in shape)
        if math.prod(shape) != math.prod(self.shape(source)):
            raise self._error(
                name, "view", f"shape {shape} does not hold the {math.prod(self.shape(source))} elements of {source!r}"
            )
        if any(d <= 0 for d in shape):
            raise self._error(name, "view", f"non-positive dimension in {shape}")
        self._view_base[name] = self.base(source)
        self._view_shape[name] = shape
        return name

    def _add_op(
        self,
        name: str,
        kind: OpKind,
        inputs: Sequence[str],
        outputs: Sequence[tuple[str, Sequence[int]]],
        dims: dict[str, int],
        attrs: dict[str, int] | None = None,
    ) -> str:
        if name in self._op_names:
            raise InputError(f"{self.name}: op name {name!r} is used twice")
        self._op_names.add(name)
        for dim, size in dims.items():
            if size <= 0:
                raise self._error(name, kind.value, f"dimension {dim}={size} must be positive")
        out_names = [self._new_tensor(out, shape, TensorRole.ACTIVATION) for out, shape in outputs]
        self._ops.append(
            Op(
                name=name,
                kind=kind,
                phase=Phase.FORWARD,
                inputs=tuple(self.base(t) for t in inputs),
                outputs=tuple(out_names),
                dims=dims,
                attrs=attrs or {},
            )
        )
        return out_names[0]

    # ----------------------------------------------------------------- ops
    def conv(
        self,
        name: str,
        x: str,
        w: str,
        *,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int, int, int] = (0, 0, 0, 0),
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
        bias: str | None = None,
    ) -> str:
        """2-D convolution. x: (B, C, IY, IX); w: (K, C/G, FY, FX); padding (top, left, bottom, right).

        OY = floor((IY + pad_top + pad_bottom - DY * (FY - 1) - 1) / SY) + 1, likewise OX.
        """
        xs, ws = self.shape(x), self.shape(w)
        if len(xs) != 4 or len(ws) != 4:
            raise self._error(name, "conv", f"needs a 4-D input and weight, got {xs} and {ws}")
        b, c, iy, ix = xs
        k, c_per_group, fy, fx = ws
        if groups <= 0 or c % groups or k % groups:
            raise self._error(name, "conv", f"groups={groups} must divide input channels {c} and output channels {k}")
        if c_per_group * groups != c:
            raise self._error(
                name, "conv", f"weight has {c_per_group} input channels per group, input has {c} channels in {groups} groups"
            )
        if min(stride) <= 0 or min(dilation) <= 0 or min(padding) < 0:
            raise self._error(name, "conv", f"stride {stride} and dilation {dilation} must be positive, padding {padding} >= 0")
        sy, sx = stride
        dy, dx = dilation
        oy = (iy + padding[0] + padding[2] - dy * (fy - 1) - 1) // sy + 1
        ox = (ix + padding[1] + padding[3] - dx * (fx - 1) - 1) // sx + 1
        if oy <= 0 or ox <= 0:
            raise self._error(name, "conv", f"output size {oy}x{ox} is empty (input {iy}x{ix}, kernel {fy}x{fx})")
        inputs = [x, w]
        if bias is not None:
            if self.shape(bias) != (k,):
                raise self._error(name, "conv", f"bias shape {self.shape(bias)} != ({k},)")
            inputs.append(bias)
        dims = {"B": b, "K": k, "C": c, "OY": oy, "OX": ox, "FY": fy, "FX": fx, "G": groups}
        attrs = {"SY": sy, "SX": sx, "PY": padding[0], "PX": padding[1], "DY": dy, "DX": dx, "IY": iy, "IX": ix}
        return self._add_op(name, OpKind.CONV, inputs, [(name, (b, k, oy, ox))], dims, attrs)

    def matmul(self, name: str, a: str, b: str, *, bias: str | None = None) -> str:
        """Y = A @ B (+ bias). A: (..., M, K). B: a 2-D (K, N) operand shared by every row of A (a
        weight: its leading dims fold into M and B = 1), or (..., K, N) with the same leading dims as
        A (both batched: B = product of the leading dims, attr B_BATCHED = 1)."""
        a_shape, b_shape = self.shape(a), self.shape(b)
        if len(a_shape) < 2 or len(b_shape) < 2:
            raise self._error(name, "matmul", f"operands need rank >= 2, got {a_shape} and {b_shape}")
        if a_shape[-1] != b_shape[-2]:
            raise self._error(name, "matmul", f"inner dimensions differ: {a_shape} x {b_shape}")
        k, n = b_shape[-2], b_shape[-1]
        if len(b_shape) == 2:
            batch, m, out_shape, batched = 1, math.prod(a_shape[:-1]), a_shape[:-1] + (n,), 0
        else:
            if a_shape[:-2] != b_shape[:-2]:
                raise self._error(name, "matmul", f"batch dimensions differ: {a_shape} x {b_shape}")
            batch, m, out_shape, batched = math.prod(a_shape[:-2]), a_shape[-2], a_shape[:-1] + (n,), 1
        inputs = [a, b]
        if bias is not None:
            if self.shape(bias) != (n,):
                raise self._error(name, "matmul", f"bias shape {self.shape(bias)} != ({n},)")
            inputs.append(bias)
        dims = {"B": batch, "M": m, "N": n, "K": k}
        return self._add_op(name, OpKind.MATMUL, inputs, [(name, out_shape)], dims, {"B_BATCHED": batched})

    def unary(self, name: str, kind: OpKind, x: str) -> str:
        if kind not in _ELEMENTWISE_UNARY:
            raise self._error(name, kind.value, "is not an elementwise unary op")
        shape = self.shape(x)
        return self._add_op(name, kind, [x], [(name, shape)], {"N": math.prod(shape)})

    def relu(self, name: str, x: str) -> str:
        return self.unary(name, OpKind.RELU, x)

    def gelu(self, name: str, x: str) -> str:
        return self.unary(name, OpKind.GELU, x)

    def binary(self, name: str, kind: OpKind, a: str, b: str) -> str:
        """Elementwise add/mul with numpy broadcasting."""
        if kind not in _ELEMENTWISE_BINARY:
            raise self._error(name, kind.value, "is not an elementwise binary op")
        try:
            shape = tuple(np.broadcast_shapes(self.shape(a), self.shape(b)))
        except ValueError:
            raise self._error(name, kind.value, f"shapes {self.shape(a)} and {self.shape(b)} do not broadcast") from None
        return self._add_op(name, kind, [a, b], [(name, shape)], {"N": math.prod(shape)})

    def add(self, name: str, a: str, b: str) -> str:
        return self.binary(name, OpKind.ADD, a, b)

    def mul(self, name: str, a: str, b: str) -> str:
        return self.binary(name, OpKind.MUL, a, b)

    def pool(
        self,
        name: str,
        kind: OpKind,
        x: str,
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int, int, int] = (0, 0, 0, 0),
        ceil_mode: bool = False,
    ) -> str:
        """Max or average pooling over (FY, FX) windows of a (B, C, IY, IX) input."""
        if kind not in (OpKind.MAXPOOL, OpKind.AVGPOOL):
            raise self._error(name, kind.value, "is not a pooling op")
        xs = self.shape(x)
        if len(xs) != 4:
            raise self._error(name, kind.value, f"needs a 4-D input, got {xs}")
        if min(kernel) <= 0 or min(stride) <= 0 or min(padding) < 0:
            raise self._error(name, kind.value, f"kernel {kernel} and stride {stride} must be positive")
        b, c, iy, ix = xs
        rounding = math.ceil if ceil_mode else math.floor
        oy = int(rounding((iy + padding[0] + padding[2] - kernel[0]) / stride[0])) + 1
        ox = int(rounding((ix + padding[1] + padding[3] - kernel[1]) / stride[1])) + 1
        if oy <= 0 or ox <= 0:
            raise self._error(name, kind.value, f"output size {oy}x{ox} is empty")
        dims = {"B": b, "C": c, "OY": oy, "OX": ox, "FY": kernel[0], "FX": kernel[1]}
        attrs = {"SY": stride[0], "SX": stride[1], "PY": padding[0], "PX": padding[1], "IY": iy, "IX": ix}
        return self._add_op(name, kind, [x], [(name, (b, c, oy, ox))], dims, attrs)

    def global_avgpool(self, name: str, x: str) -> str:
        xs = self.shape(x)
        if len(xs) != 4:
            raise self._error(name, "avgpool", f"needs a 4-D input, got {xs}")
        return self.pool(name, OpKind.AVGPOOL, x, (xs[2], xs[3]), (1, 1))

    def batchnorm(self, name: str, x: str, gamma: str, beta: str, running_mean: str, running_var: str) -> str:
        """Training-mode batch normalisation of a (B, C, ...) input over all axes but C."""
        xs = self.shape(x)
        if len(xs) < 2:
            raise self._error(name, "batchnorm", f"needs rank >= 2, got {xs}")
        c = xs[1]
        for t in (gamma, beta, running_mean, running_var):
            if self.shape(t) != (c,):
                raise self._error(name, "batchnorm", f"parameter {t!r} has shape {self.shape(t)}, expected ({c},)")
        dims = {"N": math.prod(xs) // c, "C": c}
        outputs = [(name, xs), (f"{name}.stats", (2, c))]  # stats: batch mean and inverse std, saved for backward
        return self._add_op(name, OpKind.BATCHNORM, [x, gamma, beta, running_mean, running_var], outputs, dims)

    def layernorm(self, name: str, x: str, gamma: str, beta: str | None, axis: int = -1) -> str:
        """Layer normalisation over the trailing axes from `axis` on."""
        xs = self.shape(x)
        axis = axis % len(xs) if xs else 0
        normalised = xs[axis:]
        if self.shape(gamma) != normalised or (beta is not None and self.shape(beta) != normalised):
            raise self._error(name, "layernorm", f"scale/bias must have shape {normalised}")
        n = math.prod(normalised)
        inputs = [x, gamma] + ([beta] if beta is not None else [])
        rows = math.prod(xs) // n
        outputs = [(name, xs), (f"{name}.stats", (2, rows))]  # stats: row mean and inverse std, saved for backward
        return self._add_op(name, OpKind.LAYERNORM, inputs, outputs, {"R": rows, "N": n})

    def softmax(self, name: str, x: str, axis: int = -1) -> str:
        """Softmax along `axis` (must be the last axis; attention scaling and causal masking are
        fused into it)."""
        xs = self.shape(x)
        if axis % len(xs) != len(xs) - 1:
            raise self._error(name, "softmax", f"only the last axis is supported, got axis {axis} of {xs}")
        return self._add_op(name, OpKind.SOFTMAX, [x], [(name, xs)], {"R": math.prod(xs[:-1]), "N": xs[-1]})

    def embedding(self, name: str, table: str, ids: str) -> str:
        """Row lookup: out[..., :] = table[ids[...], :]; table (V, D), ids of any shape."""
        ts = self.shape(table)
        if len(ts) != 2:
            raise self._error(name, "embedding", f"table must be 2-D (V, D), got {ts}")
        ids_shape = self.shape(ids)
        if self._tensors[self.base(ids)].dtype.is_float:
            raise self._error(name, "embedding", f"indices {ids!r} must be an integer tensor")
        dims = {"T": math.prod(ids_shape), "D": ts[1], "V": ts[0]}
        return self._add_op(name, OpKind.EMBEDDING, [table, ids], [(name, ids_shape + (ts[1],))], dims)

    def concat(self, name: str, xs: Sequence[str], axis: int) -> str:
        shapes = [self.shape(x) for x in xs]
        rank = len(shapes[0])
        axis = axis % rank
        for s in shapes:
            if len(s) != rank or s[:axis] + s[axis + 1 :] != shapes[0][:axis] + shapes[0][axis + 1 :]:
                raise self._error(name, "concat", f"shapes {shapes} differ outside axis {axis}")
        out = shapes[0][:axis] + (sum(s[axis] for s in shapes),) + shapes[0][axis + 1 :]
        return self._add_op(name, OpKind.CONCAT, list(xs), [(name, out)], {"N": math.prod(out)}, {"AXIS": axis})

    def softmax_xent(self, name: str, logits: str, labels: str) -> str:
        """Mean softmax cross-entropy of logits (..., N) against integer labels (...); a scalar loss."""
        ls, ys = self.shape(logits), self.shape(labels)
        if ls[:-1] != ys:
            raise self._error(name, "softmax_xent", f"labels shape {ys} must equal logits shape {ls} without its last axis")
        if self._tensors[self.base(labels)].dtype.is_float:
            raise self._error(name, "softmax_xent", f"labels {labels!r} must be an integer tensor")
        return self._add_op(name, OpKind.SOFTMAX_XENT, [logits, labels], [(name, (1,))], {"R": math.prod(ys), "N": ls[-1]})

    # ----------------------------------------------------------------- result
    def build(self, outputs: Sequence[str]) -> Graph:
        used = {t for op in self._ops for t in op.inputs + op.outputs} | {self.base(t) for t in outputs}
        tensors = {name: t for name, t in self._tensors.items() if name in used}
        return Graph(
            name=self.name,
            tensors=tensors,
            ops=tuple(self._ops),
            inputs=tuple(t for t in self._inputs if t in used),
            outputs=tuple(self.base(t) for t in outputs),
        )
