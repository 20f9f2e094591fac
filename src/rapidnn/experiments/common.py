"""Shared pieces of the experiments: budgets, subsets, cached retraining, machine info."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch.utils.data import DataLoader, Dataset, Subset

from rapidnn._files import atomic_write_text
from rapidnn.composer.composed import ComposedModel
from rapidnn.selection import TOLERANCE
from rapidnn.workloads import Workload
from rapidnn.workloads.splits import Splits


@dataclass(frozen=True)
class Budget:
    """How much data each step uses (None = all of it).

    ``test_images``: test examples for float and composed accuracy (both on the same ones);
    ``val_images``: validation examples checked by retraining; ``train_batches``: training
    batches per retraining round (None: one epoch); ``max_rounds`` / ``min_rounds``: retraining
    rounds at most / at least (at least one: a point the experiments retrain is fine-tuned);
    ``sim_images`` / ``approx_images``: test examples run on the accelerator simulator (exact /
    approximate-search sweep).
    """

    test_images: int | None = None
    val_images: int | None = None
    train_batches: int | None = None
    sim_images: int | None = 2000
    approx_images: int | None = 500
    max_rounds: int = 4
    min_rounds: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: rounds of 100 batches (12,800 CIFAR-10 images, about a quarter epoch; 4 rounds bound a
#: CIFAR-10 point to about 7 minutes of VGG retraining on two cores)
FULL = Budget(train_batches=100, max_rounds=4)
QUICK = Budget(test_images=1000, val_images=500, train_batches=20, sim_images=128,
               approx_images=128, max_rounds=1)


def budget_for(quick: bool) -> Budget:
    return QUICK if quick else FULL


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


def retrained(wl: Workload, w: int, u: int, quick: bool, splits: Splits, budget: Budget, *,
              max_rounds: int | None = None, progress: bool = True,
              console: Console | None = None, root: str | os.PathLike[str] | None = None,
              on_compose: Callable[[], None] | None = None,
              ) -> tuple[ComposedModel, ComposedModel, dict[str, Any]]:
    """``(composed, retrained, info)`` for ``wl`` at ``(w, u)``: the composed model from the
    store, then retrained to :data:`TOLERANCE` on the validation data (rounds of
    ``budget.train_batches`` batches, distillation from the float model; cached in the store,
    tag ``retrained``, keyed by the retraining settings). ``info['retrain']`` holds the
    retraining history; ``info['cached']`` says whether the retrained model was reused."""
    from rapidnn.composer.retrain import VERSION, retrain
    from rapidnn.workloads.store import composed_path, get_composed, load_composed, save_composed

    rounds = budget.max_rounds if max_rounds is None else max_rounds
    least = min(budget.min_rounds, rounds)
    if on_compose is not None:
        on_compose()
    composed, _ = get_composed(wl, w, u, quick, progress, root=root, console=console)
    opts = {"weight_clusters": w, "input_clusters": u, "calibration_batches": 20,
            "retrain": {"version": VERSION, "tolerance": TOLERANCE, "max_rounds": rounds,
                        "min_rounds": least, "round_batches": budget.train_batches,
                        "loss": "distill", "lr": wl.retrain_lr,
                        "val_images": budget.val_images}}
    hit = load_composed(wl, opts, quick, root, tag="retrained")
    if hit is not None:
        path = composed_path(wl, opts, quick, root, tag="retrained")
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
    path = save_composed(best, wl, opts, quick, root, tag="retrained", meta=info)
    return composed, best, {**info, "cached": False, "path": str(path)}
