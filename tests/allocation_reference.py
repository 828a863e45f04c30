"""Exhaustive reference for allocation on small instances: every assignment and every global
topological order, list-scheduled (a task starts when its core is free, its inputs have
arrived, + the transfer delay across cores, and its DRAM link is free: it holds the link for
bus_cycles from its start). Resources serve tasks in the order's sequence, which reaches every
schedule's start order. Independent of the package's evaluator."""

import itertools
import math
import random

import networkx as nx

from monet_opt.families.allocation.problem import AllocationProblem, Edge, Option


def schedules(problem: AllocationProblem):
    """(makespan, energy) of every assignment under every topological order."""
    dag = nx.DiGraph()
    dag.add_nodes_from(range(problem.n))
    dag.add_edges_from((e.source, e.target) for e in problem.edges)
    orders = list(nx.all_topological_sorts(dag))
    bandwidth = problem.transfer_bits_per_cycle
    for assignment in itertools.product(*[sorted(o) for o in problem.options]):
        energy = sum(problem.options[t][assignment[t]].energy_pj for t in range(problem.n))
        for e in problem.edges:
            if assignment[e.source] != assignment[e.target] and bandwidth:
                energy += e.size_bytes * 8 * problem.transfer_energy_pj_per_bit
        for order in orders:
            free = {c: 0 for c in problem.cores}
            link_free: dict = {}
            end = [0] * problem.n
            for t in order:
                option = problem.options[t][assignment[t]]
                start = max(free[assignment[t]], link_free.get(option.bus, 0) if option.bus_cycles else 0)
                for e in problem.edges:
                    if e.target == t:
                        delay = 0 if assignment[e.source] == assignment[t] or not bandwidth else \
                            math.ceil(e.size_bytes * 8 / bandwidth)
                        start = max(start, end[e.source] + delay)
                end[t] = start + option.duration_cycles
                free[assignment[t]] = end[t]
                if option.bus is not None and option.bus_cycles:
                    link_free[option.bus] = start + option.bus_cycles  # held from the start
            yield max(end), energy


def brute_force(problem: AllocationProblem):
    """(smallest makespan, smallest energy, Pareto front as sorted (makespan, energy) pairs)."""
    points = set(schedules(problem))
    front = []
    for makespan, energy in sorted(points):
        if not front or energy < front[-1][1] - 1e-9:
            front.append((makespan, energy))
    return min(p[0] for p in points), min(p[1] for p in points), front


def random_instance(seed: int, tasks: int, cores: int) -> AllocationProblem:
    rng = random.Random(seed)
    names = tuple(f"c{k}" for k in range(cores))
    options = []
    for _ in range(tasks):
        eligible = [c for c in names if rng.random() < 0.75] or [rng.choice(names)]
        options.append({c: Option(rng.randint(1, 9), float(rng.randint(1, 20))) for c in eligible})
    edges = tuple(Edge(i, j, rng.choice([0, 8, 16, 64])) for j in range(tasks) for i in range(j) if rng.random() < 0.3)
    return AllocationProblem(f"random{seed}", tuple(f"t{k}" for k in range(tasks)), names, tuple(options), edges,
                             transfer_bits_per_cycle=32, transfer_energy_pj_per_bit=0.05)


def random_link_instance(seed: int, tasks: int, cores: int) -> AllocationProblem:
    """Training-graph-like: every option holds one shared DRAM link for part of its duration (the
    same link cycles on every core, as DRAM traffic does), no transfer delays."""
    rng = random.Random(seed)
    names = tuple(f"c{k}" for k in range(cores))
    options = []
    for _ in range(tasks):
        eligible = [c for c in names if rng.random() < 0.75] or [rng.choice(names)]
        link = rng.randint(1, 4)
        options.append({c: Option(link + rng.randint(0, 6), float(rng.randint(1, 20)), "dram", link) for c in eligible})
    edges = tuple(Edge(i, j, 0) for j in range(tasks) for i in range(j) if rng.random() < 0.3)
    return AllocationProblem(f"link{seed}", tuple(f"t{k}" for k in range(tasks)), names, tuple(options), edges)
