"""Safe writes (``rapidnn._files``): whole files or none, the umask's mode, the rename flushed,
folders swapped whole, output folders locked, stale temporaries removed, data-safe names."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rapidnn._files import (
    LOCK_NAME,
    FolderInUseError,
    atomic_folder,
    atomic_write,
    atomic_write_text,
    clean_stale,
    locked,
    safe_name,
)


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the process umask after a test that sets it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_written_file_is_whole_with_the_umasks_mode(tmp_path: Path, umask, mask: int,
                                                      mode: int) -> None:
    os.umask(mask)
    path = atomic_write_text(tmp_path / "sub" / "a.txt", "hello")
    assert path.read_text() == "hello"
    assert path.stat().st_mode & 0o777 == mode
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


def test_the_rename_is_flushed_by_syncing_the_folder(tmp_path: Path, monkeypatch) -> None:
    synced: list[tuple[bool, int]] = []
    real = os.fsync

    def spy(fd: int) -> None:
        st = os.fstat(fd)
        synced.append((stat.S_ISDIR(st.st_mode), st.st_ino))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    path = atomic_write_text(tmp_path / "a.txt", "x")
    assert synced[0] == (False, path.stat().st_ino)  # the data, then the folder's entry
    assert synced[-1] == (True, tmp_path.stat().st_ino)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_stale_temporaries_are_removed_fresh_ones_kept(tmp_path: Path) -> None:
    old_file = tmp_path / ".results.json.abc123.tmp"
    old_dir = tmp_path / ".plots.def456.tmp"
    fresh = tmp_path / ".report.md.ghi789.tmp"
    other = tmp_path / ".hidden.tmp"  # not a temporary of ours: no random part
    for p in (old_file, fresh, other):
        p.write_text("half")
    old_dir.mkdir()
    (old_dir / "a.png").write_text("half")
    for p in (old_file, old_dir, other):
        _age(p, 3600)
    assert sorted(clean_stale(tmp_path)) == sorted([old_file, old_dir])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden.tmp",
                                                          ".report.md.ghi789.tmp"]


def test_an_atomic_folder_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "plots"
    with atomic_folder(target) as tmp:
        (tmp / "a.png").write_text("first")
        assert not target.exists()
    assert [p.name for p in target.iterdir()] == ["a.png"]
    with atomic_folder(target) as tmp:
        (tmp / "b.png").write_text("second")
    assert [p.name for p in target.iterdir()] == ["b.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]


def test_a_failed_atomic_folder_keeps_the_old_one_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "plots"
    target.mkdir()
    (target / "a.png").write_text("old")
    with pytest.raises(RuntimeError, match="plot failed"), atomic_folder(target) as tmp:
        (tmp / "b.png").write_text("half")
        raise RuntimeError("plot failed")
    assert [p.name for p in target.iterdir()] == ["a.png"]
    assert (target / "a.png").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]


_HOLD = """
import sys, time
from rapidnn._files import locked
with locked(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_locked_folder_refuses_another_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderInUseError) as err, locked(out):
            pass
        assert str(err.value) == (f"{out} is in use by another rapidnn run (pid "
                                  f"{holder.pid}); wait for it or choose another --out")
        assert isinstance(err.value, ValueError)  # the CLI's user error: one line, exit 2
    finally:
        holder.kill()
        holder.wait()
    with locked(out):  # the holder is gone: its lock went with it
        (out / "a.txt").write_text("x")
    assert [p.name for p in out.iterdir()] == ["a.txt"]


def test_the_lock_holds_within_one_process_too(tmp_path: Path) -> None:
    with locked(tmp_path) as folder:
        assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
        with pytest.raises(FolderInUseError, match=f"pid {os.getpid()}"), locked(tmp_path):
            pass
    assert not (tmp_path / LOCK_NAME).exists()
    with locked(tmp_path):  # released: free again
        pass


def test_locking_cleans_stale_temporaries_and_an_unused_new_folder_goes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with locked(out):
        pass
    assert not out.exists()  # created for a run that wrote nothing: removed again
    out.mkdir()
    stale, fresh = out / ".sweep.json.x1.tmp", out / ".sweep.json.x2.tmp"
    stale.write_text("half")
    fresh.write_text("half")
    _age(stale, 3600)
    with locked(out):
        assert not stale.exists() and fresh.exists()
    assert out.is_dir()


@pytest.mark.parametrize("text", ["../../../../x", "/etc/passwd", "..", ".", "", ".hidden",
                                  "a/b\\c", "x" * 300, "naïve name", "a\nb", "CON:"])
def test_safe_names_stay_in_their_folder(tmp_path: Path, text: str) -> None:
    name = safe_name(text)
    assert name and not name.startswith(".") and ".." not in name and len(name) <= 73
    assert "/" not in name and "\\" not in name and name == Path(name).name
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()
    assert name != text  # every one of these had to change: a hash keeps them apart


def test_safe_names_keep_ordinary_names_and_tell_changed_ones_apart() -> None:
    assert safe_name("mnist-mlp") == "mnist-mlp" and safe_name("resnet_20.v1") == "resnet_20.v1"
    assert safe_name("a/b") != safe_name("a_b") and safe_name("a/b") != safe_name("a:b")
    assert safe_name("a/b").startswith("a_b-")


def test_a_failed_swap_puts_the_old_folder_back(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "plots"
    target.mkdir()
    (target / "a.png").write_text("old")
    real, calls = os.replace, []

    def second_fails(src, dst) -> None:
        calls.append(dst)
        if len(calls) == 2:  # the new folder's rename into place
            raise OSError("no space")
        real(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError, match="no space"), atomic_folder(target) as tmp:
        (tmp / "b.png").write_text("new")
    assert [p.name for p in target.iterdir()] == ["a.png"]
    assert [p.name for p in tmp_path.iterdir()] == ["plots"]


def test_a_special_file_or_folder_is_never_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileExistsError, match="not a regular file") as err:
        atomic_write_text(fifo, "x")
    assert err.value.errno == errno.EEXIST and stat.S_ISFIFO(fifo.lstat().st_mode)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        atomic_write_text(tmp_path, "x")
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*.tmp"))  # nothing left beside it


def test_a_symbolic_link_is_followed_not_replaced(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_text(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
