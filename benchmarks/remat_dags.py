"""CP-SAT on random layered DAGs: time to first and best solution, gap at the time limit.

Target: abstract random layered DAGs of 100, 250, 500 and 1000 nodes at 80 % and 90 % of the
store-all peak, gap at 60 s and 600 s. Each instance is compared with the GA (100 x 50) and
Chen's greedy at the same budget. Instances are generated from a seed, so reruns solve the same
graphs: layers of `width` nodes, each node reading 1-3 nodes of the previous two layers, costs
1-10, sizes 1-100.

    python benchmarks/remat_dags.py [--sizes 100 250 500 1000] [--time-limit 60] [--workers 2]
                                    [--skip-ga] [--out benchmarks/results/remat_dags_60s.txt]
    python benchmarks/remat_dags.py --graphs ../shared/remat-graphs [--names resnet50 fcn8] ...
    python benchmarks/remat_dags.py ... --order free

`--order free` solves the free-order space (first executions in any topological order; cpsat hints
the free-order model with the fixed-order answer); by default, the fixed order. The `order` column
says which space the answer's status refers to.

`--graphs DIR` solves every node-link JSON graph in DIR instead (e.g. ../shared/remat-graphs: the
public random layered DAGs and Checkmate's ResNet-50 and FCN-8 training graphs), at budgets
ceil(fraction x store-all peak) (Moccasin's definition), with two more columns: the whole solve's
wall time and the cost over the sum of all compute costs (the cost without recomputation), the
form in which the peers publish their results.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import emit, header
from monet_opt.families.remat.family import best_heuristic, solve_remat
from monet_opt.families.remat.ga import GAConfig, run_ga
from monet_opt.families.remat.problem import evaluate_schedule, load_problem, store_all_peak
from monet_opt.io import write_text_atomic
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.studies.generate import layered_dag


def number(value: float | None) -> str:
    return "None" if value is None else f"{value:.0f}"


def at_time(stats, seconds: float, warm_cost: float | None) -> tuple[float | None, float | None]:
    """(cost, gap) of the answer the method had by `seconds`: the better of the warm start and
    CP-SAT's best incumbent by then; the gap uses the latest bound recorded with an incumbent by
    then (a lower estimate of the bound at `seconds`, so it over-states the gap), '-' without one."""
    found = [i for i in stats.incumbents if i.time_s <= seconds]
    costs = [c for c in [warm_cost] + [i.objective for i in found] if c is not None]
    if not costs:
        return None, None
    best = min(costs)
    if not found or not best:
        return best, None
    return best, (best - found[-1].bound) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 250, 500, 1000])
    parser.add_argument("--graphs", metavar="DIR", help="solve the node-link JSON graphs in DIR instead")
    parser.add_argument("--names", nargs="+", metavar="NAME", help="with --graphs: only these graphs (file names "
                                                                   "without .json)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.8, 0.9])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--checkpoint", type=float, default=60.0,
                        help="also report the incumbent and its gap at this many seconds (default 60)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--order", choices=["fixed", "free"], default="fixed",
                        help="the space searched: first executions in the reference order (default) or in any order")
    parser.add_argument("--skip-ga", action="store_true", help="do not run the 100 x 50 GA (long CP-SAT runs)")
    parser.add_argument("--out")
    args = parser.parse_args()
    mark = f"@{args.checkpoint:g}s"
    rows = [header(), "", f"CP-SAT time limit {args.time_limit:g} s, {args.workers} workers; costs are totals incl. "
                          f"first executions; '{mark}': best incumbent and its gap by then (gap against the bound "
                          "recorded with that incumbent; the warm start counts from the start); warm: the warm "
                          "start's cost; status '/warm': CP-SAT found nothing better and the warm start is the "
                          "answer; window: CP-SAT's model is restricted to this window (no warm start in the stage form "
                          "and band above 120,000 pairs; its bound is then the sum of the costs), '-': exact model "
                          "(above 50,000 pairs with a warm start: the search by windows, bound the sum of the costs); "
                          "wall: the whole solve; when no heuristic fits, the feasibility phase (soft-budget model from "
                          "the heuristics' schedule of least excess) looks for the warm start; 'no schedule': none found in time, with the smallest "
                          "peak reached (percent of store-all)",
            f"{'nodes':>6}{'budget':>8}{'order':>6}{'band':>9}{'window':>7}{'status':>14}{'warm':>7}{'cpsat':>9}{'bound':>9}{'gap':>8}{'first [s]':>10}"
            f"{'best [s]':>10}{'cost' + mark:>11}{'gap' + mark:>10}{'greedy':>9}{'ga':>9}{'ga [s]':>8}"
            + f"{'wall [s]':>9}" + (f"{'over sum':>10}  graph" if args.graphs else "")]
    if args.graphs:
        paths = [path for path in sorted(Path(args.graphs).glob("*.json")) if not args.names or path.stem in args.names]
        missing = sorted(set(args.names or []) - {path.stem for path in paths})
        if not paths or missing:
            parser.error(f"--graphs {args.graphs}: no graph {', '.join(missing) or '*'}.json there")
        problems = [load_problem(path) for path in paths]
    else:
        problems = [layered_dag(n, seed=n) for n in args.sizes]
    problems = [replace(problem, free_order=args.order == "free") for problem in problems]
    for problem in problems:
        n = problem.n
        peak = store_all_peak(problem)
        band = sum(max(0, problem.last_descendant[i] - i) for i in range(n))
        for fraction in args.fractions:
            budget = math.ceil(fraction * peak) if args.graphs else int(fraction * peak)
            print(f"{problem.name} at {fraction:.0%}...", file=sys.stderr, flush=True)
            solve_started = time.perf_counter()
            result = solve_remat(problem, budget, "cpsat", SolverOptions(workers=args.workers, seed=0),
                                 deadline=Deadline.start(args.time_limit))
            wall_s = time.perf_counter() - solve_started
            heuristic = best_heuristic(problem, budget)
            greedy_cost = evaluate_schedule(problem, heuristic).cost if heuristic else None
            started = time.perf_counter()
            ga_cost = None
            if not args.skip_ga:
                ga_cost = run_ga(problem, budget, GAConfig(seed=0), Deadline.start(math.inf))[1].objective
            ga_seconds = time.perf_counter() - started
            s = result.stats
            gap = "-" if s.gap is None else f"{100 * s.gap:.2f}%"
            data = result.to_dict()
            early_cost, early_gap = at_time(s, args.checkpoint, data["warm_start_cost"])
            status = s.status.value + ("/warm" if data["from_warm_start"] else "")
            total = sum(problem.cost) / problem.cost_scale
            over_sum = "-" if data["objective"] is None else f"{100 * (data['objective'] / total - 1):+.3f}%"
            window = "-" if data["restricted_window"] is None else str(data["restricted_window"])
            warm = "-" if data["warm_start_cost"] is None else f"{data['warm_start_cost']:.0f}"
            rows.append(
                f"{n:>6}{f'{fraction:.0%}':>8}{data['order']:>6}{band:>9}{window:>7}{status:>14}{warm:>7}"
                f"{number(result.objective):>9}"
                f"{'-' if s.bound is None else f'{s.bound:.0f}':>9}{gap:>8}"
                f"{'-' if s.time_to_first_s is None else f'{s.time_to_first_s:.1f}':>10}"
                f"{'-' if s.time_to_best_s is None else f'{s.time_to_best_s:.1f}':>10}"
                f"{'-' if early_cost is None else f'{early_cost:.0f}':>11}"
                f"{'-' if early_gap is None else f'{100 * early_gap:.2f}%':>10}"
                f"{str(greedy_cost):>9}{'-' if args.skip_ga else str(ga_cost):>9}{ga_seconds if not args.skip_ga else 0:>8.1f}"
                + f"{wall_s:>9.1f}" + (f"{over_sum:>10}  {problem.name}" if args.graphs else "")
                + ("" if not data.get("feasibility_phase") else
                   "  warm start from the feasibility phase" if result.payload is not None else
                   f"  no schedule; smallest peak found {data['smallest_budget_found']:.10g} "
                   f"({100 * data['smallest_budget_found'] * problem.size_scale / peak:.1f}%)")
            )
            if args.out:  # keep partial results of long runs
                write_text_atomic(args.out, "\n".join(rows) + "\n")
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
