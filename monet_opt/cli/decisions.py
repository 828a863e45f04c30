"""Commands that solve one decision family: `monet checkpoint graph|training`, `monet allocate`,
`monet fuse`, and the answer report they share."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from monet_opt.errors import InputError
from monet_opt.families.allocation.family import OBJECTIVES as ALLOCATION_OBJECTIVES
from monet_opt.families.allocation.family import AllocationGoal, AllocationInstance
from monet_opt.families.allocation.ga import stream_ga_config
from monet_opt.families.allocation.problem import from_training
from monet_opt.families.allocation.problem import load_instance as load_allocation_problem
from monet_opt.families.checkpoint.family import CheckpointProblem
from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
from monet_opt.families.fusion.family import schedule_on_cores, space_for
from monet_opt.families.fusion.heuristics import GA_PRESETS
from monet_opt.families.fusion.space import FusionObjective
from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem
from monet_opt.families.remat.family import default_order
from monet_opt.families.remat.problem import load_problem, store_all_peak
from monet_opt.io import check_output_dir
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import load_accelerator
from monet_opt.report.answer import number_text
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline, GAConfig, SolverOptions
from monet_opt.solving.contract import CostUnderBudget, Family, solve
from monet_opt.solving.registry import Registry
from monet_opt.studies.budget_sweep import budget_sweep, write_sweep

from monet_opt.cli.answer import report_answer
from monet_opt.cli.arguments import (
    add_budget_arguments, add_solving_arguments, add_workload_arguments, local_budgets, positive_int, registry_of,
    solver_options, work_deadline, workload_graphs,
)


def print_budget_sweep(rows: list, as_json: bool) -> None:
    if as_json:
        print(json.dumps([row.__dict__ for row in rows], indent=1))
        return
    print(f"{'budget':>14} {'cpsat':>14} {'status':>9} {'ga':>14} {'greedy':>14} {'sqrt(n)':>14}")
    for r in rows:
        cells = [f"{number_text(v):>14}" for v in (r.cpsat_cost, r.ga_cost, r.greedy_cost, r.sqrt_cost)]
        print(f"{number_text(r.budget):>14} {cells[0]} {r.cpsat_status:>9} {' '.join(cells[1:])}")


def sweep_progress(message: str) -> None:
    print(f"sweep: {message}", file=sys.stderr, flush=True)


def _checkpoint_command_start(args: argparse.Namespace) -> tuple[Deadline, SolverOptions, Budget | None]:
    """What both checkpoint commands do first: the command's deadline, the solver options with the
    GA's size (--population, --generations), the --budget (None with --sweep), the --out check."""
    deadline = work_deadline(args, args.time_limit)
    options = solver_options(args, GAConfig(population=args.population, generations=args.generations,
                                            seed=args.seed))
    budget = None if args.sweep else Budget.parse(args.budget)
    if args.out:
        check_output_dir(args.out)
    return deadline, options, budget


def cmd_checkpoint_graph(args: argparse.Namespace) -> int:
    deadline, options, budget = _checkpoint_command_start(args)
    problem = load_problem(args.graph)
    problem = replace(problem, free_order=(args.order or default_order(problem)) == "free")
    if args.sweep:
        rows = budget_sweep(registry_of(args).family("remat"), problem, args.sweep, options, deadline,
                            progress=(lambda _: None) if args.quiet else sweep_progress)
        if args.out:
            unit = "units" if problem.size_scale == 1 else "input units"
            write_sweep(rows, args.out, base_cost=sum(problem.cost) / problem.cost_scale, cost_label="cost",
                        title=f"{problem.name}: overhead vs budget (store-all peak "
                              f"{store_all_peak(problem) / problem.size_scale:g})",
                        budget_label=f"memory budget [{unit} of cost_ram]")
        print_budget_sweep(rows, args.json)
        return 0
    target = CostUnderBudget(budget.resolve(store_all_peak(problem), problem.size_scale))
    result = solve(registry_of(args).family("remat"), problem, target, args.method, options, deadline)
    return report_answer(result, args, "result.json")


def cmd_checkpoint_training(args: argparse.Namespace) -> int:
    deadline, options, budget = _checkpoint_command_start(args)
    hw = load_accelerator(args.hardware)
    limits = local_budgets(args.local_budget, hw)
    training = workload_graphs(args)[1]
    space = CheckpointSpace(training, hw, local_budget_bytes=limits)
    problem = CheckpointProblem(space, OBJECTIVES[args.objective], free_order=args.order == "free")
    if args.sweep:
        rows = budget_sweep(registry_of(args).family("checkpoint"), problem, args.sweep, options, deadline,
                            progress=(lambda _: None) if args.quiet else sweep_progress)
        if args.out:
            write_sweep(rows, args.out, base_cost=space.store_all.objective(problem.weights),
                        cost_label=problem.weights.name,
                        title=f"{training.name} on {hw.name}: {problem.weights.name} overhead vs activation budget",
                        budget_label="activation budget: dynamic DRAM peak [bytes]")
        print_budget_sweep(rows, args.json)
        return 0
    target = CostUnderBudget(_dynamic_budget(budget, args.budget_scope, space))
    result = solve(registry_of(args).family("checkpoint"), problem, target, args.method, options, deadline)
    return report_answer(result, args, "checkpoint.json", workload=args.workload)


