"""Benchmark the one-call API ``rapidnn.simulate`` against ``Simulator.run`` and float inference.

The trained MNIST MLP 784-512-512-10 (the shipped ``pretrained/`` weights, else the model
store; composed with w = u = 16 as in ``bench_simulator.py``), one batch of MNIST test images
(default 256), in one process with the same torch threads. Timed side by side, interleaved
(every round runs each contender once, so a noisy neighbour slows all of them alike), medians
of ``--repeats`` rounds after a warm-up:

* ``float``: the source PyTorch model (``torch.no_grad``);
* ``Simulator.run``: a Simulator built once, exact mode with a full Trace (``SimConfig()``);
* ``simulate``: ``rapidnn.simulate(composed, x)``, one call (the cached Simulator);
* ``build + run``: ``Simulator(composed).run(x)``, what ``simulate`` cost before its cache.

Ratios are float time / contender time (1.0 = as fast as float inference; the goal for
``simulate`` is >= 0.5). The results are checked equal to ``ComposedModel.integer_forward``.
Nothing is downloaded: MNIST comes from the datasets folder (``rapidnn.data``).

Run: ``.venv/bin/python benchmarks/bench_simulate.py [--threads T] [--batch 256]
[--repeats 50] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

import rapidnn
from rapidnn import data
from rapidnn.accel import SimConfig, Simulator
from rapidnn.workloads import get_workload
from rapidnn.workloads.store import get_trained, load_trained

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    """Every round runs each function once; median, best and worst seconds per function."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up (and, for simulate, the one build of its cached Simulator)
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: {"median": statistics.median(v), "best": min(v), "worst": max(v)}
            for k, v in times.items()}


def mnist_mlp(console: Console) -> torch.nn.Module:
    hit = load_trained("mnist-mlp", root=PRETRAINED)
    if hit is not None:
        console.print(f"float model mnist-mlp: {PRETRAINED}")
        return hit[0]
    return get_trained("mnist-mlp", console=console)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    console.print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
                  f"{platform.processor() or platform.machine()}, batch {args.batch}")
    torch.manual_seed(0)
    model = mnist_mlp(console).eval()
    train = get_workload("mnist-mlp").splits().train_loader(augment=False)
    composed = rapidnn.compose(model, train, 16, 16, calibration_batches=20)
    xt, _ = data.as_tensors(data.load("mnist", "test"))
    x = xt[: args.batch].contiguous()

    sim = Simulator(composed, SimConfig())
    with torch.no_grad():
        ref = composed.integer_forward(x).output
        exact = all(torch.equal(out, ref) for out in (
            sim.run(x).outputs, rapidnn.simulate(composed, x).outputs))
        t = interleaved({
            "float": lambda: model(x),
            "Simulator.run": lambda: sim.run(x),
            "simulate": lambda: rapidnn.simulate(composed, x),
            "build + run": lambda: Simulator(composed).run(x),
        }, args.repeats)
    base = t["float"]["median"]
    rows = {k: {**v, "ms": 1e3 * v["median"], "vs_float": base / v["median"],
                "img_s": args.batch / v["median"]} for k, v in t.items()}
    console.print(f"MNIST MLP 784-512-512-10, batch {args.batch}, medians of {args.repeats} "
                  f"interleaved rounds; outputs equal integer_forward: {exact}")
    console.print("| contender | ms / batch | images/s | vs float |")
    console.print("|---|---:|---:|---:|")
    for k, r in rows.items():
        console.print(f"| {k} | {r['ms']:.2f} | {r['img_s']:,.0f} | {r['vs_float']:.2f}x |",
                      highlight=False)
    overhead = rows["simulate"]["ms"] - rows["Simulator.run"]["ms"]
    goal = rows["simulate"]["vs_float"] >= 0.5
    console.print(f"simulate - Simulator.run: {overhead:+.3f} ms per call; simulate >= 0.5x "
                  f"float: {goal}")
    if args.json:
        out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
               "machine": platform.processor() or platform.machine(), "batch": args.batch,
               "repeats": args.repeats, "bit_exact": exact, "contenders": rows,
               "simulate_overhead_ms": overhead, "goal_met": goal}
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
