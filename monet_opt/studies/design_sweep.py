"""Design-space sweeps: every chosen point of a design space (`monet_opt.studies.design_space`) priced on a workload.

A point is evaluated per mode (training: the training step; inference: one forward pass without
the loss) with one of three plans (`PLANS`): `default`, layer by layer, every value in DRAM, each
op on the eligible core that finishes it earliest (`schedule.default_plan`); `rule`, the fixed
fusion rule (each conv or matmul with the elementwise and normalisation ops after it, stacks of up
to RULE_MAX_STACK ops: `families/fusion/heuristics.py`) run stack by stack on the cores of the
placement rule; or `optimised`, the fusion partition of least energy-delay product (stacks of up
to OPTIMISED_MAX_STACK ops, each on the cores of the placement rule, run one after the other)
found by the exact fusion model (CP-SAT, one worker, seed 0) within the point's time limit, model
building included (`formulations/fusion.md`), or the default or the rule plan when the simulator
measures a smaller energy-delay product for it (the default plan may overlap ops on several cores,
which the serial fusion plan does not): `plan_used` says which. The optimised row records the
search's status and gap (`plan_status`, `plan_gap`: "optimal" is over those partitions; "feasible"
or "heuristic" when the time limit cut the search, whose answer then depends on the machine's
speed); the fixed plans record "not searched". The plan is
simulated by the validation scheduler: its
latency (cycles and seconds at the point's clock), energy, the peak of every memory, the static and
the peak DRAM bytes, and whether it is feasible. A point is infeasible when the plan violates a
capacity (DRAM or a local memory: the first violation is kept as the reason) or when some op can
run on no core of the point (the reason says which); infeasible points are kept, never dropped.

One row per (point, mode) (`PointResult`), in the order the points were chosen. Rows depend only
on the space file, the workload, the plan and the point's index (and, for an optimised search cut
by its time limit, on the time it had), so a sweep split across processes or machines gives the
same rows as one run.

Running a sweep (`run_sweep`, `monet sweep`): the chosen point indices are cut into batches of
`batch_size` (batch k = indices k*batch_size ...), each batch is one task for the executor (`local`:
a process pool of `workers` processes; `dask`: a Dask distributed client, on a `LocalCluster` of
`workers` single-threaded workers when no scheduler address is given), and each finished batch is
written at once as `parts/part-KKKKK.parquet` (temporary file, then rename). The graphs and the
space go to each process once per task (local) or once per worker (Dask: scattered); every point
builds its own cost table, since the table prices the point's own cores. A rerun in the same
directory with the same space, workload, modes, plan and points (`sweep.json` records them and a
different sweep is refused) skips the batches whose part exists, so an interrupted sweep finishes
with every point exactly once. At the end `results.parquet` holds every row in point order, with
one column per parameter (`p_NAME`: a number, or the option's name for a choice) and per memory's
peak (`peak_MEMORY_bytes`, null for a point without that memory), and `fronts.png` the
latency-energy Pareto fronts of each mode side by side (`plot_fronts`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.io import atomic_path, write_text_atomic
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware.model import DRAM
from monet_opt.model.workload.ir import Graph
from monet_opt.schedule import Plan, default_plan, simulate
from monet_opt.solving.common import Deadline
from monet_opt.studies.design_space import DesignSpace, area_proxy, pareto_front, point_accelerator, point_values

MODES = ("training", "inference")


@dataclass(frozen=True)
class PointResult:
    """One design point in one mode, priced with the sweep's plan (module docstring)."""

    index: int
    mode: str
    values: Mapping[str, float | int]
    area: float
    feasible: bool
    reason: str  # "" when feasible
    latency_cycles: int | None
    latency_s: float | None
    energy_pj: float | None
    dram_peak_bytes: int | None
    static_dram_bytes: int | None
    peak_memory_bytes: Mapping[str, int]
    plan_used: str  # default, rule or optimised (`PointPlan`)
    plan_status: str  # NOT_SEARCHED, or the optimised plan's search status (`PointPlan`)
    plan_gap: float | None = None


