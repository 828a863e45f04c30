"""What is built on the families: instances, the pipeline, the benchmark suite, budget and design sweeps."""
