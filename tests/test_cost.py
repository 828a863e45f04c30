"""The cost model against hand-computed values, and its monotonicity properties."""

from hypothesis import given, settings
from hypothesis import strategies as st

from monet_opt.model.cost import Cost, CostTable, Unavailable, price
from monet_opt.model.training import derive_training_graph
from monet_opt.model.workload import DType, OpKind
from monet_opt.model.workload.builder import GraphBuilder
from hw_fixtures import toy


def matmul_graph(m, k, n, relu_chain=False):
    g = GraphBuilder("mm")
    y = g.matmul("mm", g.input("x", (m, k)), g.weight("w", (k, n)))
    if relu_chain:
        y = g.matmul("mm2", g.relu("relu", y), g.weight("w2", (n, n)))
    return g.build([y])


def test_matmul_filling_a_32x32_array_takes_macs_over_1024_plus_fill_drain():
    hw = toy()  # bandwidths of 2^30 bits/cycle: compute-bound
    g = matmul_graph(64, 32, 32)
    cost = price(g, [g.op_by_name["mm"]], hw.core("pe"), hw)
    assert cost.compute_cycles == 64 * 32 * 32 // 1024 == 64
    assert cost.fill_drain_cycles == 32 + 32  # documented: sum of the unrolled lanes
    assert cost.latency_cycles == 128 and cost.utilisation == 1.0
    # Hand count (bits): W stationary, read once: 32*32*4*8 = 32768. A: 64 cycles x 32 C-lanes x 32 bits
    # = 65536. Output: the whole reduction (C = 32) is spatial, so each of the 64 x 32 outputs is
    # complete in its cycle and written once, never read back: 65536 written. DRAM fills A + W
    # (12288 B) written locally = 98304; the output (8192 B) read out = 65536.
    assert cost.local_read_bits == 32768 + 65536 + 65536
    assert cost.local_write_bits == 65536 + 98304
    assert (cost.dram_read_bytes, cost.dram_write_bytes) == (12288, 8192)
    assert cost.compute_energy_pj == 65536 * 1.0
    assert cost.local_energy_pj == 163840 * 0.5 + 163840 * 0.25
    assert cost.dram_energy_pj == 20480 * 8 * 10.0 and cost.dram_link_energy_pj == 20480 * 8 * 2.0
    assert cost.energy_pj == 65536 + 122880 + 1638400 + 327680  # = 2,154,496 pJ
    half = price(matmul_graph(64, 32, 16), [matmul_graph(64, 32, 16).op_by_name["mm"]], hw.core("pe"), hw)
    assert half.compute_cycles == 64 and half.utilisation == 0.5  # N = 16 fills half of K's 32 lanes


def test_layer_exceeding_local_memory_moves_the_tiling_formula_bytes():
    g = matmul_graph(256, 64, 512)  # A 65,536 B, W 131,072 B, output 524,288 B
    small = toy(**{"memories.0.capacity_bytes": 65536})  # M/2 = 32,768 B: n_A = 2, n_B = 4, n_O = 16
    cost = price(g, [g.op_by_name["mm"]], small.core("pe"), small)
    # B resident: 131072 + 4*65536 = 393216; A resident: 65536 + 2*131072 = 327680;
    # output resident: min(65536 + 16*131072, 131072 + 16*65536) = 1179648 -> A resident, 2 tiles
    assert (cost.dram_read_bytes, cost.tiles) == (327680, 2)
    assert cost.dram_write_bytes == 524288
    big = toy()
    assert price(g, [g.op_by_name["mm"]], big.core("pe"), big).dram_read_bytes == 65536 + 131072


def test_dram_bound_latency():
    hw = toy(**{"dram.bandwidth_bits_per_cycle": 64})
    g = matmul_graph(64, 32, 32)
    cost = price(g, [g.op_by_name["mm"]], hw.core("pe"), hw)
    assert cost.dram_cycles == 20480 * 8 // 64 and cost.latency_cycles == 2560 + 64


