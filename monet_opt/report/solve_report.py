"""`report.md` of `monet solve`: a page a person reads — what was decided, what it costs, how far
from optimal each stage is, against the layer-by-layer store-all baseline, and the time spent."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from monet_opt.report.answer import energy_text, number_text, percent_text

LinesOf = Callable[[str], Callable[[Mapping[str, Any]], list[str]]]


def solve_report(data: dict[str, Any], lines_of: LinesOf) -> str:
    """Markdown from `InstanceResult.to_dict()`; `lines_of(family)`: that family's text lines of its own
    keys (`Family.answer_lines`), which say what each stage decided."""
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
        limits, over = data["physical_limits"], data["physical_limits"]["baseline_over_bound"]
        lines += [f"Against the physical limits (bounds no plan beats, `monet_opt/model/limits.py`), the optimised "
                  f"plan is {limits['summary']}. The baseline is at {over['dram']:.2f}x the DRAM bound and "
                  f"{over['compute']:.2f}x the compute bound.", ""]
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
        lines.append(f"- **{stage['decision']}** ({stage['family']} {stage['method']}):")
        lines += [f"  - {line.strip()}" for line in lines_of(stage["family"])(stage)]
    if data["latency_cycles"] is not None:
        lines += ["", "![cores and memories over time](schedule.png)"]
    lines += ["", "Files: `result.json` (this solve), `plan.json` (the simulated plan), `schedule.png` (the plan by core "
              "with every memory under it, one time axis), `gantt.png`, `memory.png`, `trace.json`.", ""]
    return "\n".join(lines)

