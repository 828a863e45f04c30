"""The plan family: cores, start times and recomputation of a training step under every memory,
proven against brute force on small graphs and refereed by the validation scheduler."""

import pytest
from checkpoint_reference import two_layer_block
from hw_fixtures import toy, toy_data
from plan_reference import (
    all_plans, brute_force, nine_op_chain, normalised_residual, optima, residual_chain, seven_op_step, three_cores,
    twin_arrays, two_cores,
)

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.families.checkpoint.space import OBJECTIVES, PLAN_OBJECTIVES, CheckpointSpace
from monet_opt.families.plan.cpsat import PlanModel, improve_by_windows
from monet_opt.families.plan.family import PLAN
from monet_opt.families.plan.list_schedule import Fixed, best_list_schedule, grow_fusion, list_schedule, within_reach
from monet_opt.families.plan.problem import PlanProblem
from monet_opt.families.plan.serial import exact_serial_warm_start
from monet_opt.model.hardware import accelerator_from_dict
from monet_opt.model.training.derive import Optimizer, derive_training_graph
from monet_opt.model.workload.builder import GraphBuilder
from monet_opt.model.workload.ir import DType
from monet_opt.schedule.plan import Plan, Residency
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.schedule.simulate import simulate
from monet_opt.solving.common import Deadline, SolverOptions, SolveStatus
from monet_opt.solving.contract import Claim, CostUnderBudget, solve
from monet_opt.solving.cpsat_runner import run_cpsat

OPTIONS = SolverOptions(workers=2)


def _solve(graph, hw, objective, budget, method="cpsat", limit_s=30.0, stacks=None):
    problem = PlanProblem(graph, hw, PLAN_OBJECTIVES[objective], {}, stacks)
    return solve(PLAN, problem, CostUnderBudget(budget), method, OPTIONS, Deadline.start(limit_s))


def test_a_release_cycle_holds_a_stack_back_and_a_listed_recomputation_runs_where_listed():
    """fc1 on pe2 [0, 76); gelu released at 100 (its input is ready at 76): [100, 164); loss
    [164, 204), loss.backward [204, 244) on vec; fc1 recomputed on pe2 (not on pe, where fc1.dw
    runs), released at 300: [300, 376); gelu.backward reads the copy: [376, 488); fc1.dw on pe
    [488, 580); w1.update [580, 604)."""
    graph, hw = seven_op_step(), three_cores()
    ops = [op.name for op in graph.ops]
    vec_ops = ("gelu", "loss", "loss.backward", "gelu.backward", "w1.update")
    plan = Plan(stacks={op: (op,) for op in ops},
                core_of={**{op: "vec" for op in vec_ops}, "fc1": "pe2", "fc1.dw": "pe"},
                core_order={"pe2": ("fc1", "fc1.recompute"), "vec": vec_ops, "pe": ("fc1.dw",)},
                residency={"fc1": Residency.RECOMPUTE}, release_cycles={"gelu": 100, "fc1.recompute": 300})
    result = simulate(graph, hw, plan)
    assert result.valid
    spans = {t.name: (t.core, t.start_cycle, t.end_cycle) for t in result.tasks}
    assert spans["gelu"] == ("vec", 100, 164)
    assert spans["fc1.recompute"] == ("pe2", 300, 376)
    assert spans["gelu.backward"] == ("vec", 376, 488)
    assert result.latency_cycles == 604


def test_a_recomputation_before_the_op_it_repeats_is_a_violation_and_an_unneeded_one_is_refused():
    graph, hw = seven_op_step(), three_cores()
    ops = [op.name for op in graph.ops]
    vec_ops = ("gelu", "loss", "loss.backward", "gelu.backward", "w1.update")
    base = dict(stacks={op: (op,) for op in ops}, core_of={**{op: "vec" for op in vec_ops}, "fc1": "pe2",
                                                          "fc1.dw": "pe"})
    early = Plan(**base, core_order={"pe2": ("fc1.recompute", "fc1"), "vec": vec_ops, "pe": ("fc1.dw",)},
                 residency={"fc1": Residency.RECOMPUTE})
    kinds = [v.kind for v in simulate(graph, hw, early).violations]
    assert "dependency" in kinds
    unneeded = Plan(**base, core_order={"pe2": ("fc1", "fc1.recompute"), "vec": vec_ops, "pe": ("fc1.dw",)})
    with pytest.raises(InputError, match="fc1.recompute"):
        simulate(graph, hw, unneeded)


def fused(first):
    """A partition with `first` fused on (pe, vec) and every other op alone."""
    def partition(graph):
        return ((first, ("pe", "vec")),) + tuple(((op.name,), ("vec",)) for op in graph.ops if op.name not in first)
    return partition


