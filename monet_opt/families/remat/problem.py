"""The abstract rematerialisation problem: a DAG whose nodes have a compute cost and an output size.

A schedule is a sequence of node executions (a repeat is a recomputation). Rules:
- every node runs at least once, and first executions follow the reference order (Checkmate's
  frontier-advancing schedules; recomputations interleave freely), or, for a problem with
  `free_order`, any topological order;
- a node runs only after each of its inputs has run (it reads the most recent copy);
- memory at a step is the size of the node being computed plus the sizes of every copy computed
  earlier that is still needed: read by the current execution or by a later one before that value
  is computed again (a copy is freed right after its last use);
- the peak over the steps must not exceed the budget; the objective is the total compute cost.

`evaluate_schedule` applies these rules to any sequence; it is the referee of every method.
Costs and sizes are integers in the model; fractional inputs are scaled by a power of ten (up to
10^6) and reported back in the original unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import networkx as nx

from monet_opt.errors import InputError
from monet_opt.io import check_keys, load_data
from monet_opt.solving.common import LARGEST_VALUE


@dataclass(frozen=True)
class RematProblem:
    """Nodes in the reference order (a topological order); `preds[i]` are indices < i."""

    name: str
    nodes: tuple[str, ...]
    preds: tuple[tuple[int, ...], ...]
    cost: tuple[int, ...]
    size: tuple[int, ...]
    cost_scale: int = 1  # model cost = original cost * cost_scale
    size_scale: int = 1
    free_order: bool = False  # first executions in any topological order, not only the reference order

    @property
    def n(self) -> int:
        return len(self.nodes)

    @cached_property
    def succs(self) -> tuple[tuple[int, ...], ...]:
        out: list[list[int]] = [[] for _ in self.nodes]
        for j, ps in enumerate(self.preds):
            for i in ps:
                out[i].append(j)
        return tuple(tuple(s) for s in out)

    @cached_property
    def last_descendant(self) -> tuple[int, ...]:
        """Largest index of any descendant of each node (-1 for sinks): after that stage nothing can
        need the node again, not even to recompute something else."""
        last = [-1] * self.n
        for i in reversed(range(self.n)):
            for j in self.succs[i]:
                last[i] = max(last[i], j, last[j])
        return tuple(last)


@dataclass(frozen=True)
class ScheduleEvaluation:
    cost: int
    peak: int
    problems: tuple[str, ...]  # empty when the sequence obeys every rule
    peak_step: int = 0  # the first step at which memory reaches the peak
    lifetimes: tuple[tuple[int, int], ...] = ()  # per step: (its copy's first, last step live)

    @property
    def valid(self) -> bool:
        return not self.problems


def evaluate_schedule(problem: RematProblem, sequence: Sequence[int]) -> ScheduleEvaluation:
    """Cost, peak memory and rule violations of `sequence` (node indices), by the module's rules."""
    problems: list[str] = []
    n = problem.n
    seen = [False] * n
    frontier = 0
    latest = [-1] * n  # position of the most recent execution of each node
    last_use: dict[int, int] = {}  # position of a copy (its execution) -> position of its last use
    for pos, v in enumerate(sequence):
        if not 0 <= v < n:
            problems.append(f"step {pos}: unknown node index {v}")
            continue
        for p in problem.preds[v]:
            if latest[p] < 0:
                problems.append(f"step {pos}: {problem.nodes[v]!r} runs before its input {problem.nodes[p]!r}")
            else:
                last_use[latest[p]] = pos
        if not seen[v]:
            if v != frontier and not problem.free_order:
                problems.append(f"step {pos}: first execution of {problem.nodes[v]!r} is out of the reference order")
            seen[v] = True
            while frontier < n and seen[frontier]:
                frontier += 1
        latest[v] = pos
        last_use.setdefault(pos, pos)
    missing = [problem.nodes[i] for i in range(n) if not seen[i]]
    if missing:
        problems.append(f"{len(missing)} nodes never run (first: {missing[0]!r})")
    delta = [0] * (len(sequence) + 1)
    for start, end in last_use.items():
        size = problem.size[sequence[start]]
        delta[start] += size
        delta[end + 1] -= size
    peak = level = peak_step = 0
    for step, d in enumerate(delta[:-1]):
        level += d
        if level > peak:
            peak, peak_step = level, step
    cost = sum(problem.cost[v] for v in sequence if 0 <= v < n)
    lifetimes = tuple((pos, last_use.get(pos, pos)) for pos in range(len(sequence)))
    return ScheduleEvaluation(cost, peak, tuple(problems), peak_step, lifetimes)


def memory_levels(problem: RematProblem, sequence: Sequence[int], evaluation: ScheduleEvaluation) -> list[int]:
    """Memory at each step of `sequence` (its `evaluate_schedule` result), by the module's rules."""
    delta = [0] * (len(sequence) + 1)
    for start, end in evaluation.lifetimes:
        delta[start] += problem.size[sequence[start]]
        delta[end + 1] -= problem.size[sequence[start]]
    levels, level = [], 0
    for d in delta[:-1]:
        level += d
        levels.append(level)
    return levels


def memory_excess(problem: RematProblem, sequence: Sequence[int], evaluation: ScheduleEvaluation, budget: int) -> int:
    """Memory above `budget` summed over the steps of `sequence` (0 when it fits): the measure the
    peak descent and the feasibility phase lower."""
    return sum(max(0, level - budget) for level in memory_levels(problem, sequence, evaluation))


