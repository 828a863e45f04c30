"""Sweeps (monet_opt/studies/design_sweep.py, `monet sweep`): executors agree, interrupted sweeps resume exactly once."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from monet_opt.cli import main
from monet_opt.studies.design_space import load_space, sample_points
from monet_opt.studies.design_sweep import SweepSpec, run_sweep
from fake_deadline import ExpiresAfter
from test_space import one_matmul, write_space

ROOT = Path(__file__).resolve().parent.parent


def toy_space(tmp_path):
    return write_space(tmp_path, {
        "k": {"values": [8, 16, 32], "set": ["cores[pe].pe_array.unroll.K"]},
        "c": {"values": [8, 16, 32], "set": ["cores[pe].pe_array.unroll.C"]},
        "dram": {"values": [64, 256, 1024], "set": ["dram.bandwidth_bits_per_cycle"]}})


def test_dask_on_a_local_cluster_gives_the_rows_of_the_local_pool(tmp_path):
    path = toy_space(tmp_path)
    space = load_space(path)
    indices = tuple(sample_points(space, 12, seed=3))
    spec = SweepSpec(str(path), path.read_text(), "one matmul", ("inference",), indices, 5)
    graphs = {"inference": one_matmul()}
    local, left_local = run_sweep(space, spec, graphs, tmp_path / "local", "local", workers=2)
    dask, left_dask = run_sweep(space, spec, graphs, tmp_path / "dask", "dask", workers=2)
    assert left_local == left_dask == 0
    assert local.to_pylist() == dask.to_pylist()
    assert local.column("index").to_pylist() == list(indices)  # point order, one row per point and mode


def test_a_different_sweep_in_the_same_directory_is_refused(tmp_path):
    path = toy_space(tmp_path)
    space = load_space(path)
    graphs = {"inference": one_matmul()}
    run_sweep(space, SweepSpec(str(path), path.read_text(), "mm", ("inference",), (0, 1), 1), graphs, tmp_path / "o")
    from monet_opt.errors import InputError
    with pytest.raises(InputError, match="holds a different sweep"):
        run_sweep(space, SweepSpec(str(path), path.read_text(), "mm", ("inference",), (0, 2), 1), graphs, tmp_path / "o")


def test_a_sweep_killed_half_way_finishes_with_every_point_exactly_once(tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "monet_opt", "sweep", str(ROOT / "instances/spaces/edge.yaml"), "--workload",
               "resnet18-cifar", "--mode", "training", "--samples", "24", "--seed", "5", "--points-per-task", "2",
               "--workers", "1", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list((out / "parts").glob("part-*.parquet"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = sorted(p.name for p in (out / "parts").glob("part-*.parquet"))
    assert 2 <= len(finished) < 12 and not (out / "results.parquet").exists()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    progress = [line for line in completed.stderr.splitlines() if line.startswith("monet sweep:")]
    assert len(progress) == 12 - len(finished)  # only the batches without a part ran again
    table = pq.read_table(out / "results.parquet")
    space = load_space(ROOT / "instances/spaces/edge.yaml")
    assert table.column("index").to_pylist() == sample_points(space, 24, seed=5)
    assert table.num_rows == 24


def test_sweep_command_line_errors_exit_2_and_write_nothing(tmp_path, capsys):
    space = str(ROOT / "instances/spaces/edge.yaml")
    for args, message in ((["--samples", "3", "--grid"], "give exactly one of --samples N or --grid"),
                          ([], "give exactly one of --samples N or --grid"),
                          (["--samples", "3", "--workload", "nope"], "unknown"),
                          (["--samples", "3", "--point-time-limit", "2"], "--point-time-limit: only with --plan "
                                                                          "optimised")):
        workload = [] if "--workload" in args else ["--workload", "resnet18-cifar"]
        assert main(["sweep", space, *workload, *args, "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_the_time_limit_stops_new_tasks_and_the_same_command_resumes(tmp_path, capsys, monkeypatch):
    """The deadline expires after two tasks were submitted (one worker queues two; the first
    question is the points' own time limit): the command
    exits 4 with exactly those two batches written, and the same command without a limit resumes
    and finishes with every point once, in the sampled order."""
    import monet_opt.cli.studies

    out = tmp_path / "out"
    command = ["sweep", str(ROOT / "instances/spaces/edge.yaml"), "--workload", "resnet18-cifar", "--mode",
               "training", "--samples", "40", "--points-per-task", "2", "--workers", "1", "--out", str(out),
               "--quiet"]
    monkeypatch.setattr(monet_opt.cli.studies, "Deadline", lambda started, limit_s: ExpiresAfter(3))
    assert main([*command, "--time-limit", "2"]) == 4
    printed = capsys.readouterr().out
    assert "4 points done (4 feasible rows)" in printed and "36 points left for a resumed run" in printed and not (out / "results.parquet").exists()
    assert len(list((out / "parts").glob("part-*.parquet"))) == 2
    monkeypatch.undo()
    assert main(command) == 0
    table = pq.read_table(out / "results.parquet")
    assert table.column("index").to_pylist() == sample_points(load_space(ROOT / "instances/spaces/edge.yaml"), 40,
                                                              seed=0)