"""The solver contract: every family's referee catches a wrong claim and a broken constraint, every
family's JSON has the shared keys, budgets parse and resolve by one rule, a method is added by
registering one function (the README's example, executed here)."""

import re
from pathlib import Path

import jsonschema
import pytest

from checkpoint_reference import two_layer_block
from hw_fixtures import toy
from monet_opt.errors import InputError
from monet_opt.families.allocation import (
    ALLOCATION, AllocationAnswer, AllocationGoal, AllocationInstance, load_instance,
)
from monet_opt.families.allocation.family import validate
from monet_opt.families.allocation.greedy import heft
from monet_opt.families.checkpoint import CHECKPOINT, OBJECTIVES, CheckpointProblem, CheckpointSpace, Decisions
from monet_opt.families.remat import REMAT, chain_problem, evaluate_schedule
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.solving import (
    Budget, Claim, CostUnderBudget, ExitCode, Method, MethodKind, Proposal, SolverBug, SolverOptions, SolveStatus,
    heuristic_stats, solve,
)
from monet_opt.solving.common import parse_cpsat_params
from monet_opt.solving.contract import SHARED_SCHEMA

OPTIONS = SolverOptions(workers=2, seed=0)


def stub(payload, claim, kind=MethodKind.SEARCH):
    """A method that answers `payload` with `claim`, whatever the problem."""
    def run(problem, target, options, deadline):
        return Proposal(payload, claim, heuristic_stats(0.0, deadline))
    return Method("stub", run, kind, "a fixed answer")


@pytest.fixture(scope="module")
def block():
    space = CheckpointSpace(two_layer_block(), toy(**{"dram.bandwidth_bits_per_cycle": 64}))
    return CheckpointProblem(space, OBJECTIVES["latency"])


@pytest.fixture(scope="module")
def fork_join():
    return AllocationInstance(load_instance("instances/allocation/fork_join.yaml"))


def test_remat_referee_catches_a_wrong_claim_and_a_broken_budget():
    p = chain_problem(4)  # 8 unit-cost nodes; store-all peaks at 5
    store_all = tuple(range(8))
    assert evaluate_schedule(p, store_all).cost == 8
    with pytest.raises(SolverBug, match="claimed 7, measured 8"):
        solve(REMAT.with_method(stub(store_all, Claim(objective=7))), p, CostUnderBudget(5), "stub", OPTIONS)
    with pytest.raises(SolverBug, match="peak 5 is above the budget 4"):
        solve(REMAT.with_method(stub(store_all, Claim(objective=8))), p, CostUnderBudget(4), "stub", OPTIONS)
    rule = solve(REMAT.with_method(stub(store_all, Claim(objective=8), MethodKind.RULE)), p, CostUnderBudget(4),
                 "stub", OPTIONS)
    assert rule.status is SolveStatus.VIOLATES and not rule.validated and rule.exit_code is ExitCode.VIOLATES
    assert rule.objective == 8 and rule.measurement.peak == 5


def test_checkpoint_referee_catches_a_wrong_claim_and_a_broken_budget(block):
    store_all = block.space.store_all
    truth = PlanClaim(store_all.latency_cycles, store_all.energy_pj)
    wrong = Claim(plan=PlanClaim(store_all.latency_cycles + 1, store_all.energy_pj))
    family = CHECKPOINT.with_method(stub(Decisions({}), wrong))
    with pytest.raises(SolverBug, match=r"latency: claimed \d+ cycles, simulated \d+ \(-1\)"):
        solve(family, block, CostUnderBudget(store_all.dynamic_dram_peak_bytes), "stub", OPTIONS)
    family = CHECKPOINT.with_method(stub(Decisions({}), Claim(plan=truth)))
    answer = solve(family, block, CostUnderBudget(store_all.dynamic_dram_peak_bytes), "stub", OPTIONS)
    assert answer.validated and answer.objective == store_all.latency_cycles
    with pytest.raises(SolverBug, match="dynamic DRAM peak"):
        solve(family, block, CostUnderBudget(store_all.dynamic_dram_peak_bytes - 1), "stub", OPTIONS)


def test_allocation_referee_catches_a_wrong_claim(fork_join):
    p = fork_join.problem
    g = heft(p)
    measured = validate(fork_join, g.assignment, g.core_orders(p), g.bus_orders(p))
    answer = AllocationAnswer(measured, (measured,))
    wrong = Claim(plan=PlanClaim(measured.latency_cycles - 1, measured.energy_pj))
    with pytest.raises(SolverBug, match=r"latency: claimed \d+ cycles, simulated \d+ \(\+1\)"):
        solve(ALLOCATION.with_method(stub(answer, wrong)), fork_join, AllocationGoal.LATENCY, "stub", OPTIONS)
    wrong_energy = Claim(plan=PlanClaim(measured.latency_cycles, measured.energy_pj * 1.01))
    with pytest.raises(SolverBug, match="energy: claimed"):
        solve(ALLOCATION.with_method(stub(answer, wrong_energy)), fork_join, AllocationGoal.LATENCY, "stub", OPTIONS)
    # an upper bound that the referee's compacted schedule beats is no disagreement
    bound = Claim(plan=PlanClaim(measured.latency_cycles + 3, measured.energy_pj, latency_is_upper_bound=True))
    fine = solve(ALLOCATION.with_method(stub(answer, bound)), fork_join, AllocationGoal.LATENCY, "stub", OPTIONS)
    assert fine.validated and fine.objective == measured.latency_cycles


