"""A solver's answer (the JSON of `contract.Result.to_dict`) as text a person reads.

One convention for every command: integers with thousands separators, energies with an SI prefix
(pJ, nJ, uJ, mJ, J), times in seconds, percentages with two decimals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

SCHEDULE_SHOWN_UP_TO = 60
"""A rematerialisation schedule is printed in full up to this many steps."""


def energy_text(energy_pj: float) -> str:
    """'12.3 uJ': the energy with the SI prefix that keeps the number below 1000."""
    value, units = float(energy_pj), ("pJ", "nJ", "uJ", "mJ", "J")
    for unit in units:
        if abs(value) < 1000 or unit == units[-1]:
            return f"{value:.4g} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def number_text(value: float | None) -> str:
    """Integers (and integral floats) with thousands separators, other floats to 6 significant digits."""
    if value is None:
        return "-"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.6g}"


def percent_text(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.2f} %"


def format_answer(data: Mapping[str, Any], family_lines: Callable[[Mapping[str, Any]], list[str]]) -> str:
    """The answer's headline, proof, costs, memory and the family's own lines (`family_lines`, the
    family's `answer_lines`)."""
    unit = data["objective_unit"]
    budget = "" if data["budget"] is None else f" at budget {number_text(data['budget'])}"
    lines = [f"{data['problem']}: {data['family']} {data['method']}, {data['target']}{budget}"]
    if data["status"] in ("optimal", "feasible"):
        lines.append(f"status {data['status']} over {data['space']}")
    else:
        lines.append(f"status {data['status']}")
    if data["objective"] is None:
        lines.append("no answer that satisfies the constraints within the time limit")
    else:
        objective = energy_text(data["objective"]) if unit == "pJ" else f"{number_text(data['objective'])} {unit}"
        lines.append(f"objective {objective}, bound {number_text(data['bound'])}, gap {percent_text(data['gap'])}")
    if data["latency_cycles"] is not None:
        lines.append(f"latency {number_text(data['latency_cycles'])} cycles, energy {energy_text(data['energy_pj'])}")
    if data["peak_memory"] is not None:
        lines.append(f"peak memory {number_text(data['peak_memory'])}" + (
            f" (budget {number_text(data['budget'])})" if data["budget"] is not None else ""))
    lines += family_lines(data)
    lines.append(f"validated {'yes' if data['validated'] else 'no'}, {data['solve_time_s']:.2f} s")
    lines += [f"violates: {v}" for v in data["violations"][:3]]
    return "\n".join(lines)


def remat_lines(data: Mapping[str, Any]) -> list[str]:
    """The remat family's keys: store-all, recomputations and the schedule (when short)."""
    lines = [f"store-all: peak {number_text(data['store_all_peak'])}, cost {number_text(data['store_all_cost'])}"]
    if data["schedule"] is not None:
        lines.append(f"recomputations {data['recomputations']}")
        if len(data["schedule"]) <= SCHEDULE_SHOWN_UP_TO:
            lines.append("schedule: " + " ".join(data["schedule"]))
    return lines


def checkpoint_lines(data: Mapping[str, Any]) -> list[str]:
    """The checkpoint (and fusion_checkpoint) family's keys: store-all, the change against it, the
    choices, and the joint search's rounds."""
    base = data["store_all"]
    lines = [f"store-all: latency {number_text(base['latency_cycles'])} cycles, energy "
             f"{energy_text(base['energy_pj'])}, activation peak {number_text(base['peak_memory'])} bytes"]
    if data["choices"] is not None:
        lines.append(f"vs store-all: latency {percent_text(data['latency_overhead'])}, energy "
                     f"{percent_text(data['energy_overhead'])}; saved activations: "
                     + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in data["choices"].items())
                     + f"; fused recompute groups {len(data['recompute_groups'])}")
    if data.get("combination") is not None:
        searched = data["partitions_checkpointed"]
        lines.append(data["combination"] + ("" if searched is None else f"; {searched} partitions checkpointed")
                     + "".join(f"; round {k + 1}: {r['fused_stacks']} fused stacks, {r['status']}"
                               + ("" if r["objective"] is None else f" {number_text(r['objective'])}")
                               for k, r in enumerate(data["rounds"]))
                     + f"; answer: {len(data['fused_stacks'])} fused stacks")
    return lines


