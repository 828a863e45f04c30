"""The numbers `monet workload show` prints: parameters, MACs, op counts and memory classes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from monet_opt.model.training.derive import UpdatePlacement
from monet_opt.model.training.memory import memory_report
from monet_opt.model.workload.ir import Graph, Phase


def workload_summary(forward: Graph, training: Graph, updates: UpdatePlacement = UpdatePlacement.END,
                     store_all_peaks_by_updates: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Summary of a training graph (and the forward graph it came from, its updates placed as
    `updates`) as a JSON-ready dict; `store_all_peaks_by_updates`: the store-all peak of the same
    step with the updates at the end and in the backward pass.

    Byte counts follow `monet_opt.model.training.memory`; MACs are `Op.macs` summed per phase.
    """
    mem = memory_report(training)
    return {
        "name": training.name,
        "params": training.params,
        "forward_macs": training.macs(Phase.FORWARD),
        "backward_macs": training.macs(Phase.BACKWARD),
        "training_macs": training.macs(),
        "training_vector_ops": sum(op.vector_ops for op in training.ops),
        "forward_ops": len(forward.ops),
        "backward_ops": len(training.ops_in_phase(Phase.BACKWARD)),
        "optimizer_ops": len(training.ops_in_phase(Phase.OPTIMIZER)),
        "training_ops": len(training.ops),
        "ops_by_kind": dict(sorted(Counter(op.kind.value for op in training.ops).items())),
        "static_bytes": mem.static_bytes,
        "static_bytes_by_role": mem.static_bytes_by_role,
        "saved_tensors": len(training.saved_for_backward),
        "saved_activation_bytes": mem.saved_activation_bytes,
        "saved_input_bytes": mem.saved_input_bytes,
        "store_all_peak_bytes": mem.store_all_peak_bytes,
        "store_all_peak_op": mem.peak_op,
        "updates": updates.value,
        "store_all_peak_bytes_by_updates": dict(store_all_peaks_by_updates or {updates.value: mem.store_all_peak_bytes}),
    }


def format_bytes(n: int) -> str:
    """Binary-prefixed size, e.g. 46758048 -> '44.59 MiB'."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.2f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    raise AssertionError("unreachable")


def format_summary(summary: dict[str, Any]) -> str:
    s = summary
    lines = [
        f"workload            {s['name']}",
        f"parameters          {s['params']:,}",
        f"MACs forward        {s['forward_macs']:,} ({s['forward_macs'] / 1e9:.3f} G)",
        f"MACs backward       {s['backward_macs']:,} ({s['backward_macs'] / 1e9:.3f} G)",
        f"MACs training step  {s['training_macs']:,} ({s['training_macs'] / max(s['forward_macs'], 1):.3f} x forward)",
        f"vector ops          {s['training_vector_ops']:,}",
        f"ops                 {s['forward_ops']} forward, {s['backward_ops']} backward, "
        f"{s['optimizer_ops']} optimizer = {s['training_ops']}",
        f"static memory       {format_bytes(s['static_bytes'])}  ("
        + ", ".join(f"{role} {format_bytes(b)}" for role, b in s["static_bytes_by_role"].items()) + ")",
        f"saved for backward  {format_bytes(s['saved_activation_bytes'])} in activations, "
        f"{format_bytes(s['saved_input_bytes'])} in inputs ({s['saved_tensors']} tensors)",
        f"store-all peak      {format_bytes(s['store_all_peak_bytes'])} (at {s['store_all_peak_op']}; optimizer "
        f"updates {'at the end' if s['updates'] == 'end' else 'in the backward pass'})",
    ]
    peaks = s["store_all_peak_bytes_by_updates"]
    if len(peaks) > 1:
        lines.append(f"  by update placement: at the end {format_bytes(peaks['end'])}, in the backward pass "
                     f"{format_bytes(peaks['backward'])} (each weight gradient freed by its update)")
    return "\n".join(lines)
