"""`monet bench`: the suite's instances load, every row is validated, a run resumes without
rerunning finished rows, and bad instances are refused in one line."""

import json
import shutil
from pathlib import Path

import pytest

from monet_opt.cli import main
from monet_opt.errors import InputError
from monet_opt.families import default_registry
from monet_opt.studies.bench import load_bench_instance, methods_by_kind, read_rows, suite_instances
from monet_opt.studies.generate import layered_allocation, layered_dag, remat_node_link

INSTANCES = Path(__file__).resolve().parent.parent / "instances"


def small_suite(tmp_path):
    """Two abstract instances of the quick suite, copied with their data files."""
    root = tmp_path / "instances"
    for folder in ("remat", "allocation"):
        (root / folder).mkdir(parents=True)
    shutil.copy(INSTANCES / "remat" / "diamond.yaml", root / "remat")
    shutil.copy(INSTANCES / "allocation" / "fork_join.yaml", root / "allocation")
    shutil.copy(INSTANCES / "remat-diamond-95.yaml", root)
    shutil.copy(INSTANCES / "allocation-fork_join.yaml", root)
    return root


def test_every_suite_instance_loads_and_both_suites_have_every_kind():
    quick, full = suite_instances(INSTANCES, "quick"), suite_instances(INSTANCES, "full")
    assert {i.name for i in quick} < {i.name for i in full}
    for suite in (quick, full):
        assert {i.kind for i in suite} == set(methods_by_kind(default_registry()))
    assert any(i.training and i.training.workload == "resnet18-cifar" for i in quick)
    assert {i.training.workload for i in full if i.training} >= {"resnet18", "resnet18-cifar", "gpt2-mini", "gpt2-small"}
    sizes = {i.own.family.problem_name(i.own.problem) for i in full if i.kind != "training"}
    assert {"layered1000"} <= sizes and len([i for i in full if i.kind == "remat"]) >= 8


def test_the_abstract_instance_files_are_what_the_generator_writes():
    """The committed layered instances equal the generator's output for their seeds."""
    for n in (100, 1000):
        on_disk = json.loads((INSTANCES / "remat" / f"layered{n}.json").read_text())
        assert on_disk == remat_node_link(layered_dag(n, seed=n))
    import yaml

    for n in (50, 1000):
        on_disk = yaml.safe_load((INSTANCES / "allocation" / f"layered{n}.yaml").read_text())
        assert on_disk == layered_allocation(n, seed=n)


