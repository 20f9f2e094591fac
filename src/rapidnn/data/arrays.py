"""A user's data given as a NumPy ``.npz`` file: inputs (and optionally labels) for the
``compose`` command's calibration and any command that takes data as files.

The file is read with ``allow_pickle=False`` (an object array is refused, never unpickled).
Inputs are the array named ``x`` (or the only array in the file); labels, where present, the
array named ``y``. Every problem is one :class:`~rapidnn.data.DatasetError` naming the file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ._registry import DatasetError

INPUTS = "x"
LABELS = "y"


def read_npz(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """``(inputs, labels or None)`` from the ``.npz`` file at ``path``: inputs as finite
    float32 with a batch dimension first, labels as int64 of the same length."""
    shown = os.fspath(path)
    p = Path(shown)
    if not p.is_file():
        raise DatasetError(f"{shown}: no such file" if not p.exists() else
                           f"{shown}: not a file")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        reason = "holds object arrays (rapidnn never unpickles)" if "pickle" in str(exc) \
            else f"not a readable .npz file ({type(exc).__name__})"
        raise DatasetError(f"{shown}: {reason}") from exc
    if INPUTS in arrays:
        x = arrays[INPUTS]
    elif len(arrays) == 1:
        x = next(iter(arrays.values()))
    else:
        names = ", ".join(sorted(arrays)) or "none"
        raise DatasetError(f"{shown}: no array named {INPUTS!r} (the inputs) among {names}")
    x = _inputs(shown, x)
    y = arrays.get(LABELS) if INPUTS in arrays else None
    return x, None if y is None else _labels(shown, y, len(x))


def _inputs(shown: str, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind not in "fiub":
        raise DatasetError(f"{shown}: inputs of dtype {x.dtype}; expected numbers")
    if x.ndim < 2 or x.shape[0] == 0:
        raise DatasetError(f"{shown}: inputs of shape {x.shape}; expected a batch dimension "
                           f"first (N, features...) with N >= 1")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DatasetError(f"{shown}: inputs hold NaN or infinite values")
    return x


def _labels(shown: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != n:
        raise DatasetError(f"{shown}: labels {LABELS!r} must be {n} integers (one per input), "
                           f"not {y.dtype} of shape {y.shape}")
    if (y < 0).any():
        raise DatasetError(f"{shown}: labels must be class indices >= 0")
    return y.astype(np.int64)
