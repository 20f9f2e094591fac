"""Seeded float training and the cache of trained float models.

Trained weights are stored with safetensors next to a JSON file holding the recipe; the file
name carries a hash of the recipe, so a changed recipe never reuses stale weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from rapidnn.data import cache_root


def recipe_key(name: str, recipe: dict[str, Any]) -> str:
    """``name-<12 hex digits>`` identifying a training recipe."""
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}-{digest}"


def models_root() -> Path:
    """Where trained float models are cached (next to the data cache)."""
    return cache_root().parent / "models"


def load_cached(model: nn.Module, key: str) -> bool:
    """Fill ``model`` from the cache entry ``key``; False if there is none (or it is stale)."""
    path = models_root() / f"{key}.safetensors"
    if not path.is_file():
        return False
    try:
        model.load_state_dict(load_file(str(path)))
    except (RuntimeError, OSError, ValueError):
        return False  # a corrupt or incompatible cache entry is retrained and overwritten
    return True


def save_cached(model: nn.Module, key: str, meta: dict[str, Any]) -> Path:
    """Write ``model``'s weights and ``meta`` atomically under ``key``."""
    root = models_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{key}.safetensors"
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=root, suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"recipe": json.dumps(meta, sort_keys=True)})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