@pytest.fixture(scope="module")
def fusion_space_of_block():
    from monet_opt.model.cost import CostTable
    from monet_opt.families.fusion.space import FusionObjective, fusion_space

    graph = two_layer_block()
    return fusion_space(graph, CostTable(graph, toy()), 4, FusionObjective.ENERGY)


def test_fusion_referee_catches_a_wrong_claim(fusion_space_of_block):
    from monet_opt.families.fusion.family import FUSION
    from monet_opt.families.fusion.heuristics import rule_partition

    space = fusion_space_of_block
    partition = tuple(rule_partition(space))
    latency = sum(c.latency_cycles for c in partition)
    energy = sum(c.energy_pj for c in partition)
    with pytest.raises(SolverBug, match=r"latency: claimed \d+ cycles, simulated \d+ \(-2\)"):
        solve(FUSION.with_method(stub(partition, Claim(plan=PlanClaim(latency + 2, energy)))), space, space.objective,
              "stub", OPTIONS)
    fine = solve(FUSION.with_method(stub(partition, Claim(plan=PlanClaim(latency, energy)))), space, space.objective,
                 "stub", OPTIONS)
    assert fine.validated and fine.objective == pytest.approx(energy, rel=1e-12)


def test_every_family_answers_in_the_shared_schema(block, fork_join, fusion_space_of_block):
    from monet_opt.families.fusion.family import FUSION

    space = fusion_space_of_block
    results = [
        solve(REMAT, chain_problem(4), CostUnderBudget(4), "cpsat", OPTIONS),
        solve(CHECKPOINT, block, CostUnderBudget(block.space.store_all.dynamic_dram_peak_bytes), "cpsat", OPTIONS),
        solve(ALLOCATION, fork_join, AllocationGoal.PARETO, "cpsat", OPTIONS),
        solve(REMAT, chain_problem(4), CostUnderBudget(4), "store-all", OPTIONS),  # violates
        solve(FUSION, space, space.objective, "cpsat", OPTIONS),
    ]
    for result in results:
        data = result.to_dict()
        jsonschema.validate(data, SHARED_SCHEMA)
        assert data["exit_code"] == (0 if data["validated"] else 5)
    remat, checkpoint, allocation, rule, fusion = (r.to_dict() for r in results)
    assert fusion["status"] == "optimal" and fusion["energy_pj"] == pytest.approx(fusion["objective"], rel=1e-12)
    assert fusion["objective"] <= fusion["layer_by_layer"]["energy_pj"] and "convex stacks" in fusion["space"]
    assert remat["objective"] == 9 and remat["status"] == "optimal" and remat["budget"] == 4  # one recomputation
    assert "reference order" in remat["space"]
    assert checkpoint["latency_cycles"] == checkpoint["objective"] and checkpoint["peak_memory_bytes"]["dram"] > 0
    assert allocation["latency_cycles"] == 16 and allocation["front"][0] == {"latency_cycles": 16,
                                                                             "energy_pj": pytest.approx(32.0)}
    assert rule["status"] == "violates" and rule["violations"] == ["peak 5 is above the budget 4 (model units)"]


def test_budgets_parse_and_resolve_by_one_rule():
    assert Budget.parse("80%").resolve(1000) == 800  # not 799: decimal inputs are not floored below
    assert Budget.parse("1e3").resolve(5) == 1000 and Budget.parse("2.5").resolve(0, scale=10) == 25
    assert Budget.parse("33.3%").resolve(10) == 3
    for text, message in [("101%", "above 100 %"), ("inf", "finite"), ("nan", "finite"), ("-1%", "non-negative"),
                          ("1e30", "larger than"), ("x%", "neither a number")]:
        with pytest.raises(InputError, match=message):
            Budget.parse(text)


def test_a_local_budget_is_data_not_a_smaller_accelerator():
    hw = toy(**{"dram.bandwidth_bits_per_cycle": 64})
    space = CheckpointSpace(two_layer_block(), hw, local_budget_bytes={"sram": 3000})
    assert space.hw is hw and space.hw.memories["sram"].capacity_bytes > 3000
    assert space.local_budget_bytes["sram"] == 3000 and space.limits_bytes == {"sram": 3000}
    simulation = space.store_all.simulation
    assert simulation.capacity_bytes["sram"] == hw.memories["sram"].capacity_bytes
    assert simulation.peak_memory_bytes["sram"] <= 3000


