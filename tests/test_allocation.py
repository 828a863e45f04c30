"""Allocation: CP-SAT against exhaustive enumeration, validation by the referee, never worse than
greedy, the GA, the YAML format, infeasibility, and the CLI."""

import json

import pytest

from allocation_reference import brute_force, random_instance, random_link_instance
from monet_opt.cli import main
from monet_opt.errors import InfeasibleError, InputError
from monet_opt.families.allocation.family import AllocationInstance, solve_allocation
from monet_opt.families.allocation.ga import stream_ga_config
from monet_opt.families.allocation.problem import from_training, load_instance
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.training import derive_training_graph
from monet_opt.model.workload import load_forward_graph
from monet_opt.solving.common import Deadline, SolverOptions, SolveStatus

OPTIONS = SolverOptions(workers=2, seed=0)
SMALL_GA = stream_ga_config(population=16, generations=15, seed=3)


def instances():
    yield load_instance("instances/allocation/fork_join.yaml")
    yield load_instance("instances/allocation/three_cores.yaml")
    for seed in range(6):
        yield random_instance(seed, tasks=7 if seed % 2 else 6, cores=2 if seed % 2 else 3)
    for seed in range(3):
        yield random_link_instance(seed, tasks=7 if seed % 2 else 6, cores=2 if seed % 2 else 3)


@pytest.mark.parametrize("problem", list(instances()), ids=lambda p: p.name)
def test_cpsat_equals_brute_force(problem):
    makespan, energy, front = brute_force(problem)
    instance = AllocationInstance(problem)
    fastest = solve_allocation(instance, "cpsat", "latency", OPTIONS)
    assert fastest.stats.status is SolveStatus.OPTIMAL and fastest.payload.best.latency_cycles == makespan
    frugal = solve_allocation(instance, "cpsat", "energy", OPTIONS)
    assert frugal.payload.best.energy_pj == pytest.approx(energy, rel=1e-9)
    pareto = solve_allocation(instance, "cpsat", "pareto", OPTIONS, pareto_points=len(front) + 1)
    got = [(v.latency_cycles, v.energy_pj) for v in pareto.payload.front]
    assert [g[0] for g in got] == [f[0] for f in front]
    assert [g[1] for g in got] == pytest.approx([f[1] for f in front], rel=1e-9)
    greedy = solve_allocation(instance, "greedy", "latency", OPTIONS)
    assert fastest.payload.best.latency_cycles <= greedy.payload.best.latency_cycles
    ga = solve_allocation(instance, "ga", "latency", OPTIONS, SMALL_GA)
    assert ga.payload.best.latency_cycles >= makespan


def test_fork_join_front_by_hand():
    """fast: load 2, left 6, right 5, join 3 (join runs only there); frugal: 4, 9, 8; transfers of
    32 bytes (load -> branch) take 4 cycles, of 16 bytes 2 cycles, at 0.01 pJ/bit.
    All on fast: 2 + 6 + 5 + 3 = 16 cycles, 32 pJ. Least energy: load, left, right on frugal
    (4 + 9 + 8 = 21), 2 cycles to join: 26 cycles, 1 + 3 + 2.5 + 6 + 2 x 1.28 pJ = 15.06 pJ."""
    problem = load_instance("instances/allocation/fork_join.yaml")
    _, _, front = brute_force(problem)
    assert front[0] == (16, 32.0) and front[-1] == (26, pytest.approx(15.06))


@pytest.fixture(scope="module")
def cifar():
    graph = derive_training_graph(load_forward_graph("resnet18-cifar"))
    hw = load_accelerator("edge-tpu-quad")
    table = CostTable(graph, hw)
    return AllocationInstance(from_training(graph, hw, table), graph, hw, table)


def test_training_graph_is_validated_and_never_worse_than_greedy(cifar):
    assert cifar.problem.core_classes == (("tpu0", "tpu1", "tpu2", "tpu3"),)
    greedy = solve_allocation(cifar, "greedy", "latency", OPTIONS)
    exact = solve_allocation(cifar, "cpsat", "latency", SolverOptions(workers=2), deadline=Deadline.start(5))
    assert exact.payload.best.simulation.valid and greedy.payload.best.simulation.valid
    assert exact.payload.best.latency_cycles <= greedy.payload.best.latency_cycles
    # the bound is a valid lower bound of the simulated makespan, and the gap is measured against it
    assert exact.stats.bound <= exact.payload.best.latency_cycles
    assert exact.stats.gap == pytest.approx(1 - exact.stats.bound / exact.payload.best.latency_cycles) or \
        exact.stats.status is SolveStatus.OPTIMAL
    # energy depends only on the assignment: the least-energy plan is no worse than the fastest
    frugal = solve_allocation(cifar, "cpsat", "energy", SolverOptions(workers=2), deadline=Deadline.start(5))
    assert frugal.payload.best.energy_pj <= exact.payload.best.energy_pj * (1 + 1e-12)


def test_ga_is_deterministic_and_its_front_is_non_dominated(cifar):
    runs = [solve_allocation(cifar, "ga", "pareto", OPTIONS, stream_ga_config(12, 6, seed=4)) for _ in range(2)]
    fronts = [[(v.latency_cycles, v.energy_pj) for v in r.payload.front] for r in runs]
    assert fronts[0] == fronts[1]
    assert all(a[0] < b[0] and a[1] > b[1] for a, b in zip(fronts[0], fronts[0][1:], strict=False))


