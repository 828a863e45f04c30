"""Cost-model fidelity: precisions, register files, double buffering (hand-derived values), and
agreement with ZigZag's published figures."""

import pytest

from monet_opt.cli import main
from monet_opt.errors import InputError
from monet_opt.model.cost import price
from monet_opt.model.hardware.model import WidthEnergy
from monet_opt.model.training import PRECISIONS, Optimizer, derive_training_graph, inference_graph, precision_named
from monet_opt.model.workload import DType
from monet_opt.model.workload.builder import GraphBuilder
from hw_fixtures import toy

REGISTERS = {"weight": {"size_bits": 16, "read_energy_pj_per_bit": 0.1, "write_energy_pj_per_bit": 0.1},
             "output": {"size_bits": 32, "read_energy_pj_per_bit": 0.01, "write_energy_pj_per_bit": 0.01}}


def two_by_two(registers=None, double_buffered=True, dram_bits_per_cycle=1 << 30):
    """The toy accelerator with a 2x2 (K x C) array at 0.25 pJ per int8 MAC; local memory read at
    0.5 and written at 0.25 pJ/bit."""
    pe = {"unroll": {"K": 2, "C": 2}, "mac_energy_pj": {"int8": 0.25}}
    if registers:
        pe["registers"] = registers
    core = {"name": "pe", "memory": "sram", "op_kinds": ["mac"], "pe_array": pe, "double_buffered": double_buffered}
    return toy(**{"cores.0": core, "dram.bandwidth_bits_per_cycle": dram_bits_per_cycle})


def int8(graph):
    return inference_graph(graph, PRECISIONS["int8"])


def test_an_int8_conv_by_hand():
    """Conv B=1, C=4, K=2, 2x2 outputs, 1x1 kernel at int8 (int32 partial sums) on the 2x2 array.
    Temporal loops: C 4/2 = 2, OY 2, OX 2: T = 8 cycles. Weight stationary (one element per PE):
    OY, OX innermost reuse it 4 times, 2 fetches x 4 PEs x 8 bits = 64 bits (each weight once).
    Input: no register, 8 fetches x 2 C-lanes x 8 bits = 128. Output: 8 fetches, 4 distinct per
    output lane (OY x OX), 2 lanes: partial sums (8 - 4) x 2 x 32 = 256 bits read and written, the
    final 4 x 2 at 8 bits written once (64). DRAM: x 16 B + w 8 B in (written locally: 192 bits),
    y 8 B out (read locally: 64 bits)."""
    g = GraphBuilder("conv")
    y = g.conv("conv", g.input("x", (1, 4, 2, 2)), g.weight("w", (2, 4, 1, 1)))
    graph = int8(g.build([y]))
    assert graph.accumulator is DType.INT32 and {t.dtype for t in graph.tensors.values()} == {DType.INT8}
    hw = two_by_two()
    cost = price(graph, [graph.op_by_name["conv"]], hw.core("pe"), hw)
    assert (cost.compute_cycles, cost.fill_drain_cycles) == (8, 4)
    assert cost.local_read_bits == 64 + 128 + 256 + 64 == 512
    assert cost.local_write_bits == 256 + 64 + 192 == 512
    assert (cost.dram_read_bytes, cost.dram_write_bytes) == (24, 8)
    assert cost.compute_energy_pj == 32 * 0.25  # 32 MACs at the int8 energy
    assert cost.local_energy_pj == 512 * 0.5 + 512 * 0.25
    assert cost.register_energy_pj == 0.0  # no register files declared: the stationary element is free
    partial16 = inference_graph(g.build([y]), precision_named("int8", False, "int16"))
    narrower = price(partial16, [partial16.op_by_name["conv"]], hw.core("pe"), hw)
    assert cost.local_read_bits - narrower.local_read_bits == (8 - 4) * 2 * (32 - 16)


