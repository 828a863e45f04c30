"""monet_opt: model and optimise the training of neural networks on heterogeneous dataflow accelerators."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monet_opt.studies.instance import Instance
    from monet_opt.studies.pipeline import InstanceResult

__version__ = "0.1.0"


def solve(instance: str | Path | Instance, workers: int = 2, progress: bool = False) -> InstanceResult:
    """Solve an instance (a file path or a loaded `Instance`) as `monet solve` does: the stages, the
    answer (`.answer`, a `Result` with the shared JSON keys), the baseline, and `.to_dict()`, the
    `result.json` of the command. InputError for a bad instance, InfeasibleError when no plan fits."""
    from monet_opt.studies.instance import Instance, load_instance
    from monet_opt.studies.pipeline import solve_instance

    loaded = instance if isinstance(instance, Instance) else load_instance(instance)
    return solve_instance(loaded, workers, progress)



def __getattr__(name: str) -> object:
    """`monet_opt.sweep`, loaded on first use: `monet_opt.studies.design_sweep.sweep` (`monet sweep` as a
    function, returning the results as a pyarrow table)."""
    if name == "sweep":
        from monet_opt.studies.design_sweep import sweep

        return sweep
    raise AttributeError(f"module 'monet_opt' has no attribute {name!r}")