CASES = [
    # graph, accelerator, partition, budgets (bytes of dynamic DRAM); serial store-all peaks 1696 / 2208 bytes
    pytest.param(seven_op_step, three_cores, None, (10**6, 1696, 1568), id="7 ops, 3 cores"),
    pytest.param(seven_op_step, two_cores, None, (10**6, 1696, 1568), id="7 ops, 2 cores"),
    pytest.param(seven_op_step, twin_arrays, None, (10**6, 1696, 1568), id="7 ops, 2 identical arrays"),
    pytest.param(nine_op_chain, three_cores, None, (1696, 1440), id="9 ops, 3 cores, on chip"),
    pytest.param(seven_op_step, three_cores, fused(("fc1", "gelu")), (10**6, 1952, 1696, 1440),
                 id="7 ops, fc1+gelu fused, 3 cores"),
    pytest.param(nine_op_chain, three_cores, fused(("fc1", "gelu1")), (10**6, 2208, 1952, 1440),
                 id="9 ops, fc1+gelu1 fused, fc1 recomputed and passed inside the stack"),
]


@pytest.mark.parametrize(("graph_of", "hw_of", "partition", "budgets"), CASES)
def test_the_exact_model_equals_brute_force_in_latency_energy_and_edp(graph_of, hw_of, partition, budgets):
    graph, hw = graph_of(), hw_of()
    stacks = None if partition is None else partition(graph)
    for budget in budgets:
        best = optima(PlanProblem(graph, hw, OBJECTIVES["latency"], {}, stacks), budget)
        for objective in ("latency", "energy", "edp"):
            problem = PlanProblem(graph, hw, PLAN_OBJECTIVES[objective], {}, stacks)
            # the structural bounds (longest chain, busiest core or DRAM link; least energies) hold below every optimum
            assert best[objective] is None or 0 < problem.cost_bound[0] <= best[objective] * (1 + 1e-12)
            if best[objective] is None:
                with pytest.raises(InfeasibleError):
                    _solve(graph, hw, objective, budget, stacks=stacks)
                continue
            result = _solve(graph, hw, objective, budget, stacks=stacks)
            assert result.status is SolveStatus.OPTIMAL and result.validated
            assert result.measurement.objective == pytest.approx(best[objective], rel=1e-12), (budget, objective)


def test_the_latency_bound_by_hand():
    """seven_op_step: loss.backward reads gelu and the labels, not the loss, so the longest chain is
    fc1 -> gelu -> loss.backward -> gelu.backward -> fc1.dw -> w1.update. On three_cores fc1 and fc1.dw
    take 76 cycles on pe2 (92 on pe), gelu 64, loss.backward 40, gelu.backward 112, w1.update 24:
    76 + 64 + 40 + 112 + 76 + 24 = 392; the vector unit's work (64 + 40 + 40 + 112 + 24 = 280) and the
    DRAM link's (28 + 16 + 2 + 17 + 48 + 28 + 24 = 163 cycles) are lower. On two_cores (no pe2):
    92 + 64 + 40 + 112 + 92 + 24 = 424. The answer's bound is the higher of CP-SAT's and this one, named;
    an answer that meets it is optimal. Energy: every task at its least energy; EDP: the product of
    the two."""
    from monet_opt.families.plan.family import _with_structural_bound
    from monet_opt.solving.common import SolveStats

    graph = seven_op_step()
    problem = PlanProblem(graph, three_cores(), OBJECTIVES["latency"], {})
    assert problem.latency_bound == (392, "the longest chain of tasks")
    assert PlanProblem(graph, two_cores(), OBJECTIVES["latency"], {}).latency_bound[0] == 424

    def stats(status, objective, bound):
        return SolveStats(status, objective, bound, 1.0, None, None, ())

    target = CostUnderBudget(10**6)
    raised, source = _with_structural_bound(problem, target, stats(SolveStatus.HEURISTIC, 400.0, None), 400.0)
    assert (raised.status, raised.bound, source) == (SolveStatus.FEASIBLE, 392.0, "the longest chain of tasks")
    raised, source = _with_structural_bound(problem, target, stats(SolveStatus.FEASIBLE, 392.0, 300.0), 392.0)
    assert (raised.status, raised.gap) == (SolveStatus.OPTIMAL, 0.0)
    kept, source = _with_structural_bound(problem, target, stats(SolveStatus.FEASIBLE, 420.0, 395.0), 420.0)
    assert (kept.bound, source) == (395.0, "CP-SAT's search")
    least = sum(min(o.energy_pj for o in problem.options[task]) for task in problem.stack_ops)
    energy = PlanProblem(graph, three_cores(), PLAN_OBJECTIVES["energy"], {})
    assert energy.cost_bound == (least, "every task at its least energy")
    edp = PlanProblem(graph, three_cores(), PLAN_OBJECTIVES["edp"], {})
    assert edp.cost_bound == (392 * least, "the longest chain of tasks; every task at its least energy")
    raised, source = _with_structural_bound(edp, target, stats(SolveStatus.FEASIBLE, 1.0, None), 400 * least)
    assert (raised.status, raised.bound) == (SolveStatus.FEASIBLE, 392 * least)


