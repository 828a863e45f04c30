"""Derive the training graph (forward + backward + optimizer) from a forward graph with a loss.

What each backward op reads (the forward values it reads are "saved for backward"):

=============  ===============================================================================
forward        backward ops and what they read
=============  ===============================================================================
conv           conv_dx (dY, W) -> dX, omitted when X needs no gradient (the network input);
               conv_dw (X, dY) -> dW (and dbias)
matmul         dA = dY B^T: matmul (dY, B) with dims B, M, N'=K, K'=N;
               dB = A^T dY: matmul (A, dY) with dims B, M'=K, N, K'=M (and dbias)
add            pass-through: the input's gradient is dY itself when shapes match; a reduce_sum
               of dY over the broadcast axes otherwise (and always for a weight)
mul            mul (dY, other operand) per input
relu           relu_backward (Y, dY): reads the output, which the next op usually keeps anyway
gelu           gelu_backward (X, dY)
maxpool        maxpool_backward (X, dY): finds each window's maximum again in X
avgpool        avgpool_backward (dY)
batchnorm      batchnorm_backward (dY, X, batch stats, gamma) -> dX, dgamma, dbeta
layernorm      layernorm_backward (dY, X, row stats, gamma) -> dX, dgamma, dbeta
softmax        softmax_backward (Y, dY)
embedding      embedding_backward (dY, indices) -> dense dTable
concat         split (dY) -> one gradient per input
softmax_xent   softmax_xent_backward (logits, labels) -> dlogits (the loss gradient is 1)
=============  ===============================================================================

A value read by several forward ops receives one gradient contribution from each; they are summed
by a chain of `add` ops (phase backward) right after the last contribution is produced. Every weight
gets exactly one optimizer-update op, which reads the weight, its gradient and its states and
updates weight and states in place. Where it runs (`UpdatePlacement`): after the whole backward
pass (`optimizer.step()`; each weight gradient is then a static buffer for the whole step), or
right after the op that completes the weight's gradient (the "optimizer step in the backward pass"
of training frameworks; each weight gradient then lives only from that op to its update).

Ops are emitted in the reference execution order: forward in order, backward in reverse forward
order, the optimizer updates at the end or each right after its weight's gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from monet_opt.errors import InputError
from monet_opt.model.workload.ir import DType, Graph, Op, OpKind, Phase, Tensor, TensorRole


class Optimizer(StrEnum):
    SGD = "sgd"
    MOMENTUM = "momentum"
    ADAM = "adam"
    ADAMW = "adamw"


OPTIMIZER_STATES: dict[Optimizer, tuple[str, ...]] = {
    Optimizer.SGD: (),
    Optimizer.MOMENTUM: ("momentum",),
    Optimizer.ADAM: ("exp_avg", "exp_avg_sq"),
    Optimizer.ADAMW: ("exp_avg", "exp_avg_sq"),
}
"""State tensors per weight, each of the weight's shape."""

_UPDATE_KIND = {
    Optimizer.SGD: OpKind.SGD_UPDATE,
    Optimizer.MOMENTUM: OpKind.MOMENTUM_UPDATE,
    Optimizer.ADAM: OpKind.ADAM_UPDATE,
    Optimizer.ADAMW: OpKind.ADAMW_UPDATE,
}


@dataclass(frozen=True)
class Precision:
    """Element type per tensor role. Integer tensors (indices, labels) keep their own type; batch-norm
    running statistics stay fp32. `master_weight` set adds a full-precision copy of every weight,
    read and updated by the optimizer (mixed-precision training). `accumulator` is the type of MAC
    partial sums (None: each op's output type); `training` says whether a training step may use
    it (integer and pure 8/16-bit float types are inference precisions)."""

    activation: DType = DType.FP32
    activation_gradient: DType = DType.FP32
    weight: DType = DType.FP32
    weight_gradient: DType = DType.FP32
    optimizer_state: DType = DType.FP32
    master_weight: DType | None = None
    accumulator: DType | None = None
    training: bool = True

    def dtype_for(self, tensor: Tensor) -> DType:
        if not tensor.dtype.is_float:
            return tensor.dtype
        return {
            TensorRole.INPUT: self.activation,
            TensorRole.ACTIVATION: self.activation,
            TensorRole.GRADIENT: self.activation_gradient,
            TensorRole.WEIGHT: self.weight,
            TensorRole.WEIGHT_GRAD: self.weight_gradient,
            TensorRole.OPTIMIZER_STATE: self.optimizer_state,
            TensorRole.MASTER_WEIGHT: self.master_weight or DType.FP32,
            TensorRole.BUFFER: DType.FP32,
        }[tensor.role]


