"""The registry is the one list of families and methods: a method added to a family and a family
added to the registry, both from this module alone, appear in `--method`, in instance validation
and in `monet bench`; the default registry is untouched (they are refused without the injected one)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from monet_opt.cli import main
from monet_opt.errors import InputError
from monet_opt.families import default_registry
from monet_opt.families.allocation.family import ALLOCATION
from monet_opt.solving.common import Deadline, SolverOptions, heuristic_stats
from monet_opt.solving.contract import (
    Claim, CostUnderBudget, Family, InstanceFormat, Measurement, Method, MethodKind, Proposal, Verdict,
    objective_disagreement, registry,
)
from monet_opt.studies.bench import read_rows
from monet_opt.studies.instance import load_instance

INSTANCES = Path(__file__).resolve().parent.parent / "instances"


@dataclass(frozen=True)
class Knapsack:
    """A toy problem: pick one item (cost, size); least cost with its size within the budget."""

    name: str
    items: tuple[tuple[int, int], ...]


def _pick(problem: Knapsack, target: CostUnderBudget, options: SolverOptions, deadline: Deadline) -> Proposal[int]:
    fitting = [(cost, k) for k, (cost, size) in enumerate(problem.items) if size <= target.budget]
    if not fitting:
        return Proposal(None, None, heuristic_stats(None, deadline))
    cost, k = min(fitting)
    return Proposal(k, Claim(objective=cost), heuristic_stats(cost, deadline))


def _referee(problem: Knapsack, target: CostUnderBudget, k: int, claim: Claim | None) -> Verdict:
    cost, size = problem.items[k]
    violations = (f"size {size} > budget {target.budget}",) if size > target.budget else ()
    return Verdict(Measurement(cost, size, violations), objective_disagreement(claim and claim.objective, cost))


def _load(document: Mapping[str, Any], directory: Path, source: str) -> tuple[Knapsack, CostUnderBudget]:
    items = document["items"]
    if not isinstance(items, list) or not all(isinstance(i, list) and len(i) == 2 for i in items):
        raise InputError(f"{source}: items: expected a list of [cost, size]")
    return Knapsack(source, tuple((int(c), int(s)) for c, s in items)), CostUnderBudget(int(document["budget"]))


TOY = Family("toy", registry(Method("pick", _pick, MethodKind.EXACT, "every item tried")), _referee,
             space=lambda problem, proposal: "one item of the list",
             describe=lambda problem, target, payload, measured: {"item": payload},
             problem_name=lambda problem: problem.name, objective_unit=lambda problem, target: "cost units",
             answer_lines=lambda data: [f"item {data['item']}"],
             instance_format=InstanceFormat(frozenset({"items", "budget"}), frozenset({"items", "budget"}), _load))
LIST_FIRST = Method("list-first", ALLOCATION.methods["greedy"].run, MethodKind.SEARCH,
                    "HEFT under another name (a method added from a test)")
EXTENDED = default_registry().with_family(TOY).with_method("allocation", LIST_FIRST)


def _toy_instance(directory: Path, **extra: Any) -> Path:
    path = directory / "toy.yaml"
    document = {"kind": "toy", "suite": "quick", "items": [[9, 1], [4, 7], [6, 5], [2, 12]], "budget": 6,
                "time_limit": 5, **extra}
    path.write_text(json.dumps(document))  # JSON is YAML
    return path


def test_a_family_added_from_a_test_is_solved_by_monet_solve_with_its_method(tmp_path, capsys):
    path = _toy_instance(tmp_path)
    assert main(["solve", str(path), "--method", "pick", "--json", "--quiet"], registry=EXTENDED) == 0
    data = json.loads(capsys.readouterr().out)
    # items of size <= 6: (9, 1) and (6, 5); the cheaper costs 6 and is item 2
    assert (data["family"], data["method"], data["objective"], data["item"], data["validated"]) == \
        ("toy", "pick", 6, 2, True)
    assert main(["solve", str(path), "--method", "pick", "--quiet"], registry=EXTENDED) == 0
    assert "item 2" in capsys.readouterr().out
    assert main(["solve", str(path), "--method", "pick", "--quiet"]) == 2  # not in the default registry
    assert "pick" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [({"colour": "red"}, "colour: unknown key"),
                                            ({"items": "none"}, "items: expected a list")])
def test_a_family_added_from_a_test_has_its_instance_files_checked(tmp_path, capsys, extra, message):
    path = _toy_instance(tmp_path, **extra)
    assert main(["solve", str(path), "--method", "pick", "--quiet"], registry=EXTENDED) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1


def test_a_method_added_from_a_test_appears_in_method_and_instance_validation(tmp_path, capsys):
    problem = INSTANCES / "allocation" / "fork_join.yaml"
    answers = {}
    for method in ("greedy", "list-first"):
        assert main(["allocate", "--instance", str(problem), "--method", method, "--json", "--quiet"],
                    registry=EXTENDED) == 0
        answers[method] = json.loads(capsys.readouterr().out)
    assert answers["list-first"]["method"] == "list-first"
    assert answers["list-first"]["latency_cycles"] == answers["greedy"]["latency_cycles"]  # the same function
    assert main(["allocate", "--instance", str(problem), "--method", "list-first"]) == 2

    training = tmp_path / "training.yaml"
    training.write_text("workload: resnet18-cifar\nhardware: edge-tpu-quad\noptimise:\n"
                        "  allocation: {method: list-first}\n")
    assert load_instance(training, EXTENDED).decisions["allocation"].method == "list-first"
    with pytest.raises(InputError, match="optimise.allocation.method: 'list-first' is not one of cpsat, ga, greedy"):
        load_instance(training)


def test_a_family_and_a_method_added_from_a_test_run_in_monet_bench(tmp_path, capsys):
    suite = tmp_path / "suite"
    (suite / "allocation").mkdir(parents=True)
    shutil.copy(INSTANCES / "allocation-fork_join.yaml", suite)
    shutil.copy(INSTANCES / "allocation" / "fork_join.yaml", suite / "allocation")
    _toy_instance(suite)
    out = tmp_path / "out"
    assert main(["bench", "--instances", str(suite), "--out", str(out), "--methods", "greedy,list-first,pick",
                 "--quiet"], registry=EXTENDED) == 0
    rows = {(r.kind, r.method): r for r in read_rows(out)}
    assert set(rows) == {("allocation", "greedy"), ("allocation", "list-first"), ("toy", "pick")}
    assert rows["toy", "pick"].objective == 6 and rows["toy", "pick"].validated
    assert rows["allocation", "list-first"].objective == rows["allocation", "greedy"].objective
    assert main(["bench", "--instances", str(suite), "--out", str(tmp_path / "plain"), "--quiet"]) == 2
    assert "kind: expected one of training, remat, allocation, got 'toy'" in capsys.readouterr().err
