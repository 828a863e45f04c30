"""Accelerator descriptions (YAML) and the built-in library."""

from monet_opt.model.hardware.model import (
    DRAM, OP_KIND_GROUPS, Accelerator, Core, Dram, Link, Memory, accelerator_from_dict, builtin_hardware,
    load_accelerator,
)

__all__ = [
    "DRAM", "OP_KIND_GROUPS", "Accelerator", "Core", "Dram", "Link", "Memory", "accelerator_from_dict",
    "builtin_hardware", "load_accelerator",
]
