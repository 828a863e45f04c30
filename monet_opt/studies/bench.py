"""The benchmark suite (`monet bench`): every instance of a suite x every method, each answer
validated, as a table (CSV and Markdown) with plots, resumable after an interruption.

Instances are the YAML files at the top of the instances directory, each with `suite: quick|full`
(`full` runs both). The shipped quick suite holds instances on which every method of the kind
returns a validated plan within the row's time limit (a comparison of quality); tight budgets and
large graphs, where some methods find nothing, are in the full suite. The kinds:

    kind: training     (default) an instance of `monet solve` (see monet_opt/studies/instance.py)
    kind: FAMILY       an instance of a family's own format (the registry's families that have one:
                       remat, allocation; `studies/instance.py`)

Methods per kind (`--methods` picks among them; a method that does not apply is skipped):
- training: `joint` (fusion and checkpointing together, or checkpointing and allocation together,
  CP-SAT; only where the instance optimises both), `sequential` (every decision by CP-SAT, one after
  the other; not where it optimises checkpointing and allocation, which only combine jointly),
  `ga` (every decision by its GA), `heuristic` (fusion rule, checkpointing greedy, allocation
  greedy); checkpointing and allocation are combined jointly (the plan family) in every method;
- a family's kind: the family's registered methods that look at the constraints (exact and search
  methods, not the fixed rules): remat `cpsat`, `milp`, `ga`, `greedy`; allocation `cpsat`, `ga`,
  `greedy`.
Every row runs with its instance's time limit (or `--row-time-limit`), so methods of one instance
compare at equal time. A row's objective, bound and gap are its answer's (for a training solve the
last stage's, in its own space: the JSON `space` of that stage names it); times to first and best
answer count from the row's start.

Resuming: each finished row is appended to `rows.jsonl` in the output directory at once; a rerun
with the same directory skips the (instance, method) pairs already there. `--time-limit` bounds
the whole command: rows that would start after it are left for a resumed run.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.families import default_registry
from monet_opt.io import write_text_atomic
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.contract import ExitCode, Family, MethodKind, Result, SolverBug, solve
from monet_opt.solving.registry import Registry
from monet_opt.studies.instance import SUITES, FamilyInstance, Instance, load_any_instance


def _searching(family: Family) -> tuple[str, ...]:
    """The family's methods that look at the constraints (exact and search methods; not the fixed
    rules, which ignore the budget), in its registry's order."""
    return tuple(m.name for m in family.methods.values() if m.kind is not MethodKind.RULE)


TRAINING_METHODS = ("joint", "sequential", "ga", "heuristic")
"""The methods of a training instance: combinations of its decisions' methods (module docstring)."""


def methods_by_kind(registry: Registry) -> dict[str, tuple[str, ...]]:
    """Each instance kind's methods: training's combinations, and each family's searching methods."""
    return {"training": TRAINING_METHODS,
            **{name: _searching(family) for name, family in registry.instance_kinds().items()}}


_HEURISTIC = {"fusion": "rule", "checkpointing": "greedy", "allocation": "greedy"}


@dataclass(frozen=True)
class BenchInstance:
    """One instance of the suite: a training instance, or an instance of a family's own; `methods`:
    its kind's (`methods_by_kind`)."""

    name: str
    source: str
    suite: str
    kind: str
    time_limit_s: float
    methods: tuple[str, ...]
    seed: int = 0
    training: Instance | None = None
    own: FamilyInstance | None = None

    def applies(self, method: str) -> bool:
        if method not in self.methods:
            return False
        if method in ("joint", "sequential"):
            assert self.training is not None
            decisions = set(self.training.decisions)
            planned = {"checkpointing", "allocation"} <= decisions
            return planned or {"fusion", "checkpointing"} <= decisions if method == "joint" else not planned
        return True


