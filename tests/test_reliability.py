"""What a user meets: malformed files and option values end in one line and exit 2 (or 3), never a
traceback; output files follow the umask; a plan that breaks a constraint exits 5; the listed
traceback cases each have a test."""

import contextlib
import io
import json
import math
import os
import stat

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monet_opt.cli import main

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    st.text(max_size=8))
documents = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                         max_leaves=12)
# a number no format accepts where a cost, size, duration or energy goes: not a number, negative, not
# finite, or beyond the models' largest value (1e15)
bad_numbers = st.one_of(st.none(), st.booleans(), st.text(max_size=3), st.integers(max_value=-1),
                        st.floats(max_value=-1e-6), st.sampled_from([math.nan, math.inf, -math.inf]),
                        st.floats(min_value=1.01e15, allow_infinity=False), st.lists(st.integers(), max_size=2))


def remat_document() -> dict:
    """A valid node-link graph: a -> b."""
    return {"nodes": [{"id": "a", "cost_cpu": 2, "cost_ram": 3}, {"id": "b", "cost_cpu": 1, "cost_ram": 1}],
            "links": [{"source": "a", "target": "b"}]}


def allocation_document() -> dict:
    """A valid abstract allocation instance: t on core a, then u on core b, 8 bytes between them."""
    return {"cores": ["a", "b"], "link": {"bandwidth_bits_per_cycle": 8},
            "tasks": [{"name": "t", "options": {"a": {"duration_cycles": 2, "energy_pj": 1.0}}},
                      {"name": "u", "options": {"b": {"duration_cycles": 3}}}],
            "edges": [{"from": "t", "to": "u", "bytes": 8}]}


def corrupted(document: dict, corruption: str, value: object, key: str) -> dict:
    """`document` with one defect named by `corruption` (`value` and `key` fill it in)."""
    doc = json.loads(json.dumps(document))
    node_key = {"cost": "cost_cpu", "size": "cost_ram"}.get(key, key)
    if corruption == "bad number" and "nodes" in doc:
        doc["nodes"][1][node_key if node_key in ("cost_cpu", "cost_ram") else "cost_cpu"] = value
    elif corruption == "bad number":
        option = doc["tasks"][0]["options"]["a"]
        option["energy_pj" if key == "size" else "duration_cycles"] = value
    elif corruption == "unknown key":
        (doc["nodes"] if "nodes" in doc else doc["tasks"])[0][key or "x"] = 1
    elif corruption == "missing key":
        del (doc["nodes"] if "nodes" in doc else doc["tasks"])[0]["id" if "nodes" in doc else "options"]
    elif corruption == "dangling edge":
        if "links" in doc:
            doc["links"].append({"source": "a", "target": "nowhere"})
        else:
            doc["edges"].append({"from": "t", "to": "nowhere", "bytes": 1})
    elif corruption == "cycle":
        if "links" in doc:
            doc["links"].append({"source": "b", "target": "a"})
        else:
            doc["edges"].append({"from": "u", "to": "t", "bytes": 1})
    elif corruption == "duplicate":
        items = doc["nodes"] if "nodes" in doc else doc["tasks"]
        items.append(json.loads(json.dumps(items[0])))
    elif corruption == "empty":
        doc["nodes" if "nodes" in doc else "tasks"] = []
    return doc


CORRUPTIONS = ["bad number", "unknown key", "missing key", "dangling edge", "cycle", "duplicate", "empty"]


def dumped(document: object) -> bytes:
    return json.dumps(document, allow_nan=True).encode()


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_clean_refusal(code: int, err: str, allowed: tuple[int, ...] = (2,)) -> None:
    """A refusal: one of the `allowed` exit codes (never 0: malformed input is never accepted
    silently), one line on stderr, no traceback."""
    assert code in allowed, (code, err)
    assert err.count("\n") == 1 and err.startswith("monet") and "Traceback" not in err, err


