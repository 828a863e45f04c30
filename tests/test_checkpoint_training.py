"""Checkpointing training graphs priced by the cost model: the exact model against exhaustive
enumeration judged by the simulator alone, fused recomputation, infeasibility, every method
against the budget, a real workload, and the CLI."""

import json
from dataclasses import replace

import pytest

from checkpoint_reference import all_plans, two_layer_block
from hw_fixtures import toy
from monet_opt.cli import main
from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.family import METHODS, CheckpointProblem, solve_checkpoint
from monet_opt.families.checkpoint.heuristics import rule_decisions
from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace, Decisions
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.training import derive_training_graph
from monet_opt.model.workload import load_forward_graph
from monet_opt.schedule.plan import Residency
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline, SolverOptions, SolveStatus
from monet_opt.solving.genetic import GAConfig

OPTIONS = SolverOptions(workers=2, seed=0)
SEPARATE = {"dram.bandwidth_bits_per_cycle": 64}  # the PE array and the vector unit have their own memories
SHARED = {**SEPARATE, "cores.1.memory": "sram"}  # one memory: every saved activation may stay on chip


@pytest.fixture(scope="module")
def spaces():
    graph = two_layer_block()
    separate = CheckpointSpace(graph, toy(**SEPARATE))
    shared = CheckpointSpace(graph, toy(**SHARED), local_budget_bytes={"sram": 3300})
    return {"separate": (separate, list(all_plans(separate))), "shared": (shared, list(all_plans(shared)))}


def best(plans, objective, budget):
    return min((e.objective(objective) for _, _, e in plans
                if e.dynamic_dram_peak_bytes <= budget and e.local_overflow_bytes == 0), default=None)


def test_the_block_exercises_every_choice(spaces):
    separate, _ = spaces["separate"]
    shared, _ = spaces["shared"]
    assert len(separate.decisions) == 7
    assert separate.on_chip_eligible == {"ln", "ln.stats"}  # produced and read on the vector unit only
    assert shared.on_chip_eligible == set(shared.decisions)
    assert [g.ops for g in separate.groups] == [("act", "res"), ("act", "res", "relu"), ("res", "relu")]