def test_values_kept_on_chip_or_recomputed_meet_the_tighter_budgets():
    """The chain at 1,696 bytes (the serial store-all peak is 2,208) and, with fc1 fused to gelu1 on
    (pe, vec), at 1,952: the answers are the brute force's optima, and each holds some saved
    activation out of DRAM (on chip, or recomputed); a recomputed value whose forward readers are all
    in its fused stack is passed inside the stack, which then never writes it out."""
    graph, hw = nine_op_chain(), three_cores()
    for budget, stacks in ((1696, None), (1952, fused(("fc1", "gelu1"))(graph))):
        problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {}, stacks)
        result = _solve(graph, hw, "latency", budget, stacks=stacks)
        assert result.measurement.latency_cycles == brute_force(problem, budget)[0]
        assert result.measurement.peak <= budget and (result.payload.on_chip or result.payload.recomputed)
        for task, values in problem.absorbable.items():
            assert result.payload.option(problem, task).absorbed == result.payload.recomputed & set(values)
    assert problem.absorbable == {"fc1+1": ("fc1",)}


def test_an_infeasible_budget_names_the_smallest_feasible_one():
    """The chain's smallest feasible budget, by brute force: some plan fits 1,664 bytes, none 1,663."""
    problem = PlanProblem(nine_op_chain(), three_cores(), OBJECTIVES["latency"], {})
    assert brute_force(problem, 1664) != (None, None) and brute_force(problem, 1663) == (None, None)
    with pytest.raises(InfeasibleError, match=r"budget 1440 bytes is infeasible: the smallest feasible budget is "
                                              r"1664 bytes, 224 above it"):
        _solve(nine_op_chain(), three_cores(), "latency", 1440)


def two_vector_cores():
    data = toy_data()
    data["memories"].append({"name": "vsram2", "capacity_bytes": 1 << 20, "bandwidth_bits_per_cycle": 1 << 20,
                             "read_energy_pj_per_bit": 0.1, "write_energy_pj_per_bit": 0.1})
    data["cores"].append({"name": "vec2", "memory": "vsram2", "op_kinds": ["vector"],
                          "vector_unit": {"lanes": 16, "op_energy_pj": 0.5}})
    data["links"][1]["endpoints"].append("vec2")
    data["dram"]["bandwidth_bits_per_cycle"] = data["links"][1]["bandwidth_bits_per_cycle"] = 512
    return accelerator_from_dict(data, "two-vector-cores.yaml")


def test_the_model_delays_an_op_so_that_dram_holds_what_a_serial_plan_holds():
    """x1, x2 (8x16 fp32, 512 bytes each, network inputs held from cycle 0 until their reader ends)
    -> gelu_a(x1), gelu_b(x2) (512 bytes each) -> sum (512 bytes) on two vector cores, vec and vec2.
    Each GELU takes 64 cycles and holds the DRAM link for its first 16 (1,024 bytes at 512 bits per
    cycle); the sum takes 24 (1,536 bytes, DRAM-bound).
    - Serial (gelu_a, gelu_b, sum): 64 + 64 + 24 = 152 cycles; DRAM holds x1 + x2 + gelu_a = 1,536
      bytes while gelu_a runs, x2 + gelu_a + gelu_b = 1,536 while gelu_b runs, then the two GELU
      outputs and the sum: peak 1,536.
    - Fastest: gelu_a at 0 on vec, gelu_b at 16 on vec2 (after gelu_a's DRAM transfer), sum at 80:
      104 cycles, but from cycle 16 DRAM holds x1 + x2 + gelu_a + gelu_b = 2,048 bytes.
    - Budget 1,536: gelu_b may start only once x1 is released, when gelu_a ends at 64; the model
      delays it by 48 cycles (vec2 is idle from 0): gelu_b [64, 128), sum [128, 152)."""
    g = GraphBuilder("two_gelus")
    total = g.add("sum", g.gelu("gelu_a", g.input("x1", (8, 16))), g.gelu("gelu_b", g.input("x2", (8, 16))))
    graph, hw = g.build([total]), two_vector_cores()
    serial = CheckpointSpace(graph, hw).store_all
    assert (serial.latency_cycles, serial.dynamic_dram_peak_bytes) == (152, 1536)
    fastest = _solve(graph, hw, "latency", 10**6)
    assert fastest.measurement.latency_cycles == 104 and fastest.measurement.peak == 2048
    fitted = _solve(graph, hw, "latency", 1536)
    assert fitted.status is SolveStatus.OPTIMAL and fitted.measurement.peak == 1536
    spans = {t.name: (t.start_cycle, t.end_cycle) for t in fitted.measurement.simulation.tasks}
    assert spans["gelu_a"] == (0, 64) and spans["gelu_b"] == (64, 128) and spans["sum"] == (128, 152)


