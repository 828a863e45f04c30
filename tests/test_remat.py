"""Abstract rematerialisation: exact methods against independent references, every method
against the budget, loaders, and the CLI."""

import json
import random
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.families.remat.family import METHODS, REMAT, solve_remat
from monet_opt.families.remat.ga import GAConfig
from monet_opt.families.remat.problem import (
    RematProblem, chain_problem, evaluate_schedule, load_problem, store_all_peak,
)
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline, SolverOptions, SolveStatus
from remat_reference import brute_force, brute_force_any_order, chain_optimum

FAST = SolverOptions(workers=2, seed=0)


def random_dag(rng, n, max_in=3):
    preds = tuple(tuple(sorted(rng.sample(range(i), rng.randint(1, min(i, max_in))))) if i and rng.random() < 0.9
                  else () for i in range(n))
    return RematProblem(f"dag{n}", tuple(f"n{i}" for i in range(n)), preds,
                        tuple(rng.randint(1, 5) for _ in range(n)), tuple(rng.randint(1, 6) for _ in range(n)))


@pytest.mark.parametrize("n, budgets", [
    (8, range(3, 10)),
    (16, [3, 4, 7, 10, 13, 17]),
    pytest.param(16, [5], marks=pytest.mark.slow),  # about 20 s
    pytest.param(32, [9, 14, 19, 26, 33], marks=pytest.mark.slow),  # 13-52 s
    pytest.param(64, [52, 65], marks=pytest.mark.slow),
])
def test_cpsat_matches_the_chain_dp(n, budgets):
    problem = chain_problem(n)
    for budget in budgets:
        result = solve_remat(problem, budget, "cpsat", FAST)
        assert result.stats.status is SolveStatus.OPTIMAL, (n, budget)
        assert result.objective == chain_optimum(n, budget), (n, budget)
        assert result.measurement.peak <= budget and result.validated


@pytest.mark.slow  # 35 s: it checks the two test references against each other, not the package
def test_chain_dp_agrees_with_brute_force():
    # the two references check each other where the exhaustive one is affordable
    for n in range(1, 6):
        p = chain_problem(n)
        for budget in range(1, 2 * n + 2):
            assert chain_optimum(n, budget) == brute_force(p.preds, p.cost, p.size, budget), (n, budget)


def test_cpsat_matches_brute_force_on_random_dags():
    rng = random.Random(7)
    checked = 0
    for _ in range(20):
        problem = random_dag(rng, rng.randint(4, 12))
        peak = store_all_peak(problem)
        for budget in sorted({peak, max(1, int(0.75 * peak)), max(1, int(0.5 * peak))}):
            expected = brute_force(problem.preds, problem.cost, problem.size, budget)
            checked += 1
            try:
                result = solve_remat(problem, budget, "cpsat", FAST)
            except InfeasibleError:
                assert expected == float("inf")
                continue
            assert result.objective == expected and result.stats.status is SolveStatus.OPTIMAL
    assert checked >= 40


def residual_block(blocks):
    """A training-like graph: `blocks` residual blocks (x -> conv -> conv, added to x), a loss, and
    the backward pass reading each forward value (3 * blocks + 1 forward nodes, as many backward)."""
    names, preds = ["x0"], [()]
    for b in range(1, blocks + 1):
        start = names.index(f"x{b - 1}")
        names += [f"c{b}", f"x{b}"]
        preds += [(start,), (start, len(names) - 2)]
    forward = len(names)
    gradient = forward - 1
    names.append("loss")
    preds.append((gradient,))
    gradient = len(names) - 1
    for b in range(blocks, 0, -1):
        conv, out = names.index(f"c{b}"), names.index(f"x{b}")
        names.append(f"g{b}")
        preds.append(tuple(sorted((gradient, conv, out))))
        gradient = len(names) - 1
    sizes = tuple(4 if n.startswith(("x", "c")) else 1 for n in names)
    costs = tuple(3 if n.startswith("c") else 1 for n in names)
    return RematProblem(f"residual{blocks}", tuple(names), tuple(preds), costs, sizes)


