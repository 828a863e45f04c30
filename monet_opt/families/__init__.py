"""The decision families, one folder each (problem, family and its methods), and the registry of
them all (`default_registry`). The families are imported when the registry is built, so that
commands that solve nothing never load the solvers."""

from __future__ import annotations

from monet_opt.solving.registry import Registry


def default_registry() -> Registry:
    """Every family of monet_opt, one line each (with the `optimise:` key it decides, if any)."""
    from monet_opt.families.allocation.family import ALLOCATION
    from monet_opt.families.checkpoint.family import CHECKPOINT
    from monet_opt.families.fusion.family import FUSION
    from monet_opt.families.fusion_checkpoint.family import FUSION_CHECKPOINT
    from monet_opt.families.plan.family import PLAN
    from monet_opt.families.remat.family import REMAT

    return (Registry()
            .with_family(REMAT)
            .with_family(CHECKPOINT, decision="checkpointing")
            .with_family(ALLOCATION, decision="allocation")
            .with_family(FUSION, decision="fusion")
            .with_family(FUSION_CHECKPOINT)
            .with_family(PLAN))
