"""Seeded float-training recipes (:class:`Recipe`) and the workloads' error type.

A recipe is what the trained-model store hashes into its keys (:meth:`Recipe.key_dict`); it
sits below the splits, the training loop and the workload registry, which all read it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


class WorkloadError(ValueError):
    """An unknown workload or shape-network name, or a workload that cannot be prepared."""


@dataclass(frozen=True)
class Recipe:
    """A seeded float-training recipe.

    ``val`` counts what is held out of the training split for validation, in ``val_unit``s
    (``"example"``, ``"per_class"`` examples of every class, ``"speaker"`` or ``"subject"``; see
    :mod:`rapidnn.workloads.splits`). ``normalize="channel"`` standardises every input channel
    with the training part's mean and std. ``train_subset`` keeps only the first N training
    examples (quick recipes). Learning rate follows a per-step cosine decay to 0.
    ``precision="bf16"`` runs the forward pass under bfloat16 autocast (mixed precision: the
    weights, gradients and optimizer state stay float32), about twice as fast on CPUs with
    AVX512-BF16 or AMX and on GPUs; the trained model is float32 either way.

    ``warm_start`` names another recipe of the same workload and split: training starts from
    that recipe's trained model (from the store, or trained first) and runs this recipe's
    epochs as a new cosine cycle, a warm restart (SGDR, Loshchilov & Hutter 2017). The base
    recipe is part of the cache key, so the result is reproducible from scratch.

    ``schedule="swa"`` replaces the cosine decay by stochastic weight averaging (Izmailov et al.
    2018, "Averaging Weights Leads to Wider Optima and Better Generalization"): a constant
    learning rate ``lr``, the running mean of the weights at the end of every epoch, and the
    BatchNorm statistics recomputed for the mean with one pass over the training batches. It
    is meant for a second cycle from a trained model (``warm_start``).
    """

    model: str
    dataset: str
    epochs: int
    lr: float
    batch: int
    val: int
    seed: int = 0
    val_unit: str = "example"
    optimizer: str = "adam"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    augment: str | None = None
    normalize: str | None = None
    train_subset: int | None = None
    precision: str = "fp32"
    warm_start: Recipe | None = None
    schedule: str = "cosine"

    #: Fields always part of the cache key; the others only when they differ from the default.
    BASE_FIELDS = ("model", "dataset", "epochs", "lr", "batch", "val", "seed")

    def key_dict(self) -> dict[str, Any]:
        """The recipe as the dict that is hashed into the cache key: the base fields plus every
        other field that is not at its default (so the MNIST MLP's key is the demo's)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self.BASE_FIELDS or value != f.default:
                out[f.name] = value.key_dict() if isinstance(value, Recipe) else value
        return out

    def replace(self, **changes: Any) -> Recipe:
        return dataclasses.replace(self, **changes)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r} ({', '.join(PRECISIONS)})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r} ({', '.join(SCHEDULES)})")
        base = self.warm_start
        if base is not None and any(getattr(base, f) != getattr(self, f) for f in SPLIT_FIELDS):
            raise ValueError(f"warm_start recipe must share the split fields {SPLIT_FIELDS}")


#: Training precisions of :attr:`Recipe.precision`.
PRECISIONS = ("fp32", "bf16")

#: Learning-rate schedules of :attr:`Recipe.schedule`.
SCHEDULES = ("cosine", "swa")

#: Recipe fields that define the data split and input normalisation (a warm start keeps them).
SPLIT_FIELDS = ("model", "dataset", "val", "val_unit", "seed", "normalize", "train_subset")
