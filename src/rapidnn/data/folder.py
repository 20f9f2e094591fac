"""A user's labelled images as a folder with one sub-folder per class (the ImageFolder layout)::

    pets/cat/001.png  pets/cat/002.jpg  pets/dog/001.png ...

Classes are the sub-folder names in sorted order (label 0 is the first). Images are decoded
with Pillow (PNG, JPEG, BMP, GIF, TIFF, WebP), all of one size: grayscale files become one
channel, anything else RGB (alpha dropped). Files starting with ``.`` and files of other
extensions are skipped. Every problem is one :class:`~rapidnn.data.DatasetError` naming the
folder or the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._registry import DatasetError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_GRAY = ("1", "L", "LA", "I", "I;16", "F")


def read_image_folder(path: str | os.PathLike[str], classes: Sequence[str] | None = None,
                      mode: str | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(images, labels, classes)`` of the folder at ``path``: images float32 (N, C, H, W) in
    [0, 1], labels int64. ``classes``: the class names the folder must hold (a test folder: the
    training folder's); ``mode``: ``"L"`` or ``"RGB"`` to decode to (default: ``"L"`` when every
    image is grayscale)."""
    from PIL import Image, UnidentifiedImageError

    shown = os.fspath(path)
    root = Path(shown)
    if not root.is_dir():
        raise DatasetError(f"{shown}: no such folder" if not root.exists() else
                           f"{shown}: not a folder")
    found = tuple(sorted(p.name for p in root.iterdir()
                         if p.is_dir() and not p.name.startswith(".")))
    if not found:
        raise DatasetError(f"{shown}: no class sub-folders (expected {shown}/<class>/<image>)")
    if classes is not None and found != tuple(classes):
        raise DatasetError(f"{shown}: classes {', '.join(found)}; expected the training "
                           f"data's {', '.join(classes)}")
    files: list[tuple[int, Path]] = []
    for label, name in enumerate(found):
        images = sorted(p for p in (root / name).iterdir() if p.is_file()
                        and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS)
        if not images:
            raise DatasetError(f"{root / name}: no images ({', '.join(EXTENSIONS)})")
        files += [(label, p) for p in images]
    decoded = []
    for _, p in files:
        try:
            with Image.open(p) as im:
                im.load()
                decoded.append(im.copy())
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DatasetError(f"{p}: not a readable image ({type(exc).__name__})") from exc
    if mode is None:
        mode = "L" if all(im.mode in _GRAY for im in decoded) else "RGB"
    size = decoded[0].size
    arrays = []
    for (_, p), im in zip(files, decoded, strict=True):
        if im.size != size:
            raise DatasetError(f"{p}: {im.size[0]}x{im.size[1]} pixels, the first image "
                               f"({files[0][1]}) {size[0]}x{size[1]}; all images must have "
                               f"one size")
        a = np.asarray(im.convert(mode), dtype=np.float32) / 255.0
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    labels = np.array([label for label, _ in files], dtype=np.int64)
    return np.stack(arrays), labels, found