def free(problem):
    from dataclasses import replace

    return replace(problem, free_order=True)


def test_free_order_cpsat_matches_a_brute_force_over_all_orders():
    """The free-order model's optimum equals the search over (computed, live) sets of
    remat_reference.brute_force_any_order, on random DAGs of 5-12 nodes and training-like graphs; it
    is below the fixed-order optimum where the order matters."""
    rng = random.Random(5)
    problems = [random_dag(rng, rng.randint(5, 10)) for _ in range(24)] + [random_dag(rng, 12) for _ in range(2)]
    problems += [residual_block(2), residual_block(3), chain_problem(6)]
    checked = better = 0
    for problem in problems:
        peak = store_all_peak(problem)
        for budget in sorted({peak, max(1, int(0.75 * peak)), max(1, int(0.5 * peak))}):
            expected = brute_force_any_order(problem.preds, problem.cost, problem.size, budget)
            checked += 1
            try:
                result = solve_remat(free(problem), budget, "cpsat", FAST)
            except InfeasibleError:
                assert expected == float("inf"), (problem.name, budget)
                continue
            try:  # the fixed-order optimum (checked against its own brute force above)
                fixed = solve_remat(problem, budget, "cpsat", FAST).objective
            except InfeasibleError:
                fixed = float("inf")
            assert expected <= fixed
            assert result.stats.status is SolveStatus.OPTIMAL and result.details["order"] == "free"
            assert result.objective == expected, (problem.name, budget, result.objective, expected)
            assert "any topological order" in result.space
            better += expected < fixed
    assert checked >= 70 and better >= 3


def test_a_reordering_beats_every_frontier_advancing_schedule_by_hand():
    """a (size 1, cost 1), e (size 4, cost 10), b (size 4, cost 1), c = f(b) (size 1), d = f(a, e, c)
    (size 1); reference order a, e, b, c, d; budget 8. In that order e runs before b and is read by
    d: keeping it through c holds e + b + c = 9 > 8, so e must run again after c (a recomputed
    instead saves nothing): a, e, b, c, e, d costs 14 + 10 = 24 at peak 7. In the order a, b, c, e,
    d nothing runs twice (peak a + c + e + d = 7): cost 14."""
    problem = RematProblem("order", ("a", "e", "b", "c", "d"), ((), (), (), (2,), (0, 1, 3)),
                           (1, 10, 1, 1, 1), (1, 4, 4, 1, 1))
    assert evaluate_schedule(problem, [0, 1, 2, 3, 4]).peak == 10  # store-all: a + e + b + c at c
    assert evaluate_schedule(problem, [0, 1, 2, 3, 1, 4]).peak == 7
    fixed = solve_remat(problem, 8, "cpsat", FAST)
    assert fixed.objective == 24 and fixed.details["order"] == "fixed" and "reference order" in fixed.space
    result = solve_remat(free(problem), 8, "cpsat", FAST)
    assert result.objective == 14 and result.stats.status is SolveStatus.OPTIMAL and result.details["order"] == "free"
    order = list(result.payload)
    assert len(order) == 5 and order.index(1) > order.index(3)  # e first runs after c
    assert brute_force_any_order(problem.preds, problem.cost, problem.size, 8) == 14


def test_cpsat_and_milp_agree():
    rng = random.Random(11)
    problems = [chain_problem(6), chain_problem(10), load_problem("instances/remat/chain16.json")]
    problems += [random_dag(rng, rng.randint(8, 18)) for _ in range(6)]
    for problem in problems:
        peak = store_all_peak(problem)
        for budget in sorted({peak, int(0.7 * peak), int(0.5 * peak)}):
            outcomes = []
            for method in ("cpsat", "milp"):
                try:
                    r = solve_remat(problem, budget, method, FAST)
                    outcomes.append((r.objective, r.stats.status))
                except InfeasibleError:
                    outcomes.append((None, SolveStatus.INFEASIBLE))
            assert outcomes[0] == outcomes[1], (problem.name, budget, outcomes)


