"""Every case of the newcomer trial (issue 27, item 8) as a user meets it: one line on stderr, the
documented exit code, nothing written. Interrupts are in test_interrupts.py."""

import contextlib
import io
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from monet_opt.cli import main
from test_space import write_space

ROOT = Path(__file__).resolve().parent.parent
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
PROC = Path("/proc/self")


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def refused(argv: list[str], message: str, code: int = 2) -> str:
    got, _, err = run(argv)
    assert got == code and message in err and err.count("\n") == 1 and "Traceback" not in err, (argv, got, err)
    return err


HOSTILE = {
    "deep.json": "[" * 5000 + "]" * 5000,
    "deep.yaml": "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "alias.yaml": "a: &a [*a]\n",
    "laughs.yaml": LAUGHS,
    "huge.yaml": "capacity_bytes: 1" + "0" * 400 + "\n",
}
HOSTILE_MESSAGE = {"deep.json": "nested deeper than 64 levels", "deep.yaml": "nested deeper than 64 levels",
                   "alias.yaml": "aliases are not supported", "laughs.yaml": "aliases are not supported",
                   "huge.yaml": "capacity_bytes: larger than 2**53"}


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("reader", ["hardware show", "checkpoint graph", "allocate", "solve", "sweep", "bench",
                                    "workload hardware"])
def test_hostile_files_are_refused_by_every_reader(tmp_path, name, reader):
    """Deep nesting, a self-referencing alias, a billion-laughs document and an integer of 400 digits,
    in every command that reads a file: refused at once (no recursion error, no expansion)."""
    path = tmp_path / name
    path.write_text(HOSTILE[name])
    if reader == "bench":
        (tmp_path / "suite").mkdir()
        path = tmp_path / "suite" / f"{Path(name).stem}.yaml"  # a suite is its YAML files
        path.write_text(HOSTILE[name])
    argv = {
        "hardware show": ["hardware", "show", str(path)],
        "checkpoint graph": ["checkpoint", "graph", str(path), "--budget", "5"],
        "allocate": ["allocate", "--instance", str(path)],
        "solve": ["solve", str(path)],
        "sweep": ["sweep", str(path), "--workload", "resnet18-cifar", "--samples", "2", "--out", str(tmp_path / "o")],
        "bench": ["bench", "--instances", str(tmp_path / "suite"), "--out", str(tmp_path / "o")],
        "workload hardware": ["evaluate", "--workload", "resnet18-cifar", "--hardware", str(path)],
    }[reader]
    refused(argv, HOSTILE_MESSAGE[name])
    assert not (tmp_path / "o").exists()


def test_large_yaml_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("nodes:\n" + "  - {id: n, cost: 1, size: 1}\n" * 80_000)
    refused(["checkpoint", "graph", str(path), "--budget", "5"], "write large inputs as JSON")