def test_vector_op_and_ineligible_pairs():
    g = GraphBuilder("v")
    y = g.relu("relu", g.input("x", (1000,)))
    graph = g.build([y])
    hw = toy()
    cost = price(graph, [graph.op_by_name["relu"]], hw.core("vec"), hw)
    assert cost.compute_cycles == 63 and cost.fill_drain_cycles == 0  # ceil(1000 / 16 lanes)
    assert cost.compute_energy_pj == 1000 * 0.5
    refused = price(graph, [graph.op_by_name["relu"]], hw.core("pe"), hw)
    assert isinstance(refused, Unavailable) and "cannot run relu" in refused.reason
    table = CostTable(graph, hw)
    assert table.eligible_cores(("relu",)) == ["vec"]


def test_fused_stack_keeps_intermediates_on_chip():
    hw = toy(**{"cores.0.op_kinds": ["mac"], "cores.1.op_kinds": ["vector", "mac"]})
    g = matmul_graph(64, 32, 32, relu_chain=True)
    ops = [g.op_by_name[n] for n in ("mm", "relu", "mm2")]
    fused = price(g, ops, hw.core("vec"), hw)
    alone = [price(g, [op], hw.core("vec"), hw) for op in ops]
    intermediates = 2 * (64 * 32 * 4)  # mm and relu outputs, 8 KiB each: written and read back unfused
    assert sum(c.dram_bytes for c in alone) - fused.dram_bytes == 2 * intermediates
    assert fused.compute_cycles == sum(c.compute_cycles for c in alone)
    tight = toy(**{"cores.1.op_kinds": ["vector", "mac"], "memories.1.capacity_bytes": 4096 + 100})
    # weights w (4 KiB) + w2 (4 KiB) alone exceed the memory: no tiling makes it fit
    refused = price(g, ops, tight.core("vec"), tight)
    assert isinstance(refused, Unavailable) and "per tile" in refused.reason


def test_training_table_prices_every_pair_with_energy_equal_to_its_breakdown():
    from monet_opt.model.hardware import load_accelerator
    from monet_opt.model.workload import builtin_forward_graph
    g = derive_training_graph(builtin_forward_graph("resnet18-cifar"))
    hw = load_accelerator("edge-tpu-quad")
    table = CostTable(g, hw).all_ops()
    assert len(table) == len(g.ops) * len(hw.cores)
    for (op, core), cost in table.items():
        if isinstance(cost, Cost):
            parts = (cost.compute_energy_pj + cost.register_energy_pj + cost.local_energy_pj + cost.dram_energy_pj
                     + cost.dram_link_energy_pj)
            assert cost.energy_pj == parts and cost.latency_cycles >= max(cost.compute_cycles, cost.dram_cycles)
        else:
            assert not hw.core(core).can_run(g.op_by_name[op].kind)
    conv = g.op_by_name["layer1.0.conv1"]
    assert isinstance(table[(conv.name, "tpu0")], Cost) and isinstance(table[(conv.name, "simd")], Unavailable)


ops_strategy = st.tuples(
    st.sampled_from(["matmul", "conv", "relu"]), st.integers(1, 96), st.integers(1, 96), st.integers(1, 96),
)


def one_op_graph(kind, a, b, c):
    g = GraphBuilder("one")
    if kind == "matmul":
        y = g.matmul("op", g.input("x", (a, b)), g.weight("w", (b, c)))
    elif kind == "conv":
        y = g.conv("op", g.input("x", (1, b, 8, 8)), g.weight("w", (c, b, 3, 3)), padding=(1, 1, 1, 1))
    else:
        y = g.relu("op", g.input("x", (a, b, c)))
    return g.build([y])


