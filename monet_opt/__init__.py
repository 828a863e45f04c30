"""monet_opt: model and optimise the training of neural networks on heterogeneous dataflow accelerators."""

__version__ = "0.1.0"
