"""Decoders from the verified source files to ``(x, y)`` numpy arrays (y int64 in 0..K-1)."""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from ._registry import (
    HAR_STEP,
    HAR_TEST_SUBJECTS,
    HAR_WINDOW,
    DatasetSpec,
    dataset_error,
    decoding,
)

Arrays = tuple[np.ndarray, np.ndarray]


def read_idx(spec: DatasetSpec, path: Path, magic: int, tail: tuple[int, ...]) -> np.ndarray:
    """Read a gzip IDX file (big-endian header: magic, one uint32 per dimension) of uint8."""
    with decoding(spec, path, "gzip IDX file"), gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < 4:
        raise dataset_error(spec, path, f"truncated IDX file ({len(raw)} bytes, no header)")
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise dataset_error(spec, path, f"bad IDX magic 0x{got:08x} (expected 0x{magic:08x})")
    if len(raw) < header:
        raise dataset_error(spec, path, f"truncated IDX header ({len(raw)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if tuple(dims[1:]) != tail:
        raise dataset_error(spec, path, f"unexpected IDX dimensions {dims} (expected (N, *{tail}))")
    count = int(np.prod(dims))
    if len(raw) - header != count:
        raise dataset_error(
            spec,
            path,
            f"truncated or oversized IDX payload ({len(raw) - header} bytes, header says {count})",
        )
    return np.frombuffer(raw, np.uint8, count=count, offset=header).reshape(dims).copy()


def decode_idx(spec: DatasetSpec, split: str, files: list[Path]) -> Arrays:
    """MNIST / Fashion-MNIST: images (N,28,28) uint8 and labels (N,) 0..9."""
    images_path, labels_path = files
    x = read_idx(spec, images_path, 0x803, (28, 28))
    y = read_idx(spec, labels_path, 0x801, ())
    if len(x) != len(y):
        raise dataset_error(
            spec, labels_path, f"{len(y)} labels for {len(x)} images in {images_path}"
        )
    if y.size and int(y.max()) >= len(spec.classes):
        raise dataset_error(spec, labels_path, f"label {int(y.max())} out of range 0..9")
    return x, y.astype(np.int64)


def decode_isolet(spec: DatasetSpec, split: str, files: list[Path]) -> Arrays:
    """ISOLET: train = MAT-file (labels 1..26), test = little-endian records (labels 0..25)."""
    (path,) = files
    n_classes = len(spec.classes)
    if path.suffix == ".mat":
        import scipy.io

        with decoding(spec, path, "MAT-file"):
            mat = scipy.io.loadmat(str(path))
            x = np.asarray(mat["X"], dtype=np.float32)
            y = np.asarray(mat["Y"]).reshape(-1).astype(np.int64) - 1
    else:  # int32 F, int32 K, then per sample F float32 features + one int32 label, to EOF
        with decoding(spec, path, "ISOLET binary file"):
            raw = path.read_bytes()
        if len(raw) < 8:
            raise dataset_error(spec, path, f"truncated file ({len(raw)} bytes, no header)")
        n_feat, k = struct.unpack("<ii", raw[:8])
        if n_feat != 617 or k != n_classes:
            raise dataset_error(spec, path, f"bad header F={n_feat}, K={k} (expected 617, 26)")
        record = np.dtype([("x", "<f4", (n_feat,)), ("y", "<i4")])
        if (len(raw) - 8) % record.itemsize:
            raise dataset_error(
                spec,
                path,
                f"truncated file ({len(raw) - 8} data bytes, not a whole number of "
                f"{record.itemsize}-byte records)",
            )
        rec = np.frombuffer(raw, record, offset=8)
        x = rec["x"].astype(np.float32)
        y = rec["y"].astype(np.int64)
    if x.ndim != 2 or x.shape[1] != 617 or len(x) != len(y):
        raise dataset_error(
            spec, path, f"unexpected shapes x{x.shape}, y{y.shape} (expected (N, 617), (N,))"
        )
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise dataset_error(spec, path, f"labels outside 0..{n_classes - 1} after conversion")
    return x, y


def har_window_starts(
    label: np.ndarray, session: np.ndarray, sample: np.ndarray | None = None
) -> np.ndarray:
    """Start indices of 128-sample windows (step 64, i.e. 50% overlap) inside each contiguous
    segment of one label in 1..6 within one session; a gap in ``sample`` also ends a segment.
    A segment of length L gives ``(L - 128) // 64 + 1`` windows (none if L < 128)."""
    label = np.asarray(label)
    session = np.asarray(session)
    brk = (label[1:] != label[:-1]) | (session[1:] != session[:-1])
    if sample is not None:
        brk |= np.diff(np.asarray(sample, dtype=np.int64)) != 1
    bounds = np.flatnonzero(brk) + 1
    starts = np.concatenate(([0], bounds)).tolist()
    ends = np.concatenate((bounds, [len(label)])).tolist()
    out = [
        np.arange(s, e - HAR_WINDOW + 1, HAR_STEP, dtype=np.int64)
        for s, e in zip(starts, ends, strict=True)
        if 1 <= label[s] <= 6 and e - s >= HAR_WINDOW
    ]
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def decode_har(spec: DatasetSpec, split: str, files: list[Path]) -> Arrays:
    """HAR: (N,128,6) float32 windows of the raw HAPT signals, labels 1..6 mapped to 0..5;
    ``test`` holds the windows of the UCI-HAR test subjects, ``train`` the others."""
    (path,) = files
    with decoding(spec, path, "npz archive"), np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in ("signals", "label", "user", "experiment", "sample")}
    signals = arrays["signals"]
    n = len(signals)
    if signals.ndim != 2 or signals.shape[1] != 6 or any(len(a) != n for a in arrays.values()):
        raise dataset_error(
            spec, path, "inconsistent arrays (expected signals (N, 6) and N of every other array)"
        )
    label = arrays["label"].astype(np.int64)
    starts = har_window_starts(label, arrays["experiment"], arrays["sample"])
    in_test = np.isin(arrays["user"][starts], sorted(HAR_TEST_SUBJECTS))
    starts = starts[in_test] if split == "test" else starts[~in_test]
    x = signals.astype(np.float32, copy=False)[starts[:, None] + np.arange(HAR_WINDOW)]
    return x, label[starts] - 1