def test_cpsat_claims_every_peak_and_the_simulator_agrees():
    problem = PlanProblem(two_layer_block(), three_cores(), OBJECTIVES["latency"], {})
    budget = CostUnderBudget(3020)
    proposal = PLAN.methods["cpsat"].run(problem, budget, OPTIONS, Deadline.start(30))
    assert proposal.claim.plan.peak_memory_bytes is not None
    assert set(proposal.claim.plan.peak_memory_bytes) == {"dram", "sram", "vsram", "sram2"}
    verdict = PLAN.referee(problem, budget, proposal.payload, proposal.claim)
    assert verdict.disagreements == () and verdict.measurement.violations == ()


def test_the_list_scheduler_keeps_the_budget_and_cpsat_never_does_worse():
    graph, hw = two_layer_block(), three_cores()
    listed = _solve(graph, hw, "latency", 3020, method="greedy")
    exact = _solve(graph, hw, "latency", 3020)
    assert listed.validated and listed.measurement.peak <= 3020
    assert exact.validated and exact.measurement.latency_cycles <= listed.measurement.latency_cycles


def test_a_task_late_in_the_list_fills_an_idle_gap_of_its_core():
    """x -> fc1 -> GELU -> fc2 -> cross-entropy with SGD on two_cores (DRAM link 256 bits per cycle),
    no recomputation: fc1 [0, 92) on pe, gelu [92, 156) on vec, fc2 [156, 248), loss [248, 258),
    loss.backward [258, 268), fc2.dx [268, 360), fc2.dw [360, 452) holding the DRAM link [360, 388),
    gelu.backward on vec from 388 (the link) to 500, fc1.dw on pe [500, 592) holding the link until
    528, w1.update [592, 616). w2.update, last in the list, needs fc2.dw only: it takes vec's idle
    time at 528 (the link free), [528, 552), instead of [616, 640) after w1.update: 616 cycles,
    as the simulator runs it."""

    g = GraphBuilder("two")
    h = g.gelu("gelu", g.matmul("fc1", g.input("x", (8, 4)), g.weight("w1", (4, 16))))
    y = g.matmul("fc2", h, g.weight("w2", (16, 4)))
    graph = derive_training_graph(g.build([g.softmax_xent("loss", y, g.input("labels", (8,), DType.INT32))]),
                                  Optimizer.SGD)
    problem = PlanProblem(graph, two_cores(), OBJECTIVES["latency"], {})
    plan = list_schedule(problem, frozenset(), 10**6).plan
    spans = {t: (plan.start_cycles[t], plan.start_cycles[t] + plan.option(problem, t).duration_cycles)
             for t in problem.stack_ops}
    assert spans["gelu.backward"] == (388, 500) and spans["fc1.dw"] == (500, 592)
    assert spans["w2.update"] == (528, 552) and spans["w1.update"] == (592, 616)
    measured = PLAN.referee(problem, CostUnderBudget(10**6), plan, None).measurement
    assert (measured.latency_cycles, measured.violations) == (616, ())


def test_the_ga_answers_within_the_budget_and_never_beats_the_exact_model():
    """NSGA-II over cores and residencies: a validated plan within the budget, no faster than the
    optimum (the brute force's), and the same plan for the same seed."""
    graph, hw = nine_op_chain(), three_cores()
    best_latency, _ = brute_force(PlanProblem(graph, hw, OBJECTIVES["latency"], {}), 1696)
    found = _solve(graph, hw, "latency", 1696, method="ga")
    again = _solve(graph, hw, "latency", 1696, method="ga")
    assert found.validated and found.measurement.peak <= 1696
    assert found.measurement.latency_cycles >= best_latency
    assert found.payload == again.payload


