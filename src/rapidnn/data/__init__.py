"""Offline dataset loaders: MNIST, Fashion-MNIST, ISOLET, HAR (raw HAPT windows) and CIFAR-10.

The source files live in a *datasets folder* (:func:`datasets_root`), one sub-folder per
dataset with a ``README.md`` (provenance) and a ``SHA256SUMS``. Nothing is ever downloaded.

The first :func:`load` of a split checks every source file against ``SHA256SUMS``, decodes it
and stores the arrays in the cache folder (:func:`cache_root`) as a plain ``.npz`` (no pickle).
The cache key contains the sources' sha256. Later loads read the cache without hashing the
sources, as long as each source still has the size and mtime recorded with the entry (otherwise
it is hashed again before the cache is trusted).

A missing or corrupt input raises :class:`DatasetError` naming the file, where it came from
(its README line) and what to do.

Example::

    from rapidnn import data
    ds = data.load("mnist", "test")          # Dataset(x uint8 (10000,28,28), y int64)
    x, y = data.as_tensors(ds)               # float32 (10000,1,28,28) in [0,1], int64
    batches = data.loader("har", "train", batch_size=64, seed=0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import _cache
from ._decoders import DECODERS, Arrays, har_window_starts
from ._registry import (
    DATASETS,
    ENV_CACHE,
    ENV_DATA,
    HAR_STEP,
    HAR_TEST_SUBJECTS,
    HAR_WINDOW,
    DatasetError,
    DatasetSpec,
    dataset_error,
    get_spec,
)

if TYPE_CHECKING:
    import torch
    from torch.utils.data import DataLoader

__all__ = [
    "DATASETS",
    "HAR_STEP",
    "HAR_TEST_SUBJECTS",
    "HAR_WINDOW",
    "Dataset",
    "DatasetError",
    "DatasetSpec",
    "as_tensors",
    "cache_root",
    "datasets_root",
    "har_window_starts",
    "load",
    "loader",
]


@dataclass(frozen=True, eq=False)
class Dataset:
    """One decoded split: ``x`` in its raw dtype (see :func:`load`), ``y`` int64 in 0..K-1,
    ``classes[k]`` the name of label ``k``."""

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, x={self.x.dtype}{self.x.shape}, "
            f"y={self.y.dtype}{self.y.shape}, classes={len(self.classes)})"
        )


def _find_shared_datasets(start: Path) -> Path | None:
    """The first ``<ancestor>/shared/datasets`` folder walking up from ``start``."""
    start = start.resolve()
    for folder in (start, *start.parents):
        candidate = folder / "shared" / "datasets"
        if candidate.is_dir():
            return candidate
    return None


def datasets_root() -> Path:
    """The datasets folder: ``$RAPIDNN_DATA`` if set, else the first ``shared/datasets`` found
    walking up from this package's location, then from the current directory (in a checkout:
    ``<repo root>/../shared/datasets``). Raises :class:`DatasetError` if none is found."""
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    starts = (Path(__file__).parent, Path.cwd())
    for start in starts:
        found = _find_shared_datasets(start)
        if found is not None:
            return found
    raise DatasetError(
        "no datasets folder found: looked for shared/datasets above "
        + " and above ".join(str(s) for s in starts)
        + f"; set {ENV_DATA} to the folder holding mnist/, fashion_mnist/, isolet/, "
        "hapt_raw/ and cifar10_jpg/"
    )


def cache_root() -> Path:
    """The decoded-array cache folder: ``$RAPIDNN_CACHE`` if set, else
    ``platformdirs.user_cache_dir("rapidnn")/data``."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("rapidnn")) / "data"


def _decode(spec: DatasetSpec, split: str, files: list[Path]) -> Arrays:
    return DECODERS[spec.decoder](spec, split, files)


