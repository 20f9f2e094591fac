"""The demo: load (or train) an MNIST MLP, compose it, retrain it, report quality and memory.

The float model is the one the repository ships in ``pretrained/`` when its key is the current
recipe's (imported into the store as ``rapidnn store import`` does); otherwise it comes from
the store, or is trained (seeded) and stored.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from rich.console import Console

from rapidnn.composer.compose import compose
from rapidnn.composer.retrain import accuracy, retrain
from rapidnn.workloads import Workload, get_workload, shipped_file
from rapidnn.workloads.store import get_trained

WORKLOAD = "mnist-mlp"  # MLP 784-512-512-10, ReLU; recipe and split in rapidnn.workloads
#: the composed model the demo writes by default (the CLI tour's later commands read it)
DEFAULT_SAVE = "mlp.rapidnn"


def import_shipped(workload: Workload, folders: list[Path] | None = None,
                   console: Console | None = None) -> Path | None:
    """Import ``workload``'s shipped float model (:func:`rapidnn.workloads.shipped_file` in
    ``folders``) into the store unless it holds it; the file used, or None
    when none is shipped with the current recipe's key."""
    from rapidnn.workloads.transfer import import_trained

    path, searched = shipped_file(workload, folders)
    if path is None:
        if console is not None:
            console.print(f"float model {workload.name}: {workload.key()}.safetensors is not "
                          f"shipped in {', '.join(map(str, searched))} (the recipe changed, or "
                          f"no checkout); taken from the store or trained", markup=False,
                          highlight=False)
        return None
    (result,) = import_trained([str(path)])
    if console is not None and result.status == "imported":
        console.print(f"float model {workload.name}: imported the shipped model {path}",
                      markup=False, highlight=False)
    return path


def run_demo(weight_clusters: int = 16, input_clusters: int = 16, max_rounds: int = 5,
             console: Console | None = None, save: str | os.PathLike[str] | None = DEFAULT_SAVE,
             pretrained: list[Path] | None = None,
             busy: Callable[[str], AbstractContextManager[Any]] | None = None,
             ) -> dict[str, Any]:
    """Run the demo and return its figures (accuracies are fractions of the test set).

    ``save``: write the retrained composed model there (a ``.rapidnn`` file; None: not
    written); ``pretrained``: folders of shipped float models (default
    :func:`rapidnn.workloads.shipped_folders`); ``busy(what)``: a context shown while a long
    step runs (a spinner)."""
    console = console or Console()
    busy = busy or (lambda _: contextlib.nullcontext())
    t0 = time.perf_counter()
    workload = get_workload(WORKLOAD)
    shipped = import_shipped(workload, pretrained, console)
    model, info = get_trained(workload, console=console)
    with busy(f"testing the float model of {WORKLOAD}"):
        splits = workload.splits()  # fresh loaders: the same batches whether or not we trained
        train, val, test = (splits.train_loader(augment=False), splits.val_loader(),
                            splits.test_loader())
        float_acc = accuracy(model, test)
    with busy(f"composing {WORKLOAD} (w={weight_clusters}, u={input_clusters})"):
        composed = compose(model, train, weight_clusters, input_clusters,
                           calibration_batches=20)
        before = accuracy(composed, test)
    result = retrain(composed, train, val, tolerance=0.003, max_rounds=max_rounds)
    after = accuracy(result.composed, test)
    if save is not None:
        result.composed.metadata.update({"dataset": workload.dataset, "workload": WORKLOAD})
        result.composed.save(save)
    mem = result.composed.memory()
    figures = {
        "weight_clusters": weight_clusters, "input_clusters": input_clusters,
        "float_accuracy": float_acc, "composed_accuracy_before_retraining": before,
        "composed_accuracy": after, "quality_loss": float_acc - after,
        "retrain_rounds": result.rounds, "bits_per_neuron": mem["bits_per_neuron"],
        "bytes_per_neuron": mem["bits_per_neuron"] / 8, "seconds": time.perf_counter() - t0,
        "float_model": info["path"], "shipped_model": None if shipped is None else str(shipped),
        "saved": None if save is None else str(Path(save).resolve()),
    }
    rounds = figures["retrain_rounds"]
    rows = [("float accuracy (test)", f"{float_acc:.4f}"),
            ("composed, before retraining", f"{before:.4f}  (quality loss "
                                            f"{100 * (float_acc - before):+.2f} points)"),
            (f"composed, after {rounds} retraining round{'' if rounds == 1 else 's'}",
             f"{after:.4f}  (quality loss {100 * (float_acc - after):+.2f} points)"),
            ("memory per neuron", f"{figures['bytes_per_neuron']:.1f} bytes "
                                  f"({mem['bits_per_neuron']:.0f} bits: tables, weight codes, "
                                  f"thresholds, bias)")]
    if save is not None:
        rows.append(("composed model written to", str(figures["saved"])))
    rows.append(("wall time", f"{figures['seconds']:.1f} s"))
    width = max(len(label) for label, _ in rows) + 2  # one value column, however long a label
    console.print(f"MNIST MLP 784-512-512-10, w = {weight_clusters}, u = {input_clusters}")
    for label, value in rows:
        console.print(f"  {label:<{width}}{value}", markup=False, highlight=False)
    return figures
