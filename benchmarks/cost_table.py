"""Cost-model fidelity and speed: ResNet-18 on ZigZag's tpu_like against ZigZag's pinned figures,
with the effect of each modelling term, and the time to fill whole cost tables.

Agreement: ZigZag's own test (KULeuven-MICAS/zigzag tests/main/test_origin/test_tpu_like.py) pins
resnet18.onnx (224 x 224, batch 1, 8-bit operands, 16-bit partial sums) on tpu_like at
1,871,436,380.66 pJ and 3,703,960.5 cycles (conv and gemm layers). monet_opt prices the same
layers on its `zigzag-tpu-like` entry (ZigZag's core as `monet hardware import` translates it)
one by one and sums them; each ablation row removes one term. Target: within +-20 %.

Speed targets: every (op, core) pair of a ResNet-18 (224, batch 1) training step on edge-tpu-quad
in under 0.1 s, of a GPT-2 small training step in under 1 s. The ratio column divides by the time
to derive that training graph from its forward graph, run in the same process.

    python benchmarks/cost_table.py [--repeats N] [--out benchmarks/results/cost_table.txt]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from common import emit, header, median_seconds
from monet_opt.model.cost import CostTable, price
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.hardware.model import Accelerator
from monet_opt.model.training import derive_training_graph, inference_graph, precision_named
from monet_opt.model.workload import builtin_forward_graph, load_forward_graph
from monet_opt.model.workload.ir import MAC_KINDS, Graph

ZIGZAG_ENERGY_PJ = 1_871_436_380.66
ZIGZAG_LATENCY_CYCLES = 3_703_960.5


def mac_layer_totals(graph: Graph, hw: Accelerator) -> tuple[int, float, dict[str, float]]:
    """Summed latency (cycles), energy (pJ) and energy by part of every conv / matmul on core `tpu`."""
    cycles, energy = 0, 0.0
    parts = dict.fromkeys(("compute", "registers", "local", "dram"), 0.0)
    for op in graph.ops:
        if op.kind in MAC_KINDS:
            cost = price(graph, [op], hw.core("tpu"), hw)
            cycles += cost.latency_cycles
            energy += cost.energy_pj
            parts["compute"] += cost.compute_energy_pj
            parts["registers"] += cost.register_energy_pj
            parts["local"] += cost.local_energy_pj
            parts["dram"] += cost.dram_energy_pj + cost.dram_link_energy_pj
    return cycles, energy, parts


def with_tpu(hw: Accelerator, **changes: object) -> Accelerator:
    tpu = replace(hw.core("tpu"), **changes)
    return replace(hw, cores=tuple(tpu if c.name == "tpu" else c for c in hw.cores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    forward = load_forward_graph("resnet18", batch=1, image_size=224, num_classes=1000)
    hw = load_accelerator("zigzag-tpu-like")
    int8 = inference_graph(forward, precision_named("int8", False, "int16"))
    cases = [
        ("int8, int16 partial sums (ZigZag's setting)", int8, hw),
        ("  ablation: int32 partial sums", inference_graph(forward, precision_named("int8", False)), hw),
        ("  ablation: no register files", int8, with_tpu(hw, registers={})),
        ("  ablation: double-buffered", int8, with_tpu(hw, double_buffered=True)),
        ("  ablation: fp32 operands", inference_graph(forward), hw),
    ]
    rows = [header(), "", "ResNet-18 (224, batch 1) conv + gemm layers on zigzag-tpu-like against ZigZag's pinned "
            f"figures ({ZIGZAG_LATENCY_CYCLES:,.1f} cycles, {ZIGZAG_ENERGY_PJ / 1e6:,.1f} uJ); target ratio 0.8-1.2",
            f"{'case':<46}{'cycles':>12}{'ratio':>7}{'energy [uJ]':>13}{'ratio':>7}   energy by part [uJ]"]
    for label, graph, accelerator in cases:
        cycles, energy, parts = mac_layer_totals(graph, accelerator)
        split = ", ".join(f"{k} {v / 1e6:,.1f}" for k, v in parts.items())
        rows.append(f"{label:<46}{cycles:>12,}{cycles / ZIGZAG_LATENCY_CYCLES:>7.2f}{energy / 1e6:>13,.1f}"
                    f"{energy / ZIGZAG_ENERGY_PJ:>7.2f}   {split}")
    rows += ["", "cost table of every (op, core) pair of a training step, built from scratch",
             f"{'workload':<11}{'hardware':<15}{'pairs':>7}{'table [ms]':>12}{'derive [ms]':>13}{'ratio':>7}"
             f"{'target [ms]':>13}"]
    for workload, hardware, target_ms in (("resnet18", "edge-tpu-quad", 100), ("gpt2-small", "edge-tpu-quad", 1000)):
        model = builtin_forward_graph(workload)
        graph = derive_training_graph(model)
        accelerator = load_accelerator(hardware)
        seconds = median_seconds(lambda: CostTable(graph, accelerator).all_ops(), args.repeats)
        derive = median_seconds(lambda: derive_training_graph(model), args.repeats)
        rows.append(f"{workload:<11}{hardware:<15}{len(graph.ops) * len(accelerator.cores):>7}{seconds * 1e3:>12.1f}"
                    f"{derive * 1e3:>13.1f}{seconds / derive:>7.1f}{f'< {target_ms}':>13}")
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