def test_a_2x2_array_with_registers_by_hand():
    """Matmul M=4, K=4, N=2 at int8 on the 2x2 array: loops OX 4, C 4/2 = 2, T = 8. Weight register
    16 bits = 2 int8 weights per PE, output register 32 bits = 1 int32 partial sum per lane.
    Order C innermost: the output register keeps C (the reduction, 2 steps): 4 fetches = the
    4 distinct outputs per lane, so no partial sum reaches the SRAM and each output is written once
    (4 x 2 lanes x 8 bits = 64); the weight register keeps C (footprint 2 <= 2) and OX reuses it:
    8 / 4 = 2 fetches x 4 PEs x 8 bits = 64. Input: no register, 8 x 2 lanes x 8 bits = 128.
    (OX innermost instead: weights 64, partial sums (8 - 4) x 2 x 32 = 256 read and 320 written:
    more energy.) DRAM: x 16 B + w 8 B in (192 bits written), y 8 B out (64 bits read).
    Registers: weights read by 4 multipliers x 8 cycles and filled 2 x 4 times at 8 bits, 0.1 pJ/bit:
    (32 + 8) x 8 x 0.1 = 32 pJ; partial sums read and written 8 x 2 lanes at 32 bits, 0.01 pJ/bit
    each way: 512 x 0.02 = 10.24 pJ."""
    g = GraphBuilder("mm")
    y = g.matmul("mm", g.input("x", (4, 4)), g.weight("w", (4, 2)))
    graph = int8(g.build([y]))
    op = graph.op_by_name["mm"]
    with_registers, without = (price(graph, [op], hw.core("pe"), hw)
                               for hw in (two_by_two(REGISTERS), two_by_two()))
    assert with_registers.compute_cycles == 8
    assert with_registers.local_read_bits == 64 + 128 + 64 == 256
    assert with_registers.local_write_bits == 64 + 192 == 256
    assert with_registers.register_energy_pj == pytest.approx(32 + 10.24)
    assert with_registers.compute_energy_pj == 32 * 0.25
    # Without register files the weight-stationary element is all a PE holds: OX innermost reuses
    # it (64 bits), partial sums 256 read, 256 + 64 written.
    assert without.local_read_bits == 64 + 128 + 256 + 64 == 512
    assert without.local_write_bits == 320 + 192 == 512
    assert without.register_energy_pj == 0.0
    assert with_registers.energy_pj == without.energy_pj - 256 * 0.5 - 256 * 0.25 + 42.24


def test_a_layer_without_double_buffering_loads_its_first_tile_before_computing():
    """Matmul M = K = N = 16 in fp32 on the 2x2 array, DRAM at 64 bits/cycle: T = 16 x 8 x 8 = 1024
    cycles; DRAM 3 x 1024 B = 384 cycles. Weights are stationary and read once; the input is read
    once per K tile (8 times), so it is held in local memory: without double buffering its 1024 B
    arrive first (128 cycles). Double-buffered: max(1024, 384) + fill 4 = 1028; not: 128 +
    max(1024, 384 - 128) + 4 = 1156."""
    g = GraphBuilder("mm")
    y = g.matmul("mm", g.input("x", (16, 16)), g.weight("w", (16, 16)))
    graph = g.build([y])
    op = graph.op_by_name["mm"]
    overlapped = price(graph, [op], two_by_two(dram_bits_per_cycle=64).core("pe"), two_by_two(dram_bits_per_cycle=64))
    hw = two_by_two(double_buffered=False, dram_bits_per_cycle=64)
    serial = price(graph, [op], hw.core("pe"), hw)
    assert (overlapped.compute_cycles, overlapped.dram_cycles) == (1024, 384)
    assert (overlapped.preload_cycles, overlapped.latency_cycles) == (0, 1028)
    assert (serial.preload_cycles, serial.latency_cycles) == (128, 1156)
    assert serial.energy_pj == overlapped.energy_pj