def file_of(tmp_path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


@FUZZ
@given(content=st.one_of(st.binary(max_size=64), documents.map(dumped),
                         st.builds(corrupted, st.just(remat_document()),
                                   st.sampled_from([c for c in CORRUPTIONS if c != "unknown key"]), bad_numbers,
                                   st.sampled_from(["cost", "size"])).map(dumped)))
def test_malformed_rematerialisation_graphs(tmp_path, content):
    """Node-link JSON nodes may carry any other attribute (networkx keeps them), so an unknown key is
    no defect there; the uncorrupted graph solves at 100 % (exit 0)."""
    path = file_of(tmp_path, "g.json", content)
    code, _, err = run(["checkpoint", "graph", path, "--budget", "100%", "--time-limit", "5"])
    assert_clean_refusal(code, err)


@FUZZ
@given(content=st.one_of(st.binary(max_size=64), documents.map(lambda d: yaml.safe_dump(d).encode()),
                         st.builds(corrupted, st.just(allocation_document()), st.sampled_from(CORRUPTIONS),
                                   bad_numbers, st.sampled_from(["duration", "size", "colour"])).map(dumped)))
def test_malformed_allocation_instances(tmp_path, content):
    path = file_of(tmp_path, "i.json", content)
    code, _, err = run(["allocate", "--instance", path, "--time-limit", "5"])
    assert_clean_refusal(code, err)


def test_the_uncorrupted_documents_are_accepted(tmp_path):
    """The corruptions above start from valid documents: without one, each solves (exit 0)."""
    code, _, err = run(["checkpoint", "graph", file_of(tmp_path, "g.json", dumped(remat_document())), "--budget",
                        "100%", "--time-limit", "5"])
    assert code == 0, err
    code, _, err = run(["allocate", "--instance", file_of(tmp_path, "i.json", dumped(allocation_document())),
                        "--time-limit", "5"])
    assert code == 0, err


@FUZZ
@given(content=st.one_of(st.binary(max_size=64), documents.map(lambda d: yaml.safe_dump(d).encode())))
def test_malformed_hardware_files(tmp_path, content):
    code, _, err = run(["hardware", "show", file_of(tmp_path, "h.yaml", content)])
    assert_clean_refusal(code, err)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=128))
def test_malformed_onnx_bytes(tmp_path, content):
    code, _, err = run(["workload", "show", file_of(tmp_path, "m.onnx", b"\x08\x07" + content), "--batch", "1"])
    assert_clean_refusal(code, err)


def _parses(text: str) -> bool:
    from monet_opt.errors import InputError
    from monet_opt.solving.budget import Budget

    try:
        Budget.parse(text)
    except InputError:
        return False
    return True


@FUZZ
@given(budget=st.text(max_size=8).filter(lambda t: not _parses(t)),
       local=st.text(max_size=12).filter(lambda t: "=" not in t), params=st.text(max_size=12),
       limit=st.text(max_size=6))
def test_malformed_option_values(budget, local, params, limit):
    code, _, err = run(["checkpoint", "graph", "instances/remat/diamond.yaml", "--budget", budget, "--time-limit",
                        limit or "1", "--cpsat-params", params or "linearization_level:0"])
    assert_clean_refusal(code, err)
    code, _, err = run(["checkpoint", "training", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad",
                        "--budget", "90%", "--local-budget", local or "x", "--time-limit", "1"])
    assert_clean_refusal(code, err)


def test_each_listed_traceback_case_is_one_line(tmp_path):
    latin1 = file_of(tmp_path, "latin1.yaml", "name: caf\xe9\nnodes: []\n".encode("latin-1"))
    empty = file_of(tmp_path, "empty.json", b'{"nodes": [], "links": []}')
    huge = file_of(tmp_path, "huge.json", json.dumps({"nodes": [{"id": 0, "cost_cpu": 1, "cost_ram": 1e30}],
                                                       "links": []}).encode())
    infinite_clock = file_of(tmp_path, "clock.yaml", b"clock_hz: .inf\n")
    taken = file_of(tmp_path, "taken", b"")
    cases = [
        (["checkpoint", "graph", latin1, "--budget", "5"], "not UTF-8 text (byte 9)"),
        (["checkpoint", "graph", empty, "--budget", "5"], "the graph has no nodes"),
        (["checkpoint", "graph", huge, "--budget", "5"], "larger than 1e+15"),
        (["checkpoint", "graph", "instances/remat/diamond.yaml", "--budget", "inf"], "finite"),
        (["checkpoint", "graph", "instances/remat/diamond.yaml", "--budget", "120%"], "above 100 %"),
        (["checkpoint", "graph", "instances/remat/diamond.yaml", "--budget", "5", "--out", taken], "not a directory"),
        (["hardware", "show", infinite_clock], "clock_hz: not a finite number"),
        (["workload", "export", "resnet18-cifar", "-o", f"{taken}/g.json"], "exists and is not a directory"),
        (["evaluate", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--out", taken], "not a directory"),
        (["allocate", "--instance", str(tmp_path)], "is a directory"),
    ]
    for argv, message in cases:
        code, _, err = run(argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)


def test_yaml_reads_exponent_numbers(tmp_path):
    path = file_of(tmp_path, "g.yaml", b"nodes:\n  - {id: a, cost: 1e3, size: 2E2}\n")
    code, out, _ = run(["checkpoint", "graph", path, "--budget", "100%", "--json"])
    data = json.loads(out)
    assert code == 0 and data["objective"] == 1000 and data["peak_memory"] == 200


def test_an_overflowing_plan_exits_5_and_says_so_first(tmp_path):
    code, out, err = run(["evaluate", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--batch", "4096",
                          "--out", str(tmp_path / "run")])
    assert code == 5 and out.startswith("INVALID PLAN:") and "capacity" in out.splitlines()[0]
    assert err.startswith("monet: the plan violates") and (tmp_path / "run" / "result.json").is_file()


def test_output_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        assert run(["workload", "export", "resnet18-cifar", "-o", str(tmp_path / "g.json")])[0] == 0
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "g.json").stat().st_mode) == 0o644


