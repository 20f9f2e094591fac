"""Atomic writes: the file appears whole under its name, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapidnn._files import atomic_write, atomic_write_text


def test_a_written_file_is_whole_and_readable_by_all(tmp_path: Path) -> None:
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert path.read_text() == "hello"
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["a.txt"]


def test_a_failed_write_leaves_neither_a_file_nor_a_temporary(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("old")

    def fail(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(tmp_path / "keep.txt", fail)
    assert (tmp_path / "keep.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