@settings(max_examples=80, deadline=None)
@given(ops_strategy, st.integers(1, 64), st.sampled_from(["memories", "dram", "links"]))
def test_more_bandwidth_never_increases_latency(op_shape, factor, which):
    graph = one_op_graph(*op_shape)
    op = graph.op_by_name["op"]
    base = {"memories.0.bandwidth_bits_per_cycle": 256, "memories.1.bandwidth_bits_per_cycle": 128,
            "dram.bandwidth_bits_per_cycle": 64, "links.1.bandwidth_bits_per_cycle": 64,
            "memories.0.capacity_bytes": 16384}
    faster = dict(base)
    for key in base:
        if key.startswith(which) and "bandwidth" in key:
            faster[key] = base[key] * factor
    core = "vec" if op.kind is OpKind.RELU else "pe"
    slow_hw, fast_hw = toy(**base), toy(**faster)
    assert price(graph, [op], fast_hw.core(core), fast_hw).latency_cycles <= \
        price(graph, [op], slow_hw.core(core), slow_hw).latency_cycles


@settings(max_examples=80, deadline=None)
@given(ops_strategy, st.integers(256, 1 << 16), st.integers(1, 64))
def test_larger_memory_never_increases_dram_traffic(op_shape, capacity, factor):
    graph = one_op_graph(*op_shape)
    op = graph.op_by_name["op"]
    core, index = ("vec", 1) if op.kind is OpKind.RELU else ("pe", 0)
    small = toy(**{f"memories.{index}.capacity_bytes": capacity})
    large = toy(**{f"memories.{index}.capacity_bytes": capacity * factor})
    assert price(graph, [op], large.core(core), large).dram_bytes <= price(graph, [op], small.core(core), small).dram_bytes


def test_precision_changes_bytes_not_macs():
    from monet_opt.model.training import PRECISIONS
    g = GraphBuilder("p")
    x = g.matmul("mm", g.input("x", (64, 32)), g.weight("w", (32, 32)))
    graph = derive_training_graph(g.build([g.softmax_xent("loss", x, g.input("y", (64,), DType.INT64))]),
                                  precision=PRECISIONS["bf16-mixed"])
    hw = toy()
    cost = price(graph, [graph.op_by_name["mm"]], hw.core("pe"), hw)
    assert cost.dram_read_bytes == (64 * 32 + 32 * 32) * 2 and cost.compute_cycles == 64


