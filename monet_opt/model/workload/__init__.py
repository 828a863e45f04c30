"""Workloads: the graph IR, built-in models, ONNX import and the JSON export."""

from __future__ import annotations

from pathlib import Path

from monet_opt.errors import InputError
from monet_opt.model.workload.ir import DType, Graph, Op, OpKind, Phase, Tensor, TensorRole
from monet_opt.model.workload.models import (
    BUILTIN_MODELS, GPT2_PRESETS, RESNET_PRESETS, GPTConfig, ResNetConfig, builtin_forward_graph,
)


def import_onnx(path: str | Path, *, batch: int | None = None, seq_len: int | None = None) -> Graph:
    """`onnx_import.import_onnx`, imported when first used (the onnx package takes a second to load)."""
    from monet_opt.model.workload.onnx_import import import_onnx as load

    return load(path, batch=batch, seq_len=seq_len)


def load_forward_graph(
    source: str,
    *,
    batch: int | None = None,
    seq_len: int | None = None,
    image_size: int | None = None,
    num_classes: int | None = None,
) -> Graph:
    """Forward graph (with loss) of a built-in model name or an .onnx file path."""
    for key, value in (("batch", batch), ("seq_len", seq_len), ("image_size", image_size), ("num_classes", num_classes)):
        if value is not None and value <= 0:
            raise InputError(f"{source}: {key} must be positive, got {value}")
    if Path(source).is_dir():
        raise InputError(f"{source}: is a directory, not an ONNX file or a built-in model")
    if source.endswith(".onnx") or Path(source).is_file():
        if image_size is not None or num_classes is not None:
            raise InputError(f"{source}: --image-size and --classes do not apply to an ONNX model (its shapes are fixed)")
        return import_onnx(source, batch=batch, seq_len=seq_len)
    return builtin_forward_graph(source, batch=batch, seq_len=seq_len, image_size=image_size, num_classes=num_classes)


__all__ = [
    "BUILTIN_MODELS", "GPT2_PRESETS", "RESNET_PRESETS", "DType", "GPTConfig", "Graph", "Op", "OpKind", "Phase",
    "ResNetConfig", "Tensor", "TensorRole", "builtin_forward_graph", "import_onnx", "load_forward_graph",
]