METHODS_KIND = {name: method.kind.value for name, method in REMAT.methods.items()}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(5, 14), st.floats(0.3, 1.0), st.sampled_from(METHODS))
def test_no_method_ever_exceeds_the_budget(seed, n, fraction, method):
    problem = random_dag(random.Random(seed), n)
    budget = max(1, int(fraction * store_all_peak(problem)))
    try:
        result = solve_remat(problem, budget, method, SolverOptions(workers=2, seed=seed),
                             GAConfig(population=20, generations=8, seed=seed), deadline=Deadline.start(20))
    except InfeasibleError as exc:
        assert "smallest feasible budget" in str(exc)
        return
    if result.status is SolveStatus.VIOLATES:  # a fixed rule's schedule, reported as over the budget
        assert METHODS_KIND[method] == "rule" and not result.validated and result.exit_code == 5
        assert evaluate_schedule(problem, result.payload).peak > budget
    elif result.payload is not None:
        replay = evaluate_schedule(problem, result.payload)
        assert result.validated and replay.valid and replay.peak <= budget and replay.cost == result.objective
        if method != "cpsat":
            exact = solve_remat(problem, budget, "cpsat", SolverOptions(workers=2), deadline=Deadline.start(20))
            assert exact.objective <= result.objective  # nothing beats the exact optimum


def test_heuristics_on_a_chain_by_hand():
    p = chain_problem(4)  # f1..f4, b4..b1: store-all keeps f1..f4 until their b
    assert evaluate_schedule(p, range(8)).peak == store_all_peak(p) == 5  # f1..f3 kept, f4 and b4 live
    store = solve_remat(p, 5, "store-all", FAST)
    assert store.objective == 8 and store.payload == tuple(range(8))
    # recompute-all keeps only f1: b3 needs f3, so f2 and f3 are recomputed; f2 then stays for b2,
    # which reads it next; b1 reads the kept f1
    rab = solve_remat(p, 5, "recompute-all", FAST)
    assert rab.objective == 8 + 2
    assert [p.nodes[i] for i in rab.payload] == ["f1", "f2", "f3", "f4", "b4", "f2", "f3", "b3", "b2", "b1"]
    assert solve_remat(p, 5, "cpsat", FAST).objective == 8