@dataclass(frozen=True)
class BenchRow:
    """One (instance, method) answer. `status` is the solver's, or `infeasible` (proven; the note
    names the smallest feasible budget), `error` (bad input: the note says why) or `bug` (an
    internal error: a claim the referee refuted)."""

    instance: str
    suite: str
    kind: str
    method: str
    status: str
    objective: float | None
    objective_unit: str
    bound: float | None
    gap: float | None
    time_to_first_s: float | None
    time_to_best_s: float | None
    wall_s: float
    validated: bool
    note: str
    incumbents: tuple[tuple[float, float], ...] = ()  # (seconds from the row's start, objective)
    space: str = ""  # what the status is proven over (the answer's `space`)


def load_bench_instance(path: str | Path, registry: Registry | None = None) -> BenchInstance:
    """The instance in `path` (module docstring) with the families of `registry` (default: every
    family of monet_opt); InputError naming the file and the key."""
    registry = registry or default_registry()
    loaded = load_any_instance(path, registry)
    kinds = methods_by_kind(registry)
    if isinstance(loaded, FamilyInstance):
        kind = loaded.family.name
        return BenchInstance(loaded.name, loaded.source, loaded.suite, kind, loaded.time_limit_s, kinds[kind],
                             loaded.seed, own=loaded)
    return BenchInstance(loaded.name, loaded.source, loaded.suite, "training", loaded.time_limit_s,
                         kinds["training"], loaded.seed, training=loaded)


def suite_instances(directory: str | Path, suite: str, registry: Registry | None = None) -> list[BenchInstance]:
    """The instances of `suite` in `directory` (its top-level YAML files), by file name; `full`
    includes the quick ones."""
    if suite not in SUITES:
        raise InputError(f"--suite: expected quick or full, got {suite!r}")
    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"{root}: no instances directory")
    found = [load_bench_instance(p, registry) for p in sorted(root.glob("*.yaml"))]
    if not found:
        raise InputError(f"{root}: no instance (a suite is the YAML files at the top of the directory)")
    names = [i.name for i in found]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise InputError(f"{root}: two instances are named {duplicate!r}")
    return [i for i in found if suite == "full" or i.suite == "quick"]


def _training_instance(instance: Instance, method: str, time_limit_s: float) -> Instance:
    """The instance with every decision by `method`'s solver and the combination it names."""
    decisions = {}
    for name, d in instance.decisions.items():
        chosen = {"joint": "cpsat", "sequential": "cpsat", "ga": "ga", "heuristic": _HEURISTIC[name]}[method]
        decisions[name] = replace(d, method=chosen, time_limit_s=None)
    planned = {"checkpointing", "allocation"} <= set(instance.decisions)  # built only as one joint plan
    return replace(instance, decisions=decisions, combine="joint" if method == "joint" or planned else "sequential",
                   time_limit_s=time_limit_s)


def _solve_training(bench: BenchInstance, method: str, time_limit_s: float, workers: int) -> tuple[Result, float]:
    """(the answer, seconds spent before its stage started)."""
    from monet_opt.studies.pipeline import solve_instance

    assert bench.training is not None
    solved = solve_instance(_training_instance(bench.training, method, time_limit_s), workers, progress=False)
    return solved.answer, max(solved.solve_time_s - solved.answer.stats.solve_time_s, 0.0)


def _solve_own(bench: BenchInstance, method: str, time_limit_s: float, workers: int, started: float) -> Result:
    """An instance of a family's own, solved by `solve()` with its problem and target as read."""
    assert bench.own is not None
    options = SolverOptions(workers=workers, seed=bench.seed, progress=False)
    return solve(bench.own.family, bench.own.problem, bench.own.target, method, options,
                 Deadline(started, time_limit_s))


def run_row(bench: BenchInstance, method: str, time_limit_s: float, workers: int = 2) -> BenchRow:
    """Solve one (instance, method) pair within `time_limit_s` and tabulate the validated answer."""
    started = time.perf_counter()

    def failed(status: str, note: str) -> BenchRow:
        return BenchRow(bench.name, bench.suite, bench.kind, method, status, None, "", None, None, None, None,
                        time.perf_counter() - started, False, note)

    try:
        if bench.kind == "training":
            result, offset = _solve_training(bench, method, time_limit_s, workers)
        else:
            result, offset = _solve_own(bench, method, time_limit_s, workers, started), 0.0
    except InputError as e:
        return failed("error", str(e))
    except InfeasibleError as e:
        return failed("infeasible", str(e))
    except SolverBug as e:
        return failed("bug", str(e))
    data = result.to_dict()

    def shifted(value: float | None) -> float | None:
        return None if value is None else value + offset

    return BenchRow(
        bench.name, bench.suite, bench.kind, method, data["status"], data["objective"], data["objective_unit"],
        data["bound"], data["gap"], shifted(data["time_to_first_s"]), shifted(data["time_to_best_s"]),
        time.perf_counter() - started, bool(data["validated"]), "" if data["validated"] else "no validated answer",
        tuple((i["time_s"] + offset, i["objective"]) for i in data["incumbents"]), str(data["space"]),
    )