def store_all_peak(problem: RematProblem) -> int:
    """Peak memory of the reference order without recomputation (budgets in % refer to it)."""
    return evaluate_schedule(problem, range(problem.n)).peak


def _integers(values: list[float], what: str, source: str) -> tuple[tuple[int, ...], int]:
    """Scale values by the smallest power of ten (<= 10^6) that makes them integral."""
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
            raise InputError(f"{source}: {what} must be a non-negative number, got {v!r}")
        if v > LARGEST_VALUE:
            raise InputError(f"{source}: {what} {v!r} is larger than {LARGEST_VALUE:g}")
    scale = 1
    while scale < 10**6 and any(abs(v * scale - round(v * scale)) > 1e-9 * max(1.0, abs(v * scale)) for v in values):
        scale *= 10
    return tuple(int(round(v * scale)) for v in values), scale


def problem_from_edges(name: str, nodes: list[tuple[Any, float, float]], edges: list[tuple[Any, Any]],
                       order: list[Any] | None, source: str) -> RematProblem:
    """Build a problem from (id, cost, size) triples and (source, target) edges; checks ids, cycles
    and the order."""
    if not nodes:
        raise InputError(f"{source}: the graph has no nodes")
    ids = [str(n[0]) for n in nodes]
    if len(set(ids)) != len(ids):
        raise InputError(f"{source}: duplicate node id")
    index = {nid: i for i, nid in enumerate(ids)}
    g = nx.DiGraph()
    g.add_nodes_from(ids)
    for s, t in edges:
        s, t = str(s), str(t)
        for end in (s, t):
            if end not in index:
                raise InputError(f"{source}: edge {s!r} -> {t!r} names unknown node {end!r}")
        g.add_edge(s, t)
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        raise InputError(f"{source}: the graph has a cycle: {' -> '.join([u for u, _ in cycle] + [cycle[0][0]])}")
    if order is None:
        ordered = list(nx.lexicographical_topological_sort(g, key=index.__getitem__))
    else:
        ordered = [str(x) for x in order]
        if sorted(ordered) != sorted(ids):
            raise InputError(f"{source}: graph attribute 'order' is not a permutation of the nodes")
        position = {v: i for i, v in enumerate(ordered)}
        for s, t in g.edges:
            if position[s] > position[t]:
                raise InputError(f"{source}: 'order' puts {t!r} before its input {s!r}")
    position = {v: i for i, v in enumerate(ordered)}
    cost, cost_scale = _integers([nodes[index[v]][1] for v in ordered], "cost_cpu", source)
    size, size_scale = _integers([nodes[index[v]][2] for v in ordered], "cost_ram", source)
    preds = tuple(tuple(sorted(position[p] for p in g.predecessors(v))) for v in ordered)
    return RematProblem(name, tuple(ordered), preds, cost, size, cost_scale, size_scale)


def load_problem(path: str | Path) -> RematProblem:
    """Read a networkx node-link JSON (node attributes cost_cpu, cost_ram; edges under "links" or
    "edges"; optional graph attribute "order") or the project's YAML (nodes: [{id, cost, size,
    inputs}], optional order)."""
    path = Path(path)
    data = load_data(path)
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise InputError(f"{path}: missing key nodes (a list)")
    source = str(path)
    nodes, edges = [], []
    if path.suffix == ".json":
        for i, node in enumerate(data["nodes"]):
            for key in ("id", "cost_cpu", "cost_ram"):
                if not isinstance(node, dict) or key not in node:
                    raise InputError(f"{source}: nodes[{i}] is missing attribute {key!r}")
            nodes.append((node["id"], node["cost_cpu"], node["cost_ram"]))
        links = data.get("links", data.get("edges", []))
        for i, link in enumerate(links):
            if not isinstance(link, dict) or "source" not in link or "target" not in link:
                raise InputError(f"{source}: links[{i}] needs source and target")
            edges.append((link["source"], link["target"]))
        order = (data.get("graph") or {}).get("order")
    else:
        check_keys(data, ("name", "nodes", "order"), source)
        for i, node in enumerate(data["nodes"]):
            for key in ("id", "cost", "size"):
                if not isinstance(node, dict) or key not in node:
                    raise InputError(f"{source}: nodes[{i}].{key}: missing key")
            check_keys(node, ("id", "cost", "size", "inputs"), f"{source}: nodes[{i}]")
            nodes.append((node["id"], node["cost"], node["size"]))
            edges.extend((p, node["id"]) for p in node.get("inputs", []))
        order = data.get("order")
    return problem_from_edges(str(data.get("name") or path.stem), nodes, edges, order, source)


def chain_problem(forward_nodes: int, cost: int = 1, size: int = 1) -> RematProblem:
    """The uniform adjoint chain: f1 -> ... -> fn, then bn, ..., b1 with b_i reading f_i and
    b_{i+1} (bn reads fn)."""
    n = forward_nodes
    names = [f"f{i}" for i in range(1, n + 1)] + [f"b{i}" for i in range(n, 0, -1)]
    index = {name: i for i, name in enumerate(names)}
    preds = []
    for name in names:
        k = int(name[1:])
        if name[0] == "f":
            preds.append((index[f"f{k - 1}"],) if k > 1 else ())
        else:
            preds.append(tuple(sorted([index[f"f{k}"]] + ([index[f"b{k + 1}"]] if k < n else []))))
    return RematProblem(f"chain{n}", tuple(names), tuple(preds), (cost,) * 2 * n, (size,) * 2 * n)