def test_smallest_feasible_budget_and_exit_codes(tmp_path):
    p = chain_problem(8)
    with pytest.raises(InfeasibleError, match="the smallest feasible budget is 3"):
        solve_remat(p, 2, "cpsat", FAST)
    path = tmp_path / "chain.json"
    data = {"nodes": [{"id": v, "cost_cpu": 1, "cost_ram": 1} for v in p.nodes],
            "links": [{"source": p.nodes[a], "target": p.nodes[b]} for b, ps in enumerate(p.preds) for a in ps]}
    path.write_text(json.dumps(data))
    proc = subprocess.run([sys.executable, "-m", "monet_opt", "checkpoint", "graph", str(path), "--budget", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 3 and "smallest feasible budget is 3" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "monet_opt", "checkpoint", "graph", str(path), "--budget", "60%",
                           "--json", "--out", str(tmp_path / "run")], capture_output=True, text=True)
    out = json.loads(proc.stdout)
    assert proc.returncode == 0 and out["status"] == "optimal" and out["validated"]
    assert out["budget"] == 5 and out["peak_memory"] <= 5 and out["objective"] == chain_optimum(8, 5)
    assert len(out["schedule"]) == out["objective"] and out["schedule"][:2] == ["f1", "f2"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["objective"] == out["objective"]
    for key in ("status", "objective", "bound", "gap", "peak_memory", "budget", "solve_time_s", "validated"):
        assert key in out


@pytest.mark.parametrize("content, message", [
    ({"nodes": [{"id": "a", "cost_cpu": 1, "cost_ram": 1}, {"id": "b", "cost_cpu": 1, "cost_ram": 1}],
      "links": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}]}, "cycle: a -> b -> a"),
    ({"nodes": [{"id": "a", "cost_cpu": 1}], "links": []}, "nodes\\[0\\] is missing attribute 'cost_ram'"),
    ({"nodes": [{"id": "a", "cost_cpu": 1, "cost_ram": -4}], "links": []}, "cost_ram must be a non-negative number"),
    ({"nodes": [{"id": "a", "cost_cpu": 1, "cost_ram": 1}], "links": [{"source": "a", "target": "z"}]}, "unknown node 'z'"),
    ({"nodes": [{"id": "a", "cost_cpu": 1, "cost_ram": 1}, {"id": "b", "cost_cpu": 1, "cost_ram": 1}],
      "links": [{"source": "a", "target": "b"}], "graph": {"order": ["b", "a"]}}, "'order' puts 'b' before its input 'a'"),
])
def test_bad_graphs_exit_2(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError, match=message):
        load_problem(path)
    proc = subprocess.run([sys.executable, "-m", "monet_opt", "checkpoint", "graph", str(path), "--budget", "10"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_negative_budget_and_formats(tmp_path):
    with pytest.raises(InputError, match="negative"):
        Budget.parse("-3")
    with pytest.raises(InputError, match="neither a number nor a percentage"):
        Budget.parse("lots")
    assert Budget.parse("80%").resolve(17) == 13 and Budget.parse("12").resolve(17) == 12
    assert Budget.parse("2.5").resolve(170, 10) == 25  # absolute budgets are in the graph's own unit
    yaml_path = tmp_path / "g.yaml"
    yaml_path.write_text("name: tiny\nnodes:\n  - {id: x, cost: 0.5, size: 2}\n  - {id: y, cost: 1.25, size: 3, inputs: [x]}\n")
    p = load_problem(yaml_path)
    assert p.cost == (50, 125) and p.cost_scale == 100 and p.size == (2, 3)  # fractional costs scaled exactly
    result = solve_remat(p, 5, "cpsat", FAST).to_dict()
    assert result["objective"] == 1.75 and result["peak_memory"] == 5
    edges_key = tmp_path / "e.json"  # networkx >= 3.4 writes "edges" instead of "links"
    edges_key.write_text(json.dumps({"nodes": [{"id": 1, "cost_cpu": 2, "cost_ram": 1}, {"id": 2, "cost_cpu": 2, "cost_ram": 1}],
                                     "edges": [{"source": 1, "target": 2}]}))
    assert load_problem(edges_key).preds == ((), (0,))


def test_sweep_writes_csv_and_plot(tmp_path):
    """The uniform chain of 8 forward nodes: budgets from the smallest feasible one (3: b_k, f_k and
    b_(k+1)) to the store-all peak (9: the 8 forward values and b_8), no recomputation at the peak."""
    from monet_opt.cli import main
    from monet_opt.studies.generate import remat_node_link

    graph = tmp_path / "chain8.json"
    graph.write_text(json.dumps(remat_node_link(chain_problem(8))))
    assert main(["checkpoint", "graph", str(graph), "--sweep", "4", "--population", "20",
                 "--generations", "5", "--out", str(tmp_path), "--json"]) == 0
    lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert lines[0].startswith("budget,cpsat_cost,cpsat_status") and len(lines) == 5
    first, last = lines[1].split(","), lines[-1].split(",")
    assert float(first[0]) == 3 and float(last[0]) == 9  # smallest feasible budget to store-all
    assert float(last[1]) == 16  # no recomputation at the store-all peak
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_diamond_instance_by_hand():
    p = load_problem("instances/remat/diamond.yaml")
    assert store_all_peak(p) == 15 and solve_remat(p, 15, "cpsat", FAST).objective == 14
    # At 12, f needs b (8), e (2) and itself (2) live, nothing else: b cannot survive from its first
    # computation (at d: b + c + d = 13 > 12), so it is recomputed just before f (+4, while a, e and b
    # take 12); a is then dropped and recomputed for g (+1): 14 + 5 = 19.
    result = solve_remat(p, 12, "cpsat", FAST)
    assert result.objective == 19 and result.measurement.peak == 12
    assert [p.nodes[i] for i in result.payload] == ["a", "b", "c", "d", "e", "b", "f", "a", "g"]
    assert solve_remat(p, 12, "milp", FAST).objective == 19
    with pytest.raises(InfeasibleError, match="smallest feasible budget is 12"):
        solve_remat(p, 11, "cpsat", FAST)


@pytest.mark.parametrize("heuristic", ["peak_descent", "evict_on_demand"])
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 30), st.floats(0.3, 1.0))
def test_warm_start_heuristics_fit_whenever_they_answer(heuristic, seed, n, fraction):
    from monet_opt.families.remat import baselines

    problem = random_dag(random.Random(seed), n)
    budget = max(1, int(fraction * store_all_peak(problem)))
    schedule = getattr(baselines, heuristic)(problem, budget)
    if schedule is not None:
        replay = evaluate_schedule(problem, schedule)
        assert replay.valid and replay.peak <= budget
    if fraction == 1.0:
        assert schedule == list(range(n))  # store-all fits: nothing is dropped or evicted


