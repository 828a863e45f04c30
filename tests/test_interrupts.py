"""Ctrl-C, SIGTERM and SIGKILL as a user sends them: each command stops within its current step,
exits 130 (143 for SIGTERM) with one line on stderr and no traceback, leaves no temporary file and
no process behind. Each signal is sent once the command has printed a line that shows it is in
the middle of its work (an event, not a time), so the tests do not depend on the machine's speed."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 300  # an upper bound for a line to appear on a loaded machine, never a measured quantity


def start(argv: list[str], cwd: Path = ROOT) -> subprocess.Popen:
    """`python -m monet_opt ARGV` with SIGINT at its default (a shell's background job ignores it)."""
    return subprocess.Popen([sys.executable, "-m", "monet_opt", *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for_line(process: subprocess.Popen, marker: str) -> list[str]:
    """The stderr lines up to and including the first that contains `marker`."""
    lines = []
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    process.kill()
    raise AssertionError(f"no line with {marker!r}: {''.join(lines)[-2000:]}")


def stop(process: subprocess.Popen, signum: int = signal.SIGINT) -> tuple[int, str]:
    process.send_signal(signum)
    rest = process.stderr.read()
    return process.wait(timeout=WAIT_S), rest


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split()[2] == "Z")


def assert_stopped(code: int, rest: str, expected: int = 130) -> None:
    assert code == expected, rest
    assert "Traceback" not in rest and "terminate called" not in rest, rest
    assert rest.strip().splitlines()[-1].startswith("monet: interrupted" if expected == 130 else "monet: terminated")


@pytest.mark.parametrize("argv, marker", [
    (["checkpoint", "graph", "instances/remat/layered100.json", "--budget", "80%", "--order", "free",
      "--time-limit", "300"], "cpsat: "),
    (["allocate", "--instance", "instances/allocation/layered200.yaml", "--time-limit", "300"], "cpsat: "),
], ids=["checkpoint graph --order free", "allocate"])
def test_ctrl_c_in_a_cp_sat_search_exits_130(argv, marker):
    """A Ctrl-C in the middle of a CP-SAT search (its first incumbent printed) stops it: exit 130,
    not the search's answer with exit 0, and no abort at exit."""
    process = start(argv)
    wait_for_line(process, marker)
    assert_stopped(*stop(process))


def test_sigterm_in_a_search_exits_143():
    process = start(["allocate", "--instance", "instances/allocation/layered200.yaml", "--time-limit", "300"])
    wait_for_line(process, "cpsat: ")
    assert_stopped(*stop(process, signal.SIGTERM), expected=143)


def test_ctrl_c_in_a_ga_exits_130(tmp_path):
    """The allocation GA of a bench row (about a second of generations) interrupted as its row starts."""
    out = tmp_path / "bench"
    process = start(["bench", "--suite", "quick", "--methods", "ga", "--out", str(out)])
    wait_for_line(process, "allocation-layered50 ga (")
    assert_stopped(*stop(process))
    assert not any("layered50" in row for row in (out / "rows.jsonl").read_text().splitlines())


def test_ctrl_c_in_a_sweep_stops_its_workers_and_a_rerun_finishes(tmp_path):
    out = tmp_path / "sweep"
    argv = ["sweep", "instances/spaces/edge.yaml", "--workload", "resnet18-cifar", "--mode", "training",
            "--samples", "400", "--points-per-task", "2", "--workers", "2", "--out", str(out)]
    process = start(argv)
    wait_for_line(process, "monet sweep: 4/400")
    workers = children(process.pid)
    assert workers
    assert_stopped(*stop(process))
    assert not any(alive(p) for p in workers)
    assert not list(out.rglob("*.tmp*")) and not (out / "results.parquet").exists()
    rerun = subprocess.run([sys.executable, "-m", "monet_opt", *argv, "--quiet"], cwd=ROOT, capture_output=True,
                           text=True, timeout=WAIT_S)
    assert rerun.returncode == 0, rerun.stderr
    assert (out / "results.parquet").is_file()


def test_a_killed_sweep_leaves_no_worker_behind(tmp_path):
    """SIGKILL gives the command no chance to clean up: its workers notice that their parent is
    gone (they poll every 0.5 s) and exit."""
    process = start(["sweep", "instances/spaces/edge.yaml", "--workload", "resnet18-cifar", "--mode", "training",
                     "--samples", "400", "--points-per-task", "2", "--workers", "2", "--out", str(tmp_path / "s")])
    wait_for_line(process, "monet sweep: 4/400")
    workers = children(process.pid)
    assert workers
    process.kill()
    process.wait()
    deadline = time.monotonic() + 60
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers)


def test_ctrl_c_in_bench_records_no_row_for_the_interrupted_one(tmp_path):
    out = tmp_path / "bench"
    process = start(["bench", "--suite", "quick", "--methods", "cpsat", "--out", str(out)])
    lines = wait_for_line(process, "allocation-layered50 cpsat (")
    assert_stopped(*stop(process))
    rows = (out / "rows.jsonl").read_text().splitlines()
    finished = [line for line in lines if ": optimal" in line or ": feasible" in line]
    assert len(rows) == len(finished) and not any("layered50" in row for row in rows)