PLANS = ("default", "rule", "optimised")
RULE_MAX_STACK = 4
OPTIMISED_MAX_STACK = 6
OPTIMISED_TIME_LIMIT_S = 5.0  # per point and mode, model building included
NOT_SEARCHED = "not searched"


@dataclass(frozen=True)
class PointPlan:
    """A point's plan: which plan it is (`used`: default, rule or optimised) and what the fusion
    search proved (`status`: NOT_SEARCHED for the fixed plans, else the search's status over the
    fusion partitions, with its gap)."""

    plan: Plan
    used: str
    status: str = NOT_SEARCHED
    gap: float | None = None


def point_plan(graph: Graph, table: CostTable, plan: str, time_limit_s: float = 0.0) -> PointPlan:
    """The plan named `plan` (module docstring) for `graph` priced by `table`; `time_limit_s` bounds
    the search of the optimised plan (model building included)."""
    if plan == "default":
        return PointPlan(default_plan(graph, table), "default")
    if plan not in PLANS:
        raise InputError(f"--plan: unknown plan {plan!r} (known: {', '.join(PLANS)})")
    from monet_opt.families.fusion.heuristics import rule_partition
    from monet_opt.families.fusion.space import FusionObjective, fusion_space, plan_of

    rule_space = fusion_space(graph, table, RULE_MAX_STACK, FusionObjective.LATENCY, enumerate_stacks=False)
    rule = PointPlan(plan_of(graph, rule_partition(rule_space)), "rule")
    if plan == "rule":
        return rule
    from monet_opt.solving.common import SolverOptions
    from monet_opt.solving.contract import solve
    from monet_opt.families.fusion.family import FUSION

    deadline = Deadline.start(time_limit_s)
    space = fusion_space(graph, table, OPTIMISED_MAX_STACK, FusionObjective.EDP, deadline, enumerate_stacks=True)
    options = SolverOptions(workers=1, seed=0, progress=False)
    result = solve(FUSION, space, space.objective, "cpsat", options, deadline)
    candidates = [PointPlan(default_plan(graph, table), "default"), rule]
    if result.payload is not None:
        candidates.append(PointPlan(plan_of(graph, result.payload), "optimised"))

    def rank(candidate: PointPlan) -> tuple[bool, float]:
        simulated = simulate(graph, table.hw, candidate.plan, table)
        return bool(simulated.violations), simulated.latency_cycles * simulated.energy_pj

    best = min(candidates, key=rank)  # fitting plans first; of equal EDP the first (the fixed plans)
    return PointPlan(best.plan, best.used, result.status.value, result.stats.gap)


def evaluate_point(space: DesignSpace, index: int, graphs: Mapping[str, Graph], plan: str = "default",
                   point_time_limit_s: float = 0.0) -> list[PointResult]:
    """The point's rows, one per mode of `graphs` (mode -> graph), in the order of MODES;
    `point_time_limit_s` bounds each mode's search when `plan` is optimised."""
    hw = point_accelerator(space, index)
    values = point_values(space, index)
    area = area_proxy(hw, space.area)
    rows = []
    for mode in (m for m in MODES if m in graphs):
        graph = graphs[mode]
        try:
            table = CostTable(graph, hw)
            chosen = point_plan(graph, table, plan, point_time_limit_s)
            result = simulate(graph, hw, chosen.plan, table)
        except InfeasibleError as exc:
            rows.append(PointResult(index, mode, values, area, False, str(exc), None, None, None, None, None, {},
                                    plan, NOT_SEARCHED))
            continue
        capacity = [v.message for v in result.violations if v.kind == "capacity"]
        if result.violations and not capacity:
            raise AssertionError(f"{hw.name}: the {plan} plan is invalid: {result.violations[0].message}")
        rows.append(PointResult(index, mode, values, area, not capacity, capacity[0] if capacity else "",
                                result.latency_cycles, result.latency_cycles / hw.clock_hz, result.energy_pj,
                                result.peak_memory_bytes.get(DRAM), result.static_dram_bytes,
                                dict(result.peak_memory_bytes), chosen.used, chosen.status, chosen.gap))
    return rows


