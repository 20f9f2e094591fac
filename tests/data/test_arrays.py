"""Data given as a user's ``.npz`` file: inputs, optional labels, every problem one
DatasetError naming the file (never an unpickled object)."""

import numpy as np
import pytest

from rapidnn.data import DatasetError
from rapidnn.data.arrays import read_npz


def test_inputs_and_labels_are_read_as_float32_and_int64(tmp_path):
    x = np.arange(24, dtype=np.uint8).reshape(4, 2, 3)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 2, 1], np.int32))
    got, labels = read_npz(tmp_path / "d.npz")
    assert got.dtype == np.float32 and np.array_equal(got, x)
    assert labels.dtype == np.int64 and labels.tolist() == [0, 1, 2, 1]


def test_a_single_array_of_any_name_is_the_inputs(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 5)))
    x, y = read_npz(tmp_path / "d.npz")
    assert x.shape == (3, 5) and y is None


@pytest.mark.parametrize("arrays, reason", [
    ({"a": np.zeros((2, 2)), "b": np.zeros((2, 2))}, "no array named 'x'"),
    ({"x": np.array([1.0, np.nan]).reshape(2, 1)}, "NaN or infinite"),
    ({"x": np.zeros(5)}, "batch dimension first"),
    ({"x": np.zeros((0, 3))}, "batch dimension first"),
    ({"x": np.array([["a"], ["b"]])}, "expected numbers"),
    ({"x": np.zeros((3, 2)), "y": np.zeros(2, np.int64)}, "must be 3 integers"),
    ({"x": np.zeros((2, 2)), "y": np.array([0.5, 1.0])}, "must be 2 integers"),
    ({"x": np.zeros((2, 2)), "y": np.array([-1, 0])}, ">= 0"),
])
def test_bad_arrays_are_named(tmp_path, arrays, reason):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DatasetError, match=reason) as err:
        read_npz(tmp_path / "d.npz")
    assert "d.npz" in str(err.value)


def test_object_arrays_are_refused_not_unpickled(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DatasetError, match="never unpickles"):
        read_npz(tmp_path / "d.npz")


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"\x00" * 64])
def test_unreadable_files_are_named(tmp_path, content):
    (tmp_path / "d.npz").write_bytes(content)
    with pytest.raises(DatasetError, match=r"d\.npz"):
        read_npz(tmp_path / "d.npz")
    with pytest.raises(DatasetError, match="no such file"):
        read_npz(tmp_path / "missing.npz")