def test_cpsat_parameters_are_checked_before_any_work():
    assert parse_cpsat_params("linearization_level:2, symmetry_level:4") == (("linearization_level", "2"),
                                                                            ("symmetry_level", "4"))
    with pytest.raises(InputError, match="no_such_field"):
        parse_cpsat_params("no_such_field:1")
    with pytest.raises(InputError, match="not key:value"):
        parse_cpsat_params("linearization_level")


def test_the_readme_example_adds_a_method_with_one_registered_function():
    readme = Path(__file__).resolve().parent.parent / "README.md"
    block = re.search(r"<!-- example: add a method -->\s*```python\n(.*?)```", readme.read_text(), re.S)
    assert block, "the README lost its example of adding a method"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 16
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    result = namespace["result"]
    # chain of 4: f1..f4, b4..b1, unit costs; keeping everything costs the 8 first executions
    assert result.method == "store-everything" and result.validated and result.objective == 8
    assert result.status is SolveStatus.HEURISTIC


def test_cli_exit_codes_and_cpsat_passthrough(tmp_path, capsys):
    from monet_opt.cli import main

    chain = "instances/remat/chain16.json"  # store-all peaks at 17; the smallest feasible budget is 3
    assert main(["checkpoint", "graph", chain, "--budget", "3", "--method", "greedy"]) == 4  # nothing within 3
    assert "not proven infeasible" in capsys.readouterr().err
    assert main(["checkpoint", "graph", chain, "--budget", "50%", "--method", "store-all", "--json"]) == 5
    out, err = capsys.readouterr()
    data = __import__("json").loads(out)
    assert data["status"] == "violates" and data["peak_memory"] == 17 and data["budget"] == 8
    assert err == "monet: the store-all answer violates a constraint: peak 17 is above the budget 8 (model units)\n"
    model = tmp_path / "model.pb"
    assert main(["checkpoint", "graph", "instances/remat/diamond.yaml", "--budget", "12", "--log", "--export-model",
                 str(model), "--cpsat-params", "linearization_level:2,symmetry_level:0"]) == 0
    assert "Starting CP-SAT solver" in capsys.readouterr().err and model.stat().st_size > 1000
    for argv, message in [(["--cpsat-params", "no_such_field:1"], "no field named \"no_such_field\""),
                          (["--out", "README.md"], "--out README.md: exists and is not a directory"),
                          (["--export-model", "README.md/m.pb"], "README.md: exists and is not a directory")]:
        assert main(["checkpoint", "graph", "instances/remat/diamond.yaml", "--budget", "12", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_fusion_checkpoint_referee_catches_a_wrong_claim_and_a_broken_budget():
    """The joint family judges a (partition, checkpoint plan) pair on the partition's serial plan: the
    rule partition of the block with every value in DRAM, claimed at its simulated latency plus one,
    and at the truth under a budget one byte below its activation peak."""
    from monet_opt.model.cost import CostTable
    from monet_opt.families.fusion.heuristics import rule_partition
    from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem
    from monet_opt.families.fusion.space import FusionObjective, fusion_space
    from monet_opt.families.fusion_checkpoint.family import FUSION_CHECKPOINT, FusedCheckpointPlan

    graph, hw = two_layer_block(), toy(**{"dram.bandwidth_bits_per_cycle": 64})
    partition = rule_partition(fusion_space(graph, CostTable(graph, hw), 4, FusionObjective.LATENCY))
    stacks = tuple((c.ops, c.cores) for c in partition)
    assert any(len(ops) > 1 for ops, _ in stacks)
    truth = CheckpointSpace(graph, hw, stacks=list(stacks)).store_all
    plan = FusedCheckpointPlan(stacks, Decisions({}))
    problem = FusedCheckpointProblem(graph, hw, 4, OBJECTIVES["latency"], truth.dynamic_dram_peak_bytes)
    budget = CostUnderBudget(truth.dynamic_dram_peak_bytes)
    wrong = Claim(plan=PlanClaim(truth.latency_cycles + 1, truth.energy_pj))
    with pytest.raises(SolverBug, match=r"latency: claimed \d+ cycles, simulated \d+ \(-1\)"):
        solve(FUSION_CHECKPOINT.with_method(stub(plan, wrong)), problem, budget, "stub", OPTIONS)
    right = FUSION_CHECKPOINT.with_method(stub(plan, Claim(plan=PlanClaim(truth.latency_cycles, truth.energy_pj))))
    answer = solve(right, problem, budget, "stub", OPTIONS)
    assert answer.validated and answer.objective == truth.latency_cycles and answer.family == "fusion_checkpoint"
    jsonschema.validate(answer.to_dict(), SHARED_SCHEMA)
    with pytest.raises(SolverBug, match="dynamic DRAM peak"):
        solve(right, problem, CostUnderBudget(truth.dynamic_dram_peak_bytes - 1), "stub", OPTIONS)
