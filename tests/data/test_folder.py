"""Image folders with one sub-folder per class (rapidnn.data.folder)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rapidnn.data import DatasetError
from rapidnn.data.folder import read_image_folder


def _save(path, pixels, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode).save(path)


def test_gray_and_rgb_images(tmp_path):
    _save(tmp_path / "g" / "b" / "1.png", np.full((4, 6), 255))
    _save(tmp_path / "g" / "a" / "2.png", np.zeros((4, 6)))
    (tmp_path / "g" / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "g" / "a" / ".hidden.png").write_bytes(b"")
    x, y, classes = read_image_folder(tmp_path / "g")
    assert classes == ("a", "b") and y.tolist() == [0, 1]
    assert x.shape == (2, 1, 4, 6) and x.dtype == np.float32 and x.max() == 1.0
    _save(tmp_path / "c" / "k" / "1.jpg", np.zeros((5, 5, 3)))
    _save(tmp_path / "c" / "k" / "2.png", np.zeros((5, 5)))
    x, _, _ = read_image_folder(tmp_path / "c")
    assert x.shape == (2, 3, 5, 5)  # one colour image: every image decoded as RGB
    x, _, _ = read_image_folder(tmp_path / "g", classes=("a", "b"), mode="RGB")
    assert x.shape == (2, 3, 4, 6)


def test_problems_name_the_folder_or_file(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        read_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class sub-folders"):
        read_image_folder(tmp_path / "empty")
    _save(tmp_path / "s" / "a" / "1.png", np.zeros((4, 4)))
    _save(tmp_path / "s" / "a" / "2.png", np.zeros((5, 4)))
    with pytest.raises(DatasetError, match=r"2\.png: 4x5 pixels"):
        read_image_folder(tmp_path / "s")
    with pytest.raises(DatasetError, match="expected the training data's a, b"):
        read_image_folder(tmp_path / "s", classes=("a", "b"))
    (tmp_path / "u" / "a").mkdir(parents=True)
    (tmp_path / "u" / "a" / "1.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"1\.png: not a readable image"):
        read_image_folder(tmp_path / "u")
