"""Training graphs (forward + backward + optimizer) and their memory accounting."""

from monet_opt.model.training.derive import (
    ACCUMULATORS, OPTIMIZER_STATES, PRECISIONS, Optimizer, Precision, UpdatePlacement, derive_training_graph,
    inference_graph, precision_named,
)
from monet_opt.model.training.memory import MemoryReport, live_intervals, memory_curve, memory_report

__all__ = [
    "ACCUMULATORS", "OPTIMIZER_STATES", "PRECISIONS", "MemoryReport", "Optimizer", "Precision", "UpdatePlacement", "derive_training_graph", "inference_graph",
    "live_intervals", "memory_curve", "memory_report", "precision_named",
]