def test_peak_descent_on_a_chain_by_hand():
    from monet_opt.families.remat.baselines import peak_descent

    p = chain_problem(4)  # store-all peaks at 5 (f1..f3 kept, f4 and b4 live)
    schedule = peak_descent(p, 4)
    replay = evaluate_schedule(p, schedule)
    assert replay.peak <= 4 and replay.cost == 9  # one recomputation is the optimum at budget 4
    assert solve_remat(p, 4, "cpsat", FAST).objective == 9


def test_cpsat_without_a_schedule_in_time_answers_its_warm_start():
    sys.path.insert(0, "benchmarks")
    from remat_dags import layered_dag

    problem = layered_dag(250, seed=250)
    budget = int(0.9 * store_all_peak(problem))
    # the warm start takes about a second; CP-SAT itself gets 0.2 s (a raw parameter, applied last)
    result = solve_remat(problem, budget, "cpsat", SolverOptions(workers=2, cpsat_params=(("max_time_in_seconds", "0.2"),)),
                         deadline=Deadline.start(20))
    data = result.to_dict()
    assert result.validated and result.measurement.peak <= budget and data["status"] == "feasible"
    assert data["warm_start_cost"] is not None and data["objective"] <= data["warm_start_cost"]
    if data["from_warm_start"]:
        assert result.stats.time_to_first_s is None and data["bound"] is not None
        assert data["objective"] == data["warm_start_cost"]


def test_evict_on_demand_on_a_chain_by_hand():
    from monet_opt.families.remat.baselines import evict_on_demand

    # f1 f2 f3 f4 b4 b3 b2 b1 (indices 0..7), unit sizes, budget 4: before b4, f1..f4 are live and
    # b4 needs a fifth unit; f1 is the victim (refill 1 over distance 7-4+1, the smallest score) and
    # comes back just before b1 reads it: cost 9, the optimum.
    assert evict_on_demand(chain_problem(4), 4) == [0, 1, 2, 3, 4, 5, 6, 0, 7]


def test_model_size_and_its_restriction():
    from monet_opt.families.remat.cpsat import band_pairs, restriction_window

    p = chain_problem(8)
    # every value may be needed until b1 (index 15): 15 + 14 + ... + 1 pairs
    assert band_pairs(p) == 15 * 16 // 2
    # window 0: f_k lives until b_k (index 16-k), 2n-2k+1 pairs, sum n^2; b_k until b_{k-1}, one pair
    assert band_pairs(p, 0) == 64 + 7
    assert restriction_window(p, 120) is None and restriction_window(p, 71) == 0


