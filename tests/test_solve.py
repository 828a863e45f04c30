"""`monet solve`: instance files (checked key by key), the sequential and joint combinations on a
small ONNX network, and the files a solve writes."""

import copy
import json

import pytest
import yaml

from hw_fixtures import BASE
from monet_opt.cli import main
from monet_opt.errors import InputError
from monet_opt.studies.instance import load_instance
from monet_opt.studies.pipeline import solve_instance
from onnx_models import branchy_cnn_onnx, save


@pytest.fixture()
def files(tmp_path):
    """A small CNN (ONNX) and the toy accelerator (YAML), next to where instances are written."""
    save(branchy_cnn_onnx(), tmp_path / "cnn.onnx")
    hw = dict(BASE, dram={"capacity_bytes": 1 << 40, "bandwidth_bits_per_cycle": 64, "energy_pj_per_bit": 10.0})
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(hw))
    return tmp_path


def instance(**changes):
    data = {"workload": "cnn.onnx", "hardware": "toy.yaml", "budgets": {"activations": "100%"},
            "optimise": {"fusion": {"method": "cpsat", "max_stack": 3}, "checkpointing": {"method": "cpsat"}},
            "time_limit": 60}
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return data


def write(directory, data, name="instance.yaml"):
    path = directory / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"colour": "red"}, "colour: unknown key"),
    ({"workload": None}, "workload: missing key"),
    ({"batch": 0}, "batch:"),
    ({"mode": "serving"}, "mode: 'serving' is not one of training, inference"),
    ({"optimise": {}}, "optimise: name at least one of fusion, checkpointing, allocation"),
    ({"optimise": {"fusion": {"method": "magic"}}, "budgets": None}, "optimise.fusion.method: 'magic' is not one of"),
    ({"optimise": {"fusion": {"method": "rule"}}}, "budgets.activations: needs optimise.checkpointing"),
    ({"budgets": None}, "budgets.activations: missing key"),
    ({"budgets": {"activations": "120%"}}, "budgets.activations: budget '120%' is above 100 %"),
    ({"mode": "inference", "budgets": None, "optimise": {"checkpointing": {}}},
     "optimise.checkpointing: mode inference has no backward pass"),
    ({"optimise": {"fusion": {"objective": "dram"}, "checkpointing": {}}},
     "optimise.checkpointing.objective: 'latency' contradicts optimise.fusion.objective 'dram'"),
    ({"precision": "int8"}, "precision: precision 'int8' is for inference"),
    ({"precision": "int8", "partial_sum": "fp32", "mode": "inference", "budgets": None,
      "optimise": {"fusion": {}}}, "partial-sum type 'fp32' does not suit int8 operands"),
    ({"precision": "int4"}, "precision: 'int4' is not one of"),
    ({"optimise": {"fusion": {}, "checkpointing": {"order": "free"}}},
     "optimise.checkpointing.order: free is built for unfused plans only"),
    ({"optimise": {"checkpointing": {"order": "any"}}}, "optimise.checkpointing.order: 'any' is not one of"),
    ({"optimise": {"checkpointing": {"objective": "edp"}}},
     "optimise.checkpointing.objective: edp is the parallel plan's (optimise.allocation with combine: joint)"),
    ({"optimise": {"checkpointing": {}, "allocation": {"spread": "yes"}}},
     "optimise.allocation.spread: 'yes' is not of type 'boolean'"),
])
def test_bad_instances_name_the_key(files, changes, message):
    path = write(files, instance(**changes))
    with pytest.raises(InputError) as info:
        load_instance(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value), str(info.value)