def _inference(operands: DType, accumulator: DType) -> Precision:
    return Precision(activation=operands, activation_gradient=operands, weight=operands, weight_gradient=operands,
                     optimizer_state=operands, accumulator=accumulator, training=False)


def _mixed(compute: DType, activation_gradient: DType, weight_gradient: DType) -> Precision:
    return Precision(activation=compute, activation_gradient=activation_gradient, weight=compute,
                     weight_gradient=weight_gradient, optimizer_state=DType.FP32, master_weight=DType.FP32,
                     accumulator=DType.FP32)


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision(),
    # Mixed precision: low-precision compute, fp32 master weights and optimizer states, fp32 accumulation.
    "bf16-mixed": _mixed(DType.BF16, DType.BF16, DType.FP32),
    # fp16 with loss scaling: as bf16-mixed (the loss scale is one scalar and adds no memory).
    "fp16-mixed": _mixed(DType.FP16, DType.FP16, DType.FP32),
    # fp8 forward (e4m3 activations and weights) with bf16 activation and weight gradients.
    "fp8-mixed": _mixed(DType.FP8_E4M3, DType.BF16, DType.BF16),
    # Inference precisions: every float tensor of that type; integers accumulate in int32, floats in fp32.
    "bf16": _inference(DType.BF16, DType.FP32),
    "fp16": _inference(DType.FP16, DType.FP32),
    "fp8-e4m3": _inference(DType.FP8_E4M3, DType.FP32),
    "fp8-e5m2": _inference(DType.FP8_E5M2, DType.FP32),
    "int16": _inference(DType.INT16, DType.INT32),
    "int8": _inference(DType.INT8, DType.INT32),
}
"""Named precisions (`--precision`). Training takes fp32 and the mixes; inference takes any."""

ACCUMULATORS = (DType.INT16, DType.INT32, DType.FP16, DType.BF16, DType.FP32)


def precision_named(name: str, training: bool, accumulator: str | None = None) -> Precision:
    """The precision `name` for a training step (`training`) or an inference pass, with its partial
    sums in `accumulator` when given; InputError for an unknown name, an inference precision in
    training, or an accumulator of the wrong kind (integer for float operands or the reverse) or
    narrower than the operands."""
    if name not in PRECISIONS:
        raise InputError(f"precision {name!r} is unknown (known: {', '.join(PRECISIONS)})")
    precision = PRECISIONS[name]
    if training and not precision.training:
        raise InputError(f"precision {name!r} is for inference; a training step takes "
                         f"{', '.join(n for n, p in PRECISIONS.items() if p.training)}")
    if accumulator is None:
        return precision
    if accumulator not in {a.value for a in ACCUMULATORS}:
        raise InputError(f"partial-sum type {accumulator!r} is unknown (known: {', '.join(a.value for a in ACCUMULATORS)})")
    acc = DType(accumulator)
    operands = precision.activation
    if acc.is_float != operands.is_float or acc.bits < operands.bits:
        raise InputError(f"partial-sum type {accumulator!r} does not suit {operands.value} operands of precision "
                         f"{name!r} ({'a float' if operands.is_float else 'an integer'} type at least "
                         f"{operands.bits} bits wide)")
    return replace(precision, accumulator=acc)


class UpdatePlacement(StrEnum):
    """When each weight's optimizer update runs."""

    END = "end"  # after the whole backward pass (`optimizer.step()`): weight gradients are static
    BACKWARD = "backward"  # as soon as the weight's gradient is complete: the gradient is freed by it