def test_outputs_never_replace_a_file_that_is_not_regular(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    refused(["workload", "export", "gpt2-mini", "-o", str(fifo)], "exists and is not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.skipif(not PROC.exists(), reason="needs /proc")
@pytest.mark.parametrize("argv", [
    ["evaluate", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--out", "/proc/monet-x"],
    ["workload", "export", "gpt2-mini", "-o", "/proc/monet-x.json"],
    ["hardware", "import", "--from", "zigzag", "-o", "/proc/monet-x.yaml", "instances/default.yaml"],
    ["sweep", "instances/spaces/edge.yaml", "--workload", "resnet18-cifar", "--samples", "2", "--out", "/proc/x"],
    ["bench", "--out", "/proc/monet-x"],
])
def test_unwritable_outputs_are_refused_before_any_work(argv):
    refused(argv, "is not writable")


@pytest.mark.parametrize("command", ["sweep", "bench"])
def test_an_existing_file_as_out_directory_is_refused(tmp_path, command):
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    argv = {"sweep": ["sweep", "instances/spaces/edge.yaml", "--workload", "resnet18-cifar", "--samples", "2"],
            "bench": ["bench"]}[command]
    refused([*argv, "--out", str(taken)], "exists and is not a directory")
    assert taken.read_text() == "keep me"


@pytest.mark.parametrize("content, message", [
    ({"edges": [{"from": "t", "to": "u", "bytes": 1e18}]}, "edges[0].bytes: 1e+18 is larger than 1e+15"),
    ({"tasks": [{"name": "t", "options": {"a": {"duration_cycles": 1, "energy_pj": 1e30}}},
                {"name": "u", "options": {"b": {"duration_cycles": 1}}}]}, "energy_pj: 1e+30 is larger than 1e+15"),
])
def test_allocation_values_beyond_the_models_range_are_refused(tmp_path, content, message):
    data = {"cores": ["a", "b"], "link": {"bandwidth_bits_per_cycle": 8},
            "tasks": [{"name": "t", "options": {"a": {"duration_cycles": 1}}},
                      {"name": "u", "options": {"b": {"duration_cycles": 1}}}],
            "edges": [{"from": "t", "to": "u", "bytes": 8}], **content}
    path = tmp_path / "i.yaml"
    path.write_text(yaml.safe_dump(data))
    refused(["allocate", "--instance", str(path)], message)


def test_an_overflowing_capacity_leaves_no_output(tmp_path):
    data = yaml.safe_load((ROOT / "monet_opt/model/hardware/library/edge-tpu-quad.yaml").read_text())
    text = yaml.safe_dump(data).replace(f"capacity_bytes: {data['dram']['capacity_bytes']}",
                                        "capacity_bytes: 1" + "0" * 400, 1)
    path = tmp_path / "hw.yaml"
    path.write_text(text)
    refused(["evaluate", "--workload", "resnet18-cifar", "--hardware", str(path), "--out", str(tmp_path / "o")],
            "larger than 2**53")
    assert not (tmp_path / "o").exists()


def test_a_constraint_that_divides_by_zero_is_refused(tmp_path):
    path = write_space(tmp_path, {"k": {"values": [8, 16], "set": ["cores[pe].pe_array.unroll.K"]}},
                       constraints=["64 / (k - 8) > 1"])
    refused(["sweep", str(path), "--workload", "resnet18-cifar", "--grid", "--out", str(tmp_path / "o")],
            "constraints[0]: '64 / (k - 8) > 1' cannot be evaluated at k=8 (ZeroDivisionError")
    assert not (tmp_path / "o").exists()


def test_resuming_a_sweep_survives_a_damaged_directory(tmp_path, monkeypatch, capsys):
    """A truncated part is evaluated again; a corrupted sweep.json is refused; the space file may be
    spelt with ./ the second time."""
    monkeypatch.chdir(tmp_path)
    write_space(tmp_path, {"k": {"values": [8, 16, 32], "set": ["cores[pe].pe_array.unroll.K"]}})
    argv = ["sweep", "space.yaml", "--workload", "resnet18-cifar", "--mode", "inference", "--grid",
            "--points-per-task", "1", "--out", "o", "--quiet"]
    assert main(argv) == 0
    part = sorted((tmp_path / "o" / "parts").glob("part-*.parquet"))[1]
    part.write_bytes(part.read_bytes()[:20])
    (tmp_path / "o" / "results.parquet").unlink()
    capsys.readouterr()
    assert main([a if a != "space.yaml" else "./space.yaml" for a in argv]) == 0
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "o" / "results.parquet").num_rows == 3
    (tmp_path / "o" / "sweep.json").write_text('{"space_source": ')
    refused(argv, "sweep.json: not a sweep record")


def test_a_dask_address_without_a_scheduler_is_refused_within_the_time_limit(tmp_path):
    refused(["sweep", "instances/spaces/edge.yaml", "--workload", "resnet18-cifar", "--samples", "2",
             "--executor", "dask", "--address", "tcp://127.0.0.1:9", "--time-limit", "3", "--out",
             str(tmp_path / "o")], "--address tcp://127.0.0.1:9: no Dask scheduler answered")


def test_a_batch_that_overflows_dram_is_infeasible_not_a_bug():
    for method in ("greedy", "cpsat"):
        refused(["checkpoint", "training", "--workload", "resnet18", "--hardware", "edge-tpu-quad", "--batch", "512",
                 "--budget", "50%", "--method", method, "--time-limit", "30", "--quiet"],
                "the DRAM capacity of 4294967296 bytes cannot hold the step", code=3)


@pytest.mark.parametrize("argv, message", [
    (["checkpoint", "graph", "instances/remat/diamond.yaml", "--budget", "5", "--time-limit", "inf"],
     "'inf' is not a finite number"),
    (["evaluate", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--out", ""], "an empty path"),
    (["workload", "show", "monet_opt"], "monet_opt: is a directory, not an ONNX file"),
    (["solve", "instances/remat-chain16-40.yaml"], "kind: 'remat' is an instance of the remat family: give --method"),
])
def test_option_and_file_mistakes(argv, message):
    refused(argv, message)


@pytest.mark.parametrize("changes, message", [
    ({"hardware": "hw.yaml"}, "hardware: {dir}/hw.yaml: no such file (a file is relative to the instance)"),
    ({"workload": "model.onnx"}, "workload: {dir}/model.onnx: no such file"),
    ({"workload": "nope"}, "workload: unknown built-in 'nope'"),
    ({"seq_len": 99999}, "workload (with its batch, seq_len, image_size, classes, precision): gpt2-mini: seq_len"),
])
def test_instance_mistakes_name_the_file_and_key(tmp_path, monkeypatch, changes, message):
    """A file named by an instance is looked for beside the instance, never in the current directory
    (which here holds a hw.yaml that must not be taken)."""
    (tmp_path / "instance").mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hw.yaml").write_text((ROOT / "monet_opt/model/hardware/library/edge-tpu-quad.yaml").read_text())
    data = {"workload": "gpt2-mini", "hardware": "edge-tpu-quad", "optimise": {"allocation": {}}, **changes}
    path = tmp_path / "instance" / "i.yaml"
    path.write_text(yaml.safe_dump(data))
    err = refused(["solve", str(path), "--quiet"], message.format(dir=tmp_path / "instance"))
    assert err.startswith(f"monet: error: {path}: ")


def test_adamw_is_an_instance_optimizer_as_on_the_command_line(tmp_path):
    path = tmp_path / "i.yaml"
    path.write_text(yaml.safe_dump({"workload": "resnet18-cifar", "hardware": "edge-tpu-quad", "optimizer": "adamw",
                                    "optimise": {"fusion": {"method": "rule"}}, "time_limit": 20}))
    code, out, err = run(["solve", str(path), "--quiet", "--json"])
    assert code == 0, err
    assert "adamw" in json.loads(out)["stages"][0]["problem"]


def test_an_answer_in_hand_is_never_unknown(tmp_path):
    """allocate on 1000 tasks with 5 s: whatever CP-SAT managed, an answer (the warm start at least)
    says feasible or heuristic, and exit 0 goes with a validated answer only."""
    code, out, err = run(["allocate", "--instance", "instances/allocation/layered1000.yaml", "--time-limit", "5",
                          "--json", "--quiet"])
    data = json.loads(out)
    assert code == data["exit_code"]
    assert (code == 0) == data["validated"] and (not data["validated"] or data["status"] != "unknown")


def test_bench_exit_codes_say_whether_every_row_answered():
    from monet_opt.studies.bench import BenchRow, bench_exit_code

    def row(status: str, validated: bool) -> BenchRow:
        return BenchRow("i", "quick", "remat", "ga", status, None, "", None, None, None, None, 1.0, validated, "")

    assert bench_exit_code([row("optimal", True), row("infeasible", False)], 0) == 0
    assert bench_exit_code([row("optimal", True)], 3) == 4
    assert bench_exit_code([row("optimal", True), row("unknown", False)], 0) == 4
    assert bench_exit_code([row("error", False), row("unknown", False)], 0) == 2
    assert bench_exit_code([row("bug", False), row("error", False)], 0) == 1


def test_fuse_schedule_reports_both_times():
    from monet_opt.report.answer import format_answer, fusion_lines

    code, out, err = run(["fuse", "--workload", "resnet18-cifar", "--hardware", "edge-tpu-quad", "--method", "rule",
                          "--schedule", "--time-limit", "20", "--json", "--quiet"])
    assert code == 0, err
    data = json.loads(out)
    text = format_answer(data, fusion_lines)
    assert f"{data['multi_core']['solve_time_s']:.2f} s more (the fusion search above: {data['solve_time_s']:.2f} s)" \
        in text


def test_readme_sentences_are_not_cut_by_a_heading():
    """A heading follows a blank line, and the paragraph before it ends its sentence."""
    lines = (ROOT / "README.md").read_text().splitlines()
    fenced = False
    for k, line in enumerate(lines):
        fenced ^= line.startswith("```")
        if not fenced and line.startswith("#") and k > 0:
            assert not lines[k - 1].strip(), f"no blank line before {line!r}"
            paragraph_end = next(x for x in reversed(lines[:k]) if x.strip())
            assert paragraph_end.rstrip().endswith((".", ":", "|", "```", ")")), paragraph_end
