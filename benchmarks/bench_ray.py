"""The Ray executor against the local one on one machine (issue 22 acceptance experiment).

A quick 2x2 sweep of mnist-mlp ({4, 16}², no retraining) runs in this process and on a local
Ray instance (2 CPUs, 1 thread per task), each in its own fresh model store (the float model
is trained once per store, before the timed sweeps: ``get_trained``), side by side; the points
must be identical. Also measured: Ray's startup (``ray.init``) and its per-task overhead (the
round trip of 50 empty tasks). Writes ``<out>.json`` and ``<out>.md``.

    RAPIDNN_DATA=../shared/datasets .venv/bin/python benchmarks/bench_ray.py \
        [--out docs/results/ray]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import ray
import torch

from rapidnn._files import atomic_write_text
from rapidnn.budget import QUICK
from rapidnn.experiments.executor import RayExecutor
from rapidnn.experiments.sweep import run_sweep
from rapidnn.workloads.store import get_trained

GRID = [4, 16]


def _noop() -> None:
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/results/ray")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the tasks' threads, so both executors compute alike
    work = Path(tempfile.mkdtemp(prefix="rapidnn-ray-"))
    stores = {"local": work / "store-local", "ray": work / "store-ray"}
    for store in stores.values():
        get_trained("mnist-mlp", QUICK.recipes, progress=False, root=store)
    t0 = time.perf_counter()
    local = run_sweep("mnist-mlp", GRID, GRID, out=work / "local", budget=QUICK,
                      progress=False, root=stores["local"], plot=False)
    local_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                       if k.startswith("RAPIDNN_")}})
    startup_s = time.perf_counter() - t0
    ex = RayExecutor(threads=1)
    noop = ray.remote(num_cpus=1)(_noop)
    ray.get(noop.remote())  # a warm worker
    t0 = time.perf_counter()
    ray.get([noop.remote() for _ in range(50)])
    per_task_s = (time.perf_counter() - t0) / 50
    t0 = time.perf_counter()
    remote = run_sweep("mnist-mlp", GRID, GRID, out=work / "ray", budget=QUICK,
                       progress=False, root=stores["ray"], plot=False, executor=ex)
    ray_s = time.perf_counter() - t0
    ray.shutdown()

    def points(doc: dict) -> list[dict]:
        return [{k: v for k, v in p.items() if k != "seconds"} for p in doc["points"]]

    out = {"grid": GRID, "workload": "mnist-mlp", "budget": "quick",
           "identical": points(local) == points(remote),
           "local_seconds": round(local_s, 2), "ray_seconds": round(ray_s, 2),
           "ray_startup_seconds": round(startup_s, 2),
           "ray_task_overhead_ms": round(1000 * per_task_s, 2),
           "point_seconds_local": [p["seconds"] for p in local["points"]],
           "point_seconds_ray": [p["seconds"] for p in remote["points"]],
           "points": points(local),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                       "torch": torch.__version__, "ray": ray.__version__}}
    base = Path(args.out)
    atomic_write_text(base.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    md = [
        "# Ray executor vs local (issue 22)", "",
        f"`benchmarks/bench_ray.py` on {out['machine']['platform']} ({out['machine']['cpus']} "
        f"CPUs), torch {out['machine']['torch']}, Ray {out['machine']['ray']}: a quick "
        f"{len(GRID)}x{len(GRID)} sweep of mnist-mlp (w, u in {GRID}, no retraining), each "
        "executor in its own fresh store (float model trained before the timing), 1 torch "
        "thread per point.", "",
        "| | local | Ray (local instance, 2 CPUs) |", "|---|---|---|",
        f"| sweep wall time | {out['local_seconds']:.2f} s | {out['ray_seconds']:.2f} s "
        f"(+ {out['ray_startup_seconds']:.2f} s startup) |",
        f"| points identical | | {out['identical']} |",
        f"| per-task round trip (empty task, warm worker) | | "
        f"{out['ray_task_overhead_ms']:.2f} ms |", "",
        "Point times (s), local: " + ", ".join(f"{s:.2f}" for s in out["point_seconds_local"])
        + "; Ray: " + ", ".join(f"{s:.2f}" for s in out["point_seconds_ray"]) + ".", ""]
    atomic_write_text(base.with_suffix(".md"), "\n".join(md))
    print(json.dumps({k: v for k, v in out.items() if k != "points"}, indent=2))


if __name__ == "__main__":
    main()
