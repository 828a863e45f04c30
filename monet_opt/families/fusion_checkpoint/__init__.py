"""Fusion and checkpointing chosen together: the `fusion_checkpoint` family (`family.py`)."""