def load(
    name: str,
    split: str = "train",
    *,
    root: str | os.PathLike[str] | None = None,
    cache: bool = True,
) -> Dataset:
    """Load one split (``"train"`` or ``"test"``) of a dataset in :data:`DATASETS`.

    ``x`` is uint8 (N,28,28) for ``mnist``/``fashion_mnist``; float32 (N,617) for ``isolet``
    (train = isolet1, 1,560 rows; test = official isolet5, 1,559 rows); float32 (N,128,6)
    windows for ``har`` (columns acc-xyz in g, gyro-xyz in rad/s; test = the 9 UCI-HAR test
    subjects); uint8 (N,32,32,3) RGB for ``cifar10`` (sorted by class, then file name).
    ``y`` is int64 in 0..K-1 with names ``classes``. ``root`` overrides :func:`datasets_root`;
    ``cache=False`` neither reads nor writes the cache.
    """
    spec = get_spec(name, split)
    base = Path(root) if root is not None else datasets_root()
    folder = base / spec.folder
    files = [folder / f for f in spec.splits[split]]
    for p in files:
        if not p.is_file():
            env = os.environ.get(ENV_DATA)
            where = f"{ENV_DATA}={env}" if env and root is None else f"datasets folder {base}"
            raise dataset_error(spec, p, f"file not found ({where})")
    sums = _cache.read_sums(spec, folder)
    for p in files:
        if p.name not in sums:
            raise dataset_error(spec, p, f"file not listed in {folder / 'SHA256SUMS'}")
    verified: set[Path] = set()
    entry = _cache.entry_path(cache_root(), spec, split, files, sums) if cache else None
    if entry is not None:
        hit = _cache.read_entry(spec, entry, files, sums, verified)
        if hit is not None:
            return Dataset(spec.name, split, hit[0], hit[1], spec.classes)
    for p in files:
        if p not in verified:
            _cache.verify(spec, p, sums[p.name])
    x, y = _decode(spec, split, files)
    y = y.astype(np.int64, copy=False)
    if entry is not None:
        _cache.write_entry(entry, x, y, files, sums)
    return Dataset(spec.name, split, x, y, spec.classes)


def as_tensors(ds: Dataset, normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` as new float32 / int64 torch tensors in channel-first layout.

    MNIST-like images become (N,1,28,28) and CIFAR-10 (N,3,32,32), scaled to [0,1] if
    ``normalize`` (else left at 0..255). ISOLET stays (N,617); HAR windows become (N,6,128)
    (channels first, as ``torch.nn.Conv1d`` expects). ``normalize`` does not change ISOLET or
    HAR values.
    """
    import torch

    spec = DATASETS.get(ds.name)
    if spec is None:
        raise DatasetError(f"unknown dataset {ds.name!r}; valid names: {', '.join(DATASETS)}")
    x = torch.from_numpy(np.array(ds.x, dtype=np.float32))
    if spec.layout == "gray":
        x = x.unsqueeze(1)
    elif spec.layout == "rgb":
        x = x.permute(0, 3, 1, 2).contiguous()
    elif spec.layout == "sequence":
        x = x.transpose(1, 2).contiguous()
    if normalize and spec.layout in ("gray", "rgb"):
        x.div_(255.0)
    return x, torch.from_numpy(np.array(ds.y, dtype=np.int64))


def loader(
    name: str,
    split: str = "train",
    batch_size: int = 128,
    shuffle: bool | None = None,
    seed: int = 0,
    *,
    normalize: bool = True,
    drop_last: bool = False,
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """A ``DataLoader`` of ``(x, y)`` batches from :func:`as_tensors` of :func:`load`.

    ``shuffle`` defaults to ``split == "train"``. Shuffling draws from a ``torch.Generator``
    seeded with ``seed``: two loaders built with the same seed give the same batches epoch by
    epoch, independent of the global torch RNG.
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    x, y = as_tensors(load(name, split), normalize=normalize)
    return DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=split == "train" if shuffle is None else shuffle,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
    )
