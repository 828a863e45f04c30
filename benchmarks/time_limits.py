"""Does `--time-limit` hold? Wall time of every method of every family on large instances, run as a
user runs them (the `monet` command), against the limit.

Target: (wall time - start-up) / limit at most 1.1 for every method. Start-up is the wall time of
`monet --version` measured in the same run (interpreter and imports). Instances: the random layered
DAGs of 500 and 1000 nodes (benchmarks/remat_dags.py) at 80 % of their store-all peak; ResNet-18
(224, batch 1) checkpointing on edge-tpu-quad at 50 %; ResNet-18 allocation on edge-hetero; GPT-2
small fusion on fusemax-dc (max_stack 6: enumerating its candidates alone takes about 8 s);
ResNet-18 fusion with the multi-core schedule, and with checkpointing at 80 %, on edge-tpu-quad;
`monet solve` on the default instance and on GPT-2 small (dc-mesh4, 80 %) writing --out (report,
plots, trace: the limit holds for them too).

    python benchmarks/time_limits.py [--time-limit 10] [--out benchmarks/results/time_limits.txt]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import emit, header
from remat_dags import layered_dag


def graph_file(n: int, directory: Path) -> str:
    p = layered_dag(n, seed=n)
    path = directory / f"layered{n}.json"
    path.write_text(json.dumps({
        "nodes": [{"id": v, "cost_cpu": c, "cost_ram": m} for v, c, m in zip(p.nodes, p.cost, p.size, strict=True)],
        "links": [{"source": p.nodes[a], "target": p.nodes[b]} for b, preds in enumerate(p.preds) for a in preds]}))
    return str(path)


def timed(argv: list[str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "monet_opt", *argv], capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.stdout.startswith("{"):
        data = json.loads(proc.stdout)
        status = data["status"] if "status" in data else data["stages"][-1]["status"]  # `monet solve`: its last stage
    else:
        status = proc.stderr.strip()[:40]
    return elapsed, proc.returncode, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    limit = args.time_limit
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for n in (500, 1000):
            path = graph_file(n, Path(tmp))
            for method in ("cpsat", "milp", "ga", "greedy", "sqrt", "store-all", "recompute-all"):
                runs.append((f"layered{n} 80%", method, ["checkpoint", "graph", path, "--budget", "80%"]))
        for method in ("cpsat", "ga", "greedy", "sqrt", "store-all", "recompute-all"):
            runs.append(("resnet18 checkpoint 50%", method, ["checkpoint", "training", "--workload", "resnet18",
                                                             "--hardware", "edge-tpu-quad", "--budget", "50%"]))
        runs.append(("resnet18 ckpt bwd 50% free", "cpsat", ["checkpoint", "training", "--workload", "resnet18",
                                                             "--updates", "backward", "--hardware", "edge-tpu-quad",
                                                             "--budget", "50%", "--order", "free"]))
        for method in ("cpsat", "ga", "greedy"):
            runs.append(("resnet18 allocate edge-hetero", method, ["allocate", "--workload", "resnet18",
                                                                  "--hardware", "edge-hetero"]))
        for method in ("cpsat", "ga", "rule", "none"):
            runs.append(("gpt2-small fuse fusemax-dc", method, ["fuse", "--workload", "gpt2-small",
                                                               "--hardware", "fusemax-dc"]))
        runs.append(("resnet18 fuse --schedule", "cpsat", ["fuse", "--workload", "resnet18", "--hardware",
                                                           "edge-tpu-quad", "--schedule"]))
        runs.append(("resnet18 fuse+checkpoint 80%", "cpsat", ["fuse", "--workload", "resnet18", "--hardware",
                                                              "edge-tpu-quad", "--with-checkpointing", "--budget",
                                                              "80%"]))
        for name, label in (("default", "default"), ("gpt2-small-dc-mesh4-80", "gpt2-small 80%")):
            # a whole instance, its report and plots written
            runs.append((f"solve {label} --out", "-", ["solve", f"instances/{name}.yaml", "--out",
                                                        str(Path(tmp) / name)]))
        startup = min(timed(["--version"])[0] for _ in range(3))
        rows = [header(), "", f"time limit {limit:g} s; start-up (monet --version) {startup:.2f} s; target: "
                              "(wall - start-up) / limit <= 1.1",
                f"{'instance':<30}{'method':<15}{'wall [s]':>9}{'ratio':>7}{'exit':>6}  status"]
        for instance, method, argv in runs:
            print(f"{instance} {method}...", file=sys.stderr, flush=True)
            chosen = [] if method == "-" else ["--method", method]
            wall, code, status = timed([*argv, *chosen, "--time-limit", f"{limit:g}", "--json"])
            rows.append(f"{instance:<30}{method:<15}{wall:>9.2f}{(wall - startup) / limit:>7.2f}{code:>6}  {status}")
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