def test_bad_instance_on_the_cli_writes_nothing(files, capsys):
    for changes, message in (({"colour": "red"}, "colour: unknown key"),
                             ({"hardware": "nosuch"}, "hardware: unknown built-in 'nosuch'"),
                             ({"budgets": {"activations": "50%", "local": {"nowhere": "50%"}}},
                              "budgets.local.nowhere: unknown memory"),
                             ({"optimise": {"checkpointing": {}, "allocation": {}}},
                              "optimise.allocation after optimise.checkpointing is not built")):
        out = files / "out"
        assert main(["solve", str(write(files, instance(**changes))), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_sequential_and_joint_on_a_small_cnn(files):
    """Fusion then checkpointing (each exact given the other's answer) against the joint search (exact
    over both): both validated within the budget and better than the layer-by-layer store-all
    baseline; the joint plan, proven optimal over every partition and checkpoint plan, is faster
    (8,612 against 8,812 cycles)."""
    sequential = solve_instance(load_instance(write(files, instance())), progress=False)
    joint = solve_instance(load_instance(write(files, instance(combine="joint"))), progress=False)
    assert [s.decision for s in sequential.stages] == ["fusion", "checkpointing"]
    assert [s.decision for s in joint.stages] == ["fusion+checkpointing"]
    for solved in (sequential, joint):
        data = solved.to_dict()
        assert data["validated"] and solved.answer.measurement.peak <= solved.answer.target.budget
        assert data["latency_cycles"] == solved.simulation.latency_cycles < data["baseline"]["latency_cycles"]
    # the partition that is fastest before checkpointing is not the one that is fastest after it
    assert joint.answer.objective < sequential.answer.objective
    assert joint.answer.status.value == "optimal" and "every partition" in joint.answer.space
    assert joint.answer.family == "fusion_checkpoint"


def test_checkpointing_and_allocation_together_on_a_small_cnn(files):
    """combine: joint with checkpointing and allocation is the plan family (cores, start times and
    recomputation under the budget), validated within the budget and no slower than the serial
    checkpoint plan; with fusion too, the plan is made over the fusion stage's partition."""
    budgets = {"activations": "80%"}
    serial = solve_instance(load_instance(write(files, instance(optimise={"checkpointing": {"method": "cpsat"}},
                                                                budgets=budgets))), progress=False)
    both = {"checkpointing": {"method": "cpsat"}, "allocation": {"method": "cpsat"}}
    joint = solve_instance(load_instance(write(files, instance(optimise=both, combine="joint", budgets=budgets))),
                           progress=False)
    assert [s.decision for s in joint.stages] == ["checkpointing+allocation"] and joint.answer.family == "plan"
    assert joint.answer.validated and joint.answer.measurement.peak <= joint.answer.target.budget
    assert joint.answer.measurement.latency_cycles <= serial.answer.measurement.latency_cycles
    three = {"fusion": {"method": "cpsat", "max_stack": 3}, **both}
    fused = solve_instance(load_instance(write(files, instance(optimise=three, combine="joint", budgets=budgets))),
                           progress=False)
    assert [s.decision for s in fused.stages] == ["fusion", "checkpointing+allocation"]
    assert fused.to_dict()["validated"] and "the fixed fusion partition" in fused.answer.space
    assert fused.answer.measurement.peak <= fused.answer.target.budget
    # the energy-delay product: the plan of least latency x energy, no worse than the fastest plan's
    by_edp = {"checkpointing": {"method": "cpsat", "objective": "edp"}, "allocation": {"method": "cpsat"}}
    edp = solve_instance(load_instance(write(files, instance(optimise=by_edp, combine="joint", budgets=budgets))),
                         progress=False)
    measured, fastest = edp.answer.measurement, joint.answer.measurement
    assert edp.answer.validated and edp.to_dict()["stages"][0]["objective_unit"] == "cycles x pJ"
    assert measured.objective == pytest.approx(measured.latency_cycles * measured.energy_pj, rel=1e-12)
    assert measured.objective <= fastest.latency_cycles * fastest.energy_pj * (1 + 1e-12)
    # spread reaches the plan family's space; the toy has one PE array, so no op is split
    spread = {"checkpointing": {"method": "cpsat"}, "allocation": {"method": "cpsat", "spread": True}}
    spread = solve_instance(load_instance(write(files, instance(optimise=spread, combine="joint", budgets=budgets))),
                            progress=False)
    assert "split along its channels or rows" in spread.answer.space and spread.answer.details["split_ops"] == {}
    assert spread.answer.validated


def test_checkpointing_with_the_order_free(files):
    """The order as a decision from an instance: never worse than the reference order's optimum,
    every order tried listed, the plan simulated in the order chosen."""
    answers = {}
    for order in ("fixed", "free"):
        data = instance(optimise={"checkpointing": {"order": order}}, budgets={"activations": "72%"})
        answers[order] = solve_instance(load_instance(write(files, data)), progress=False)
    fixed, free = answers["fixed"], answers["free"]
    assert fixed.answer.details["order"] == "fixed" and free.answer.details["order"] == "free"
    assert free.answer.validated and free.answer.measurement.peak <= free.answer.target.budget
    assert free.answer.objective <= fixed.answer.objective
    assert free.answer.details["orders"][0] == {"order": "reference", "status": fixed.answer.status.value,
                                                "objective": fixed.answer.objective}


def test_solve_command_writes_the_report(files, capsys):
    data = instance(optimise={"fusion": {"method": "cpsat", "max_stack": 3}, "allocation": {"method": "cpsat"}},
                    budgets=None)
    out = files / "out"
    assert main(["solve", str(write(files, data)), "--out", str(out), "--json", "--quiet"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [s["decision"] for s in printed["stages"]] == ["fusion", "allocation"]
    assert printed["validated"] and printed["latency_cycles"] <= printed["stages"][0]["latency_cycles"]
    assert {p.name for p in out.iterdir()} == {"result.json", "report.md", "plan.json", "schedule.png", "gantt.png",
                                               "memory.png", "trace.json"}
    report = (out / "report.md").read_text()
    assert "| baseline (layer by layer" in report and "| fusion | cpsat | optimal over " in report
    assert "- **allocation** (allocation cpsat):\n  - cores used: " in report and "(schedule.png)" in report
    assert json.loads((out / "result.json").read_text()) == printed
    limits = printed["physical_limits"]  # no plan beats them: the optimised one and the baseline meet both
    assert printed["latency_cycles"] >= max(limits["dram_cycles"], limits["compute_cycles"]) > 0
    assert limits["latency_over_bound"]["dram"] == printed["latency_cycles"] / limits["dram_cycles"]
    assert min(limits["baseline_over_bound"].values()) >= 1 and limits["summary"] in report


def test_the_readme_python_example_runs(monkeypatch, capsys):
    """The README's Python example, as written, from the repository root (the default instance)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    [example] = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "monet_opt.solve(" in block]
    monkeypatch.chdir(root)
    exec(compile(example, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "joint: fusion and checkpointing together optimal" in printed and "fusion+checkpointing cpsat" in printed


@pytest.mark.slow
def test_the_default_instance_is_answered_by_the_joint_family_in_its_space(capsys):
    """`monet solve --json` on the default instance: the fusion_checkpoint family, with the space its
    status holds over (the alternation's partition on a graph this size, and it says so)."""
    assert main(["solve", "--json", "--quiet", "--time-limit", "40"]) == 0
    stage = json.loads(capsys.readouterr().out)["stages"][0]
    assert (stage["decision"], stage["family"], stage["method"]) == ("fusion+checkpointing", "fusion_checkpoint", "cpsat")
    assert stage["space"].startswith("checkpoint plans of the fixed fusion partition")
    assert "the status says nothing of other partitions" in stage["space"]


def test_joint_without_two_decisions_that_combine_runs_them_in_sequence(files):
    """combine: joint joins fusion with checkpointing, or checkpointing with allocation; fusion with
    allocation alone has nothing to join, and runs as the sequence it always was."""
    data = instance(optimise={"fusion": {"method": "cpsat", "max_stack": 3}, "allocation": {"method": "cpsat"}},
                    budgets=None, combine="joint")
    solved = solve_instance(load_instance(write(files, data)), progress=False)
    assert [s.decision for s in solved.stages] == ["fusion", "allocation"]
    assert solved.combination == "sequential: fusion -> allocation" and solved.to_dict()["validated"]


def test_allocation_spread_over_cores_is_the_plan_family_within_all_of_dram(files):
    """optimise.allocation.spread without checkpointing: the plan family plans the inference
    pass on the toy with a second PE array, all of DRAM its budget; its convolutions may run split
    over both arrays."""
    twin = copy.deepcopy(BASE)
    twin["cores"].append(dict(copy.deepcopy(BASE["cores"][0]), name="pe2", memory="sram2"))
    twin["memories"].append(dict(BASE["memories"][0], name="sram2"))
    twin["links"][1]["endpoints"].append("pe2")
    (files / "twin.yaml").write_text(yaml.safe_dump(twin))
    answers = {}
    for split in (False, True):
        data = instance(hardware="twin.yaml", mode="inference", budgets=None, combine="joint",
                        optimise={"allocation": {"method": "cpsat", "spread": split}})
        answers[split] = solve_instance(load_instance(write(files, data)), progress=False)
    spread = answers[True]
    assert [s.decision for s in spread.stages] == ["allocation"] and spread.answer.family == "plan"
    assert spread.answer.validated and "split along its channels or rows" in spread.answer.space
    # compute binds (BASE's DRAM is fast), so splitting a MAC op over both arrays nearly halves its
    # compute: the plan splits some, each over pe and pe2, and is faster than any plan of one core per op
    assert answers[False].answer.family == "allocation"
    split_ops = spread.answer.details["split_ops"]
    assert split_ops and set(split_ops) <= {"conv_a", "conv_b", "logits"}
    assert all(cores == ["pe", "pe2"] for cores in split_ops.values())
    assert spread.answer.measurement.latency_cycles < answers[False].answer.measurement.latency_cycles