def test_restricted_model_answers_a_validated_schedule_with_the_trivial_bound():
    p = chain_problem(8)
    budget = 5
    result = solve_remat(p, budget, "cpsat", FAST, max_pairs=71)
    data = result.to_dict()
    assert data["restricted_window"] == 0 and result.validated and result.measurement.peak <= budget
    assert data["status"] == "feasible" and data["bound"] == 16  # every node runs once
    assert result.objective >= chain_optimum(8, budget)
    assert solve_remat(p, budget, "cpsat", FAST).to_dict()["restricted_window"] is None


def test_the_command_searches_the_free_order_by_default_on_small_graphs(tmp_path, capsys):
    """The 5-node graph of the hand-made reordering test, from the command line: 14 with the
    default (free) order, 24 with --order fixed; the JSON names the order and the space."""
    from monet_opt.cli import main

    path = tmp_path / "order.yaml"
    path.write_text("name: order\nnodes:\n  - {id: a, cost: 1, size: 1}\n  - {id: e, cost: 10, size: 4}\n"
                    "  - {id: b, cost: 1, size: 4}\n  - {id: c, cost: 1, size: 1, inputs: [b]}\n"
                    "  - {id: d, cost: 1, size: 1, inputs: [a, e, c]}\n")
    answers = {}
    for order in ([], ["--order", "fixed"], ["--order", "free"]):
        capsys.readouterr()
        assert main(["checkpoint", "graph", str(path), "--budget", "8", "--json", "--time-limit", "30", *order]) == 0
        answer = json.loads(capsys.readouterr().out)
        answers[tuple(order)] = (answer["objective"], answer["order"], "any topological order" in answer["space"])
    assert answers == {(): (14, "free", True), ("--order", "fixed"): (24, "fixed", False),
                       ("--order", "free"): (14, "free", True)}


def test_the_search_by_windows_reaches_the_optimum_with_one_window_and_never_worsens_with_small_ones():
    """lns.improve from the warm start (in the stage form): with a window as long as the graph
    it is the exact model, so it reaches the proven optimum; with windows of 3 stages every spliced
    schedule is replayed, fits the budget and costs no more than the start."""
    from monet_opt.solving.common import Deadline
    from monet_opt.families.remat.family import in_stage_form, warm_start
    from monet_opt.families.remat.lns import improve

    rng = random.Random(13)
    checked = 0
    for problem, fraction in [(random_dag(rng, rng.randint(8, 16)), f) for _ in range(12) for f in (0.7, 0.9)]:
        budget = max(1, int(fraction * store_all_peak(problem)))
        start, _ = warm_start(problem, budget, 0, Deadline.start(10))
        if start is None or evaluate_schedule(problem, in_stage_form(problem, start)).peak > budget:
            continue
        start = in_stage_form(problem, start)
        exact = solve_remat(problem, budget, "cpsat", FAST)
        whole, _ = improve(problem, budget, start, FAST, Deadline.start(60), window_stages=problem.n,
                           horizon_window=None)
        assert evaluate_schedule(problem, whole).cost == exact.objective and exact.status is SolveStatus.OPTIMAL
        small, history = improve(problem, budget, start, FAST, Deadline.start(60), window_stages=3)
        replay = evaluate_schedule(problem, small)
        assert replay.valid and replay.peak <= budget and replay.cost <= evaluate_schedule(problem, start).cost
        assert [c for _, c in history] == sorted({c for _, c in history}, reverse=True)  # strictly improving
        checked += 1
    assert checked >= 10


