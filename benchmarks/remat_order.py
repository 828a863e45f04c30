"""Fixed vs free order of first executions: model size, cost and time of the two CP-SAT models.

Random DAGs (each node reading 1-3 earlier nodes, costs 1-5, sizes 1-6; seed 1, the generator of
tests/test_remat.py) of 15 to 100 nodes and the project's 100-node layered DAG, at 80 % of the
store-all peak, each solved by `cpsat` with the order fixed and with it free, in the same run:
(stage, value) pairs and order booleans of each model, the cost, status and solve time. The free
run spends a share of its time on the fixed-order model and hands its optimum over as a hint.

    python benchmarks/remat_order.py [--sizes 15 20 30 40 60 100] [--time-limit 60] [--workers 2]
                                     [--out benchmarks/results/remat_order.txt]
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import replace

from common import emit, header
from monet_opt.errors import InfeasibleError
from monet_opt.families.remat.cpsat import band_pairs
from monet_opt.families.remat.family import solve_remat
from monet_opt.families.remat.free_order import free_order_pairs, stage_windows
from monet_opt.families.remat.problem import RematProblem, store_all_peak
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.studies.generate import layered_dag


def random_dag(rng: random.Random, n: int) -> RematProblem:
    """tests/test_remat.py's generator."""
    preds = tuple(tuple(sorted(rng.sample(range(i), rng.randint(1, min(i, 3))))) if i and rng.random() < 0.9
                  else () for i in range(n))
    return RematProblem(f"random{n}", tuple(f"n{i}" for i in range(n)), preds,
                        tuple(rng.randint(1, 5) for _ in range(n)), tuple(rng.randint(1, 6) for _ in range(n)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 20, 30, 40, 60, 100])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    rng = random.Random(1)
    problems = [random_dag(rng, n) for n in args.sizes] + [layered_dag(100, 0)]
    rows = [header(), "", f"CP-SAT, {args.time_limit:g} s, {args.workers} workers, budget 80 % of the store-all peak; "
            "pairs: (stage, value) pairs of the model; order vars: x[t, v] booleans of the free model",
            f"{'graph':<14}{'nodes':>6}{'fixed pairs':>12}{'free pairs':>11}{'order vars':>11}"
            f"{'fixed cost':>11}{'status':>10}{'[s]':>6}{'free cost':>10}{'status':>10}{'[s]':>6}{'saved':>8}"]
    for problem in problems:
        budget = int(0.8 * store_all_peak(problem))
        outcome = []
        for free in (False, True):
            print(f"{problem.name} {'free' if free else 'fixed'} ...", file=sys.stderr, flush=True)
            try:
                result = solve_remat(replace(problem, free_order=free), budget, "cpsat",
                                     SolverOptions(workers=args.workers, seed=0),
                                     deadline=Deadline.start(args.time_limit))
                outcome.append((result.objective, result.status.value, result.stats.solve_time_s))
            except InfeasibleError:
                outcome.append((None, "infeasible", None))
        (fixed, fixed_status, fixed_s), (free_cost, free_status, free_s) = outcome
        saved = f"{1 - free_cost / fixed:.1%}" if fixed and free_cost else "-"
        earliest, latest, _ = stage_windows(problem)
        orders = sum(late - early + 1 for early, late in zip(earliest, latest, strict=True))
        rows.append(f"{problem.name:<14}{problem.n:>6}{band_pairs(problem):>12,}{free_order_pairs(problem):>11,}"
                    f"{orders:>11,}{fixed or '-':>11}{fixed_status:>10}{fixed_s or 0:>6.1f}{free_cost or '-':>10}"
                    f"{free_status:>10}{free_s or 0:>6.1f}{saved:>8}")
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
