"""Checkpointing of training graphs priced by the cost model: the space, the family and its methods."""

from monet_opt.families.checkpoint.family import CHECKPOINT, CheckpointProblem, checkpoint_family, solve_checkpoint
from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace, CostWeights, Decisions

__all__ = ["CHECKPOINT", "CheckpointProblem", "CheckpointSpace", "CostWeights", "Decisions", "OBJECTIVES",
           "checkpoint_family", "solve_checkpoint"]