def test_instances_bad_and_infeasible(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cores: [a]\ntasks:\n  - {name: t, options: {b: {duration_cycles: 1}}}\n")
    with pytest.raises(InputError, match=r"tasks\[0\].options: unknown core 'b'"):
        load_instance(bad)
    bad.write_text("cores: [a]\ntasks:\n  - {name: t, options: {a: {duration_cycles: -1}}}\n")
    with pytest.raises(InputError, match="duration_cycles: expected a number >= 0"):
        load_instance(bad)
    bad.write_text("cores: [a]\ntasks:\n  - {name: t, options: {a: {duration_cycles: 1}}}\n"
                   "  - {name: u, options: {a: {duration_cycles: 1}}}\nedges:\n  - {from: t, to: u}\n  - {from: u, to: t}\n")
    with pytest.raises(InputError, match="cycle"):
        load_instance(bad)
    bad.write_text("cores: [a]\ntasks:\n  - {name: t, options: {}}\n")
    with pytest.raises(InfeasibleError, match="task 't' can run on no core"):
        load_instance(bad)


def test_an_op_no_core_can_run_is_infeasible():
    graph = derive_training_graph(load_forward_graph("resnet18-cifar"))
    hw = load_accelerator("edge-tpu-quad")
    crippled = type(hw)(**{**hw.__dict__, "cores": tuple(c for c in hw.cores if c.name != "simd")})
    with pytest.raises(InfeasibleError, match=r"op '.*' \(.*\) can run on no core"):
        from_training(graph, crippled)


def test_cli_allocate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["allocate", "--instance", "instances/allocation/fork_join.yaml", "--objective", "pareto",
                 "--time-limit", "10", "--out", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("status", "latency_cycles", "energy_pj", "bound", "gap", "solve_time_s", "validated", "assignment"):
        assert key in data
    assert data["latency_cycles"] == 16 and len(data["front"]) == 4
    assert {p.name for p in out.iterdir()} == {"allocation.json", "front.csv", "front.png"}
    assert main(["allocate", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--method", "greedy",
                 "--out", str(tmp_path / "w")]) == 0
    assert {p.name for p in (tmp_path / "w").iterdir()} == {"allocation.json", "result.json", "gantt.png",
                                                             "memory.png", "trace.json"}
    capsys.readouterr()
    assert main(["allocate", "--workload", "resnet18-cifar", "--method", "greedy"]) == 2
    assert "needs --hardware" in capsys.readouterr().err
    empty = tmp_path / "empty.yaml"
    empty.write_text("cores: [a]\ntasks:\n  - {name: t, options: {}}\n")
    assert main(["allocate", "--instance", str(empty)]) == 3
    assert "task 't' can run on no core" in capsys.readouterr().err


def test_jackson_preemptive_schedule_by_hand():
    from monet_opt.families.allocation.bounds import _jackson_preemptive

    # (release, length, tail): the long job runs 0..2, the urgent one preempts it at 2 (2..3, 3 + 20),
    # the long one resumes 3..11 (11 + 0)
    assert _jackson_preemptive([(0, 10, 0), (2, 1, 20)]) == 23
    assert _jackson_preemptive([(5, 2, 1), (0, 1, 0)]) == 8  # idle from 1 to 5


def _link_example():
    """a (10 cycles, link 2) -> b (3, link 3); c (4, link 4) independent; two identical cores."""
    from monet_opt.families.allocation.problem import AllocationProblem, Edge, Option

    return AllocationProblem(
        "hand", ("a", "b", "c"), ("x", "y"),
        ({"x": Option(10, 1.0, "dram", 2), "y": Option(10, 1.0, "dram", 2)},
         {"x": Option(3, 1.0, "dram", 3), "y": Option(3, 1.0, "dram", 3)},
         {"x": Option(4, 1.0, "dram", 4), "y": Option(4, 1.0, "dram", 4)}),
        (Edge(0, 1, 0),))


def test_link_bound_by_hand_and_it_is_tight_here():
    from monet_opt.families.allocation.bounds import link_bound_cycles

    # Heads a 0, b 10, c 0; tails a (10 - 2) + 3 = 11, b 0, c 0. Jackson: a on the link 0..2
    # (2 + 11 = 13), c 2..6, b 10..13: 13 -- above the link load 9, and the optimum on two cores
    problem = _link_example()
    assert link_bound_cycles(problem) == 13
    assert brute_force(problem)[0] == 13
    result = solve_allocation(AllocationInstance(problem), "cpsat", "latency", OPTIONS)
    assert result.payload.best.latency_cycles == 13 and result.stats.status is SolveStatus.OPTIMAL


@pytest.mark.parametrize("seed", range(12))
def test_link_bound_never_exceeds_the_optimum(seed):
    from monet_opt.families.allocation.bounds import link_bound_cycles

    problem = random_link_instance(100 + seed, tasks=6, cores=2 + seed % 2)
    makespan, _, _ = brute_force(problem)
    assert link_bound_cycles(problem) <= makespan


def test_earliest_start_by_hand():
    from monet_opt.families.allocation.greedy import earliest_start, upward_ranks

    # ranks: b 3, a 10 + 3 = 13, c 4. At 0, a and c can both start: a first (higher rank) on x
    # (ties: core order), holding the link until 2; c then starts earliest on y at 2 (on x only
    # at 10), holding the link until 6; b follows a at 10 on x (on y also 10: same finish, core order)
    problem = _link_example()
    assert upward_ranks(problem) == [13.0, 3.0, 4.0]
    schedule = earliest_start(problem, upward_ranks(problem))
    assert schedule.assignment == ("x", "x", "y") and schedule.start_cycles == (0, 10, 2)
    assert schedule.makespan_cycles == 13
