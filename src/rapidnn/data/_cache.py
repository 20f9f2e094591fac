"""SHA256SUMS verification and the on-disk cache of decoded arrays.

A cache entry is ``<name>-<split>-v<version>-<key>.npz`` (arrays ``x`` and ``y``, written with
``numpy.savez``, read with ``allow_pickle=False``) plus a ``.json`` sidecar recording each source
file's full sha256, size and mtime. ``key`` is the first 16 hex digits of each source's sha256 as
listed in SHA256SUMS, so a changed checksum selects a different entry. Both files are written
to a temp file and moved into place with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from rapidnn._files import atomic_write, atomic_write_text

from ._registry import DatasetSpec, dataset_error

CACHE_VERSION = 1


def read_sums(spec: DatasetSpec, folder: Path) -> dict[str, str]:
    """Parse ``folder/SHA256SUMS`` (``<hex>  <name>`` lines) into ``{name: sha256}``."""
    path = folder / "SHA256SUMS"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise dataset_error(spec, path, f"cannot read the checksum list ({reason})") from None
    sums: dict[str, str] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\s*([0-9a-fA-F]{64})\s+\*?(.+?)\s*", line)
        if m:
            sums[m.group(2)] = m.group(1).lower()
    return sums


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(spec: DatasetSpec, path: Path, expected: str) -> None:
    """Raise :class:`DatasetError` unless ``path`` hashes to ``expected``."""
    try:
        got = sha256_file(path)
    except OSError as exc:
        raise dataset_error(spec, path, f"cannot read file ({exc.strerror or exc})") from None
    if got != expected:
        raise dataset_error(
            spec,
            path,
            f"checksum mismatch (SHA256SUMS says {expected}, file hashes to {got}); "
            "the file is corrupt, truncated or was replaced",
        )


def entry_path(
    root: Path, spec: DatasetSpec, split: str, files: list[Path], sums: dict[str, str]
) -> Path:
    """``<root>/<name>-<split>-v<version>-<sha256[:16] of each source>.npz``."""
    key = "-".join(sums[p.name][:16] for p in files)
    return root / f"{spec.name}-{split}-v{CACHE_VERSION}-{key}.npz"


def _write_arrays(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """Write a cache entry atomically, through a file object: given a file name, ``np.savez``
    would append ``.npz`` to the temporary file's name."""
    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, x=x, y=y)

    atomic_write(path, to_file)


def _fingerprint(files: list[Path], sums: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for p in files:
        st = p.stat()
        out.append(
            {"file": p.name, "sha256": sums[p.name], "size": st.st_size,
             "mtime_ns": st.st_mtime_ns}
        )
    return out


def read_entry(
    spec: DatasetSpec, entry: Path, files: list[Path], sums: dict[str, str], verified: set[Path]
) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached ``(x, y)``, or None if there is no valid entry. A source whose size or mtime
    differs from the recorded one is re-hashed first (and added to ``verified``); a mismatch
    raises :class:`DatasetError` as on a first load."""
    meta_path = entry.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        recorded = {s["file"]: s for s in meta["sources"]}
        if meta.get("version") != CACHE_VERSION or set(recorded) != {p.name for p in files}:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    current = _fingerprint(files, sums)
    stale = False
    for p, now in zip(files, current, strict=True):
        if recorded[p.name] != now:
            if p not in verified:
                verify(spec, p, sums[p.name])
                verified.add(p)
            stale = True
    try:
        with np.load(entry, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if y.dtype != np.int64 or y.ndim != 1 or len(x) != len(y):
        return None
    if stale:  # sources verified again: record their new size/mtime
        meta["sources"] = current
        with contextlib.suppress(OSError):
            atomic_write_text(meta_path, json.dumps(meta))
    return x, y


def write_entry(
    entry: Path, x: np.ndarray, y: np.ndarray, files: list[Path], sums: dict[str, str]
) -> None:
    """Store ``(x, y)`` under ``entry``; failure to write only warns."""
    meta = {"version": CACHE_VERSION, "sources": _fingerprint(files, sums)}
    try:
        _write_arrays(entry, x, y)
        atomic_write_text(entry.with_suffix(".json"), json.dumps(meta))
    except OSError as exc:
        warnings.warn(f"rapidnn.data: could not write cache entry {entry}: {exc}", stacklevel=3)
