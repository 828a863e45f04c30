"""JSON form of a graph, for other tools (`monet workload export`) and for reading it back.

Format `monet_opt.graph/1`: {format, name, inputs, outputs, tensors: [{name, shape, dtype, role,
size_bytes}], ops: [{name, kind, phase, inputs, outputs, dims, attrs, updates, forward_op, macs,
vector_ops, read_bytes, write_bytes}], saved_for_backward: {tensor: [backward op, ...]}, accumulator (the
partial-sum type, when the graph has one)}. `size_bytes`, `macs`, `vector_ops`, `read_bytes` and `write_bytes`
are derived values written for convenience and ignored on reading.
"""

from __future__ import annotations

from typing import Any

from monet_opt.errors import InputError
from monet_opt.model.workload.ir import DType, Graph, Op, OpKind, Phase, Tensor, TensorRole

FORMAT = "monet_opt.graph/1"


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "name": graph.name,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "dtype": t.dtype.value, "role": t.role.value,
             "transient": t.transient, "size_bytes": t.size_bytes}
            for t in graph.tensors.values()
        ],
        "ops": [
            {"name": op.name, "kind": op.kind.value, "phase": op.phase.value, "inputs": list(op.inputs),
             "outputs": list(op.outputs), "dims": dict(op.dims), "attrs": dict(op.attrs),
             "updates": list(op.updates), "forward_op": op.forward_op, "macs": op.macs, "vector_ops": op.vector_ops,
             "read_bytes": graph.read_bytes(op), "write_bytes": graph.write_bytes(op)}
            for op in graph.ops
        ],
        "saved_for_backward": {t: list(ops) for t, ops in graph.saved_for_backward.items()},
        **({"accumulator": graph.accumulator.value} if graph.accumulator else {}),
    }


def graph_from_dict(data: Any, source: str = "graph") -> Graph:
    """Inverse of graph_to_dict; InputError naming `source` and the key path on malformed data."""

    def field(obj: Any, key: str, path: str, kind: type | tuple[type, ...]) -> Any:
        key_path = f"{path}.{key}" if path else key
        if not isinstance(obj, dict) or key not in obj:
            raise InputError(f"{source}: missing key {key_path}")
        value = obj[key]
        if not isinstance(value, kind):
            raise InputError(f"{source}: {key_path} should be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
        return value

    def enum(cls: type, value: Any, path: str) -> Any:
        try:
            return cls(value)
        except ValueError:
            raise InputError(f"{source}: {path} = {value!r} is not one of {[m.value for m in cls]}") from None

    if field(data, "format", "", str) != FORMAT:
        raise InputError(f"{source}: format {data['format']!r} is not {FORMAT!r}")
    tensors = {}
    for i, t in enumerate(field(data, "tensors", "", list)):
        p = f"tensors[{i}]"
        name = field(t, "name", p, str)
        tensors[name] = Tensor(
            name,
            tuple(int(d) for d in field(t, "shape", p, list)),
            enum(DType, field(t, "dtype", p, str), f"{p}.dtype"),
            enum(TensorRole, field(t, "role", p, str), f"{p}.role"),
            field(t, "transient", p, bool) if "transient" in t else False,
        )
    ops = []
    for i, o in enumerate(field(data, "ops", "", list)):
        p = f"ops[{i}]"
        ops.append(
            Op(
                name=field(o, "name", p, str),
                kind=enum(OpKind, field(o, "kind", p, str), f"{p}.kind"),
                phase=enum(Phase, field(o, "phase", p, str), f"{p}.phase"),
                inputs=tuple(field(o, "inputs", p, list)),
                outputs=tuple(field(o, "outputs", p, list)),
                dims={k: int(v) for k, v in field(o, "dims", p, dict).items()},
                attrs={k: int(v) for k, v in o.get("attrs", {}).items()},
                updates=tuple(o.get("updates", ())),
                forward_op=o.get("forward_op"),
            )
        )
    return Graph(
        name=field(data, "name", "", str),
        tensors=tensors,
        ops=tuple(ops),
        inputs=tuple(field(data, "inputs", "", list)),
        outputs=tuple(field(data, "outputs", "", list)),
        saved_for_backward={k: tuple(v) for k, v in data.get("saved_for_backward", {}).items()},
        accumulator=enum(DType, data["accumulator"], "accumulator") if "accumulator" in data else None,
    )
