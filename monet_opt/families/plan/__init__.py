"""The parallel memory-safe plan of a training step: cores, start times and recomputation chosen
together under the activation budget and every memory's capacity (formulations/plan.md)."""