class _Derivation:
    """Mutable state of one derivation; `derive_training_graph` is the public entry point."""

    def __init__(self, forward: Graph, optimizer: Optimizer, precision: Precision,
                 placement: UpdatePlacement = UpdatePlacement.END) -> None:
        self.forward = forward
        self.optimizer = optimizer
        self.precision = precision
        self.placement = placement
        self.updated: set[str] = set()
        self.tensors: dict[str, Tensor] = {}
        for t in forward.tensors.values():
            self._add_tensor(t.name, t.shape, t.role, t.dtype)
        self.ops: list[Op] = list(forward.ops)
        self.grad_of: dict[str, str] = {}
        self.partials: dict[str, list[str]] = {}
        self.expected: dict[str, int] = {}

    def _add_tensor(self, name: str, shape: tuple[int, ...], role: TensorRole, dtype: DType = DType.FP32) -> str:
        if name in self.tensors:
            raise InputError(f"{self.forward.name}: derived tensor name {name!r} collides with an existing tensor")
        probe = Tensor(name, shape, dtype, role)
        transient = role is TensorRole.WEIGHT_GRAD and self.placement is UpdatePlacement.BACKWARD
        self.tensors[name] = replace(probe, dtype=self.precision.dtype_for(probe), transient=transient)
        return name

    def shape(self, name: str) -> tuple[int, ...]:
        return self.tensors[name].shape

    def emit(self, name: str, kind: OpKind, phase: Phase, inputs: list[str], outputs: list[str],
             dims: dict[str, int], attrs: dict[str, int] | None = None, updates: tuple[str, ...] = (),
             forward_op: str | None = None) -> None:
        self.ops.append(Op(name, kind, phase, tuple(inputs), tuple(outputs), dims, attrs or {}, updates, forward_op))

    # ------------------------------------------------------------ which values get gradients
    def plan_gradients(self, loss_op: Op) -> list[Op]:
        """Decide which forward ops backpropagate (their output needs a gradient and reaches the loss)
        and count the gradient contributions each value will receive."""
        needs_grad = {n for n, t in self.forward.tensors.items() if t.role is TensorRole.WEIGHT}
        for op in self.forward.ops:
            if any(t in needs_grad for t in op.inputs):
                needs_grad.update(op.outputs)
        reaches_loss = set(loss_op.outputs)
        active: list[Op] = []
        for op in reversed(self.forward.ops):
            if op.outputs[0] in reaches_loss and op.outputs[0] in needs_grad:
                active.append(op)
                for position, t in enumerate(op.inputs):
                    if t in needs_grad and _input_is_differentiable(op, position):
                        reaches_loss.add(t)
                        self.expected[t] = self.expected.get(t, 0) + 1
        self.needs_grad = needs_grad
        return active  # in reverse forward order

    def gradient_name(self, t: str, op: Op, position: int) -> str:
        """Name of the gradient contribution of `op` (input `position`) to value `t`, registering it."""
        if self.expected[t] == 1:
            name = f"grad/{t}"
        else:
            name = f"grad/{t}@{op.name}.{position}"
        # A weight's first gradient contribution is its gradient buffer (static); the later ones are
        # transients, summed into it when the last has arrived (see `contribute`).
        first = not self.partials.get(t)
        role = TensorRole.WEIGHT_GRAD if self.forward.tensors[t].role is TensorRole.WEIGHT and first \
            else TensorRole.GRADIENT
        self._add_tensor(name, self.shape(t), role)
        return name

    def contribute(self, t: str, grad: str) -> None:
        """Record one gradient contribution to `t`; sum them when the last one has arrived. For a
        weight used by k ops (a tied embedding) the first contribution and the final sum are static
        gradient buffers: one buffer more than an in-place accumulation needs, but no gradient of
        the size of the weight lives as a transient through the whole backward pass."""
        parts = self.partials.setdefault(t, [])
        parts.append(grad)
        if len(parts) < self.expected[t]:
            return
        if len(parts) == 1:
            self.grad_of[t] = grad
        else:
            self._sum_contributions(t, parts)
        if self.placement is UpdatePlacement.BACKWARD and self.forward.tensors[t].role is TensorRole.WEIGHT:
            self.update(t)

    def _sum_contributions(self, t: str, parts: list[str]) -> None:
        is_weight = self.forward.tensors[t].role is TensorRole.WEIGHT
        acc = parts[0]
        for i, part in enumerate(parts[1:], start=1):
            last = i == len(parts) - 1
            out = f"grad/{t}" if last else f"grad/{t}#sum{i}"
            role = TensorRole.WEIGHT_GRAD if (last and is_weight) else TensorRole.GRADIENT
            self._add_tensor(out, self.shape(t), role)
            self.emit(f"{t}.grad_accumulate{i}", OpKind.ADD, Phase.BACKWARD, [acc, part], [out],
                      {"N": math.prod(self.shape(t))})
            acc = out
        self.grad_of[t] = acc

    # ------------------------------------------------------------ per-kind backward rules
    def backward(self, op: Op) -> None:
        kind = op.kind
        if kind is OpKind.SOFTMAX_XENT:
            logits, labels = op.inputs
            dx = self.gradient_name(logits, op, 0)
            self.emit(f"{op.name}.backward", OpKind.SOFTMAX_XENT_BACKWARD, Phase.BACKWARD, [logits, labels], [dx],
                      dict(op.dims), forward_op=op.name)
            self.contribute(logits, dx)
            return
        dy = self.grad_of[op.outputs[0]]
        wants = [t in self.expected and t in self.needs_grad and _input_is_differentiable(op, i)
                 for i, t in enumerate(op.inputs)]
        name = op.name
        if kind is OpKind.CONV or kind is OpKind.MATMUL:
            self._backward_mac(op, dy, wants)
        elif kind is OpKind.ADD:
            y_shape = self.shape(op.outputs[0])
            for i, t in enumerate(op.inputs):
                if not wants[i]:
                    continue
                if self.shape(t) == y_shape and self.forward.tensors[t].role is not TensorRole.WEIGHT:
                    self.contribute(t, dy)  # pass-through: the same gradient tensor, no op
                    continue
                g = self.gradient_name(t, op, i)
                self.emit(f"{name}.d{i}", OpKind.REDUCE_SUM, Phase.BACKWARD, [dy], [g],
                          {"N": math.prod(y_shape), "R": math.prod(self.shape(t))}, forward_op=name)
                self.contribute(t, g)
        elif kind is OpKind.MUL:
            for i, t in enumerate(op.inputs):
                if wants[i]:
                    g = self.gradient_name(t, op, i)
                    self.emit(f"{name}.d{i}", OpKind.MUL, Phase.BACKWARD, [dy, op.inputs[1 - i]], [g],
                              dict(op.dims), forward_op=name)
                    self.contribute(t, g)
        elif kind is OpKind.CONCAT:
            grads = [(t, self.gradient_name(t, op, i)) for i, t in enumerate(op.inputs) if wants[i]]
            self.emit(f"{name}.backward", OpKind.SPLIT, Phase.BACKWARD, [dy], [g for _, g in grads],
                      dict(op.dims), dict(op.attrs), forward_op=name)
            for t, g in grads:
                self.contribute(t, g)
        elif kind is OpKind.EMBEDDING:
            table, ids = op.inputs
            if wants[0]:
                g = self.gradient_name(table, op, 0)
                self.emit(f"{name}.backward", OpKind.EMBEDDING_BACKWARD, Phase.BACKWARD, [dy, ids], [g],
                          dict(op.dims), forward_op=name)
                self.contribute(table, g)
        else:
            self._backward_single(op, dy, wants)

    def _backward_single(self, op: Op, dy: str, wants: list[bool]) -> None:
        """Ops with one backward op producing the gradients of all inputs that want one."""
        x = op.inputs[0]
        if op.kind in (OpKind.RELU, OpKind.SOFTMAX):
            reads = [op.outputs[0], dy]
        elif op.kind in (OpKind.GELU, OpKind.MAXPOOL):
            reads = [x, dy]
        elif op.kind is OpKind.AVGPOOL:
            reads = [dy]
        elif op.kind in (OpKind.BATCHNORM, OpKind.LAYERNORM):
            reads = [dy, x, op.outputs[1], op.inputs[1]]  # inputs x, gamma, ...; outputs y, stats
        else:
            raise InputError(f"{self.forward.name}: op {op.name!r}: no backward rule for kind {op.kind.value!r}")
        kind = _BACKWARD_KIND[op.kind]
        grads = [(t, self.gradient_name(t, op, i)) for i, t in enumerate(op.inputs) if wants[i]]
        if not grads:
            return
        self.emit(f"{op.name}.backward", kind, Phase.BACKWARD, reads, [g for _, g in grads], dict(op.dims),
                  dict(op.attrs), forward_op=op.name)
        for t, g in grads:
            self.contribute(t, g)

    def _backward_mac(self, op: Op, dy: str, wants: list[bool]) -> None:
        """conv: dX = transposed conv of dY with W, dW = correlation of X and dY (same iteration space);
        matmul: dA = dY B^T, dB = A^T dY. A bias gradient (sum of dY over rows) rides on the dW op."""
        a, b = op.inputs[0], op.inputs[1]
        bias = op.inputs[2] if len(op.inputs) > 2 else None
        bias_wanted = bias is not None and wants[2]
        d = op.dims
        if op.kind is OpKind.CONV:
            dx_kind, dw_kind = OpKind.CONV_DX, OpKind.CONV_DW
            dx_dims, dw_dims = dict(d), dict(d)
            dx_attrs = dw_attrs = dict(op.attrs)
        else:
            dx_kind = dw_kind = OpKind.MATMUL
            dx_dims = {"B": d["B"], "M": d["M"], "N": d["K"], "K": d["N"]}
            dw_dims = {"B": d["B"], "M": d["K"], "N": d["N"], "K": d["M"]}
            dx_attrs = {"B_BATCHED": op.attrs["B_BATCHED"]}
            dw_attrs = {"B_BATCHED": 1 if op.attrs["B_BATCHED"] else 0}
        if wants[0]:
            g = self.gradient_name(a, op, 0)
            self.emit(f"{op.name}.dx", dx_kind, Phase.BACKWARD, [dy, b], [g], dx_dims, dx_attrs, forward_op=op.name)
            self.contribute(a, g)
        dw_outputs = []
        if wants[1]:
            dw_outputs.append((b, self.gradient_name(b, op, 1)))
        if bias_wanted:
            dw_outputs.append((bias, self.gradient_name(bias, op, 2)))
        if wants[1]:
            self.emit(f"{op.name}.dw", dw_kind, Phase.BACKWARD, [a, dy], [g for _, g in dw_outputs], dw_dims, dw_attrs,
                      forward_op=op.name)
        elif bias_wanted:
            self.emit(f"{op.name}.dbias", OpKind.REDUCE_SUM, Phase.BACKWARD, [dy], [dw_outputs[0][1]],
                      {"N": math.prod(self.shape(dy)), "R": math.prod(self.shape(bias))}, forward_op=op.name)
        for t, g in dw_outputs:
            self.contribute(t, g)

    # ------------------------------------------------------------ optimizer
    def optimizer_step(self) -> None:
        """The updates not yet emitted (all of them with the updates at the end), in weight order."""
        for name, t in self.forward.tensors.items():
            if t.role is TensorRole.WEIGHT and name in self.grad_of and name not in self.updated:
                self.update(name)

    def update(self, name: str) -> None:
        """The optimizer update of weight `name`: reads the weight, its gradient and its states and
        updates weight and states in place."""
        t = self.forward.tensors[name]
        states = [self._add_tensor(f"state/{name}/{s}", t.shape, TensorRole.OPTIMIZER_STATE)
                  for s in OPTIMIZER_STATES[self.optimizer]]
        if self.precision.master_weight is not None:
            states.append(self._add_tensor(f"master/{name}", t.shape, TensorRole.MASTER_WEIGHT))
        self.emit(f"{name}.update", _UPDATE_KIND[self.optimizer], Phase.OPTIMIZER,
                  [name, self.grad_of[name], *states], [], {"N": t.numel}, updates=(name, *states))
        self.updated.add(name)


