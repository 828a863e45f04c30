"""The parallel memory-safe plan (formulations/plan.md) against every other way `monet solve` plans
a training step under an activation budget, on multi-core machines.

Cases: ResNet-18 (224, batch 1, Adam, fp32) on edge-tpu-quad and edge-hetero; GPT-2 mini and GPT-2
small (Adam, bf16 mixed precision) on dc-mesh4 and fusemax-dc; activation budgets 100 %, 80 % and
60 % of the unfused serial store-all peak (as `monet solve` resolves them). Every column is one
`monet solve` of an instance (`studies.pipeline.solve_instance`), each with the time limit
(default 60 s) on 2 workers, its plan validated by the simulator:

- default: layer by layer, every value in DRAM, the default allocation (the baseline of every solve);
- alloc: allocation alone (cpsat; values in DRAM, memory ignored): its latency, or "over" when its
  dynamic DRAM peak breaks the budget;
- fusion: fusion alone (cpsat; stacks run one at a time), "over" likewise;
- ckpt: checkpointing alone (cpsat; the serial plan on the default allocation);
- seq: fusion, then checkpointing of its partition (sequential);
- plan: checkpointing and allocation together (the plan family, cpsat; unfused ops);
- plan+f: the plan over the fusion stage's partition (fusion, then the plan family).
"none": no validated plan (the exit code follows). Status, bound and gap are those of the plan
rows; wall is the whole solve. The checks at the end state the targets of the issue that built this.

    python benchmarks/plan.py [--time-limit 60] [--cases NAME ...] [--out benchmarks/results/plan.txt]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from common import emit, header

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.model.hardware.model import DRAM
from monet_opt.solving.contract import SolverBug
from monet_opt.studies.instance import load_instance
from monet_opt.studies.pipeline import InstanceResult, activation_budget_bytes, solve_instance

CASES = {
    "resnet18/edge-tpu-quad": {"workload": "resnet18", "hardware": "edge-tpu-quad"},
    "resnet18/edge-hetero": {"workload": "resnet18", "hardware": "edge-hetero"},
    "gpt2-mini/dc-mesh4": {"workload": "gpt2-mini", "hardware": "dc-mesh4", "precision": "bf16-mixed"},
    "gpt2-mini/fusemax-dc": {"workload": "gpt2-mini", "hardware": "fusemax-dc", "precision": "bf16-mixed"},
    "gpt2-small/dc-mesh4": {"workload": "gpt2-small", "hardware": "dc-mesh4", "precision": "bf16-mixed"},
    "gpt2-small/fusemax-dc": {"workload": "gpt2-small", "hardware": "fusemax-dc", "precision": "bf16-mixed"},
}
BUDGETS = (100, 80, 60)
FUSION = {"method": "cpsat", "max_stack": 4}
COLUMNS = {
    "alloc": ({"allocation": {"method": "cpsat"}}, "sequential", False),
    "fusion": ({"fusion": FUSION}, "sequential", False),
    "ckpt": ({"checkpointing": {"method": "cpsat"}}, "sequential", True),
    "seq": ({"fusion": FUSION, "checkpointing": {"method": "cpsat"}}, "sequential", True),
    "plan": ({"checkpointing": {"method": "cpsat"}, "allocation": {"method": "cpsat"}}, "joint", True),
    "plan+f": ({"fusion": FUSION, "checkpointing": {"method": "cpsat"}, "allocation": {"method": "cpsat"}}, "joint",
               True),
}
"""column -> (optimise, combine, whether it takes the activation budget)."""


@dataclass(frozen=True)
class Run:
    """One solve: its answer's simulated latency and dynamic DRAM peak (None: no validated plan),
    exit code, the last stage's status, bound and gap, the wall time, and the solve itself."""

    latency_cycles: int | None
    dynamic_peak_bytes: int | None
    exit_code: int
    status: str
    bound: float | None
    gap: float | None
    wall_s: float
    solved: InstanceResult | None


def instance_file(case: dict, optimise: dict, combine: str, budget: int | None, time_limit_s: float,
                  directory: Path) -> Path:
    data = {**case, "optimise": optimise, "combine": combine, "time_limit": time_limit_s}
    if budget is not None:
        data["budgets"] = {"activations": f"{budget}%"}
    path = directory / "instance.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run(case: dict, optimise: dict, combine: str, budget: int | None, time_limit_s: float, directory: Path) -> Run:
    path = instance_file(case, optimise, combine, budget, time_limit_s, directory)
    started = time.perf_counter()
    try:
        solved = solve_instance(load_instance(path), workers=2, progress=False, started=started)
    except InfeasibleError:
        return Run(None, None, 3, "infeasible", None, None, time.perf_counter() - started, None)
    except InputError:
        return Run(None, None, 2, "input", None, None, time.perf_counter() - started, None)
    except SolverBug:
        return Run(None, None, 1, "BUG", None, None, time.perf_counter() - started, None)
    wall = time.perf_counter() - started
    answer = solved.answer
    code = max(int(s.result.exit_code) for s in solved.stages)
    simulation = solved.simulation if solved.to_dict()["validated"] else None
    peak = None if simulation is None else simulation.peak_memory_bytes[DRAM] - simulation.static_dram_bytes
    return Run(None if simulation is None else simulation.latency_cycles, peak, code, answer.status.value,
               answer.stats.bound, answer.stats.gap, wall, solved)