@pytest.mark.parametrize("which", ["separate", "shared"])
@pytest.mark.parametrize("objective", ["latency", "energy"])
def test_cpsat_equals_exhaustive_enumeration(spaces, which, objective):
    space, plans = spaces[which]
    goal = OBJECTIVES[objective]
    peaks = sorted({e.dynamic_dram_peak_bytes for _, _, e in plans if e.local_overflow_bytes == 0})
    budgets = peaks if which == "separate" else peaks[:: max(1, len(peaks) // 6)] + [peaks[-1]]
    used = set()
    for budget in budgets:
        result = solve_checkpoint(space, goal, budget, "cpsat", OPTIONS)
        assert result.stats.status is SolveStatus.OPTIMAL and result.validated
        assert result.objective == pytest.approx(best(plans, goal, budget), rel=1e-12)
        used |= {r for r in result.payload.residency.values()} | ({"group"} if result.payload.groups else set())
    # the optima exercise the choices: recomputation and fused groups on separate memories, on-chip values
    # on one memory
    assert ({Residency.RECOMPUTE, "group"} if which == "separate" else {Residency.ON_CHIP}) <= used


def test_fused_recomputation_saves_exactly_the_round_trips(spaces):
    space, _ = spaces["separate"]
    residency = {"relu": Residency.RECOMPUTE}  # needs res, which needs act: three recomputations
    apart = space.evaluate(Decisions(residency))
    fused = space.evaluate(Decisions(residency, (("act", "res", "relu"),)))
    tasks = {t.name: t for t in fused.simulation.tasks}
    stack = tasks["act.recompute+2"]
    singles = [t for t in apart.simulation.tasks if t.phase == "recompute"]
    assert [t.name for t in singles] == ["act.recompute", "res.recompute", "relu.recompute"]
    # act and res (8 x 16 fp32 = 512 bytes each) are neither written to DRAM nor read back
    assert sum(t.dram_write_bytes for t in singles) - stack.dram_write_bytes == 2 * 512
    assert sum(t.dram_read_bytes for t in singles) - stack.dram_read_bytes == 2 * 512
    assert fused.dynamic_dram_peak_bytes <= apart.dynamic_dram_peak_bytes


def test_infeasible_budget_names_the_smallest_feasible_one(spaces):
    space, plans = spaces["separate"]
    lowest = min(e.dynamic_dram_peak_bytes for _, _, e in plans if e.local_overflow_bytes == 0)
    with pytest.raises(InfeasibleError, match=f"smallest feasible budget is {lowest} bytes, 1 above it"):
        solve_checkpoint(space, OBJECTIVES["latency"], lowest - 1, "cpsat", OPTIONS)


@pytest.mark.parametrize("method", METHODS)
def test_no_method_returns_a_plan_over_budget(spaces, method):
    space, plans = spaces["separate"]
    peaks = sorted({e.dynamic_dram_peak_bytes for _, _, e in plans})
    for budget in peaks[::2]:
        result = solve_checkpoint(space, OBJECTIVES["latency"], budget, method, OPTIONS,
                                  GAConfig(population=12, generations=6, seed=1))
        if result.validated:
            assert result.measurement.peak <= budget
            assert result.measurement.simulation.valid
            exact = best(plans, OBJECTIVES["latency"], budget)
            assert result.measurement.latency_cycles >= exact
        else:
            assert result.stats.status is not SolveStatus.OPTIMAL


def test_ga_is_deterministic_for_a_seed(spaces):
    space, plans = spaces["separate"]
    budget = sorted({e.dynamic_dram_peak_bytes for _, _, e in plans})[3]
    runs = [solve_checkpoint(space, OBJECTIVES["energy"], budget, "ga", OPTIONS, GAConfig(20, 8, seed=5))
            for _ in range(2)]
    assert runs[0].payload == runs[1].payload and runs[0].measurement.energy_pj == runs[1].measurement.energy_pj


def test_serial_plan_latency_is_the_sum_of_its_steps(spaces):
    space, _ = spaces["separate"]
    result = space.evaluate(Decisions({"relu": Residency.RECOMPUTE, "fc1": Residency.RECOMPUTE}))
    tasks = result.simulation.tasks
    assert result.latency_cycles == sum(t.end_cycle - t.start_cycle for t in tasks)
    assert all(a.end_cycle == b.start_cycle for a, b in zip(tasks, tasks[1:], strict=False))


def test_resnet18_at_half_the_activation_memory():
    space = CheckpointSpace(derive_training_graph(load_forward_graph("resnet18")), load_accelerator("edge-tpu-quad"))
    budget = Budget.parse("50%").resolve(space.store_all.dynamic_dram_peak_bytes)
    exact = solve_checkpoint(space, OBJECTIVES["latency"], budget, "cpsat", OPTIONS)
    assert exact.stats.status is SolveStatus.OPTIMAL and exact.validated
    assert exact.measurement.peak <= budget
    overhead = exact.measurement.latency_cycles / space.store_all.latency_cycles - 1
    assert 0 < overhead < 0.1
    assert exact.payload.groups  # BN -> (add ->) ReLU recomputations run fused
    sqrt_eval = space.evaluate(rule_decisions(space, "sqrt", OBJECTIVES["latency"]))
    assert exact.measurement.latency_cycles < sqrt_eval.latency_cycles


def test_greedy_sweep_at_its_deadline_still_answers_a_fitting_plan():
    """Chen's sweep with its deadline already passed evaluates every other plan only (10 of the 19
    distinct plans on ResNet-18): at 70 % it still answers a plan within the budget, never cheaper
    than the whole sweep's, and the plan of least peak it finds is within 70 % as well."""
    from monet_opt.families.checkpoint.heuristics import fits, greedy_plan

    space = CheckpointSpace(derive_training_graph(load_forward_graph("resnet18")), load_accelerator("edge-tpu-quad"))
    weights = OBJECTIVES["latency"]
    budget = Budget.parse("70%").resolve(space.store_all.dynamic_dram_peak_bytes)
    whole = greedy_plan(space, weights, budget)
    hurried = greedy_plan(space, weights, budget, Deadline.start(0))
    assert whole is not None and hurried is not None
    assert fits(space, hurried[1], budget) and hurried[1].objective(weights) >= whole[1].objective(weights)
    lowest = greedy_plan(space, weights, None, Deadline.start(0))
    assert lowest is not None and lowest[1].dynamic_dram_peak_bytes <= budget


def test_cli_workload_json_and_files(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["checkpoint", "training", "--workload", "resnet18", "--image-size", "64", "--hardware", "edge-tpu-quad",
                 "--budget", "60%", "--objective", "energy", "--out", str(out), "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("status", "objective", "bound", "gap", "peak_memory", "budget", "solve_time_s", "validated"):
        assert key in data
    assert data["status"] == "optimal" and data["validated"] and data["peak_memory"] <= data["budget"]
    assert data["objective"] == data["energy_pj"]
    assert {p.name for p in out.iterdir()} == {"checkpoint.json", "result.json", "gantt.png", "memory.png", "trace.json"}
    # a local budget is a bound on that memory in the simulated plan
    assert main(["checkpoint", "training", "--workload", "resnet18", "--image-size", "64", "--hardware", "edge-tpu-quad",
                 "--budget", "60%", "--local-budget", "simd.sram=50%", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["validated"] and data["peak_memory_bytes"]["simd.sram"] <= 131072 // 2


@pytest.mark.parametrize("argv, code, message", [
    # loss backward: the logits and their gradient (2 x 256 x 20000 fp32) plus tokens, positions and labels
    # (3 x 256 int64) are live together whatever is checkpointed: 40,960,000 + 6,144 bytes
    (["training", "--workload", "gpt2-mini", "--hardware", "edge-tpu-quad", "--budget", "50%"], 3,
     f"smallest feasible budget is {2 * 256 * 20000 * 4 + 3 * 256 * 8} bytes"),
    (["training", "--workload", "gpt2-mini", "--budget", "50%"], 2, "required: --hardware"),
    (["training", "--workload", "gpt2-mini", "--hardware", "edge-tpu-quad", "--budget", "-5"], 2, "negative"),
    (["graph", "instances/remat/chain16.json", "--budget", "5", "--objective", "energy"], 2,
     "unrecognized arguments: --objective"),
    (["--budget", "5"], 2, "invalid choice: '5'"),
    (["training", "--workload", "gpt2-mini", "--hardware", "edge-tpu-quad", "--budget", "90%", "--local-budget", "l2=5"], 2,
     "expected MEMORY=BYTES|P%"),
])
def test_cli_errors(capsys, argv, code, message):
    assert main(["checkpoint", *argv]) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_training_sweep_runs_from_the_smallest_feasible_budget_to_store_all(spaces, tmp_path):
    from monet_opt.families.checkpoint.family import CHECKPOINT
    from monet_opt.studies.budget_sweep import budget_sweep, write_sweep

    space, plans = spaces["separate"]
    rows = budget_sweep(CHECKPOINT, CheckpointProblem(space, OBJECTIVES["latency"]), 4,
                        replace(OPTIONS, ga=GAConfig(16, 8, seed=0)), Deadline.start(60))
    lowest = min(e.dynamic_dram_peak_bytes for _, _, e in plans if e.local_overflow_bytes == 0)
    assert [r.budget for r in rows][0] == lowest and rows[-1].budget == space.store_all.dynamic_dram_peak_bytes
    for r in rows:
        assert r.cpsat_status == "optimal" and r.cpsat_cost == best(plans, OBJECTIVES["latency"], r.budget)
        assert all(c is None or c >= r.cpsat_cost for c in (r.ga_cost, r.greedy_cost, r.sqrt_cost))
    paths = write_sweep(rows, tmp_path, base_cost=space.store_all.latency_cycles, title="block", budget_label="bytes",
                        cost_label="latency")
    assert [p.name for p in paths] == ["sweep.csv", "sweep.png"]
    assert (tmp_path / "sweep.csv").read_text().count("\n") == len(rows) + 1


def test_the_exact_model_is_the_same_whatever_the_hash_seed():
    """Same input, same model, hence the same answer of a deterministic search: the model is built
    in the same order in two processes whose string hashes differ (GPT-2 mini has steps whose
    on-chip combinations name several values; a set of names once ordered their constraints)."""
    import os
    import subprocess
    import sys

    code = ("import hashlib\n"
            "from monet_opt.families.checkpoint.cpsat import _Model\n"
            "from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace\n"
            "from monet_opt.model.hardware import load_accelerator\n"
            "from monet_opt.model.training import derive_training_graph\n"
            "from monet_opt.model.workload import builtin_forward_graph\n"
            "from monet_opt.solving.contract import MinimumPeak\n"
            "space = CheckpointSpace(derive_training_graph(builtin_forward_graph('gpt2-mini')), "
            "load_accelerator('fusemax-dc'))\n"
            "print(hashlib.sha256(str(_Model(space, OBJECTIVES['latency'], MinimumPeak()).model.Proto()).encode())"
            ".hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(digests) == 1