def test_energy_per_operation_scales_with_width_by_the_documented_rule():
    mac = WidthEnergy(0.0, ((DType.INT8, 0.25), (DType.BF16, 1.5)), exponent=2)
    assert mac.pj(DType.INT8) == 0.25 and mac.pj(DType.BF16) == 1.5
    assert mac.pj(DType.FP32) == 1.5 * 4  # nearest listed width 16: (32 / 16)^2
    assert mac.pj(DType.FP8_E4M3) == 0.25 and mac.pj(DType.INT16) == 1.5  # listed widths 8 and 16
    assert WidthEnergy(0.1, (), exponent=1).pj(DType.FP32) == 0.1  # one number: every type alike
    assert WidthEnergy(0.0, ((DType.INT8, 0.1),), exponent=1).pj(DType.FP32) == pytest.approx(0.4)
    g = GraphBuilder("mm")
    y = g.matmul("mm", g.input("x", (4, 4)), g.weight("w", (4, 2)))
    fp32 = g.build([y])
    hw = two_by_two()
    assert price(fp32, [fp32.op_by_name["mm"]], hw.core("pe"), hw).compute_energy_pj == 32 * 0.25 * 16


def test_int8_inference_moves_a_quarter_of_the_fp32_dram_bytes():
    """On layers with compulsory traffic only (every operand fits the core's memory) int8 moves
    exactly a quarter of the fp32 bytes, and `--precision` changes the figures of both modes."""
    from monet_opt.model.hardware import load_accelerator
    from monet_opt.model.workload import builtin_forward_graph

    forward = builtin_forward_graph("resnet18-cifar")
    fp32, quantised = inference_graph(forward), inference_graph(forward, PRECISIONS["int8"])
    hw = load_accelerator("edge-tpu-quad")
    for name in ("conv1", "layer1.0.conv1", "fc"):
        costs = [price(g, [g.op_by_name[name]], hw.core("tpu0"), hw) for g in (fp32, quantised)]
        assert costs[0].tiles == costs[1].tiles == 1
        assert costs[1].dram_read_bytes * 4 == costs[0].dram_read_bytes
        assert costs[1].dram_write_bytes * 4 == costs[0].dram_write_bytes
        assert costs[1].compute_energy_pj * 16 == pytest.approx(costs[0].compute_energy_pj)  # 0.04 vs 0.64 pJ


def test_training_precisions_type_every_role():
    from monet_opt.model.workload import builtin_forward_graph
    from monet_opt.model.workload.ir import TensorRole

    forward = builtin_forward_graph("gpt2-mini")
    graph = derive_training_graph(forward, Optimizer.ADAM, PRECISIONS["fp8-mixed"])
    by_role = {}
    for t in graph.tensors.values():
        if t.dtype.is_float and t.role is not TensorRole.BUFFER:
            by_role.setdefault(t.role, set()).add(t.dtype)
    assert by_role[TensorRole.ACTIVATION] == {DType.FP8_E4M3} and by_role[TensorRole.WEIGHT] == {DType.FP8_E4M3}
    assert by_role[TensorRole.GRADIENT] == {DType.BF16} and by_role[TensorRole.WEIGHT_GRAD] == {DType.BF16}
    assert by_role[TensorRole.MASTER_WEIGHT] == by_role[TensorRole.OPTIMIZER_STATE] == {DType.FP32}
    assert graph.accumulator is DType.FP32
    fp16 = derive_training_graph(forward, Optimizer.ADAM, PRECISIONS["fp16-mixed"])
    assert {t.dtype for t in fp16.tensors.values() if t.role is TensorRole.WEIGHT_GRAD} == {DType.FP32}


@pytest.mark.parametrize("name, training, accumulator, message", [
    ("int8", True, None, "precision 'int8' is for inference; a training step takes fp32, bf16-mixed"),
    ("int4", False, None, "precision 'int4' is unknown"),
    ("int8", False, "fp32", "partial-sum type 'fp32' does not suit int8 operands"),
    ("bf16", False, "int32", "partial-sum type 'int32' does not suit bf16 operands"),
    ("fp32", False, "fp16", "partial-sum type 'fp16' does not suit fp32 operands"),
])
def test_unknown_and_contradictory_precisions_are_refused(name, training, accumulator, message):
    with pytest.raises(InputError, match=message):
        precision_named(name, training, accumulator)