def test_a_value_both_recomputed_and_given_on_chip_is_recomputed_only():
    """The list scheduler given GELU's output as recomputed and on chip (as a relief that recomputes a
    value a warm start keeps on chip would give it) recomputes it and does not keep it: the plan's
    residencies are what the simulator runs (kept on chip, the value would be held until its
    backward reader, while the schedule released it after its forward readers)."""
    problem = PlanProblem(seven_op_step(), two_cores(), OBJECTIVES["latency"], {})
    assert "gelu" in problem.candidates and "gelu" in problem.on_chip_eligible
    plan = list_schedule(problem, frozenset({"gelu"}), 10**6, None, Fixed(on_chip=frozenset({"gelu"}))).plan
    assert (plan.recomputed, plan.on_chip) == ({"gelu"}, frozenset())
    assert PLAN.referee(problem, CostUnderBudget(10**6), plan, None).measurement.violations == ()


def test_a_value_kept_on_chip_counts_with_its_writers_working_set():
    """residual_chain on two_cores with the residual sum kept on chip: the add reads ReLU's and fc1's
    outputs (1,024 bytes of working set on vsram) while its own 512-byte output stays there, 1,536
    bytes at once, as the simulator counts them. Within 1,535 bytes of vsram it finds no room (each
    part alone would fit); within 1,536 it runs and the referee accepts the plan."""
    graph, hw = residual_chain(), two_cores()
    for vsram, fits in ((1535, False), (1536, True)):
        problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {"vsram": vsram})
        found = list_schedule(problem, frozenset(), 10**6, None, Fixed(on_chip=frozenset({"res"})))
        assert (found.plan is not None, found.blocked_at) == (fits, None if fits else "res")
        if fits:
            assert PLAN.referee(problem, CostUnderBudget(10**6), found.plan, None).measurement.violations == ()


def test_a_fused_stack_that_keeps_the_budget_out_of_reach_is_split():
    """loss.backward and gelu.backward fused on vec, whose memory is held to 600 bytes (so no value
    of the backward pass stays on chip beside the working sets): a fused stack writes its outputs at
    its start and holds its inputs to its end, so at 1,680 bytes of DRAM the list scheduler finds no
    room at it whatever it recomputes or keeps on chip; with the stack's ops alone it finds a plan,
    and the space says so."""
    graph, hw = seven_op_step(), three_cores()
    first = ("loss.backward", "gelu.backward")
    stacks = ((first, ("vec", "vec")),) + tuple(((op.name,), ("vec",)) for op in graph.ops if op.name not in first)
    problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {"vsram": 600}, stacks)
    assert within_reach(problem, 1680, Deadline.start(30), split=False) == (problem, None)
    split, plan = within_reach(problem, 1680, Deadline.start(30), split=True)
    assert split.split == ("loss.backward+1",) and plan is not None
    assert "after 1 fused stacks of the fusion stage's answer were split" in split.space()
    assert PLAN.referee(split, CostUnderBudget(1680), plan, None).measurement.violations == ()


def test_fusion_grown_from_a_plan_over_unfused_ops_beats_the_partition_the_relief_loop_keeps():
    """residual_chain on two_cores (vsram 400 bytes), four fused pairs on vec (GELU+ReLU, the
    residual add + loss, loss.backward + ReLU.backward, GELU.backward + the gradient accumulation),
    4,156 bytes of dynamic DRAM. Brute force over every allocation, order and residency: the whole
    partition's best plan takes 1,507 cycles (it recomputes fc1, 272 cycles on pe), the unfused ops'
    1,360 (nothing recomputed). `within_reach` keeps the whole partition (its relief recomputes fc1);
    `grow_fusion`, started from the exact serial plan of the unfused ops (nothing recomputed), finds
    no room at loss.backward+1 with nothing recomputed, splits it, and keeps the other three: 1,258
    cycles, the brute-force optimum of that partition, validated within the budget."""
    graph, hw = residual_chain(), two_cores()
    pairs = (("gelu", "relu"), ("res", "loss"), ("loss.backward", "relu.backward"),
             ("gelu.backward", "fc1.grad_accumulate1"))
    paired = {op for pair in pairs for op in pair}
    stacks = tuple((pair, ("vec", "vec")) for pair in pairs)
    stacks += tuple(((op.name,), ("vec",)) for op in graph.ops if op.name not in paired)
    problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {"vsram": 400}, stacks)
    alone = problem.splitting("gelu+1", "res+1", "loss.backward+1", "gelu.backward+1")
    assert brute_force(problem, 4156)[0] == 1507 and brute_force(alone, 4156)[0] == 1360
    kept, plan = within_reach(problem, 4156, Deadline.start(30), split=True)
    assert kept.split == () and plan.recomputed == {"fc1"}
    start = exact_serial_warm_start(alone, 4156, OPTIONS, Deadline.start(30))
    assert start.recomputed == frozenset() and start.cost(alone)[0] == 1360
    grown, plan = grow_fusion(problem, start, 4156, Deadline.start(30))
    assert grown.split == ("loss.backward+1",) and plan.recomputed == frozenset()
    measured = PLAN.referee(grown, CostUnderBudget(4156), plan, None).measurement
    assert (measured.latency_cycles, measured.violations) == (1258, ())
    assert measured.peak <= 4156 and brute_force(grown, 4156)[0] == 1258


