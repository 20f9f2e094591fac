"""Shared pieces of the experiments: subsets, cached retraining, machine info (the budget
is :mod:`rapidnn.budget`)."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch.utils.data import DataLoader, Dataset, Subset

from rapidnn._files import atomic_write_text
from rapidnn.budget import Budget
from rapidnn.composer.composed import ComposedModel
from rapidnn.selection import TOLERANCE
from rapidnn.workloads import Workload
from rapidnn.workloads.splits import Splits


def subset(dataset: Dataset, limit: int | None) -> Dataset:
    """``limit`` examples spread evenly over ``dataset`` (all of them if None or larger).

    Evenly spaced, not the first ``limit``: some test sets are stored sorted (CIFAR-10 by
    class, ISOLET and HAR by speaker or subject), and a prefix would hold one class only.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if limit is None or limit >= n:
        return dataset
    return Subset(dataset, [i * n // limit for i in range(limit)])


def loader(dataset: Dataset, limit: int | None = None, batch: int = 500) -> DataLoader:
    return DataLoader(subset(dataset, limit), batch_size=batch)


def parse_int_list(text: str, option: str, lo: int = 2, hi: int = 256) -> list[int]:
    """``"4,8,16"`` -> ``[4, 8, 16]`` (sorted, unique); a ValueError names ``option``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"{option}: expected a comma-separated list of integers, got {text!r}")
    values = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise ValueError(f"{option}: {p!r} is not an integer (in {text!r})") from None
        if not lo <= v <= hi:
            raise ValueError(f"{option}: {v} is out of range [{lo}, {hi}]")
        values.append(v)
    return sorted(set(values))


def machine() -> dict[str, Any]:
    """Where the experiment ran: platform, processor, CPU count, torch version and threads."""
    return {"platform": platform.platform(), "processor": platform.processor() or None,
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available()}


def write_json(path: Path, obj: Any) -> Path:
    """Write ``obj`` as JSON to a temporary file next to ``path``, then rename it into place."""
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return float(obj)


def retrained(wl: Workload, w: int, u: int, splits: Splits, budget: Budget, *,
              max_rounds: int | None = None, progress: bool = True,
              console: Console | None = None, root: str | os.PathLike[str] | None = None,
              on_compose: Callable[[], None] | None = None,
              ) -> tuple[ComposedModel, ComposedModel, dict[str, Any]]:
    """``(composed, retrained, info)`` for ``wl`` at ``(w, u)`` (``budget.recipes``' float
    model): the composed model from the store, then retrained to :data:`TOLERANCE` on the
    validation data (rounds of ``budget.train_batches`` batches, distillation from the float
    model; cached in the store, tag ``retrained``, keyed by the retraining settings).
    ``info['retrain']`` holds the retraining history; ``info['cached']`` says whether the
    retrained model was reused."""
    from rapidnn.composer.retrain import VERSION, retrain
    from rapidnn.workloads.store import composed_path, get_composed, load_composed, save_composed

    rounds = budget.max_rounds if max_rounds is None else max_rounds
    least = min(budget.min_rounds, rounds)
    if on_compose is not None:
        on_compose()
    composed, _ = get_composed(wl, w, u, budget.recipes, progress, root=root, console=console)
    opts = {"weight_clusters": w, "input_clusters": u, "calibration_batches": 20,
            "retrain": {"version": VERSION, "tolerance": TOLERANCE, "max_rounds": rounds,
                        "min_rounds": least, "round_batches": budget.train_batches,
                        "loss": "distill", "lr": wl.retrain_lr,
                        "val_images": budget.val_images}}
    hit = load_composed(wl, opts, budget.recipes, root, tag="retrained")
    if hit is not None:
        path = composed_path(wl, opts, budget.recipes, root, tag="retrained")
        try:
            meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        if "retrain" in meta:
            return composed, hit, {"retrain": meta["retrain"], "cached": True,
                                   "path": str(path)}
    val = loader(splits.val, budget.val_images, batch=1000)
    result = retrain(composed, splits.train_loader(), val, tolerance=TOLERANCE,
                     max_rounds=rounds, min_rounds=least, round_batches=budget.train_batches,
                     loss="distill", lr=wl.retrain_lr, progress=progress, console=console)
    best = result.composed
    best.metadata = {**composed.metadata, "workload": wl.name, "dataset": wl.dataset}
    info = {"retrain": result.to_dict()}
    path = save_composed(best, wl, opts, budget.recipes, root, tag="retrained", meta=info)
    return composed, best, {**info, "cached": False, "path": str(path)}