def test_the_cli_refuses_an_inference_precision_in_training(capsys):
    code = main(["evaluate", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--precision", "int8"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "precision 'int8' is for inference" in err


# ZigZag's own pinned result (KULeuven-MICAS/zigzag, tests/main/test_origin/test_tpu_like.py):
# resnet18.onnx (224 x 224, batch 1; 8-bit operands, 16-bit partial sums, the ONNX parser's
# defaults) on tpu_like: energy 1,871,436,380.66 pJ, latency 3,703,960.5 cycles, conv and gemm layers.
ZIGZAG_ENERGY_PJ = 1_871_436_380.66
ZIGZAG_LATENCY_CYCLES = 3_703_960.5


def test_resnet18_on_zigzags_tpu_like_agrees_with_zigzag_within_20_percent():
    from monet_opt.model.hardware import load_accelerator
    from monet_opt.model.workload import load_forward_graph
    from monet_opt.model.workload.ir import MAC_KINDS

    forward = load_forward_graph("resnet18", batch=1, image_size=224, num_classes=1000)
    graph = inference_graph(forward, precision_named("int8", False, "int16"))
    hw = load_accelerator("zigzag-tpu-like")
    costs = [price(graph, [op], hw.core("tpu"), hw) for op in graph.ops if op.kind in MAC_KINDS]
    assert len(costs) == 21  # 20 convolutions (3 of them downsample) and the classifier
    cycles = sum(c.latency_cycles for c in costs)
    energy = sum(c.energy_pj for c in costs)
    assert 0.8 <= cycles / ZIGZAG_LATENCY_CYCLES <= 1.2, cycles / ZIGZAG_LATENCY_CYCLES
    assert 0.8 <= energy / ZIGZAG_ENERGY_PJ <= 1.2, energy / ZIGZAG_ENERGY_PJ


def test_a_fused_3x3_convolution_keeps_its_halo_rows_between_tiles():
    """Conv 1x1 (x -> y) fused with conv 3x3, padding 1 (y -> z), fp32, 4 channels of 8 x 8: the
    3x3 window makes consecutive tiles share 2 rows of y = 2 x 4 channels x 8 x 4 B = 256 B.
    Weights 64 + 576 = 640 B stay; x, y, z (1024 B each) are divided among n tiles. In 1664 B:
    without a halo n = 3 would fit (640 + 1024); with it n = 3 needs 640 + 256 + 1024 = 1920, and
    n = 4 needs 640 + 256 + 768 = 1664: four tiles, the memory exactly full."""
    from monet_opt.model.cost.model import halo_bytes

    g = GraphBuilder("pair")
    y = g.conv("a", g.input("x", (1, 4, 8, 8)), g.weight("w", (4, 4, 1, 1)))
    z = g.conv("b", y, g.weight("w2", (4, 4, 3, 3)), padding=(1, 1, 1, 1))
    graph = g.build([z])
    assert halo_bytes(graph, graph.op_by_name["b"]) == 256 and halo_bytes(graph, graph.op_by_name["a"]) == 0
    hw = toy(**{"memories.0.capacity_bytes": 1664})
    cost = price(graph, [graph.op_by_name["a"], graph.op_by_name["b"]], hw.core("pe"), hw)
    assert (cost.tiles, cost.working_set_bytes) == (4, 1664)
    roomy = toy(**{"memories.0.capacity_bytes": 4096})  # everything fits in one tile: no halo to keep
    one = price(graph, [graph.op_by_name["a"], graph.op_by_name["b"]], roomy.core("pe"), roomy)
    assert (one.tiles, one.working_set_bytes) == (1, 640 + 3 * 1024)
