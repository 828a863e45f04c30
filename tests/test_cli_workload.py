"""`monet workload show|export`: acceptance figures, JSON keys, exit codes, no partial output."""

import json
import subprocess
import sys

from monet_opt.cli import main
from monet_opt.model.workload.serialize import graph_from_dict
from onnx_models import resnet18_onnx, save

REQUIRED = {"params", "forward_macs", "training_macs", "forward_ops", "training_ops", "static_bytes",
            "saved_activation_bytes", "store_all_peak_bytes"}


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_show_resnet18_acceptance(capsys):
    s = run_json(capsys, "workload", "show", "resnet18", "--batch", "1", "--image-size", "224", "--classes", "1000", "--json")
    assert REQUIRED <= set(s)
    assert s["params"] == 11_689_512
    assert abs(s["forward_macs"] - 1.814e9) / 1.814e9 < 0.01
    # Adam in fp32: weights, gradients and two states = 16 bytes per parameter, plus the BN running
    # statistics: 64 + 4*64 + (4*128 + 128) + (5*256) + (5*512) = 4,800 channels x 2 x 4 bytes
    assert s["static_bytes"] == 16 * 11_689_512 + 4800 * 2 * 4
    # updates in the backward pass: the weight gradients (4 bytes per parameter) leave the static
    # bytes; each lives from the op completing it to its update, so the peak drops by less
    b = run_json(capsys, "workload", "show", "resnet18", "--batch", "1", "--image-size", "224", "--classes", "1000",
                 "--updates", "backward", "--json")
    assert b["static_bytes"] == s["static_bytes"] - 4 * 11_689_512 and b["updates"] == "backward"
    peaks = s["store_all_peak_bytes_by_updates"]
    assert peaks == b["store_all_peak_bytes_by_updates"] and peaks["end"] == s["store_all_peak_bytes"]
    assert peaks["backward"] == b["store_all_peak_bytes"]
    assert peaks["end"] - 4 * 11_689_512 < peaks["backward"] < peaks["end"]


def test_show_gpt2_small_and_options(capsys):
    s = run_json(capsys, "workload", "show", "gpt2-small", "--json")
    assert s["params"] == 124_439_808
    d, ff, v, seq = 768, 3072, 50257, 1024  # projections, QK^T + AV, FFN per layer; LM head
    assert s["forward_macs"] == 12 * (4 * seq * d * d + 2 * seq * seq * d + 2 * seq * d * ff) + seq * d * v
    sgd = run_json(capsys, "workload", "show", "gpt2-mini", "--optimizer", "sgd", "--seq-len", "128", "--json")
    # the tied embedding (20000 x 384) has two gradient buffers: the LM head's contribution and the sum
    assert sgd["static_bytes_by_role"] == {"weight": 4 * 11_328_000, "weight_grad": 4 * (11_328_000 + 20000 * 384)}
    # 36 weight tensors: wte, wpe, 16 per layer (2 layer-norms, Q, K, V, proj, fc, fc-proj), ln_f
    assert sgd["optimizer_ops"] == sgd["ops_by_kind"]["sgd_update"] == 36


def test_show_text_and_onnx_file(capsys, tmp_path):
    path = save(resnet18_onnx(), tmp_path / "r.onnx")
    assert main(["workload", "show", str(path), "--batch", "1"]) == 0
    text = capsys.readouterr().out
    assert "11,689,512" in text and "1,814,073,344" in text


def test_export_round_trip(capsys, tmp_path):
    out = tmp_path / "sub" / "g.json"
    assert main(["workload", "export", "gpt2-mini", "--optimizer", "momentum", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    g = graph_from_dict(json.loads(out.read_text()))
    s = run_json(capsys, "workload", "show", "gpt2-mini", "--optimizer", "momentum", "--json")
    assert len(g.ops) == s["training_ops"] and g.params == s["params"] and g.macs() == s["training_macs"]
    assert len(g.saved_for_backward) == s["saved_tensors"]


def test_bad_input_exit_2_without_traceback_or_output(tmp_path):
    out = tmp_path / "never.json"
    bad_onnx = tmp_path / "bad.onnx"
    bad_onnx.write_bytes(b"garbage")
    cases = [
        ["workload", "show", "resnet9"],
        ["workload", "show", str(bad_onnx), "--batch", "1"],
        ["workload", "show", "resnet18", "--batch", "-1"],
        ["workload", "export", "resnet9", "-o", str(out)],
    ]
    for argv in cases:
        proc = subprocess.run([sys.executable, "-m", "monet_opt", *argv], capture_output=True, text=True)
        assert proc.returncode == 2, argv
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not out.exists() and not list(tmp_path.glob(".never.json*"))