def test_help_and_light_commands_do_not_load_the_solvers_onnx_or_matplotlib():
    import subprocess
    import sys

    code = ("import sys, contextlib, io\nfrom monet_opt.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['--help']) == 0 and main(['hardware', 'list']) == 0 and main(['--version']) == 0\n"
            "heavy = ('ortools.sat.python.cp_model', 'onnx', 'matplotlib', 'deap', 'pulp')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_500_node_graph_with_a_short_limit_answers_or_says_unknown(tmp_path):
    """Behaviour at a 5 s limit on a 500-node graph: a validated answer or `unknown`, and the exit
    code the JSON states. How long it takes against the limit is measured by
    benchmarks/time_limits.py, not asserted here (a busy machine would fail such a test at random)."""
    import subprocess
    import sys

    sys.path.insert(0, "benchmarks")
    from remat_dags import layered_dag

    p = layered_dag(500, seed=500)
    path = tmp_path / "l500.json"
    path.write_text(json.dumps({"nodes": [{"id": v, "cost_cpu": c, "cost_ram": m} for v, c, m in zip(p.nodes, p.cost,
                                                                                                      p.size)],
                                "links": [{"source": p.nodes[a], "target": p.nodes[b]}
                                          for b, preds in enumerate(p.preds) for a in preds]}))
    proc = subprocess.run([sys.executable, "-m", "monet_opt", "checkpoint", "graph", str(path), "--budget", "80%",
                           "--time-limit", "5", "--json"], capture_output=True, text=True)
    data = json.loads(proc.stdout)
    assert proc.returncode == data["exit_code"] and (data["validated"] or data["status"] == "unknown")


def test_cpsat_is_not_started_when_its_overhead_outlasts_the_deadline():
    """CP-SAT's limit does not cover loading the model: with less time left than the model's
    estimated load time, it is not started (status unknown, no bound) and returns at once."""
    from ortools.sat.python import cp_model

    from monet_opt.solving.common import Deadline, SolverOptions, SolveStatus
    from monet_opt.solving.cpsat_runner import CPSAT_SECONDS_PER_CONSTRAINT, run_cpsat

    model = cp_model.CpModel()
    x = [model.new_bool_var(f"x{i}") for i in range(2000)]
    for a, b in zip(x, x[1:]):
        model.add(a + b <= 1)
    model.maximize(sum(x))
    overhead_s = CPSAT_SECONDS_PER_CONSTRAINT * 1999
    options = SolverOptions(progress=False)
    _, stats = run_cpsat(model, options, Deadline.start(overhead_s / 2))
    assert stats.status is SolveStatus.UNKNOWN and stats.objective is None and stats.bound is None
    _, stats = run_cpsat(model, options, Deadline.start(5.0))
    assert stats.status is SolveStatus.OPTIMAL and stats.objective == 1000


def test_heuristics_stop_inside_a_schedule_at_the_deadline():
    import pytest

    from monet_opt.solving.common import Deadline, OutOfTime
    from monet_opt.families.remat.baselines import greedy, keep_policy_schedule, sqrt_n
    from monet_opt.families.remat.problem import RematProblem

    chain = RematProblem("chain", tuple(f"n{i}" for i in range(6)), ((),) + tuple((i,) for i in range(5)),
                         (1,) * 6, (1,) * 6)
    expired = Deadline.start(0.0)
    with pytest.raises(OutOfTime):
        keep_policy_schedule(chain, {0}, expired)
    with pytest.raises(OutOfTime):
        sqrt_n(chain, expired)
    assert greedy(chain, 100, deadline=expired) is None
    assert greedy(chain, 100, deadline=Deadline.start(60.0)) == list(range(6))


def test_the_suspicious_results_of_the_first_users():
    from monet_opt.model.hardware import load_accelerator
    from monet_opt.solving import Deadline, SolverOptions
    from monet_opt.families.allocation import AllocationInstance, from_training, solve_allocation
    from monet_opt.families.allocation.ga import stream_ga_config
    from monet_opt.families.checkpoint import OBJECTIVES, CheckpointSpace, solve_checkpoint
    from monet_opt.families.checkpoint.heuristics import rule_decisions
    from monet_opt.model.training import derive_training_graph
    from monet_opt.model.workload import load_forward_graph

    graph = derive_training_graph(load_forward_graph("resnet18-cifar"))
    hw = load_accelerator("edge-tpu-quad")
    space = CheckpointSpace(graph, hw)
    latency, base = OBJECTIVES["latency"], space.store_all
    # recompute-all recomputes the whole forward pass before the first backward op, where every
    # activation is live again: the same peak as store-all, at a higher latency (documented)
    everything = space.evaluate(rule_decisions(space, "recompute-all", latency))
    assert everything.dynamic_dram_peak_bytes == base.dynamic_dram_peak_bytes
    assert everything.latency_cycles > base.latency_cycles
    # Chen's sweep starts at store-all: at a 100 % budget it answers store-all, not a slower plan
    greedy = solve_checkpoint(space, latency, base.dynamic_dram_peak_bytes, "greedy", SolverOptions(),
                              deadline=Deadline.start(10))
    assert greedy.validated and greedy.objective == base.latency_cycles
    # the headline plan of a front is its fastest point, so no front point dominates it
    instance = AllocationInstance(from_training(graph, hw))
    front = solve_allocation(instance, "ga", "pareto", SolverOptions(), stream_ga_config(12, 6, seed=1),
                             deadline=Deadline.start(30))
    best, points = front.payload.best, front.payload.front
    assert best is points[0] and not any(p.latency_cycles <= best.latency_cycles and p.energy_pj < best.energy_pj
                                         for p in points)


def test_misspelt_keys_and_free_transfers_are_refused(tmp_path):
    remat = file_of(tmp_path, "g.yaml", b"nodes:\n  - {id: a, cost: 1, size: 2, input: [b]}\n")
    code, _, err = run(["checkpoint", "graph", remat, "--budget", "5"])
    assert code == 2 and "nodes[0]: unknown key 'input' (known: id, cost, size, inputs)" in err
    no_link = file_of(tmp_path, "i.yaml", b"cores: [a, b]\ntasks:\n  - {name: t, options: {a: {duration_cycles: 1}}}\n"
                                          b"  - {name: u, options: {b: {duration_cycles: 1}}}\n"
                                          b"edges:\n  - {from: t, to: u, bytes: 64}\n")
    code, _, err = run(["allocate", "--instance", no_link])
    assert code == 2 and "no link.bandwidth_bits_per_cycle" in err


def test_checkpoint_training_exit_codes():
    import re

    argv = ["checkpoint", "training", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--quiet",
            "--time-limit", "30"]
    code, _, err = run([*argv, "--budget", "30%", "--method", "greedy"])
    found = re.search(r"budget (\d+) bytes is infeasible: the smallest feasible budget is (\d+) bytes, (\d+) above it "
                      r"\(store-all needs (\d+) bytes\)", err)
    assert code == 3 and found, err
    budget, smallest, above, store_all = map(int, found.groups())
    assert budget == 3 * store_all // 10 and above == smallest - budget
    half = run([*argv, "--budget", "50%", "--method", "greedy", "--json"])
    assert half[0] == 0 and smallest <= json.loads(half[1])["peak_memory"] <= store_all // 2  # a feasible plan
    code, _, err = run([*argv, "--budget", "40%", "--method", "greedy"])  # feasible (CP-SAT), not by Chen's sweep
    assert code == 4 and "not proven infeasible" in err and smallest <= 4 * store_all // 10
    code, out, err = run([*argv, "--budget", "60%", "--method", "store-all"])
    assert code == 5 and f"dynamic DRAM peak {store_all} bytes > budget {6 * store_all // 10}" in err
    assert out.splitlines()[1] == "status violates"
