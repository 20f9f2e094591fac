"""The demo: train (or load) an MNIST MLP, compose it, retrain it, report quality and memory."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console

from rapidnn.composer.compose import compose
from rapidnn.composer.retrain import accuracy, retrain
from rapidnn.workloads import get_workload
from rapidnn.workloads.store import get_trained

WORKLOAD = "mnist-mlp"  # MLP 784-512-512-10, ReLU; recipe and split in rapidnn.workloads


def run_demo(weight_clusters: int = 16, input_clusters: int = 16, max_rounds: int = 5,
             console: Console | None = None, save: str | None = None) -> dict[str, Any]:
    """Run the demo and return its figures (accuracies are fractions of the test set).

    ``save``: also write the retrained composed model there (a ``.rapidnn`` file)."""
    console = console or Console()
    t0 = time.perf_counter()
    workload = get_workload(WORKLOAD)
    model, _ = get_trained(workload, console=console)
    splits = workload.splits()  # fresh loaders: the same batches whether or not we just trained
    train, val, test = splits.train_loader(augment=False), splits.val_loader(), splits.test_loader()
    float_acc = accuracy(model, test)
    composed = compose(model, train, weight_clusters, input_clusters, calibration_batches=20)
    before = accuracy(composed, test)
    result = retrain(composed, train, val, tolerance=0.003, max_rounds=max_rounds)
    after = accuracy(result.composed, test)
    if save:
        result.composed.metadata.update({"dataset": workload.dataset, "workload": WORKLOAD})
        result.composed.save(save)
    mem = result.composed.memory()
    figures = {
        "weight_clusters": weight_clusters, "input_clusters": input_clusters,
        "float_accuracy": float_acc, "composed_accuracy_before_retraining": before,
        "composed_accuracy": after, "quality_loss": float_acc - after,
        "retrain_rounds": result.rounds, "bits_per_neuron": mem["bits_per_neuron"],
        "bytes_per_neuron": mem["bits_per_neuron"] / 8, "seconds": time.perf_counter() - t0,
    }
    console.print(f"MNIST MLP 784-512-512-10, w = {weight_clusters}, u = {input_clusters}")
    console.print(f"  float accuracy (test)              {float_acc:.4f}")
    console.print(f"  composed, before retraining        {before:.4f}  "
                  f"(loss {100 * (float_acc - before):+.2f} points)")
    console.print(f"  composed, after {figures['retrain_rounds']} retraining round(s)  "
                  f"{after:.4f}  (quality loss {100 * (float_acc - after):+.2f} points)")
    console.print(f"  memory per neuron                  {figures['bytes_per_neuron']:.1f} bytes "
                  f"({mem['bits_per_neuron']:.0f} bits: tables, weight codes, thresholds, bias)")
    if save:
        console.print(f"  composed model written to          {save}")
    console.print(f"  wall time                          {figures['seconds']:.1f} s")
    return figures
