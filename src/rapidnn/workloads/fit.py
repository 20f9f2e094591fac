"""Seeded float training of a workload recipe.

With ``optimizer="adam"`` this is step for step the loop of :func:`rapidnn.training.train`
(Adam, cosine learning-rate decay per step, the global torch seed set first), so a workload
trained here and the demo's model agree; ``optimizer="sgd"`` uses SGD with (Nesterov)
momentum and the same per-step cosine schedule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from rapidnn.workloads import Recipe

__all__ = ["fit", "make_optimizer"]


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=recipe.lr,
                                weight_decay=recipe.weight_decay)
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                               nesterov=recipe.nesterov and recipe.momentum > 0,
                               weight_decay=recipe.weight_decay)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r} (adam, sgd)")


def fit(model: nn.Module, batches: Iterable[Any], recipe: Recipe,
        on_batch: Callable[[int, int, float], None] | None = None,
        max_steps: int | None = None) -> list[float]:
    """Train ``model`` on ``batches`` (re-iterated every epoch) for ``recipe.epochs`` epochs;
    returns the mean loss per epoch. ``on_batch(epoch, batch_index, loss)`` reports progress;
    ``max_steps`` stops early (for timing), the schedule still spans the full recipe."""
    torch.manual_seed(recipe.seed)
    opt = make_optimizer(model, recipe)
    steps = recipe.epochs * len(batches)  # type: ignore[arg-type]
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    history: list[float] = []
    done = 0
    model.train()
    for epoch in range(recipe.epochs):
        losses: list[float] = []
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y, label_smoothing=recipe.label_smoothing)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            done += 1
            if on_batch is not None:
                on_batch(epoch, len(losses), losses[-1])
            if max_steps is not None and done >= max_steps:
                break
        history.append(sum(losses) / len(losses))
        if max_steps is not None and done >= max_steps:
            break
    model.eval()
    return history