ROWS_FILE = "rows.jsonl"


def read_rows(out_dir: str | Path) -> list[BenchRow]:
    """The rows already in `out_dir` (a line cut short by an interruption is ignored)."""
    path = Path(out_dir) / ROWS_FILE
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows.append(BenchRow(**{**data, "incumbents": tuple(tuple(p) for p in data["incumbents"])}))
    return rows


def run_bench(instances: Sequence[BenchInstance], methods: Sequence[str] | None, out_dir: str | Path,
              deadline: Deadline, row_time_limit_s: float | None = None, workers: int = 2,
              progress: Callable[[str], None] | None = None, provenance: str = "") -> tuple[list[BenchRow], int]:
    """Run every pending (instance, method) row, appending each to `out_dir`/rows.jsonl as it
    finishes, then write the tables (headed by `provenance`: date, machine, command) and plots.
    Returns (all rows, rows left for a resumed run)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(out)
    if (out / ROWS_FILE).is_file():  # drop a line an interruption cut short, so appends start on a new line
        write_text_atomic(out / ROWS_FILE, "".join(json.dumps(asdict(r)) + "\n" for r in rows))
    done = {(r.instance, r.method) for r in rows}
    pending = [(b, m) for b in instances for m in (methods or b.methods)
               if b.applies(m) and (b.name, m) not in done]
    left = 0
    for k, (bench, method) in enumerate(pending):
        remaining = deadline.remaining_s()
        if remaining <= 1.0:
            left = len(pending) - k
            break
        limit = min(row_time_limit_s or bench.time_limit_s, remaining)
        if progress:
            progress(f"[{k + 1}/{len(pending)}] {bench.name} {method} ({limit:.0f} s) ...")
        row = run_row(bench, method, limit, workers)
        with open(out / ROWS_FILE, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(row)) + "\n")
        rows.append(row)
        if progress:
            objective = "-" if row.objective is None else f"{row.objective:,.6g} {row.objective_unit}"
            progress(f"[{k + 1}/{len(pending)}] {bench.name} {method}: {row.status}, {objective}, {row.wall_s:.1f} s")
    order = {(b.name, m): i for i, (b, m) in enumerate((b, m) for b in instances for m in b.methods)}
    rows.sort(key=lambda r: order.get((r.instance, r.method), len(order)))
    write_tables(rows, out, provenance)
    write_plots(rows, out)
    return rows, left


def bench_exit_code(rows: Sequence[BenchRow], left: int) -> ExitCode:
    """`monet bench`'s exit code: 1 when a row is a referee's rejection (`bug`), 2 when an instance
    could not be read (`error`), 4 when rows are left for a resumed run or a row has no validated
    answer that is not a proof of infeasibility, 0 when every row has one (or a proof)."""
    statuses = {r.status for r in rows}
    if "bug" in statuses:
        return ExitCode.BUG
    if "error" in statuses:
        return ExitCode.INPUT
    if left or any(not r.validated and r.status != "infeasible" for r in rows):
        return ExitCode.NO_ANSWER
    return ExitCode.OK


COLUMNS = ("instance", "suite", "kind", "method", "status", "objective", "objective_unit", "bound", "gap",
           "time_to_first_s", "time_to_best_s", "wall_s", "validated", "note", "space")


def _best_by_instance(rows: Sequence[BenchRow]) -> dict[str, float]:
    """The least validated objective of each instance that has one."""
    best: dict[str, float] = {}
    for r in rows:
        if r.objective is not None and r.validated:
            best[r.instance] = min(best.get(r.instance, r.objective), r.objective)
    return best


def _relative_to_best(rows: Sequence[BenchRow]) -> dict[tuple[str, str], float]:
    """objective / the best objective of the same instance, for every row with an answer."""
    best = _best_by_instance(rows)
    return {(r.instance, r.method): r.objective / best[r.instance] if best[r.instance] else 1.0
            for r in rows if r.objective is not None and r.validated}


def write_tables(rows: Sequence[BenchRow], out_dir: str | Path, provenance: str = "") -> None:
    """bench.csv (every column) and bench.md (`provenance`, then the readable table, objective also
    relative to the instance's best row)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow(["" if getattr(r, c) is None else getattr(r, c) for c in COLUMNS])
    write_text_atomic(Path(out_dir) / "bench.csv", buffer.getvalue())
    relative = _relative_to_best(rows)

    def number(value: float | None, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = ([f"    {line}" for line in provenance.splitlines()] + [""] if provenance else []) + [
        "| instance | kind | method | status | objective | vs best | bound | gap | first [s] | best [s] | "
        "wall [s] | validated |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = relative.get((r.instance, r.method))
        lines.append(
            f"| {r.instance} | {r.kind} | {r.method} | {r.status} "
            f"| {'-' if r.objective is None else f'{r.objective:,.6g} {r.objective_unit}'} "
            f"| {'-' if ratio is None else f'{ratio:.3f}'} | {number(r.bound, ',.6g')} "
            f"| {'-' if r.gap is None else f'{r.gap:.2%}'} | {number(r.time_to_first_s, '.1f')} "
            f"| {number(r.time_to_best_s, '.1f')} | {r.wall_s:.1f} | {'yes' if r.validated else 'no'} |")
    notes = [f"- {r.instance} / {r.method}: {r.note}" for r in rows if r.note]
    footer = ["", "A status is proven over its row's space (the `space` column of bench.csv: e.g. a checkpoint "
              "plan of one fused partition, or a schedule space); `vs best` divides by the instance's best row."]
    write_text_atomic(Path(out_dir) / "bench.md", "\n".join(lines + ([""] + notes if notes else []) + footer) + "\n")


def write_plots(rows: Sequence[BenchRow], out_dir: str | Path) -> None:
    """quality.png: each method's objective relative to the instance's best (equal time per
    instance); time_to_quality.png: each row's incumbents over time, relative to the same best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    relative = _relative_to_best(rows)
    instances = list(dict.fromkeys(r.instance for r in rows))
    methods = list(dict.fromkeys(r.method for r in rows))
    fig, ax = plt.subplots(figsize=(min(14.0, max(6.0, 0.8 * len(instances))), 4.5))
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        xs = [i + j * width for i, name in enumerate(instances) if (name, method) in relative]
        ys = [relative[name, method] for name in instances if (name, method) in relative]
        ax.bar(xs, ys, width, label=method)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(instances))], instances, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("objective / best of the instance")
    ax.set_ylim(bottom=min([0.95] + [v * 0.98 for v in relative.values()]))
    if relative:
        ax.legend(fontsize=7)
    ax.set_title("quality at equal time (lower is better)")
    fig.tight_layout()
    _save(fig, Path(out_dir) / "quality.png")
    plt.close(fig)
    best = _best_by_instance(rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        if r.incumbents and r.instance in best and best[r.instance]:
            times = [max(t, 1e-3) for t, _ in r.incumbents]
            values = [v / best[r.instance] for _, v in r.incumbents]
            ax.step(times + [r.wall_s], values + values[-1:], where="post", label=f"{r.instance} {r.method}",
                    linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("seconds from the row's start")
    ax.set_ylabel("incumbent / best of the instance")
    ax.set_title("time to quality")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=5, ncol=2)
    fig.tight_layout()
    _save(fig, Path(out_dir) / "time_to_quality.png")
    plt.close(fig)


def _save(fig: Any, path: Path) -> None:
    from monet_opt.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def print_progress(line: str) -> None:
    print(f"monet bench: {line}", file=sys.stderr, flush=True)
