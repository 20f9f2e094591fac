"""Seeded float training of a workload recipe.

With ``optimizer="adam"`` this is step for step the loop of :func:`rapidnn.workloads.training.train`
(Adam, cosine learning-rate decay per step, the global torch seed set first), so a workload
trained here and the demo's model agree; ``optimizer="sgd"`` uses SGD with (Nesterov)
momentum and the same per-step cosine schedule. ``schedule="swa"`` trains at a constant
learning rate and returns the average of the weights at the ends of the epochs, with BatchNorm
statistics recomputed for it (stochastic weight averaging, Izmailov et al. 2018, through
:mod:`torch.optim.swa_utils`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from rapidnn.workloads.checkpoint import TrainingState
from rapidnn.workloads.recipe import Recipe

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
        max_steps: int | None = None, *,
        generators: Sequence[torch.Generator] = (),
        resume: TrainingState | None = None,
        on_epoch: Callable[[TrainingState], None] | None = None) -> list[float]:
    """Train ``model`` on ``batches`` (re-iterated every epoch) for ``recipe.epochs`` epochs;
    returns the mean loss per epoch. ``on_batch(epoch, batch_index, loss)`` reports progress;
    ``max_steps`` stops early (for timing), the schedule still spans the full recipe.

    ``on_epoch(state)`` receives a copy of the complete training state after every epoch, and
    ``resume`` continues from such a state: the model, optimizer, learning-rate schedule, the
    global torch RNG (dropout) and ``generators`` (the loader's shuffling and augmentation
    streams, :func:`rapidnn.workloads.splits.loader_generators`) are restored, so a resumed
    training ends with the same weights as an uninterrupted one. ``recipe.precision="bf16"``
    computes the forward pass (and so the backward) under bfloat16 autocast.
    ``recipe.schedule="swa"``: constant learning rate; ``model`` ends as the mean of its
    weights after every epoch, BatchNorm statistics recomputed on ``batches``."""
    torch.manual_seed(recipe.seed)
    opt = make_optimizer(model, recipe)
    per_epoch = len(batches)  # type: ignore[arg-type]
    averaged = AveragedModel(model) if recipe.schedule == "swa" else None
    sched = _scheduler(opt, recipe, per_epoch)
    history: list[float] = []
    resumed_at: list[int] = []
    start, elapsed = 0, 0.0
    if resume is not None:
        if len(resume.loader_rng) != len(generators):
            raise ValueError(f"the training state has {len(resume.loader_rng)} loader "
                             f"generator(s), the loader {len(generators)}")
        model.load_state_dict(resume.model)
        opt.load_state_dict(resume.optimizer)
        sched.load_state_dict(resume.scheduler)
        if averaged is not None:
            averaged.load_state_dict(resume.averaged)
        torch.set_rng_state(resume.rng)
        for gen, state in zip(generators, resume.loader_rng, strict=True):
            gen.set_state(state)
        start, elapsed = resume.epoch, resume.seconds
        history = list(resume.history)
        resumed_at = [*resume.resumed_at, resume.epoch]
    done = start * per_epoch
    t0 = time.perf_counter()
    mixed = recipe.precision == "bf16"
    model.train()
    for epoch in range(start, recipe.epochs):
        losses: list[float] = []
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=mixed):
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
        complete = len(losses) == per_epoch
        if averaged is not None and complete:
            averaged.update_parameters(model)
        if on_epoch is not None and complete:
            on_epoch(TrainingState(
                epoch=epoch + 1, history=list(history),
                seconds=elapsed + time.perf_counter() - t0,
                model=_state(model),
                optimizer=copy.deepcopy(opt.state_dict()),
                scheduler=sched.state_dict(), rng=torch.get_rng_state(),
                loader_rng=[g.get_state() for g in generators], resumed_at=resumed_at,
                averaged=_state(averaged)))
        if max_steps is not None and done >= max_steps:
            break
    if averaged is not None and int(averaged.n_averaged) > 0:
        model.load_state_dict(averaged.module.state_dict())
        with torch.no_grad():
            update_bn(batches, model)
    model.eval()
    return history


def _scheduler(opt: torch.optim.Optimizer, recipe: Recipe,
               per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step cosine decay to 0 over the recipe, or a constant rate for ``"swa"``."""
    if recipe.schedule == "swa":
        return torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, recipe.epochs * per_epoch))


def _state(module: nn.Module | None) -> dict[str, torch.Tensor]:
    """A detached copy of ``module``'s state dict (empty for None)."""
    return {} if module is None else {k: v.detach().clone()
                                      for k, v in module.state_dict().items()}
