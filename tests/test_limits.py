"""The physical limits (`model/limits.py`): hand-computed on a toy step, published counts on ResNet-18."""

from plan_reference import seven_op_step, three_cores

from monet_opt.model.hardware import load_accelerator
from monet_opt.model.limits import physical_limits
from monet_opt.model.training import Optimizer, derive_training_graph, inference_graph, precision_named
from monet_opt.model.workload import load_forward_graph

RESNET18_PARAMS = 11_689_512  # torchvision's resnet18
RESNET18_MACS = 1_814_073_344  # at 224 x 224, batch 1 (1.8 GMACs)


def test_the_toy_step_is_vector_bound_and_moves_676_bytes_it_cannot_avoid():
    """seven_op_step (fp32, SGD) on three_cores. Compute: the vector work runs only on vec (16
    lanes): GELU 128 x 8, the loss and its backward 128 x 5 each, GELU's backward 128 x 14, the SGD
    update 64 x 2 = 4,224 operations, 264 cycles; the 1,024 MACs of fc1 and fc1.dw need half a
    cycle each on pe (1,024 MACs per cycle), 0.5 cycles on pe and pe2 together; with all three
    cores (264 + 1) / 3 = 88.3: vec alone binds at 264. DRAM: x (128 B) and the labels (32 B) read,
    w1 read and written (2 x 256 B), the loss written (4 B): 676 B; the gradients are not counted.
    One DRAM link of 256 bits per cycle: ceil(676 x 8 / 256) = 22 cycles."""
    limits = physical_limits(seven_op_step(), three_cores())
    assert (limits.compute_cycles, limits.compute_cores, limits.compute_core_cycles) == (264, ("vec",), 264.0)
    assert (limits.compulsory_dram_bytes, limits.dram_bits_per_cycle, limits.dram_cycles) == (676, 256, 22)
    assert limits.binding == "compute" and limits.ratios(528) == {"dram": 24.0, "compute": 2.0}
    assert limits.line(528).startswith("at 2.00x the compute bound (264 cycles: the work only vec can run")


def test_resnet18_on_edge_tpu_quad_meets_the_bounds_its_issue_quotes():
    """ResNet-18 (224, batch 1) on edge-tpu-quad (four 32 x 32 arrays, one DRAM link of 64 bits per
    cycle). Inference in int8: 1,814,073,344 MACs over 4,096 PEs = 442,889 cycles; DRAM: the int8
    weights (one byte per parameter), the 150,528-byte image, the batch-norm statistics (9,600 fp32
    values, 38,400 B) and the 1,000 logits: 11,879,440 B, 1,484,930 cycles. Training in fp32 with
    Adam: weights and both moments read and written once, 24 B per parameter (280,548,288 B), the
    602,112-byte image, the statistics, the int64 label and the loss: 281,188,812 B, 35,148,602
    cycles."""
    forward = load_forward_graph("resnet18", batch=1, image_size=224)
    hw = load_accelerator("edge-tpu-quad")
    inference = physical_limits(inference_graph(forward, precision_named("int8", training=False)), hw)
    assert inference.compute_cycles == RESNET18_MACS // 4096 == 442_889
    assert inference.compute_cores == ("tpu0", "tpu1", "tpu2", "tpu3")
    assert inference.compulsory_dram_bytes == RESNET18_PARAMS + 150_528 + 38_400 + 1_000
    assert (inference.dram_bits_per_cycle, inference.dram_cycles) == (64, 1_484_930)
    training = physical_limits(derive_training_graph(forward, Optimizer.ADAM), hw)
    assert training.compulsory_dram_bytes == 24 * RESNET18_PARAMS + 602_112 + 38_400 + 8 + 4
    assert training.dram_cycles == 35_148_602 and training.binding == "DRAM"
