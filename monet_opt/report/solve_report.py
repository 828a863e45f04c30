"""`report.md` of `monet solve`: a page a person reads — what was decided, what it costs, how far
from optimal each stage is, against the layer-by-layer store-all baseline, and the time spent."""

from __future__ import annotations

from typing import Any

from monet_opt.report.answer import energy_text, number_text, percent_text


def solve_report(data: dict[str, Any]) -> str:
    """Markdown from `InstanceResult.to_dict()`."""
    base = data["baseline"]
    lines = [f"# {data['instance']}", "",
             f"Instance `{data['source']}`; {data['combination']}; solved in {data['solve_time_s']:.1f} s; "
             + ("every stage validated by the simulator." if data["validated"] else
                "**not every stage has a validated answer** (see below)."), ""]
    if data["latency_cycles"] is not None:
        broken = "" if not base["breaks"] else f"; **breaks {', '.join(base['breaks'])}**"
        lines += ["| | latency [cycles] | energy |", "|---|---|---|",
                  f"| baseline ({base['plan']}{broken}) | {number_text(base['latency_cycles'])} | "
                  f"{energy_text(base['energy_pj'])} |",
                  f"| optimised plan | {number_text(data['latency_cycles'])} | {energy_text(data['energy_pj'])} |",
                  f"| change | {percent_text(data['latency_change'])} | {percent_text(data['energy_change'])} |", ""]
    lines += ["## Stages", "", "| decision | method | status | objective | bound | gap | time [s] |",
              "|---|---|---|---|---|---|---|"]
    for stage in data["stages"]:
        gap = "-" if stage["gap"] is None else percent_text(stage["gap"])
        lines.append(f"| {stage['decision']} | {stage['method']} | {stage['status_text']} | "
                     f"{number_text(stage['objective'])} {stage['objective_unit']} | {number_text(stage['bound'])} | "
                     f"{gap} | {stage['solve_time_s']:.1f} |")
    lines += [""] + [f"The {stage['decision']} stage searched {stage['space']}." for stage in data["stages"]]
    lines += ["", "## What was decided", ""]
    for stage in data["stages"]:
        lines.append(f"- **{stage['decision']}**: " + _decided(stage))
    lines += ["", "Files: `result.json` (this solve), `plan.json` (the simulated plan), `gantt.png`, `memory.png`, "
              "`trace.json`.", ""]
    return "\n".join(lines)


def _decided(stage: dict[str, Any]) -> str:
    if stage["family"] == "fusion":
        return (f"{stage['fused_stacks']} fused stacks (max {stage['max_stack']} ops), latency "
                f"{percent_text(stage['latency_change'])} and energy {percent_text(stage['energy_change'])} against "
                "layer by layer")
    if stage["family"] in ("checkpoint", "fusion_checkpoint"):
        choices = stage["choices"] or {}
        fused = stage.get("fused_stacks")
        return (f"activation budget {number_text(stage['budget'])} bytes, peak {number_text(stage['peak_memory'])}; "
                + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in choices.items())
                + ("" if fused is None else f"; {len(fused)} fused stacks ({stage['combination']})"))
    cores = stage.get("cores_used") or []
    return f"ops or stacks on {len(cores)} cores ({', '.join(cores)})"