def evaluate_points(space: DesignSpace, indices: Sequence[int], graphs: Mapping[str, Graph], plan: str = "default",
                    point_time_limit_s: float = 0.0, stop_at_epoch_s: float = math.inf) -> list[PointResult] | None:
    """`evaluate_point` for each index, in order (one batch of a sweep); None when a point would
    start after `stop_at_epoch_s` (time.time() seconds): the batch is then left for a rerun."""
    rows: list[PointResult] = []
    for index in indices:
        if time.time() >= stop_at_epoch_s:
            return None
        rows += evaluate_point(space, index, graphs, plan, point_time_limit_s)
    return rows


EXECUTORS = ("local", "dask")
DASK_CONNECT_TIMEOUT_S = 10.0
"""Longest wait for a Dask scheduler at --address to answer (less when the time limit is nearer)."""


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep directory holds (its `sweep.json`): a rerun must ask for the same."""

    space_source: str
    space_text: str  # the space file as read: an edited space is a different sweep
    workload: str
    modes: tuple[str, ...]
    indices: tuple[int, ...]
    batch_size: int
    plan: str = "default"
    point_time_limit_s: float = 0.0  # the optimised plan's search per point and mode


def _batches(spec: SweepSpec) -> list[tuple[int, tuple[int, ...]]]:
    size = spec.batch_size
    return [(k, spec.indices[k * size:(k + 1) * size]) for k in range((len(spec.indices) + size - 1) // size)]


def _part_path(out: Path, batch: int) -> Path:
    return out / "parts" / f"part-{batch:05d}.parquet"


def rows_table(rows: Sequence[PointResult], space: DesignSpace) -> Any:
    """The rows as a pyarrow Table (module docstring: the columns), one `peak_MEMORY_bytes` column
    per memory of any of the rows (null where a point has no such memory)."""
    import pyarrow as pa

    columns: dict[str, Any] = {"index": [r.index for r in rows], "mode": [r.mode for r in rows]}
    for parameter in space.parameters:
        columns[f"p_{parameter.name}"] = [r.values[parameter.name] if parameter.is_choice
                                          else float(r.values[parameter.name]) for r in rows]
    for name in ("area", "feasible", "reason", "latency_cycles", "latency_s", "energy_pj", "dram_peak_bytes",
                 "static_dram_bytes", "plan_used", "plan_status", "plan_gap"):
        columns[name] = [getattr(r, name) for r in rows]
    for memory in sorted({m for r in rows for m in r.peak_memory_bytes}):
        columns[f"peak_{memory}_bytes"] = pa.array([r.peak_memory_bytes.get(memory) for r in rows], pa.int64())
    return pa.table(columns)


def concat_rows(tables: Sequence[Any], space: DesignSpace) -> Any:
    """Tables of `rows_table` as one, in order: the memory columns are the union of theirs, sorted."""
    import pyarrow as pa

    if not tables:
        return rows_table([], space)
    table = pa.concat_tables(tables, promote_options="default")
    fixed = [c for c in table.column_names if not c.startswith("peak_")]
    return table.select(fixed + sorted(c for c in table.column_names if c.startswith("peak_")))


def run_sweep(space: DesignSpace, spec: SweepSpec, graphs: Mapping[str, Graph], out: str | Path,
              executor: str = "local", address: str | None = None, workers: int = 2,
              progress: Callable[[str], None] | None = None, deadline: Deadline | None = None) -> tuple[Any, int]:
    """Evaluate every point of `spec` (module docstring) into `out`: (the table of every finished
    point, how many points are left). No task starts after `deadline`, and a task running then
    stops before its next point (its batch is left for a rerun), so the command ends at most one
    point's time after it. `results.parquet` is written when no point is left."""
    import pyarrow.parquet as pq

    out = Path(out)
    manifest = out / "sweep.json"
    if manifest.exists():
        _check_same_sweep(manifest, spec)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(manifest, json.dumps(asdict(spec), indent=1) + "\n")
    (out / "parts").mkdir(exist_ok=True)
    pending = {k: batch for k, batch in _batches(spec) if not _readable_part(_part_path(out, k), progress)}
    already = done = len(spec.indices) - sum(len(b) for b in pending.values())
    started = time.perf_counter()
    for k, rows in _run_batches(space, list(pending.items()), graphs, spec, executor, address, workers,
                                deadline or Deadline.start(math.inf)):
        if rows is None:
            continue
        with atomic_path(_part_path(out, k)) as tmp:
            pq.write_table(rows_table(rows, space), tmp)
        done += len(pending[k])
        if progress is not None:
            rate = (done - already) / max(time.perf_counter() - started, 1e-9)
            progress(f"monet sweep: {done}/{len(spec.indices)} points, {rate:.1f} points/s")
    parts = [pq.read_table(path) for k, _ in _batches(spec) if (path := _part_path(out, k)).exists()]
    table = concat_rows(parts, space)
    left = len(spec.indices) - done
    if not left:
        with atomic_path(out / "results.parquet") as tmp:
            pq.write_table(table, tmp)
    return table, left