def test_feasibility_first_at_the_smallest_feasible_budget():
    """layered_dag(30, seed=1): CP-SAT proves the smallest peak 373 (store-all 511); no warm-start
    heuristic fits there, the feasibility phase (soft-budget model from the heuristics' schedule
    of least excess) reaches it, and cpsat answers from it; one unit below, the phase proves that
    nothing fits."""
    from monet_opt.studies.generate import layered_dag
    from monet_opt.solving.common import Deadline
    from monet_opt.families.remat.cpsat import min_peak_cpsat
    from monet_opt.families.remat.family import warm_start
    from monet_opt.families.remat.feasibility import least_excess_schedule

    problem = layered_dag(30, seed=1)
    schedule, stats = min_peak_cpsat(problem, FAST, Deadline.start(30))
    assert stats.status is SolveStatus.OPTIMAL and evaluate_schedule(problem, schedule).peak == 373
    assert store_all_peak(problem) == 511
    hint, closest = warm_start(problem, 373, 0, Deadline.start(30))
    assert hint is None and evaluate_schedule(problem, closest).peak > 373
    found, proven = least_excess_schedule(problem, 373, closest, FAST, Deadline.start(30))
    assert evaluate_schedule(problem, found).peak <= 373 and not proven
    found, proven = least_excess_schedule(problem, 372, list(range(problem.n)), FAST, Deadline.start(30))
    assert proven and evaluate_schedule(problem, found).peak > 372
    data = solve_remat(problem, 373, "cpsat", FAST).to_dict()
    assert data["feasibility_phase"] and data["smallest_budget_found"] == 373 and data["status"] == "optimal"


def test_feasibility_phase_weighs_excess_above_every_recomputation():
    """random_dag(seed 1603, 13 nodes), budget 18 of store-all 31 (found by Hypothesis): the
    cheapest schedule within 18 recomputes 43 cost units, more than the sum of the costs (33), since
    values are recomputed in several stages. The soft model must weigh one unit of excess above
    that, or its bound passes the weight and 'proves' infeasible a budget the MILP meets (cost 76,
    replayed peak 18; 76 is also `remat_reference.brute_force`'s optimum, 3 s)."""
    from monet_opt.solving.common import Deadline
    from monet_opt.families.remat.cpsat import least_excess_cpsat

    problem = random_dag(random.Random(1603), 13)
    assert store_all_peak(problem) == 31 and sum(problem.cost) == 33
    found, stats = least_excess_cpsat(problem, 18, list(range(problem.n)), FAST, Deadline.start(30))
    assert stats.status is not SolveStatus.INFEASIBLE and evaluate_schedule(problem, found).peak <= 18
    for method in ("cpsat", "milp"):
        result = solve_remat(problem, 18, method, FAST)
        assert result.objective == 76 and result.stats.status is SolveStatus.OPTIMAL


