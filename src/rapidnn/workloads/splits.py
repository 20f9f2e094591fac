"""Seeded train/validation/test splits of the workloads' datasets, and training augmentation.

The validation part is always held out of the dataset's *training* split (the official test
split stays untouched). How it is held out is part of the recipe (:class:`Recipe.val_unit`):

* ``"example"``: ``val`` examples drawn by a seeded permutation (MNIST, Fashion-MNIST,
  CIFAR-10);
* ``"per_class"``: ``val`` examples of every class, seeded;
* ``"speaker"``: both utterances of every letter of ``val`` seeded speakers (ISOLET: 3 of
  the 30 isolet1 speakers, 156 rows), so validation is speaker-disjoint like the test set;
* ``"subject"``: all windows of ``val`` training subjects, seeded (HAR: overlapping windows of
  one subject are near-duplicates, so a per-window split would leak into the validation set).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from rapidnn import data
from rapidnn.workloads.recipe import Recipe, WorkloadError

__all__ = [
    "Splits",
    "augment_crop_flip",
    "har_train_subjects",
    "isolet_speakers",
    "load_splits",
    "loader_generators",
]


@dataclass
class Splits:
    """Train / validation / test tensors of one recipe and their loaders.

    ``train_loader()`` shuffles with a ``torch.Generator`` seeded by the recipe's seed (and
    applies the recipe's augmentation), so two calls give the same batches.
    """

    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    batch: int
    seed: int = 0
    augment: str | None = None

    def train_loader(self, augment: bool = True) -> AugmentedLoader | DataLoader:
        """Shuffled, seeded training batches (augmented unless ``augment=False``)."""
        loader = DataLoader(self.train, batch_size=self.batch, shuffle=True,
                            generator=torch.Generator().manual_seed(self.seed))
        if augment and self.augment:
            return AugmentedLoader(loader, self.augment, self.seed + 1)
        return loader

    def val_loader(self, batch: int = 1000) -> DataLoader:
        return DataLoader(self.val, batch_size=batch)

    def test_loader(self, batch: int = 1000) -> DataLoader:
        return DataLoader(self.test, batch_size=batch)

    def calibration(self, batches: int = 20) -> list[torch.Tensor]:
        """``batches`` seeded, shuffled, un-augmented training input batches (for composing)."""
        out = []
        for x, _ in self.train_loader(augment=False):
            out.append(x)
            if len(out) >= batches:
                break
        return out

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


class AugmentedLoader:
    """Wraps a loader of ``(x, y)`` batches and augments ``x`` with a seeded generator whose
    stream continues across epochs (the whole training run is reproducible)."""

    def __init__(self, loader: DataLoader, kind: str, seed: int) -> None:
        if kind not in AUGMENTATIONS:
            raise ValueError(f"unknown augmentation {kind!r}; known: {', '.join(AUGMENTATIONS)}")
        self.loader = loader
        self.kind = kind
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        fn = AUGMENTATIONS[self.kind]
        for x, y in self.loader:
            yield fn(x, self.generator), y


def loader_generators(loader: object) -> list[torch.Generator]:
    """The random generators a training loader from :meth:`Splits.train_loader` draws from
    (augmentation, then shuffling): the state a resumed training must restore."""
    gens: list[torch.Generator] = []
    while loader is not None:
        gen = getattr(loader, "generator", None)
        if isinstance(gen, torch.Generator):
            gens.append(gen)
        loader = getattr(loader, "loader", None)
    return gens


def augment_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random ``pad``-pixel-shift crop (zero padding) and random horizontal flip of a batch
    (N,C,H,W) — the standard CIFAR augmentation."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
    cols = ox[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                  rows, cols]


AUGMENTATIONS = {"crop4-flip": augment_crop_flip}


def _tensors(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data.as_tensors(data.load(name, split))
    if name == "har":  # (N, 6, 128) -> (N, 6, 1, 128): a 1-row image for Conv2d
        x = x.unsqueeze(2)
    return x, y


def har_train_subjects(n_windows: int | None = None) -> np.ndarray:
    """Subject id of every window of ``data.load("har", "train")``, in the same order (recomputed
    from the raw HAPT arrays with :func:`rapidnn.data.har_window_starts`)."""
    spec = data.DATASETS["har"]
    path = data.datasets_root() / spec.folder / spec.splits["train"][0]
    with np.load(path, allow_pickle=False) as npz:
        label, user = npz["label"].astype(np.int64), npz["user"]
        starts = data.har_window_starts(label, npz["experiment"], npz["sample"])
    users = user[starts].astype(np.int64)
    users = users[~np.isin(users, sorted(data.HAR_TEST_SUBJECTS))]
    if n_windows is not None and len(users) != n_windows:
        raise WorkloadError(f"HAR subject ids of {path} give {len(users)} training windows, "
                            f"the loaded training split has {n_windows}")
    return users


def isolet_speakers(y: torch.Tensor) -> torch.Tensor:
    """Speaker index (0..29) of every row of the ISOLET training file: rows are sorted by class,
    and inside a class rows ``2i`` and ``2i+1`` are the two utterances of speaker ``i`` (each is
    the other's nearest neighbour far more often than chance); speaker ``i`` is assumed to be
    the same person in every class (stable sort of the speaker-major UCI file)."""
    pos = torch.zeros(len(y), dtype=torch.int64)
    for k in torch.unique(y):
        idx = torch.nonzero(y == k).flatten()
        pos[idx] = torch.arange(len(idx))
    return pos // 2


def _val_indices(recipe: Recipe, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_idx, val_idx)`` of the training split (train_idx in a seeded random order)."""
    gen = torch.Generator().manual_seed(recipe.seed)
    n = len(y)
    if recipe.val_unit == "example":
        perm = torch.randperm(n, generator=gen)
        return perm[recipe.val:], perm[:recipe.val]
    if recipe.val_unit == "per_class":
        perm = torch.randperm(n, generator=gen)
        taken: dict[int, int] = {}
        is_val = torch.zeros(n, dtype=torch.bool)
        for i in perm.tolist():
            k = int(y[i])
            if taken.get(k, 0) < recipe.val:
                taken[k] = taken.get(k, 0) + 1
                is_val[i] = True
        return perm[~is_val[perm]], perm[is_val[perm]]
    if recipe.val_unit == "speaker":
        speakers = isolet_speakers(y)
        chosen = torch.randperm(int(speakers.max()) + 1, generator=gen)[:recipe.val]
        perm = torch.randperm(n, generator=gen)
        is_val = torch.isin(speakers, chosen)
        return perm[~is_val[perm]], perm[is_val[perm]]
    if recipe.val_unit == "subject":
        subjects = torch.from_numpy(har_train_subjects(n))
        ids = torch.unique(subjects)
        chosen = ids[torch.randperm(len(ids), generator=gen)[:recipe.val]]
        perm = torch.randperm(n, generator=gen)
        is_val = torch.isin(subjects, chosen)
        return perm[~is_val[perm]], perm[is_val[perm]]
    raise ValueError(f"unknown val_unit {recipe.val_unit!r}")


def load_splits(recipe: Recipe) -> Splits:
    """The train/validation/test split a recipe trains and evaluates on."""
    x, y = _tensors(recipe.dataset, "train")
    xt, yt = _tensors(recipe.dataset, "test")
    tr, va = _val_indices(recipe, y)
    if recipe.normalize == "channel":  # per-channel standardisation, training-part statistics
        dims = [0, *range(2, x.dim())]
        mean = x[tr].mean(dim=dims, keepdim=True)
        std = x[tr].std(dim=dims, keepdim=True).clamp_min(1e-6)
        x = (x - mean) / std
        xt = (xt - mean) / std
    elif recipe.normalize is not None:
        raise ValueError(f"unknown normalize {recipe.normalize!r}")
    if recipe.train_subset is not None:
        tr = tr[:recipe.train_subset]
    return Splits(TensorDataset(x[tr], y[tr]), TensorDataset(x[va], y[va]),
                  TensorDataset(xt, yt), recipe.batch, recipe.seed, recipe.augment)