_BACKWARD_KIND = {
    OpKind.RELU: OpKind.RELU_BACKWARD,
    OpKind.GELU: OpKind.GELU_BACKWARD,
    OpKind.SOFTMAX: OpKind.SOFTMAX_BACKWARD,
    OpKind.MAXPOOL: OpKind.MAXPOOL_BACKWARD,
    OpKind.AVGPOOL: OpKind.AVGPOOL_BACKWARD,
    OpKind.BATCHNORM: OpKind.BATCHNORM_BACKWARD,
    OpKind.LAYERNORM: OpKind.LAYERNORM_BACKWARD,
}


def _input_is_differentiable(op: Op, position: int) -> bool:
    """Inputs that never get a gradient: indices (embedding, loss labels) and batch-norm running stats."""
    if op.kind is OpKind.EMBEDDING:
        return position == 0
    if op.kind is OpKind.SOFTMAX_XENT:
        return position == 0
    if op.kind is OpKind.BATCHNORM:
        return position < 3
    return True


def derive_training_graph(
    forward: Graph, optimizer: Optimizer = Optimizer.ADAM, precision: Precision = Precision(),
    updates: UpdatePlacement = UpdatePlacement.END,
) -> Graph:
    """The training graph of a forward graph ending in one softmax_xent loss: forward ops, backward
    ops in reverse order, one optimizer update per weight (after the backward pass, or right after
    the op that completes the weight's gradient: `updates`), tensors typed by `precision`, and the
    saved-for-backward map (forward values -> the backward ops reading them)."""
    losses = [op for op in forward.ops if op.kind is OpKind.SOFTMAX_XENT]
    if len(losses) != 1:
        raise InputError(f"{forward.name}: a training graph needs exactly one softmax_xent loss op, found {len(losses)}")
    if forward.ops_in_phase(Phase.BACKWARD) or forward.ops_in_phase(Phase.OPTIMIZER):
        raise InputError(f"{forward.name}: already a training graph")
    if not precision.training:
        raise InputError(f"{forward.name}: {precision.activation.value} is an inference precision, not a training one")
    state = _Derivation(forward, optimizer, precision, updates)
    for op in state.plan_gradients(losses[0]):
        state.backward(op)
    state.optimizer_step()

    forward_values = {n for n, t in forward.tensors.items() if t.role in (TensorRole.ACTIVATION, TensorRole.INPUT)}
    saved: dict[str, list[str]] = {}
    for op in state.ops:
        if op.phase is Phase.BACKWARD:
            for t in dict.fromkeys(op.inputs):
                if t in forward_values:
                    saved.setdefault(t, []).append(op.name)
    return Graph(
        name=f"{forward.name}-train-{optimizer.value}"
             + ("-updates-in-backward" if updates is UpdatePlacement.BACKWARD else ""),
        tensors=state.tensors,
        ops=tuple(state.ops),
        inputs=forward.inputs,
        outputs=forward.outputs,
        saved_for_backward={t: tuple(ops) for t, ops in saved.items()},
        accumulator=precision.accumulator,
    )


def inference_graph(forward: Graph, precision: Precision | None = None) -> Graph:
    """The forward graph without its loss (and the labels only the loss reads): one inference pass
    whose output is the loss op's input (the logits), every tensor typed by `precision` as in
    training (inputs and activations, weights; default fp32). Graphs without a loss keep all ops."""
    precision = precision or Precision()
    losses = [op for op in forward.ops if op.kind is OpKind.SOFTMAX_XENT]
    ops = tuple(op for op in forward.ops if op not in losses)
    used = {t for op in ops for t in op.inputs + op.outputs}
    if not losses:
        return replace(forward, tensors={n: replace(t, dtype=precision.dtype_for(t))
                                         for n, t in forward.tensors.items()}, accumulator=precision.accumulator)
    loss = losses[0]
    return Graph(
        name=f"{forward.name}-inference",
        tensors={n: replace(t, dtype=precision.dtype_for(t)) for n, t in forward.tensors.items() if n in used},
        ops=ops,
        inputs=tuple(t for t in forward.inputs if t in used),
        outputs=(loss.inputs[0],),
        accumulator=precision.accumulator,
    )
