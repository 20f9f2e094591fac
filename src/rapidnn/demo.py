"""The demo: train (or load) an MNIST MLP, compose it, retrain it, report quality and memory."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress
from torch.utils.data import DataLoader, TensorDataset

from rapidnn import data
from rapidnn.compose import compose
from rapidnn.models import mlp
from rapidnn.retrain import accuracy, retrain
from rapidnn.training import load_cached, recipe_key, save_cached, train

RECIPE = {"model": "mlp-784-512-512-10-relu", "dataset": "mnist", "epochs": 8, "lr": 1e-3,
          "batch": 128, "val": 10_000, "seed": 0}


@dataclass
class MnistSplits:
    train: DataLoader
    val: DataLoader
    test: DataLoader


def mnist_splits(batch: int = 128, val: int = 10_000, seed: int = 0,
                 name: str = "mnist") -> MnistSplits:
    """Train/validation split of the training set (seeded) and the official test set."""
    x, y = data.as_tensors(data.load(name, "train"))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    tr, va = perm[val:], perm[:val]
    xt, yt = data.as_tensors(data.load(name, "test"))
    gen = torch.Generator().manual_seed(seed)
    return MnistSplits(
        DataLoader(TensorDataset(x[tr], y[tr]), batch_size=batch, shuffle=True, generator=gen),
        DataLoader(TensorDataset(x[va], y[va]), batch_size=1000),
        DataLoader(TensorDataset(xt, yt), batch_size=1000),
    )


def trained_mlp(splits: MnistSplits, console: Console) -> torch.nn.Module:
    """The float MLP of :data:`RECIPE`, from the model cache or trained now."""
    model = mlp()
    key = recipe_key("mnist-mlp", RECIPE)
    if load_cached(model, key):
        console.print(f"float model: loaded from cache ({key})")
        return model.eval()
    torch.manual_seed(RECIPE["seed"])
    model = mlp()
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("training float MLP", total=RECIPE["epochs"] * len(splits.train))
        train(model, splits.train, RECIPE["epochs"], lr=RECIPE["lr"], seed=RECIPE["seed"],
              on_batch=lambda e, i: bar.advance(task))
    save_cached(model, key, RECIPE)
    console.print(f"float model: trained and cached ({key})")
    return model.eval()


def run_demo(weight_clusters: int = 16, input_clusters: int = 16, max_epochs: int = 5,
             console: Console | None = None, save: str | None = None) -> dict[str, Any]:
    """Run the demo and return its figures (accuracies are fractions of the test set).

    ``save``: also write the retrained composed model there (a ``.rapidnn`` file)."""
    console = console or Console()
    t0 = time.perf_counter()
    model = trained_mlp(mnist_splits(), console)
    splits = mnist_splits()  # fresh loaders: the same batches whether or not we just trained
    float_acc = accuracy(model, splits.test)
    composed = compose(model, splits.train, weight_clusters, input_clusters,
                       calibration_batches=20)
    before = accuracy(composed, splits.test)
    result = retrain(composed, splits.train, splits.val, tolerance=0.003, max_epochs=max_epochs)
    after = accuracy(result.composed, splits.test)
    if save:
        result.composed.metadata.update({"dataset": "mnist", "workload": "mnist-mlp"})
        result.composed.save(save)
    mem = result.composed.memory()
    figures = {
        "weight_clusters": weight_clusters, "input_clusters": input_clusters,
        "float_accuracy": float_acc, "composed_accuracy_before_retraining": before,
        "composed_accuracy": after, "quality_loss": float_acc - after,
        "retrain_epochs": len(result.history) - 1, "bits_per_neuron": mem["bits_per_neuron"],
        "bytes_per_neuron": mem["bits_per_neuron"] / 8, "seconds": time.perf_counter() - t0,
    }
    console.print(f"MNIST MLP 784-512-512-10, w = {weight_clusters}, u = {input_clusters}")
    console.print(f"  float accuracy (test)              {float_acc:.4f}")
    console.print(f"  composed, before retraining        {before:.4f}  "
                  f"(loss {100 * (float_acc - before):+.2f} points)")
    console.print(f"  composed, after {figures['retrain_epochs']} retraining epoch(s) "
                  f"{after:.4f}  (quality loss {100 * (float_acc - after):+.2f} points)")
    console.print(f"  memory per neuron                  {figures['bytes_per_neuron']:.1f} bytes "
                  f"({mem['bits_per_neuron']:.0f} bits: tables, weight codes, thresholds, bias)")
    if save:
        console.print(f"  composed model written to          {save}")
    console.print(f"  wall time                          {figures['seconds']:.1f} s")
    return figures