def cell(found: Run, budget_bytes: int | None) -> str:
    if found.latency_cycles is None:
        return "none"
    if budget_bytes is not None and found.dynamic_peak_bytes > budget_bytes:
        return "over"
    return f"{found.latency_cycles:,}"


def fits(found: Run, budget_bytes: int) -> int | None:
    """The run's latency when it has a plan within the budget."""
    ok = found.latency_cycles is not None and found.dynamic_peak_bytes <= budget_bytes
    return found.latency_cycles if ok else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--budgets", nargs="*", type=int, default=list(BUDGETS))
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = [header(), "", f"time limit {args.time_limit:g} s per solve, 2 workers; latency in cycles of the validated "
             "plan ('over': its dynamic DRAM peak breaks the budget; 'none': no validated plan); budgets in % of the "
             "unfused serial store-all activation peak; status, bound and gap of the plan columns; wall: the longest "
             "solve of the row",
             f"{'case':<24}{'budget':>7}{'default':>13}{'alloc':>13}{'fusion':>13}{'ckpt':>13}{'seq':>13}"
             f"{'plan':>13}{'plan+f':>13}  {'plan status':<12}{'gap':>7}{'plan+f status':>15}{'gap':>7}"
             f"{'vs best serial':>16}{'wall [s]':>10}"]
    checks: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for name in args.cases:
            case = CASES[name]
            unbudgeted = {column: run(case, optimise, combine, None, args.time_limit, directory)
                          for column, (optimise, combine, budgeted) in COLUMNS.items() if not budgeted}
            for budget in args.budgets:
                runs = dict(unbudgeted)
                runs.update({column: run(case, optimise, combine, budget, args.time_limit, directory)
                             for column, (optimise, combine, budgeted) in COLUMNS.items() if budgeted})
                budget_bytes = activation_budget_bytes(load_instance(instance_file(
                    case, *COLUMNS["ckpt"][:2], budget, args.time_limit, directory)))
                default = next(r.solved.baseline.latency_cycles for r in runs.values() if r.solved is not None)
                serial = [v for v in (fits(runs[c], budget_bytes) for c in ("fusion", "ckpt", "seq")) if v is not None]
                best_plan = min((v for v in (fits(runs[c], budget_bytes) for c in ("plan", "plan+f")) if v is not None),
                                default=None)
                versus = "-" if best_plan is None or not serial else f"{best_plan / min(serial) - 1:+.1%}"
                plan, fused = runs["plan"], runs["plan+f"]

                def gap(found: Run) -> str:
                    return "-" if found.gap is None else f"{found.gap:.1%}"

                lines.append(f"{name:<24}{budget:>6}%{default:>13,}" + "".join(
                    f"{cell(runs[c], budget_bytes if COLUMNS[c][2] is False else None):>13}" for c in COLUMNS)
                    + f"  {plan.status:<12}{gap(plan):>7}{fused.status:>15}{gap(fused):>7}{versus:>16}"
                    + f"{max(r.wall_s for r in runs.values()):>10.1f}")
                checks += _checks(name, budget, runs, budget_bytes, default, serial, best_plan, args.time_limit)
                print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", "checks (each: the target, then what was measured):", *checks]
    emit("\n".join(lines), args.out)


def _checks(name: str, budget: int, runs: dict[str, Run], budget_bytes: int, default: int, serial: list[int],
            best_plan: int | None, time_limit_s: float) -> list[str]:
    """The issue's targets for one row, each with its verdict."""
    out = []
    row = f"{name} {budget}%"
    bugs = [c for c, r in runs.items() if r.exit_code == 1]
    out.append(f"{row}: no exit 1: {'yes' if not bugs else 'NO (' + ', '.join(bugs) + ')'}; time limit within 10 %: "
               + ("yes" if all(r.wall_s <= 1.1 * time_limit_s for r in runs.values()) else
                  "NO (" + ", ".join(f"{c} {r.wall_s:.1f} s" for c, r in runs.items()
                                     if r.wall_s > 1.1 * time_limit_s) + ")"))
    if best_plan is None:
        budgeted = [c for c, (_, _, takes_budget) in COLUMNS.items() if takes_budget]
        if all(runs[c].exit_code == 3 for c in budgeted):
            out.append(f"{row}: the plan below the default and every serial plan: does not apply (every budgeted "
                       "column proves the budget infeasible, exit 3)")
        else:
            out.append(f"{row}: the plan below the default and every serial plan: NO (no plan within the budget)")
        return out
    below = best_plan < default and all(best_plan < s for s in serial)
    out.append(f"{row}: the plan below the default ({best_plan:,} vs {default:,}) and every serial plan "
               f"({', '.join(f'{s:,}' for s in serial) or 'none fits'}): {'yes' if below else 'NO'}")
    alloc = runs["alloc"].latency_cycles
    if budget == 100 and alloc is not None:
        out.append(f"{row}: within 2 % of allocation alone ({best_plan:,} vs {alloc:,}, {best_plan / alloc - 1:+.2%}): "
                   + ("yes" if best_plan <= 1.02 * alloc else "NO"))
    ckpt = runs["ckpt"].latency_cycles
    if name == "gpt2-small/dc-mesh4" and budget == 60 and ckpt is not None:
        out.append(f"{row}: at least 20 % faster than the serial checkpoint plan ({best_plan:,} vs {ckpt:,}, "
                   f"{best_plan / ckpt - 1:+.1%}): " + ("yes" if best_plan <= 0.8 * ckpt else "NO"))
    return out


if __name__ == "__main__":
    main()