def _dynamic_budget(budget: Budget, scope: str, space: CheckpointSpace) -> int:
    """The dynamic DRAM budget (bytes) of --budget: itself (scope "dynamic", percentages of the
    store-all dynamic peak), or (scope "dram") the whole DRAM budget, percentages of the store-all
    DRAM peak, less the static DRAM bytes, which every plan of the space holds all step long."""
    store_all = space.store_all
    if scope == "dynamic":
        return budget.resolve(store_all.dynamic_dram_peak_bytes)
    static = store_all.simulation.static_dram_bytes
    whole = budget.resolve(static + store_all.dynamic_dram_peak_bytes)
    if whole <= static:
        raise InputError(f"--budget-scope dram: a DRAM budget of {whole} bytes does not even hold the {static} "
                         "static bytes (weights, optimizer states, gradients updated at the end)")
    return whole - static


def cmd_allocate(args: argparse.Namespace) -> int:
    deadline = work_deadline(args, args.time_limit)
    if (args.instance is None) == (args.workload is None):
        raise InputError("allocate: give either --instance FILE or --workload W with --hardware H")
    options = solver_options(args, stream_ga_config(population=args.population, generations=args.generations,
                                                    seed=args.seed))
    if args.out:
        check_output_dir(args.out)
    if args.workload is not None:
        if args.hardware is None:
            raise InputError("allocate --workload needs --hardware NAME|FILE.yaml")
        hw = load_accelerator(args.hardware)
        training = workload_graphs(args)[1]
        table = CostTable(training, hw)
        instance = AllocationInstance(from_training(training, hw, table), training, hw, table)
    else:
        instance = AllocationInstance(load_allocation_problem(args.instance))
    family = registry_of(args).family("allocation")
    result = solve(family, instance, AllocationGoal(args.objective), args.method, options,
                   deadline)
    return report_answer(result, args, "allocation.json", workload=args.workload)


def cmd_fuse(args: argparse.Namespace) -> int:
    deadline = work_deadline(args, args.time_limit)
    preset = GA_PRESETS[args.ga_preset]
    options = solver_options(args, GAConfig(args.population or preset.population,
                                            args.generations or preset.generations, preset.crossover_probability,
                                            preset.mutation_probability, args.seed))
    budget = _fuse_budget(args, registry_of(args).family("fusion_checkpoint"))
    if args.out:
        check_output_dir(args.out)
    hw = load_accelerator(args.hardware)
    graph = workload_graphs(args, args.mode)[1]
    if budget is not None:
        limits = local_budgets(args.local_budget, hw)
        store_all = CheckpointSpace(graph, hw, local_budget_bytes=limits).store_all.dynamic_dram_peak_bytes
        budget_bytes = budget.resolve(store_all)
        problem = FusedCheckpointProblem(graph, hw, args.max_stack, OBJECTIVES[args.objective], budget_bytes, limits)
        result = solve(registry_of(args).family("fusion_checkpoint"), problem, CostUnderBudget(budget_bytes),
                       args.method, options, deadline)
        return report_answer(result, args, "fusion.json", workload=args.workload, mode=args.mode)
    fusion_deadline = deadline.share(0.5) if args.schedule else deadline  # the rest schedules the stacks
    space = space_for(args.method, graph, CostTable(graph, hw), args.max_stack, FusionObjective(args.objective),
                      fusion_deadline)
    result = solve(registry_of(args).family("fusion"), space, space.objective, args.method, options, fusion_deadline)
    multi_core = None
    if args.schedule and result.payload is not None:
        multi_core = schedule_on_cores(space, result.payload, "cpsat", options, deadline)
    return report_answer(result, args, "fusion.json", workload=args.workload, mode=args.mode, multi_core=multi_core)


def _fuse_budget(args: argparse.Namespace, joint: Family) -> Budget | None:
    """The activation budget of `monet fuse --with-checkpointing`, checked against the other options
    (`joint`: the family that then solves, whose methods --method must name)."""
    if not args.with_checkpointing:
        for option, given in (("--budget", args.budget is not None), ("--local-budget", bool(args.local_budget))):
            if given:
                raise InputError(f"fuse: {option} needs --with-checkpointing")
        return None
    problems = [("--budget B|P% is required", args.budget is None),
                (f"--objective {args.objective} (latency or energy only)", args.objective not in ("latency", "energy")),
                (f"--method {args.method} ({', '.join(joint.methods)} only)", args.method not in joint.methods),
                ("--mode inference (no backward pass to checkpoint)", args.mode != "training"),
                ("--schedule", args.schedule)]
    wrong = [text for text, bad in problems if bad]
    if wrong:
        raise InputError(f"fuse --with-checkpointing: {wrong[0]}")
    return Budget.parse(args.budget)