def _check_same_sweep(manifest: Path, spec: SweepSpec) -> None:
    """InputError unless `manifest` (a sweep directory's sweep.json) records the sweep `spec` asks
    for: the same space text, workload, modes, points and plan (the space file's path may be spelt
    differently)."""
    try:
        recorded = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{manifest}: not a sweep record ({exc.__class__.__name__}); use a new --out directory "
                         "or remove the directory") from None
    wanted = json.loads(json.dumps(asdict(spec)))
    if not isinstance(recorded, dict) or any(recorded.get(key) != value for key, value in wanted.items()
                                             if key != "space_source"):
        raise InputError(f"{manifest.parent}: holds a different sweep (sweep.json: another space, workload, modes or "
                         "points); use a new --out directory")


def _readable_part(path: Path, progress: Callable[[str], None] | None) -> bool:
    """Whether the batch's part file exists and is a readable Parquet file; an unreadable one (cut
    short by something outside monet, which writes parts through a temporary file) is removed, and
    its batch is evaluated again."""
    import pyarrow.parquet as pq

    if not path.exists():
        return False
    try:
        pq.read_metadata(path)
        return True
    except (OSError, ValueError) as exc:
        if progress is not None:
            progress(f"monet sweep: {path} is unreadable ({' '.join(str(exc).split())[:80]}); evaluating it again")
        path.unlink()
        return False


def _worker_start(parent_pid: int) -> None:
    """Each local worker process: Ctrl-C is the parent's to handle (it stops the workers), the
    parent's SIGTERM handler (inherited through fork: it raises inside the work, `cli.main.run`)
    gives way to the default, so that the parent's `terminate()` ends a worker without a traceback,
    and the worker exits within half a second of its parent's death, so that a killed sweep leaves
    no process behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(0.5)
    os._exit(1)


def _stop_workers(pool: Any) -> None:
    """Cancel what is queued and end the worker processes at once (Python 3.11's ProcessPoolExecutor
    has no public call that ends running tasks)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(5)


