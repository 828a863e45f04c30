"""How every CP-SAT model is run: parameters from `SolverOptions` and the deadline, the raw
parameter passthrough, the search log, model export, and the incumbent curve."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path

from ortools.sat.python import cp_model

from monet_opt.errors import InputError
from monet_opt.solving.common import Deadline, Incumbent, SolverOptions, SolveStats, SolveStatus

SUBSOLVERS = ("max_lp", "quick_restart", "default_lp", "core", "reduced_costs", "pseudo_costs", "no_lp")
"""CP-SAT full workers by priority when there are fewer workers than names (CP-SAT's own choice
for 2 workers omits the LP-bounding worker, which proves these models' bounds): the LP worker
proves optimality, quick restarts find solutions. A family may give its own order."""


CPSAT_SECONDS_PER_CONSTRAINT = 3e-6
"""CP-SAT's time limit does not cover loading the model before presolve or building the response
after the search: measured 2.3-2.7 us per constraint on the machine of benchmarks/results (0.5 s
for 230k constraints, 3.8 s for 1.4M, whatever the limit). `run_cpsat` sets aside this much per
constraint, so that the deadline holds on large models."""


PRODUCT_LIMIT = 2 ** 62
"""The largest latency x energy product of an EDP model (CP-SAT integers are 64-bit)."""
EDP_ENERGY_STEPS = 10 ** 6
"""EDP model resolution: the product's domain decides how well CP-SAT bounds it (ResNet-18 training
on edge-tpu-quad, fusion: proven optimal in 0.2 s in 10^6 steps, a 21 % gap after 30 s at 1 pJ)."""


def edp_energy_unit_pj(top_latency_cycles: int, top_energy_pj: float, terms: int) -> int:
    """pJ per energy unit of an EDP model whose latency is at most `top_latency_cycles` and whose
    energy, a sum of `terms` energies rounded to the unit, at most `top_energy_pj`: the smallest
    power of ten that counts the energy in at most EDP_ENERGY_STEPS units and keeps the product
    below PRODUCT_LIMIT."""
    unit = 1
    while (top_energy_pj / unit > EDP_ENERGY_STEPS
           or max(top_latency_cycles, 1) * (top_energy_pj / unit + terms) >= PRODUCT_LIMIT):
        unit *= 10
    return unit


class IncumbentRecorder(cp_model.CpSolverSolutionCallback):
    """Records (time since the deadline's start, objective, bound) at every improving solution,
    and with `progress` prints it on stderr (mapped by x * scale + offset, as the stats are)."""

    def __init__(self, deadline: Deadline, progress: bool = False, scale: float = 1.0, offset: float = 0.0,
                 stop_below: float | None = None) -> None:
        super().__init__()
        self.deadline = deadline
        self.progress = progress
        self.scale, self.offset = scale, offset
        self.stop_below = stop_below  # model objective under which the search stops
        self.incumbents: list[Incumbent] = []

    def on_solution_callback(self) -> None:
        found = Incumbent(self.deadline.elapsed_s(), self.objective_value, self.best_objective_bound)
        self.incumbents.append(found)
        if self.progress:
            print(f"cpsat: {found.objective * self.scale + self.offset:,.10g} (bound "
                  f"{found.bound * self.scale + self.offset:,.10g}) at {found.time_s:.2f} s", file=sys.stderr,
                  flush=True)
        if self.stop_below is not None and found.objective < self.stop_below:
            self.stop_search()


def configure(solver: cp_model.CpSolver, options: SolverOptions, search_time_s: float,
              subsolvers: tuple[str, ...] = SUBSOLVERS) -> None:
    """Apply `options` with `search_time_s` as CP-SAT's limit; with fewer workers than
    `subsolvers`, pick them in that order; raw `cpsat_params` last."""
    solver.parameters.max_time_in_seconds = search_time_s
    solver.parameters.num_workers = options.workers
    solver.parameters.random_seed = options.seed
    solver.parameters.interleave_search = options.deterministic and options.workers > 1
    if 1 < options.workers <= len(subsolvers):
        solver.parameters.subsolvers.extend(subsolvers[: options.workers])
    solver.parameters.catch_sigint_signal = False  # Ctrl-C is Python's: `interruptible_solve`
    solver.parameters.log_search_progress = options.log_search
    solver.parameters.log_to_stdout = False
    if options.log_search:
        solver.log_callback = lambda line: print(line, file=sys.stderr)
    if options.cpsat_params and not solver.parameters.merge_text_format(
            " ".join(f"{k}: {v}" for k, v in options.cpsat_params)):
        raise InputError(f"--cpsat-params: CP-SAT refuses {options.cpsat_params}")


def interruptible_solve(solver: cp_model.CpSolver, model: cp_model.CpModel,
                        callback: cp_model.CpSolverSolutionCallback | None = None,
                        stop_when: Callable[[], bool] | None = None) -> int:
    """`solver.solve(model, callback)` that a Ctrl-C stops with KeyboardInterrupt, as it stops any
    other work of the command. CP-SAT's own SIGINT handling (`catch_sigint_signal`, off here: see
    `configure`) ends the search as if its time were up, so that the command carried on with the
    plan in hand, and leaves SIGINT at the system default afterwards, so that a later Ctrl-C
    killed the process without clean-up. Python delivers signals to the main thread only, so from
    the main thread the search runs in a helper thread while the main thread waits for it: a
    Ctrl-C then stops the search and is raised once it has stopped. `stop_when`, polled by the
    waiting main thread every 50 ms, stops the search when it returns true (from another thread
    the search runs to its own limit)."""
    if threading.current_thread() is not threading.main_thread():
        return solver.solve(model, callback)
    outcome: list[int] = []
    failure: list[BaseException] = []

    def search() -> None:
        try:
            outcome.append(solver.solve(model, callback))
        except BaseException as exc:  # re-raised in the main thread
            failure.append(exc)

    worker = threading.Thread(target=search, name="cp-sat", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
            if stop_when is not None and stop_when():
                solver.stop_search()
    except KeyboardInterrupt:
        solver.stop_search()
        worker.join()
        raise
    if failure:
        raise failure[0]
    return outcome[0]


def run_cpsat(model: cp_model.CpModel, options: SolverOptions, deadline: Deadline,
              subsolvers: tuple[str, ...] = SUBSOLVERS, scale: float = 1.0,
              offset: float = 0.0, stop_below: float | None = None, stop_at_bound: float | None = None,
              stop_after_s: float | None = None, stop_after_without_solution: bool = False
              ) -> tuple[cp_model.CpSolver, SolveStats]:
    """Solve `model` within the deadline (see `configure`), recording incumbents; the solver (for
    values, valid when stats.objective is not None) and the stats (objective and bound mapped by
    x * scale + offset; times since the deadline's start). CP-SAT searches for the time left minus
    its overhead outside the search (`CPSAT_SECONDS_PER_CONSTRAINT`); it is not started when that
    leaves nothing (status unknown, no bound).
    `stop_below`: the search stops at the first solution whose (model) objective is below it;
    `stop_at_bound`: it stops as soon as the (model) objective's bound reaches it; `stop_after_s`: it
    stops once it has a solution (or, `stop_after_without_solution`, whether it has one or not) and
    that many seconds of the deadline have passed."""
    if options.export_model is not None:
        path = Path(options.export_model)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not model.export_to_file(str(path)):
            raise InputError(f"--export-model {path}: could not write the model")
    solver = cp_model.CpSolver()
    search_time_s = deadline.remaining_s() - CPSAT_SECONDS_PER_CONSTRAINT * len(model.proto.constraints)
    if search_time_s <= 0:
        return solver, SolveStats(SolveStatus.UNKNOWN, None, None, deadline.elapsed_s(), None, None, ())
    configure(solver, options, search_time_s, subsolvers)
    recorder = IncumbentRecorder(deadline, options.progress, scale, offset, stop_below)
    if stop_at_bound is not None:
        solver.best_bound_callback = lambda bound: solver.stop_search() if bound >= stop_at_bound else None
    stop_when = None if stop_after_s is None else (
        lambda: (stop_after_without_solution or bool(recorder.incumbents)) and deadline.elapsed_s() >= stop_after_s)
    status = interruptible_solve(solver, model, recorder, stop_when)
    mapped = tuple(Incumbent(i.time_s, i.objective * scale + offset, i.bound * scale + offset)
                   for i in recorder.incumbents)
    kind = {cp_model.OPTIMAL: SolveStatus.OPTIMAL, cp_model.FEASIBLE: SolveStatus.FEASIBLE,
            cp_model.INFEASIBLE: SolveStatus.INFEASIBLE}.get(status, SolveStatus.UNKNOWN)
    has_solution = kind in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
    return solver, SolveStats(
        status=kind,
        objective=solver.objective_value * scale + offset if has_solution else None,
        bound=solver.best_objective_bound * scale + offset if kind is not SolveStatus.INFEASIBLE else None,
        solve_time_s=deadline.elapsed_s(),
        time_to_first_s=mapped[0].time_s if mapped else None,
        time_to_best_s=mapped[-1].time_s if mapped else None,
        incumbents=mapped,
    )