def fusion_lines(data: Mapping[str, Any]) -> list[str]:
    """The fusion family's keys: layer by layer, the candidates, the stacks, and the multi-core
    schedule of `monet fuse --schedule`."""
    base = data["layer_by_layer"]
    counts = data["candidates"]
    lines = [f"layer by layer: latency {number_text(base['latency_cycles'])} cycles, energy "
             f"{energy_text(base['energy_pj'])}, DRAM {number_text(base['dram_bytes'])} bytes"]
    if counts is not None:
        lines.append(f"candidate stacks of 2-{data['max_stack']} ops: {number_text(counts['connected'])} "
                     f"connected, {number_text(counts['convex'])} convex, {number_text(counts['feasible'])} fit, "
                     f"{number_text(counts['kept'])} kept")
    if data["stacks"] is not None:
        lines.append(f"vs layer by layer: latency {percent_text(data['latency_change'])}, energy "
                     f"{percent_text(data['energy_change'])}; DRAM {number_text(data['dram_bytes'])} bytes; "
                     f"{data['fused_stacks']} fused stacks")
        lines += [f"  {' + '.join(s['ops'])} on {', '.join(dict.fromkeys(s['cores']))} "
                  f"({s['tiles']} tile{'s' if s['tiles'] > 1 else ''})" for s in data["stacks"][:SCHEDULE_SHOWN_UP_TO]]
    multi = data.get("multi_core")
    if multi is not None and multi["latency_cycles"] is not None:
        lines.append(f"on every core ({multi['method']}, {multi['status']}, gap {percent_text(multi['gap'])}): "
                     f"latency {number_text(multi['latency_cycles'])} cycles, energy "
                     f"{energy_text(multi['energy_pj'])}, cores {', '.join(multi['cores_used'])}; "
                     f"{multi['solve_time_s']:.2f} s more (the fusion search above: {data['solve_time_s']:.2f} s)")
    return lines


def allocation_lines(data: Mapping[str, Any]) -> list[str]:
    """The allocation family's keys: the cores used and the front."""
    if data["cores_used"] is None:
        return []
    lines = [f"cores used: {', '.join(data['cores_used'])}"]
    if len(data["front"]) > 1:
        lines.append("front: " + "; ".join(f"{number_text(p['latency_cycles'])} cycles / {energy_text(p['energy_pj'])}"
                                           for p in data["front"]))
    return lines


def plan_lines(data: Mapping[str, Any]) -> list[str]:
    """The plan family's keys: what is recomputed or kept on chip, how busy each core is, and where
    the bound comes from."""
    if data["recomputed"] is None:
        return []
    busy = data["core_busy_share"] or {}
    groups = len(data.get("recompute_groups") or ())
    fused = f" ({groups} recomputation group{'s' if groups != 1 else ''} run as one stack each)" if groups else ""
    lines = [f"recomputed {len(data['recomputed'])} of {data['candidates']} candidates{fused}, kept "
             f"{len(data['on_chip'])} of {data['on_chip_eligible']} eligible values on chip",
             "cores busy: " + ", ".join(f"{core} {percent_text(share)}" for core, share in busy.items())]
    if data.get("split_ops") or data.get("spread_stacks"):
        lines.insert(1, f"{len(data['split_ops'])} ops split across cores, {len(data['spread_stacks'])} fused stacks "
                        "with their MAC ops on several cores")
    if data.get("bound_source") and data["bound"] is not None:
        lines.append(f"bound {data['bound']:,.0f} {data['objective_unit']} ({data['bound_source']})")
    return lines