def decode_cifar(spec: DatasetSpec, split: str, files: list[Path]) -> Arrays:
    """CIFAR-10 JPEG tarball with members ``<split>/<class>/<name>.jpg``: (N,32,32,3) uint8,
    sorted by class index (alphabetical folder names) then file name."""
    from PIL import Image

    (path,) = files
    index = {c: i for i, c in enumerate(spec.classes)}
    items: list[tuple[int, str, np.ndarray]] = []
    with decoding(spec, path, "tar.gz of JPEGs"), tarfile.open(path, "r|gz") as tar:
        for member in tar:
            if not member.isfile():
                continue
            parts = PurePosixPath(member.name).parts
            if len(parts) != 3 or parts[0] != split or parts[1] not in index:
                raise dataset_error(
                    spec, path, f"unexpected member {member.name!r} (expected {split}/<class>/...)"
                )
            fobj = tar.extractfile(member)
            if fobj is None:  # pragma: no cover - isfile() members always have data
                continue
            with Image.open(io.BytesIO(fobj.read())) as im:
                if im.size != (32, 32):
                    raise dataset_error(spec, path, f"{member.name} is {im.size}, expected 32x32")
                items.append((index[parts[1]], parts[2], np.asarray(im.convert("RGB"))))
    missing = sorted(set(spec.classes) - {spec.classes[i] for i, _, _ in items})
    if missing:
        raise dataset_error(spec, path, f"no images for classes {missing}")
    items.sort(key=lambda t: (t[0], t[1]))
    x = np.stack([a for _, _, a in items])
    y = np.array([c for c, _, _ in items], dtype=np.int64)
    return x, y


DECODERS: dict[str, Callable[[DatasetSpec, str, list[Path]], Arrays]] = {
    "idx": decode_idx,
    "isolet": decode_isolet,
    "har": decode_har,
    "cifar": decode_cifar,
}
