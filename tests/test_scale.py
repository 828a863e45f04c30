"""The largest shipped workloads solved as a user solves them, at short time limits: an answer
(exit 0) or none within the limit (exit 4), never an internal error (exit 1). Marked slow: each run
takes its whole limit; the default suite runs the shortest one."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def resnet18_at_60_percent(tmp_path: Path) -> Path:
    data = yaml.safe_load((ROOT / "instances/default.yaml").read_text())
    data.update(name="resnet18-edge-tpu-quad-60", budgets={"activations": "60%"})
    path = tmp_path / "resnet18-60.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def solve(path: Path, limit_s: float) -> tuple[int, dict]:
    completed = subprocess.run([sys.executable, "-m", "monet_opt", "solve", str(path), "--time-limit", str(limit_s),
                                "--json", "--quiet"], cwd=ROOT, capture_output=True, text=True)
    assert completed.returncode in (0, 4), completed.stderr
    return completed.returncode, json.loads(completed.stdout)


def check(code: int, data: dict) -> None:
    assert (code == 0) == data["validated"]
    for stage in data["stages"]:
        if stage["validated"]:
            assert stage["peak_memory"] is None or stage["budget"] is None or stage["peak_memory"] <= stage["budget"]


def test_resnet18_at_60_percent_answers_in_10_s(tmp_path):
    check(*solve(resnet18_at_60_percent(tmp_path), 10))


@pytest.mark.slow
@pytest.mark.parametrize("limit_s", [20, 60])
@pytest.mark.parametrize("which", ["gpt2-small-dc-mesh4-80", "resnet18-edge-tpu-quad-60"])
def test_the_largest_instances_never_end_in_an_internal_error(tmp_path, which, limit_s):
    path = ROOT / "instances" / f"{which}.yaml" if which.startswith("gpt2") else resnet18_at_60_percent(tmp_path)
    check(*solve(path, limit_s))