def test_where_no_list_schedule_reaches_the_budget_the_plan_starts_from_the_serial_checkpoint_plan():
    """nine_op_chain on two_cores with GELU1+GELU2 and loss+loss.backward fused, 1,672 bytes of dynamic
    DRAM: brute force finds plans of 640 cycles over both the partition and the unfused ops, but the
    list scheduler reaches the budget with neither (`best_list_schedule` over the unfused ops: None).
    The exact serial checkpoint plan of the unfused ops does (640 cycles); no fused stack fits back
    into its residencies, so the plan stage solves the unfused ops from it: proven optimal at 640
    cycles, the brute-force optimum, and its space says why."""
    from monet_opt.studies.pipeline import _partition_within_reach

    graph, hw = nine_op_chain(), two_cores()
    pairs = (("gelu1", "gelu2"), ("loss", "loss.backward"))
    stacks = tuple((pair, ("vec", "vec")) for pair in pairs)
    stacks += tuple(((op.name,), ("vec",)) for op in graph.ops if op.name not in {*pairs[0], *pairs[1]})
    problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {}, stacks)
    alone = problem.splitting("gelu1+1", "loss+1")
    assert brute_force(problem, 1672)[0] == brute_force(alone, 1672)[0] == 640
    assert best_list_schedule(alone, 1672, Deadline.start(30)) is None
    assert within_reach(problem, 1672, Deadline.start(30), split=True)[1] is None
    chosen = _partition_within_reach(problem, 1672, "cpsat", OPTIONS, Deadline.start(60))
    assert chosen.split == ("gelu1+1", "loss+1") and [start.cost(chosen)[0] for start in chosen.starts] == [640]
    assert "started from their serial checkpoint plan" in chosen.space()
    result = solve(PLAN, chosen, CostUnderBudget(1672), "cpsat", OPTIONS, Deadline.start(30))
    assert result.status is SolveStatus.OPTIMAL and result.validated
    assert result.measurement.latency_cycles == 640


def test_with_no_held_value_to_blame_the_fused_stacks_nearest_the_blocked_task_are_split():
    """Blocked at gelu.backward (alone), which no saved activation is held across (fc1 is read by it,
    x has no producer): the stacks to split are the fused ones nearest to it in the scheduler's
    order fc1+gelu, loss, loss.backward, gelu.backward, fc1.dw+w1.update -- one of them (fc1.dw+1,
    one place away), then two (fc1+1 too, three places away); splitting both leaves every op alone."""
    from monet_opt.families.plan.list_schedule import Scheduled, _stacks_to_split

    graph = seven_op_step()
    stacks = ((("fc1", "gelu"), ("pe", "vec")), (("fc1.dw", "w1.update"), ("pe", "vec")))
    stacks += tuple(((op,), ("vec",)) for op in ("loss", "loss.backward", "gelu.backward"))
    problem = PlanProblem(graph, three_cores(), OBJECTIVES["latency"], {}, stacks)
    assert list(problem.stack_ops) == ["fc1+1", "loss", "loss.backward", "gelu.backward", "fc1.dw+1"]
    blocked = Scheduled(None, "gelu.backward", graph, problem.stack_ops)
    assert _stacks_to_split(problem, blocked, 1) == ("fc1.dw+1",)
    assert _stacks_to_split(problem, blocked, 2) == ("fc1.dw+1", "fc1+1")
    split = problem.splitting("fc1.dw+1", "fc1+1")
    assert split.split == ("fc1.dw+1", "fc1+1") and all(len(ops) == 1 for ops in split.stack_ops.values())
    assert _stacks_to_split(split, Scheduled(None, "gelu.backward", graph, split.stack_ops), 4) == ()


