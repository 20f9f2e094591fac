"""Seeded float training, and the recipe keys and folder of the trained-model store.

The store itself is :mod:`rapidnn.workloads.store`; its file names carry a hash of the recipe,
so a changed recipe never reuses stale weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rapidnn.data import ENV_CACHE, cache_root


def recipe_key(name: str, recipe: dict[str, Any]) -> str:
    """``name-<12 hex digits>`` identifying a training recipe."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def models_root() -> Path:
    """Where trained float models are cached: ``$RAPIDNN_CACHE/models`` when that variable is
    set (everything stays inside the folder it names), else ``<user cache>/rapidnn/models``
    beside the decoded datasets."""
    root = cache_root()
    return root / "models" if os.environ.get(ENV_CACHE) else root.parent / "models"


def train(model: nn.Module, data: Iterable[Any], epochs: int, lr: float = 1e-3,
          weight_decay: float = 0.0, seed: int = 0,
          on_batch: Callable[[int, int], None] | None = None) -> list[float]:
    """Train with Adam and a cosine learning-rate schedule; returns the mean loss per epoch."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * len(data)  # type: ignore[arg-type]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    history = []
    model.train()
    for epoch in range(epochs):
        history.append(fit_epoch(model, data, opt, sched,
                                 None if on_batch is None else lambda i, e=epoch: on_batch(e, i)))
    model.eval()
    return history


def fit_epoch(model: nn.Module, data: Iterable[Any], opt: torch.optim.Optimizer,
              sched: torch.optim.lr_scheduler.LRScheduler | None = None,
              on_batch: Callable[[int], None] | None = None) -> float:
    """One epoch of cross-entropy training; returns the mean loss. ``on_batch(i)`` after each."""
    losses = []
    for x, y in data:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        if on_batch is not None:
            on_batch(len(losses))
    return sum(losses) / max(1, len(losses))