def test_best_tile_count_equals_exhaustive_search():
    """The interval search of `best_tile_count` against every tile count, on random pipelines."""
    import random

    from monet_opt.model.cost.model import best_tile_count

    rng = random.Random(7)
    for _ in range(2000):
        ramp, fill = rng.choice([0, rng.randint(1, 50), rng.randint(1, 10 ** 6)]), rng.randint(0, 300)
        fewest = rng.randint(1, 40)
        most = fewest + rng.randint(0, 3000)
        expected = min(range(fewest, most + 1), key=lambda n: (-(-ramp // n) + fill * n, n))
        assert best_tile_count(ramp, fill, fewest, most) == expected, (ramp, fill, fewest, most)


def test_separate_read_and_write_ports_and_dram_energies_by_hand():
    """ReLU of 64x32 fp32 on the vector unit, input from DRAM, output to DRAM. Its memory reads the
    input for the op and the output for DRAM (2 x 65,536 bits) and writes the input from DRAM and the
    output (2 x 65,536 bits): over one shared 192-bit port ceil(262,144 / 192) = 1,366 cycles; over a
    128-bit read port and a separate 64-bit write port max(131,072 / 128, 131,072 / 64) = 2,048. DRAM
    reads 8,192 bytes at 10 pJ/bit and writes 8,192 at 12 pJ/bit."""
    import copy

    from hw_fixtures import BASE
    from monet_opt.model.hardware import accelerator_from_dict
    from monet_opt.model.workload.builder import GraphBuilder

    g = GraphBuilder("relu")
    graph = g.build([g.relu("relu", g.input("x", (64, 32)))])
    data = copy.deepcopy(BASE)
    data["memories"][1]["bandwidth_bits_per_cycle"] = 192
    shared = price(graph, [graph.op_by_name["relu"]], accelerator_from_dict(data, "shared.yaml").core("vec"),
                   accelerator_from_dict(data, "shared.yaml"))
    del data["memories"][1]["bandwidth_bits_per_cycle"]
    data["memories"][1] |= {"read_bandwidth_bits_per_cycle": 128, "write_bandwidth_bits_per_cycle": 64}
    data["dram"] = {"capacity_bytes": 1 << 40, "bandwidth_bits_per_cycle": 1 << 30, "read_energy_pj_per_bit": 10.0,
                    "write_energy_pj_per_bit": 12.0}
    hw = accelerator_from_dict(data, "ports.yaml")
    cost = price(graph, [graph.op_by_name["relu"]], hw.core("vec"), hw)
    assert shared.local_cycles == 1366 and cost.local_cycles == 2048
    assert cost.latency_cycles == 2048 + cost.fill_drain_cycles and cost.compute_cycles == 2048 // 16
    assert cost.dram_energy_pj == 8192 * 8 * 10.0 + 8192 * 8 * 12.0


def test_inference_honours_the_precision():
    """ResNet-18 CIFAR inference at bf16-mixed: every float tensor but the batch-norm buffers is bf16,
    and a layer whose operands all fit its core's memory (compulsory traffic only) moves exactly half
    the DRAM bytes of fp32."""
    from monet_opt.model.hardware import load_accelerator
    from monet_opt.model.training import PRECISIONS, inference_graph
    from monet_opt.model.workload import builtin_forward_graph
    from monet_opt.model.workload.ir import DType

    forward = builtin_forward_graph("resnet18-cifar")
    fp32, bf16 = inference_graph(forward), inference_graph(forward, PRECISIONS["bf16-mixed"])
    from monet_opt.model.workload.ir import TensorRole

    # batch-norm running statistics (buffers) stay fp32, as in training
    assert {t.dtype for t in bf16.tensors.values() if t.dtype.is_float and t.role is not TensorRole.BUFFER} == {
        DType.BF16}
    hw = load_accelerator("edge-tpu-quad")
    for name in ("conv1", "fc"):
        costs = [price(g, [g.op_by_name[name]], hw.core("tpu0"), hw) for g in (fp32, bf16)]
        assert costs[0].tiles == costs[1].tiles == 1
        assert costs[1].dram_read_bytes * 2 == costs[0].dram_read_bytes
        assert costs[1].dram_write_bytes * 2 == costs[0].dram_write_bytes


def test_strided_and_dilated_convolutions_read_only_the_pixels_under_a_tap():
    from monet_opt.model.cost.model import read_bytes

    g = GraphBuilder("ds")
    y = g.conv("ds", g.input("x", (1, 4, 8, 8)), g.weight("w", (8, 4, 1, 1)), stride=(2, 2))
    z = g.conv("dil", g.input("x2", (1, 4, 7, 7)), g.weight("w2", (4, 4, 3, 3)), stride=(3, 3), dilation=(2, 2))
    graph = g.build([y, z])
    hw = toy()
    ds = graph.op_by_name["ds"]
    assert read_bytes(graph, ds, "x") == 4 * 4 * 4 * 4  # rows and columns 0, 2, 4, 6 of 8: a quarter of 1024 B
    cost = price(graph, [ds], hw.core("pe"), hw)
    assert cost.dram_read_bytes == 256 + 8 * 4 * 4 and cost.dram_write_bytes == 8 * 4 * 4 * 4
    # one output row and column (OY = (7 - 4 - 1) // 3 + 1 = 1), taps 0, 2, 4: 3 of 7 rows and columns
    assert read_bytes(graph, graph.op_by_name["dil"], "x2") == 4 * 3 * 3 * 4
    assert read_bytes(graph, graph.op_by_name["dil"], "w2") == 4 * 4 * 9 * 4
    from monet_opt.model.workload import builtin_forward_graph

    training = derive_training_graph(builtin_forward_graph("resnet18"))
    for name in ("layer2.0.downsample.0", "layer2.0.downsample.0.dw"):  # 1x1, stride 2 on 64 x 56 x 56 fp32
        op = training.op_by_name[name]
        assert training.tensors[op.inputs[0]].size_bytes == 64 * 56 * 56 * 4
        assert read_bytes(training, op, op.inputs[0]) == 64 * 28 * 28 * 4
