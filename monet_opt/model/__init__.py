"""The model of a training step: workloads, training graphs, hardware and the cost model."""