@pytest.mark.parametrize("seed", range(6))
def test_the_hint_is_a_complete_solution_of_the_stage_model(seed):
    """Every variable fixed to its hinted value: the model accepts the hint as a solution (CP-SAT
    completes a partial hint only within a few conflicts) and its objective is the schedule's
    recomputation cost (hard budget at the stage form's peak), or w (`excess_weight`) x its stage
    excess + that cost (soft budget, below the peak; the stage accounting is at least the replay's)."""
    from ortools.sat.python import cp_model

    from monet_opt.solving.contract import CostUnderBudget
    from monet_opt.families.remat.baselines import evict_on_demand
    from monet_opt.families.remat.cpsat import _Model
    from monet_opt.families.remat.family import in_stage_form
    from monet_opt.families.remat.problem import memory_excess, store_all_peak

    problem = random_dag(random.Random(seed), 14)
    schedule = None
    for budget in range(store_all_peak(problem) * 7 // 10, store_all_peak(problem) + 1):
        schedule = evict_on_demand(problem, budget)
        if schedule is not None:
            break
    form = in_stage_form(problem, schedule)
    replay = evaluate_schedule(problem, form)
    recomputation_cost = replay.cost - sum(problem.cost)
    for budget, soft in ((replay.peak, False), (replay.peak * 3 // 4, True)):
        model = _Model(problem, CostUnderBudget(budget), soft_budget=soft)
        model.hint(form)
        variables = model.model.proto.variables
        unfixed = [k for k, v in enumerate(variables) if len(v.domain) != 2 or v.domain[0] != v.domain[1]]
        assert set(unfixed) <= set(model.model.proto.solution_hint.vars)
        solver = cp_model.CpSolver()
        solver.parameters.fix_variables_to_their_hinted_value = True
        solver.parameters.num_workers = 1
        assert solver.solve(model.model) == cp_model.OPTIMAL
        if soft:
            excess = solver.value(model.excess)
            assert excess >= replay.peak - budget > 0 and memory_excess(problem, form, replay, budget) > 0
            assert solver.objective_value == model.excess_weight * excess + recomputation_cost
        else:
            assert solver.objective_value == recomputation_cost
        assert model.schedule(solver) == form


def test_lower_excess_by_windows_never_raises_the_excess():
    """The feasibility phase's search by windows (forced with 8-stage windows on a 60-node layered
    DAG at 75 %): each accepted window lowers the memory above the budget, so the answer's excess is
    below store-all's, and it replays as a valid schedule."""
    from monet_opt.studies.generate import layered_dag
    from monet_opt.solving.common import Deadline
    from monet_opt.families.remat.feasibility import lower_excess
    from monet_opt.families.remat.problem import memory_excess

    problem = layered_dag(60, seed=3)
    budget = int(0.75 * store_all_peak(problem))
    start = list(range(problem.n))
    before = memory_excess(problem, start, evaluate_schedule(problem, start), budget)
    found = lower_excess(problem, budget, start, FAST, Deadline.start(20), window_stages=8, horizon_window=10)
    replay = evaluate_schedule(problem, found)
    assert before > 0 and replay.valid and memory_excess(problem, found, replay, budget) < before


def test_cpsat_answers_from_the_feasibility_phase_when_its_model_finds_nothing(monkeypatch):
    """The cost model finding nothing in its share (a time-out, simulated): the feasibility phase's
    schedule is the answer, flagged, without a bound."""
    from monet_opt.studies.generate import layered_dag
    from monet_opt.solving.common import SolveStats
    from monet_opt.families.remat import family

    def nothing(problem, budget, options, deadline, *rest):
        return None, SolveStats(SolveStatus.UNKNOWN, None, None, deadline.elapsed_s(), None, None, ()), None

    monkeypatch.setattr(family, "solve_cpsat", nothing)
    result = solve_remat(layered_dag(30, seed=1), 373, "cpsat", FAST)
    data = result.to_dict()
    assert result.validated and result.measurement.peak <= 373 and result.stats.status is SolveStatus.HEURISTIC
    assert data["feasibility_phase"] and data["smallest_budget_found"] == 373 and data["from_warm_start"]


def test_the_free_order_answer_is_never_worse_than_the_fixed_order_one(monkeypatch):
    """The free-order space contains the reference order: when the free-order search returns a worse
    schedule (here an injected one that even claims to be optimal), the answer is the better
    schedule already in hand (the fixed-order solve's or the warm start's), never with an
    "optimal" status that a better schedule contradicts."""
    from dataclasses import replace

    from monet_opt.solving.common import SolveStats
    from monet_opt.solving.contract import CostUnderBudget, solve
    from monet_opt.families.remat import family as remat_family
    from monet_opt.families.remat.problem import chain_problem, evaluate_schedule

    problem = replace(chain_problem(4), free_order=True)
    assert remat_family.searches_free_order(problem)
    budget = 4
    fixed = solve(remat_family.REMAT, replace(problem, free_order=False), CostUnderBudget(budget), "cpsat",
                  SolverOptions(progress=False), Deadline.start(20))
    recompute_all = [0, 1, 2, 3, 7, 0, 1, 2, 6, 0, 1, 5, 0, 4]  # every backward node recomputes the chain
    worse = evaluate_schedule(problem, recompute_all)
    assert worse.peak <= budget and worse.cost > fixed.objective

    def injected(problem, budget, options, deadline, hint=None):
        return recompute_all, SolveStats(SolveStatus.OPTIMAL, float(worse.cost), float(worse.cost), 0.0, None,
                                         None, ())

    monkeypatch.setattr(remat_family, "solve_free_order", injected)
    result = solve(remat_family.REMAT, problem, CostUnderBudget(budget), "cpsat", SolverOptions(progress=False),
                   Deadline.start(20))
    assert result.validated and result.objective == fixed.objective
    assert result.status.value != "optimal" and result.details["from_warm_start"]