def _run_batches(space: DesignSpace, batches: Sequence[tuple[int, tuple[int, ...]]], graphs: Mapping[str, Graph],
                 spec: SweepSpec, executor: str, address: str | None, workers: int, deadline: Deadline
                 ) -> Iterator[tuple[int, list[PointResult] | None]]:
    """(batch number, its rows or None when the deadline stopped it) as each batch finishes, on the
    chosen executor; at most two tasks per worker are queued at a time, and none is submitted
    after the deadline."""
    queue = list(batches)
    stop_at_epoch_s = time.time() + deadline.remaining_s() if math.isfinite(deadline.limit_s) else math.inf
    plan, point_limit_s = spec.plan, spec.point_time_limit_s
    if executor == "local":
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_start, initargs=(os.getpid(),))
        try:
            running: dict[Any, int] = {}
            while True:
                while queue and len(running) < 2 * workers and not deadline.expired():
                    k, batch = queue.pop(0)
                    running[pool.submit(evaluate_points, space, batch, graphs, plan, point_limit_s, stop_at_epoch_s)] = k
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield running.pop(future), future.result()
        except BaseException:  # Ctrl-C, SIGTERM, an error: no worker outlives the command
            _stop_workers(pool)
            raise
        pool.shutdown()
        return
    if executor != "dask":
        raise InputError(f"--executor: unknown executor {executor!r} (known: {', '.join(EXECUTORS)})")
    if not queue or deadline.expired():
        return
    from distributed import Client, LocalCluster, as_completed as dask_completed

    cluster = None if address else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                dashboard_address=None)
    try:
        try:
            client = Client(address or cluster, timeout=max(1.0, min(DASK_CONNECT_TIMEOUT_S, deadline.remaining_s())))
        except (OSError, TimeoutError) as exc:
            raise InputError(f"--address {address}: no Dask scheduler answered ({' '.join(str(exc).split())[:120]})"
                             ) from None
        with client:
            window = 2 * max(len(client.scheduler_info()["workers"]), 1)
            space_future, graphs_future = client.scatter([space, dict(graphs)], broadcast=True)
            number: dict[Any, int] = {}

            def submit(completed: Any) -> None:
                while queue and sum(1 for f in number if not f.done()) < window and not deadline.expired():
                    k, batch = queue.pop(0)
                    future = client.submit(evaluate_points, space_future, batch, graphs_future, plan, point_limit_s,
                                           stop_at_epoch_s, pure=False)
                    number[future] = k
                    completed.add(future)

            completed = dask_completed()
            submit(completed)
            for future in completed:
                yield number.pop(future), future.result()
                submit(completed)
    finally:
        if cluster is not None:
            cluster.close()


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class WorkloadSpec:
    """A workload as `monet sweep` names it: a built-in model or ONNX file and its options."""

    name: str
    batch: int | None = None
    seq_len: int | None = None
    image_size: int | None = None
    classes: int | None = None
    optimizer: str = "adam"
    precision: str = "fp32"
    partial_sum: str | None = None
    updates: str = "end"  # optimizer update placement (monet_opt.model.training.UpdatePlacement)

    def graphs(self, modes: Sequence[str]) -> dict[str, Graph]:
        """The graph of each mode: the training step, or the inference pass without the loss."""
        from monet_opt.model.training import (
            Optimizer, UpdatePlacement, derive_training_graph, inference_graph, precision_named,
        )
        from monet_opt.model.workload import load_forward_graph

        forward = load_forward_graph(self.name, batch=self.batch, seq_len=self.seq_len, image_size=self.image_size,
                                     num_classes=self.classes)
        graphs = {}
        for mode in modes:
            precision = precision_named(self.precision, mode == "training", self.partial_sum)
            graphs[mode] = (derive_training_graph(forward, Optimizer(self.optimizer), precision,
                                                  UpdatePlacement(self.updates)) if mode == "training"
                            else inference_graph(forward, precision))
        return graphs