def test_a_fused_recomputation_group_is_in_the_space_and_proven_against_brute_force():
    """residual_chain on two_cores, vsram limited to 400 bytes (so that no 512-byte activation stays
    on chip). Within 4,096 bytes of dynamic DRAM a plan recomputes fc1's output or ReLU's (no plan
    fits 4,095). Recomputing ReLU's output, GELU -> ReLU may run as one stack on vec: 72 cycles
    against 64 + 32 for the two apart, and GELU's output never goes to DRAM (vec: 16 lanes; DRAM 32
    bytes per cycle; 128 elements of 4 bytes: GELU 1,024 vector ops = 64 cycles, reading and writing
    512 bytes = 32 DRAM cycles; ReLU 128 ops = 8 cycles but 32 DRAM cycles; fused, 64 + 8 = 72 of
    compute against 32 DRAM cycles for fc1's output in and ReLU's out). The fastest plan (and
    the least energy) recomputes the group: 1,432 cycles, where the fastest plan without the group
    takes 1,456 (the 24 cycles of the two recomputations apart, on the critical path). The exact
    model equals brute force, which enumerates the groups, in latency, energy and EDP."""
    graph, hw = residual_chain(), two_cores()
    problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {"vsram": 400})
    assert dict(problem.groups) == {("gelu", "relu"): ()}
    durations = {(t, o.group): o.duration_cycles for t, options in problem.options.items() for o in options
                 if t.endswith(".recompute") and not o.on_chip}
    assert durations[("gelu.recompute", ())] + durations[("relu.recompute", ())] == 64 + 32
    assert durations[("relu.recompute", ("gelu", "relu"))] == 72
    plans = list(all_plans(problem, 4096))
    assert min(m.latency_cycles for plan, m in plans if not plan.groups) == 1456
    best = optima(problem, 4096)
    assert (best["latency"], best["energy"]) == (1432, pytest.approx(3637344.0))
    assert brute_force(problem, 4095) == (None, None)
    for objective in ("latency", "energy", "edp"):
        problem = PlanProblem(graph, hw, PLAN_OBJECTIVES[objective], {"vsram": 400})
        result = solve(PLAN, problem, CostUnderBudget(4096), "cpsat", OPTIONS, Deadline.start(30))
        assert result.status is SolveStatus.OPTIMAL and result.validated
        assert result.payload.groups == {("gelu", "relu")}
        assert result.measurement.objective == pytest.approx(best[objective], rel=1e-12)


@pytest.mark.slow  # about 2 minutes: 46,640 plans
def test_a_group_whose_first_op_writes_a_saved_value_is_proven_against_brute_force():
    """normalised_residual on two_cores, vsram limited to 500 bytes (the group BN -> ReLU fits, no
    512-byte value stays on chip): within 4,224 bytes of dynamic DRAM the model equals brute force
    (1,330 cycles; 3,779,328 pJ), with the group's copy of the statistics in its space."""
    graph, hw = normalised_residual(), two_cores()
    problem = PlanProblem(graph, hw, OBJECTIVES["latency"], {"vsram": 500})
    assert dict(problem.groups) == {("bn", "relu"): ()}
    assert brute_force(problem, 4224) == (1330, pytest.approx(3779328.0))
    for objective, best in (("latency", 1330), ("energy", 3779328.0)):
        problem = PlanProblem(graph, hw, OBJECTIVES[objective], {"vsram": 500})
        result = solve(PLAN, problem, CostUnderBudget(4224), "cpsat", OPTIONS, Deadline.start(30))
        assert result.status is SolveStatus.OPTIMAL and result.validated
        measured = result.measurement.latency_cycles if objective == "latency" else result.measurement.energy_pj
        assert measured == pytest.approx(best, rel=1e-12)