def populate_checkpoint_graph(graph: argparse.ArgumentParser, registry: Registry) -> None:
    graph.add_argument("graph", metavar="FILE.json|FILE.yaml",
                       help="node-link JSON (node attributes cost_cpu, cost_ram) or the project's YAML")
    add_budget_arguments(graph, "absolute budget (the graph's size unit) or a percentage of the store-all peak")
    graph.add_argument("--order", choices=["fixed", "free"],
                       help="first executions in the graph's reference order, or in any topological order (cpsat "
                            "searches it; default: free for graphs of at most 60 nodes, else fixed)")
    add_solving_arguments(graph, registry.family("remat"), (100, 50), "result.json (or sweep.csv and sweep.png)",
                          cmd_checkpoint_graph)


def populate_checkpoint_training(training: argparse.ArgumentParser, registry: Registry) -> None:
    add_workload_arguments(training, positional=False)
    training.add_argument("--hardware", required=True, metavar="NAME|FILE.yaml")
    add_budget_arguments(training, "bytes of dynamic DRAM (activations and transient gradients), or a percentage "
                                   "of the store-all peak")
    training.add_argument("--objective", choices=list(OBJECTIVES), default="latency",
                          help="what the plan minimises (default latency)")
    training.add_argument("--budget-scope", choices=["dynamic", "dram"], default="dynamic",
                          help="what --budget bounds: the dynamic DRAM peak (default) or the whole DRAM peak, static "
                               "weights, optimizer states and gradients included (a percentage is then of the "
                               "store-all DRAM peak)")
    training.add_argument("--order", choices=["fixed", "free"], default="fixed",
                          help="ops run in the training graph's reference order (default), or cpsat chooses the order "
                               "too: every valid order when there are at most 24, else the reference order and two "
                               "list schedules, each solved exactly")
    training.add_argument("--local-budget", action="append", metavar="MEMORY=B|P%",
                          help="bound a local memory below its capacity (bytes or %% of it; repeatable)")
    add_solving_arguments(training, registry.family("checkpoint"), (100, 50),
                          "checkpoint.json and the plan's result.json, gantt.png, "
                          "memory.png, trace.json (or sweep.csv and sweep.png)", cmd_checkpoint_training)


def populate_allocate(allocate: argparse.ArgumentParser, registry: Registry) -> None:
    allocate.add_argument("--instance", metavar="FILE.yaml",
                          help="abstract allocation instance (see instances/allocation)")
    add_workload_arguments(allocate, positional=False, required=False)
    allocate.add_argument("--hardware", metavar="NAME|FILE.yaml", help="accelerator of a --workload")
    allocate.add_argument("--objective", choices=list(ALLOCATION_OBJECTIVES), default="latency",
                          help="latency (makespan), energy, or pareto (epsilon-constraint front); default latency")
    add_solving_arguments(allocate, registry.family("allocation"), (64, 250),
                          "allocation.json (--workload: also result.json, gantt.png, "
                          "memory.png, trace.json; a front: front.csv, front.png)", cmd_allocate)


def populate_fuse(fuse: argparse.ArgumentParser, registry: Registry) -> None:
    add_workload_arguments(fuse, positional=False)
    fuse.add_argument("--hardware", required=True, metavar="NAME|FILE.yaml")
    fuse.add_argument("--mode", choices=["training", "inference"], default="training")
    fuse.add_argument("--max-stack", type=positive_int, default=6, metavar="K",
                      help="most ops in one fused stack (default 6)")
    fuse.add_argument("--objective", choices=[o.value for o in FusionObjective], default="latency",
                      help="what the partition minimises: serial latency, energy, DRAM bytes or energy-delay "
                           "product (default latency)")
    fuse.add_argument("--with-checkpointing", action="store_true",
                      help="choose the stacks together with activation checkpointing under --budget (an exact joint "
                           "search on graphs up to 40 ops, else fusion and checkpointing alternated, each exact "
                           "given the other; method cpsat, objective latency or energy, training mode)")
    fuse.add_argument("--budget", metavar="B|P%",
                      help="with --with-checkpointing: bytes of dynamic DRAM (activations and transient gradients), "
                           "or a percentage of the unfused store-all peak")
    fuse.add_argument("--local-budget", action="append", metavar="MEMORY=B|P%",
                      help="with --with-checkpointing: bound a local memory below its capacity (bytes or %% of it; "
                           "repeatable)")
    fuse.add_argument("--schedule", action="store_true",
                      help="also schedule the chosen stacks on every core (allocation CP-SAT, half of the time "
                           "limit) and report the multi-core makespan")
    fuse.add_argument("--ga-preset", choices=list(GA_PRESETS), default="monet",
                      help="the GA's settings: monet (100 x 50, crossover 0.9, mutation 0.1) or stream (64 x 250, "
                           "0.3, 0.7); default monet")
    fuse.add_argument("--population", type=positive_int, help="GA population (default: the preset's)")
    fuse.add_argument("--generations", type=positive_int, help="GA generations (default: the preset's)")
    add_solving_arguments(fuse, registry.family("fusion"), None,
                          "fusion.json and the plan's result.json, gantt.png, memory.png, "
                          "trace.json (with --schedule also multi_core/)", cmd_fuse)