def test_bench_rows_are_validated_and_a_rerun_resumes(tmp_path, capsys):
    root, out = small_suite(tmp_path), tmp_path / "out"
    # first run: the exact methods only (as if interrupted before the others)
    assert main(["bench", "--instances", str(root), "--out", str(out), "--methods", "cpsat", "--quiet"]) == 0
    first = read_rows(out)
    assert [(r.instance, r.method) for r in first] == [("allocation-fork_join", "cpsat"), ("remat-diamond-95", "cpsat")]
    # fork-join: the optimum derived in test_allocation.py. Diamond at 95 % of its store-all peak 15:
    # budget 14. Store-all (cost 1+4+2+2+1+3+1 = 14) peaks at 15 at d (a 2, b 8, c 2, d 3) and at e
    # (a 2, b 8, d 3, e 2); a, the cheapest value live there, dropped after b and computed again
    # before it is read by g, brings every step to at most 14: cost 14 + 1 = 15.
    by_instance = {r.instance: r for r in first}
    assert by_instance["allocation-fork_join"].objective == 16 and by_instance["allocation-fork_join"].status == "optimal"
    assert by_instance["remat-diamond-95"].status == "optimal" and by_instance["remat-diamond-95"].objective == 15
    # a kill while writing leaves a cut line: it is ignored and that row runs again
    with open(out / "rows.jsonl", "a") as f:
        f.write('{"instance": "remat-diamond-95", "method": "mi')
    assert main(["bench", "--instances", str(root), "--out", str(out), "--quiet"]) == 0
    rows = read_rows(out)
    pairs = [(r.instance, r.method) for r in rows]
    assert len(pairs) == len(set(pairs)) == 3 + 4  # every (instance, method) exactly once
    assert rows[:2] == first  # finished rows were not rerun
    exact = {r.instance: r.objective for r in rows if r.method == "cpsat"}
    for r in rows:  # every row answered and validated, none better than the exact optimum
        assert r.validated and r.objective >= exact[r.instance], r
    milp = next(r for r in rows if r.method == "milp")
    assert milp.objective == exact["remat-diamond-95"]
    table = (out / "bench.md").read_text()
    assert table.startswith("    date:") and table.count("\n| ") == 1 + 7  # the header row and 7 rows
    assert "| allocation-fork_join | allocation | cpsat | optimal | 16 cycles | 1.000 |" in table
    assert (out / "bench.csv").read_text().count("\n") == 1 + 7
    assert (out / "quality.png").stat().st_size > 0 and (out / "time_to_quality.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["bench", "--instances", str(root), "--out", str(out), "--quiet"]) == 0  # nothing left to run
    assert len(read_rows(out)) == 7 and "7 rows" in capsys.readouterr().out


def test_a_whole_command_time_limit_leaves_rows_for_a_resumed_run(tmp_path, capsys, monkeypatch):
    """The command's deadline expires after two rows (it is asked once before each): exit 4 with
    five rows left, then the same command without a limit runs exactly those."""
    import monet_opt.cli.studies
    from fake_deadline import ExpiresAfter

    root, out = small_suite(tmp_path), tmp_path / "out"
    monkeypatch.setattr(monet_opt.cli.studies, "Deadline", lambda started, limit_s: ExpiresAfter(2))
    code = main(["bench", "--instances", str(root), "--out", str(out), "--time-limit", "5", "--quiet"])
    assert code == 4 and "; 5 rows left for a resumed run" in capsys.readouterr().out
    assert len(read_rows(out)) == 2
    monkeypatch.undo()
    assert main(["bench", "--instances", str(root), "--out", str(out), "--quiet"]) == 0
    pairs = [(r.instance, r.method) for r in read_rows(out)]
    assert len(pairs) == len(set(pairs)) == 7


@pytest.mark.parametrize("text, message", [
    ("kind: remat\nsuite: quick\ngraph: g.json\nbudget: 80%\ncolour: red\n", "colour: unknown key"),
    ("kind: remat\nsuite: quick\nbudget: 80%\n", "graph: missing key"),
    ("kind: remat\nsuite: quick\ngraph: missing.json\nbudget: 80%\n", "graph: .*missing.json: no such file"),
    ("kind: allocation\nsuite: nightly\nproblem: p.yaml\n", "suite: expected quick or full"),
    ("kind: sweep\n", "kind: expected one of training, remat, allocation"),
])
def test_bad_bench_instances_are_refused_naming_the_key(tmp_path, text, message):
    (tmp_path / "g.json").write_text("{}")
    (tmp_path / "p.yaml").write_text("{}")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_bench_instance(path)
    assert str(info.value).startswith(str(path))


def test_bench_refuses_an_unknown_method_in_one_line(tmp_path, capsys):
    assert main(["bench", "--instances", str(small_suite(tmp_path)), "--out", str(tmp_path / "o"),
                 "--methods", "cpsat,annealing"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown method 'annealing'" in err
    assert not (tmp_path / "o").exists()


def test_an_instance_planning_checkpointing_and_allocation_runs_every_method_as_one_plan(tmp_path):
    """checkpointing + allocation combine only jointly (the plan family): `sequential` does not apply,
    `joint`, `ga` and `heuristic` answer with the plan family's cpsat, ga and greedy, validated within
    the budget, and none beats the exact model (at 80 %, reached only with values kept on chip)."""
    import yaml

    from hw_fixtures import BASE
    from onnx_models import branchy_cnn_onnx, save

    root = tmp_path / "instances"
    (root / "data").mkdir(parents=True)  # the bench reads every YAML file at the top as an instance
    save(branchy_cnn_onnx(), root / "data" / "cnn.onnx")
    (root / "data" / "toy.yaml").write_text(yaml.safe_dump(dict(BASE, dram={"capacity_bytes": 1 << 40,
                                                                            "bandwidth_bits_per_cycle": 64,
                                                                            "energy_pj_per_bit": 10.0})))
    (root / "cnn-plan.yaml").write_text(yaml.safe_dump({
        "name": "cnn-plan", "suite": "quick", "workload": "data/cnn.onnx", "hardware": "data/toy.yaml",
        "budgets": {"activations": "80%"}, "combine": "joint", "time_limit": 20,
        "optimise": {"checkpointing": {"method": "cpsat"}, "allocation": {"method": "cpsat"}}}))
    bench = load_bench_instance(root / "cnn-plan.yaml", default_registry())
    assert [m for m in bench.methods if bench.applies(m)] == ["joint", "ga", "heuristic"]
    out = tmp_path / "out"
    assert main(["bench", "--instances", str(root), "--out", str(out), "--quiet"]) == 0
    rows = {r.method: r for r in read_rows(out)}
    assert set(rows) == {"joint", "ga", "heuristic"}
    assert all(r.validated for r in rows.values())
    assert all(r.objective >= rows["joint"].objective for r in rows.values())