def sweep(space: str | Path, workload: str | WorkloadSpec, modes: Sequence[str] = MODES, samples: int | None = None,
          seed: int = 0, grid: bool = False, executor: str = "local", address: str | None = None, workers: int = 2,
          points_per_task: int | None = None, out: str | Path | None = None,
          progress: Callable[[str], None] | None = None, plan: str = "default",
          deadline: Deadline | None = None, point_time_limit_s: float | None = None) -> tuple[Any, int]:
    """`monet sweep` as a function (module docstring): (the table of every finished point
    (pyarrow), how many points are left: non-zero only when `deadline` stopped it; the same call
    with the same `out` then finishes them). `out` None: a temporary directory, removed afterwards.
    `points_per_task` None: 100 for the fixed plans, 1 for the optimised one; `point_time_limit_s`
    (optimised plan only) None: OPTIMISED_TIME_LIMIT_S. InputError for a bad space, workload or
    option."""
    import tempfile

    from monet_opt.studies.design_space import grid_points, load_space, sample_points

    loaded = load_space(space)
    if grid == (samples is not None):
        raise InputError("sweep: give exactly one of --samples N or --grid")
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise InputError(f"sweep: mode {unknown[0] if unknown else '(none)'!r} is not one of {', '.join(MODES)}")
    spec_workload = WorkloadSpec(workload) if isinstance(workload, str) else workload
    graphs = spec_workload.graphs(modes)
    indices = grid_points(loaded) if grid else sample_points(loaded, samples or 0, seed)
    if not indices:
        raise InputError(f"{space}: constraints: no point of the space satisfies them")
    if plan not in PLANS:
        raise InputError(f"--plan: unknown plan {plan!r} (known: {', '.join(PLANS)})")
    if point_time_limit_s is not None and plan != "optimised":
        raise InputError("--point-time-limit: only with --plan optimised (the other plans are not searched)")
    optimised = plan == "optimised"
    spec = SweepSpec(os.path.normpath(str(space)), Path(space).read_text(encoding="utf-8"), repr(spec_workload), tuple(modes),
                     tuple(indices), points_per_task or (1 if optimised else 100), plan,
                     (point_time_limit_s or OPTIMISED_TIME_LIMIT_S) if optimised else 0.0)
    if out is not None:
        table, left = run_sweep(loaded, spec, graphs, out, executor, address, workers, progress, deadline)
        if not left:
            plot_fronts(table, Path(out) / "fronts.png")
        return table, left
    with tempfile.TemporaryDirectory() as directory:
        return run_sweep(loaded, spec, graphs, directory, executor, address, workers, progress, deadline)


def front_indices(table: Any, mode: str) -> set[int]:
    """Point indices on the latency-energy Pareto front of `mode` (feasible rows only)."""
    rows = [r for r in table.to_pylist() if r["mode"] == mode and r["feasible"]]
    return {rows[i]["index"] for i in pareto_front([(r["latency_s"], r["energy_pj"]) for r in rows])}


def plot_fronts(table: Any, path: str | Path) -> None:
    """Latency against energy of every feasible point, one panel per mode, each mode's Pareto front
    drawn; points on one mode's front and not the other's are marked in both panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in MODES if m in set(table.column("mode").to_pylist())]
    fronts = {m: front_indices(table, m) for m in modes}
    only = {m: fronts[m] - set().union(*(fronts[o] for o in modes if o != m)) for m in modes} if len(modes) > 1 else {}
    figure, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4.5), squeeze=False)
    for axis, mode in zip(axes[0], modes, strict=True):
        rows = [r for r in table.to_pylist() if r["mode"] == mode and r["feasible"]]
        axis.scatter([r["latency_s"] * 1e3 for r in rows], [r["energy_pj"] * 1e-9 for r in rows], s=6, c="0.75",
                     label="feasible designs")
        front = sorted((r for r in rows if r["index"] in fronts[mode]), key=lambda r: r["latency_s"])
        axis.plot([r["latency_s"] * 1e3 for r in front], [r["energy_pj"] * 1e-9 for r in front], "o-", ms=4,
                  label=f"{mode} front")
        for other, marker in zip(only, ("^", "s"), strict=False):
            marked = [r for r in rows if r["index"] in only[other]]
            axis.scatter([r["latency_s"] * 1e3 for r in marked], [r["energy_pj"] * 1e-9 for r in marked],
                         marker=marker, s=40, facecolors="none", edgecolors="C3" if other == "training" else "C2",
                         label=f"on the {other} front only")
        axis.set_xlabel("latency [ms]")
        axis.set_ylabel("energy [mJ]")
        axis.set_title(mode)
        axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=110, format="png")
    plt.close(figure)