def test_a_serial_plan_with_a_fused_recomputation_group_warm_starts_grouped_or_ungrouped():
    """two_layer_block on the toy accelerator (its own memories per core, DRAM at 64 bits per cycle):
    relu recomputed with its unsaved chain act -> res -> relu fused (one group) runs in 4,969 cycles
    at a dynamic DRAM peak of 3,264 bytes; with each member recomputed alone (three tasks, each
    writing DRAM): 5,225 cycles at 3,648 bytes. The 256 cycles by hand: the recomputations are DRAM-
    bound at 8 bytes per cycle, 512-byte values; apart, act reads ln and writes act (1,024 bytes, 128
    cycles), res reads act and fc1 and writes res (1,536 bytes, 192), relu reads res and writes relu
    (128): 448 cycles; the group reads ln and fc1 and writes relu: 192 cycles; all on the critical
    path. The peaks by hand (512-byte values unless named): grouped, when fc3.dx starts (cycle
    1,593), DRAM holds x, fc1 and ln (read again in the backward pass), ln's 64-byte statistics,
    fc2, act2, the 128-byte gradient of fc3 and the gradient fc3.dx writes: 6 x 512 + 64 + 128 =
    3,264; apart, when res.recompute starts (cycle 2,585), it holds x, fc1, ln, the statistics, the
    gradients of fc2 and relu, and the copies of act and res: 7 x 512 + 64 = 3,648 (grouped, act
    and res never reach DRAM). The group is a candidate group of the
    plan space, so `as_parallel` keeps it: the referee measures 4,969 cycles within 3,264 bytes. In a
    space without that group it takes the ungrouped plan when that fits the budget, else none."""
    from monet_opt.families.checkpoint.space import Decisions
    from monet_opt.families.plan.serial import _checkpoint_space, as_parallel

    problem = PlanProblem(two_layer_block(), toy(**{"dram.bandwidth_bits_per_cycle": 64}), OBJECTIVES["latency"], {})
    space = _checkpoint_space(problem)
    grouped = Decisions({"relu": Residency.RECOMPUTE}, (("act", "res", "relu"),))
    evaluation, alone = space.evaluate(grouped), space.evaluate(Decisions({"relu": Residency.RECOMPUTE}))
    assert (evaluation.latency_cycles, evaluation.dynamic_dram_peak_bytes) == (4969, 3264)
    assert (alone.latency_cycles, alone.dynamic_dram_peak_bytes) == (5225, 3648)
    assert ("act", "res", "relu") in problem.groups
    plan = as_parallel(problem, space, grouped, evaluation.simulation, 3264)
    assert plan.groups == {("act", "res", "relu")} and plan.cost(problem)[0] == 4969
    measured = PLAN.referee(problem, CostUnderBudget(3264), plan, None).measurement
    assert (measured.latency_cycles, measured.peak, measured.violations) == (4969, 3264, ())
    without = PlanProblem(problem.graph, problem.hw, problem.weights, {})
    without.__dict__["groups"] = {}  # the space without candidate groups
    plan = as_parallel(without, space, grouped, evaluation.simulation, 3648)
    assert plan.recomputed == {"relu"} and not plan.groups and plan.cost(without)[0] == alone.latency_cycles
    measured = PLAN.referee(without, CostUnderBudget(3648), plan, None).measurement
    assert (measured.latency_cycles, measured.peak, measured.violations) == (5225, 3648, ())
    assert as_parallel(without, space, grouped, evaluation.simulation, 3647) is None


def test_windows_of_the_model_keep_the_claims_true_and_never_worsen_the_incumbent():
    """The large-neighbourhood search by time windows (`improve_by_windows`, 12-task windows on the
    32-task block), from an incumbent: every answer it returns is refereed as the whole model's are
    (makespan, energy and every memory's peak reproduced), and is no slower than where it started."""
    problem = PlanProblem(two_layer_block(), three_cores(), OBJECTIVES["latency"], {})
    options = SolverOptions(workers=1)
    model = PlanModel(problem, 3020)
    model.hint(best_list_schedule(problem, 3020, Deadline.start(10)), options, Deadline.start(10))
    solver, stats = run_cpsat(model.model, options, Deadline.start(10), stop_below=float("inf"))
    start = solver.value(model.makespan)
    better, _ = improve_by_windows(model, solver, stats, options, Deadline.start(2), 12)
    plan = model.answer(better)
    claim = Claim(plan=PlanClaim(better.value(model.makespan), plan.cost(problem)[1], model.claimed_peaks(better)))
    verdict = PLAN.referee(problem, CostUnderBudget(3020), plan, claim)
    assert verdict.disagreements == () and verdict.measurement.violations == ()
    assert verdict.measurement.latency_cycles <= start


def test_a_budget_below_what_one_op_holds_is_refused_on_sight():
    """While gelu.backward runs it reads fc1's output (written on a PE array, read on vec: it cannot
    stay on chip) and the gradient of gelu's, and writes fc1's gradient: 512 bytes each, 1,536 that
    every plan holds in DRAM at once (`task_peak_bound_bytes`). A budget of 1,500 is refused before
    any search, with the smallest feasible budget the diagnosis finds."""
    problem = PlanProblem(seven_op_step(), three_cores(), OBJECTIVES["latency"], {})
    assert problem.task_peak_bound_bytes == 1536
    assert PLAN.infeasible_on_sight(problem, CostUnderBudget(1500))
    assert not PLAN.infeasible_on_sight(problem, CostUnderBudget(1536))
    with pytest.raises(InfeasibleError, match=r"budget 1500 bytes is infeasible: the smallest feasible budget is "):
        solve(PLAN, problem, CostUnderBudget(1500), "cpsat", OPTIONS, Deadline.start(30))
