"""Composer quality: float vs composed accuracy before and after retraining (issue 2 figures).

Runs the MNIST MLP 784-512-512-10 at several (w, u) and the Fashion-MNIST LeNet-5 (trained
here, cached), prints one table and optionally writes JSON. Not a test: minutes on 2 cores.

    .venv/bin/python benchmarks/bench_composer.py [--json out.json] [--max-rounds 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console

import rapidnn
from rapidnn.composer.retrain import accuracy, retrain
from rapidnn.workloads import get_workload
from rapidnn.workloads.store import get_trained


def run(name, model, w, u, max_rounds, rows, console):
    splits = get_workload(name).splits()  # fresh loaders for every configuration
    train, val, test = splits.train_loader(augment=False), splits.val_loader(), splits.test_loader()
    t0 = time.perf_counter()
    float_acc = accuracy(model, test)
    cm = rapidnn.compose(model, train, w, u, calibration_batches=20)
    before = accuracy(cm, test)
    res = retrain(cm, train, val, tolerance=0.003, max_rounds=max_rounds, progress=False)
    after = accuracy(res.composed, test)
    row = {"network": name, "w": w, "u": u, "float_accuracy": float_acc,
           "composed_before": before, "composed_after": after,
           "loss_before_points": 100 * (float_acc - before),
           "loss_after_points": 100 * (float_acc - after), "rounds": res.rounds,
           "val_history": [r.composed_accuracy for r in res.history],
           "bytes_per_neuron": res.composed.memory()["bits_per_neuron"] / 8,
           "seconds": time.perf_counter() - t0}
    rows.append(row)
    console.print(row)
    return res.composed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--max-rounds", type=int, default=8)
    args = ap.parse_args()
    console = Console()
    rows: list[dict] = []
    mlp_model, _ = get_trained("mnist-mlp", console=console)
    for w, u in ((16, 16), (8, 8), (4, 4)):
        run("mnist-mlp", mlp_model, w, u, args.max_rounds, rows, console)
    lenet, _ = get_trained("fashion-lenet5", console=console)
    composed = run("fashion-lenet5", lenet, 16, 16, args.max_rounds, rows, console)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lenet.rapidnn"
        composed.save(path)
        loaded = rapidnn.load(path)
        x = next(iter(get_workload("fashion-lenet5").splits().test_loader()))[0]
        identical = torch.equal(loaded(x), composed(x))
    console.print(f"LeNet save/load round trip bit-identical: {identical}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "lenet_roundtrip_identical": identical},
                                        indent=2))


if __name__ == "__main__":
    main()
