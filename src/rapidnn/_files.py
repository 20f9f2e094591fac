"""Safe writes: every file rapidnn produces (models, the store, the data cache, results, plots,
reports) is written to a temporary file next to its destination and renamed into place, so an
interrupted or failed write never leaves a half-written file under the real name; a folder of
outputs (the report's plots) is built next to its destination and swapped in whole. Output
folders are locked for a run (:func:`locked`), temporary files left by killed runs are removed
when a folder is next locked (:func:`clean_stale`), and names taken from data are made safe as
file names (:func:`safe_name`)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["LOCK_NAME", "STALE_SECONDS", "FolderInUseError", "atomic_folder", "atomic_write",
           "atomic_write_text", "clean_stale", "locked", "safe_name"]

#: The lock file :func:`locked` takes inside an output folder.
LOCK_NAME = ".rapidnn.lock"
#: A temporary file or folder this old (seconds) is left over from a killed write.
STALE_SECONDS = 600.0


def _proc_umask() -> int | None:
    """The process umask read from ``/proc`` (Linux 4.7+), which leaves it untouched."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return None


def _import_umask() -> int:
    """The umask at import: from ``/proc``, else by setting it and setting it back (done once,
    before any thread of ours writes a file)."""
    umask = _proc_umask()
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return umask


_IMPORT_UMASK = _import_umask()


def _umask() -> int:
    """The current umask where it can be read safely, else the one at import."""
    umask = _proc_umask()
    return _IMPORT_UMASK if umask is None else umask


def _fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (a rename) to disk; skipped where directories cannot be
    opened or synced (Windows, some network file systems)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(folder, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` with the name of a temporary file next to ``path``, flush it to disk
    and rename it into place with the mode a file written directly would have (``mkstemp``
    creates it owner-only), then flush the folder so the rename survives a crash. On any error
    the temporary file is removed and the error re-raised.

    A symbolic link is followed (the file it points to is replaced, as ``open`` would write
    it); a target that exists and is not a regular file (a folder, a device such as
    ``/dev/null``, a FIFO, a socket) is refused before anything is written: renaming over it
    would destroy it."""
    path = Path(path)
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    if path.exists() and not path.is_file():
        raise FileExistsError(errno.EEXIST, "exists and is not a regular file (a device, FIFO "
                                            "or socket); rapidnn will not replace it", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _swap(new: Path, path: Path) -> None:
    """Rename folder ``new`` to ``path``; an existing ``path`` is renamed aside first (put back
    if the second rename fails) and deleted after."""
    aside = (Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
             if path.exists() else None)
    moved = False
    try:
        if aside is not None:
            os.replace(path, aside / path.name)
            moved = True
        os.replace(new, path)
    except BaseException:
        if moved:
            os.replace(aside / path.name, path)
        raise
    else:
        _fsync_dir(path.parent)
    finally:
        if aside is not None:
            _remove(aside)


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; when the block succeeds it replaces
    ``path`` whole (:func:`_swap`), with the mode ``mkdir`` would give it; when the block fails
    the temporary folder is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        _swap(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def clean_stale(folder: str | os.PathLike[str], older_than: float = STALE_SECONDS) -> list[Path]:
    """Remove the temporary files and folders (``.<name>.*.tmp``) that writes killed before
    their rename left in ``folder`` (not below it), if untouched for ``older_than`` seconds: a
    concurrent write keeps its temporary file fresh. Returns what was removed."""
    folder = Path(folder)
    now = time.time()
    removed = []
    for entry in folder.glob(".?*.*.tmp"):
        try:
            if now - entry.lstat().st_mtime < older_than:
                continue
        except OSError:  # gone meanwhile: renamed into place or removed by its writer
            continue
        _remove(entry)
        removed.append(entry)
    return removed


class FolderInUseError(ValueError):
    """Another rapidnn run holds the output folder's lock (a user error: the CLI prints it)."""


def _take_lock(folder: Path) -> int:
    """An open descriptor of ``folder``'s lock file, locked (``flock``, not waiting). A lock
    on a file (or in a folder) that its last holder removed meanwhile (:func:`locked`) does
    not count: retry."""
    import fcntl

    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # the folder's last user removed it meanwhile
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise FolderInUseError(f"{folder} is in use by another rapidnn run (pid {pid}); "
                                   "wait for it or choose another --out") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            if os.stat(folder / LOCK_NAME).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def locked(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``folder``'s lock (``flock`` on :data:`LOCK_NAME` inside it, holding our pid)
    for the block, so two runs never write into one folder: if another process holds it,
    raise :class:`FolderInUseError` at once, naming its pid. Taking the lock removes the stale
    temporary files of killed runs (:func:`clean_stale`); releasing it removes the lock file,
    and the folder if the block left it empty and it did not exist before."""
    folder = Path(folder)
    created = not folder.exists()
    fd = _take_lock(folder)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        clean_stale(folder)
        yield folder
    finally:
        with contextlib.suppress(OSError):
            (folder / LOCK_NAME).unlink()
        os.close(fd)  # releases the lock
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_NAME = 64


def safe_name(text: str) -> str:
    """``text`` (data: a workload name) as a file name that stays in its folder: letters,
    digits, ``_``, ``-`` and single inner dots only, no leading dot, at most 64 characters plus,
    when anything had to change, a short hash of ``text`` so that distinct names stay
    distinct."""
    name = re.sub(r"\.{2,}", "_", _UNSAFE.sub("_", str(text))).lstrip(".")[:_MAX_NAME]
    if name and name == text:
        return name
    digest = hashlib.sha256(str(text).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name}-{digest}" if name else digest
