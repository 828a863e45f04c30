"""`monet evaluate` end to end: the four files, the JSON keys, exit codes 2 and 3."""

import json
import subprocess
import sys

import pytest
import yaml

from monet_opt.cli import main
from hw_fixtures import toy_data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("workload, hardware", [("resnet18", "edge-tpu-quad"), ("gpt2-mini", "fusemax-dc")])
def test_evaluate_writes_all_four_files_without_violations(tmp_path, capsys, workload, hardware):
    out = tmp_path / "run"
    assert main(["evaluate", "--workload", workload, "--hardware", hardware, "--out", str(out)]) == 0
    assert "no violations" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["gantt.png", "memory.png", "result.json", "trace.json"]
    result = json.loads((out / "result.json").read_text())
    assert result["violations"] == []
    assert result["energy_pj"] == pytest.approx(sum(result["energy_breakdown_pj"].values()), rel=1e-12)
    assert len(result["timeline"]) == result["tasks"]
    trace = json.loads((out / "trace.json").read_text())
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    assert len([e for e in spans if e.get("cat") != "transfer"]) == result["tasks"]
    last_end_us = max(e["ts"] + e["dur"] for e in spans)
    assert last_end_us == pytest.approx(result["latency_s"] * 1e6)
    for image in ("gantt.png", "memory.png"):
        assert (out / image).read_bytes()[:8] == PNG_SIGNATURE


def test_evaluate_json_and_inference_mode(capsys):
    runs = {}
    for mode in ("training", "inference"):
        assert main(["evaluate", "--workload", "resnet18-cifar", "--hardware", "edge-hetero", "--mode", mode, "--json"]) == 0
        runs[mode] = json.loads(capsys.readouterr().out)
        assert {"latency_cycles", "energy_pj", "energy_breakdown_pj", "peak_memory_bytes", "violations"} <= set(runs[mode])
    # inference holds no gradients or optimizer states: its static DRAM bytes are the weights and buffers
    assert runs["inference"]["static_dram_bytes"] == 4 * 11_173_962 + 4800 * 2 * 4
    assert runs["training"]["static_dram_bytes"] == 16 * 11_173_962 + 4800 * 2 * 4  # + grads + 2 Adam states
    assert runs["training"]["latency_cycles"] > runs["inference"]["latency_cycles"]
    # bytes every plan moves (model/limits.py): the 4 images (49,152 B) and the statistics read; in
    # inference the weights read and 4 x 10 logits written; in training the weights and both Adam
    # moments read and written, the 4 int64 labels read and the loss written
    limits = {mode: run["physical_limits"] for mode, run in runs.items()}
    assert limits["inference"]["compulsory_dram_bytes"] == 4 * 11_173_962 + 38_400 + 49_152 + 160
    assert limits["training"]["compulsory_dram_bytes"] == 24 * 11_173_962 + 38_400 + 49_152 + 32 + 4
    for run in runs.values():  # 64 bits per cycle; the default plan is slower than both bounds
        assert run["physical_limits"]["dram_cycles"] == -(-run["physical_limits"]["compulsory_dram_bytes"] // 8)
        assert run["latency_cycles"] >= max(run["physical_limits"]["dram_cycles"],
                                            run["physical_limits"]["compute_cycles"])


def test_evaluate_bad_input_and_infeasible(tmp_path):
    no_vector = toy_data()
    no_vector["cores"] = no_vector["cores"][:1]
    no_vector["memories"] = no_vector["memories"][:1]
    no_vector["links"] = [{"name": "bus", "endpoints": ["dram", "pe"], "bandwidth_bits_per_cycle": 64,
                           "energy_pj_per_bit": 0.0}]
    mac_only = tmp_path / "mac_only.yaml"
    mac_only.write_text(yaml.safe_dump(no_vector))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**toy_data(), "clock_hz": "fast"}))
    out = tmp_path / "never"
    cases = [
        (["--hardware", str(bad)], 2, "clock_hz: expected number"),
        (["--hardware", "edge-tpu-octo"], 2, "unknown hardware"),
        (["--hardware", str(mac_only)], 3, "can run on no core"),
    ]
    for extra, code, message in cases:
        proc = subprocess.run([sys.executable, "-m", "monet_opt", "evaluate", "--workload", "resnet18-cifar",
                               "--out", str(out), *extra], capture_output=True, text=True)
        assert proc.returncode == code and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not out.exists()
