"""Allocation and scheduling of ops on cores: instances, the family and its methods."""

from monet_opt.families.allocation.family import (
    ALLOCATION, AllocationAnswer, AllocationGoal, AllocationInstance, allocation_family, solve_allocation,
)
from monet_opt.families.allocation.problem import from_training, load_instance

__all__ = ["ALLOCATION", "AllocationAnswer", "AllocationGoal", "AllocationInstance", "allocation_family",
           "from_training", "load_instance", "solve_allocation"]
