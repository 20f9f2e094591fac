"""The ``rapidnn`` typer app and what every command shares: user mistakes (a bad path, a corrupt
file, an invalid option, an unsupported layer) print one line ``error: ...`` on stderr and exit
with status 2; nothing is half-written."""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer import _click
from typer.core import TyperGroup

if TYPE_CHECKING:
    from rich.progress import Progress

    from rapidnn.budget import Budget

MAX_SHOWN = 160  # characters of a path or value quoted in an error line
#: columns of output that is not a terminal (a log file, a pipe): wide enough that no table
#: wraps, so a path or a row is never split over lines
UNWRAPPED_WIDTH = 1000


class RapidnnGroup(TyperGroup):
    """The root command: click's usage errors (a bad option value, an unknown option, a missing
    argument) and OS errors become one line ``error: ...`` on stderr with exit status 2, like
    every other user mistake, instead of click's multi-line box."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        try:
            code = super().main(args, "rapidnn", complete_var,
                                standalone_mode=False, **extra)
        except _click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            code = 2
        except _click.exceptions.UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            _error_line(f"{where}{_one_line(exc.format_message()).rstrip('.')}{hint}")
            code = 2
        except typer.Abort:
            _error_line("aborted")
            code = 130
        except OSError as exc:
            _error_line(os_error_message(exc))
            code = 2
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=RapidnnGroup,
                  help="RAPIDNN: deep-network inference inside non-volatile memory.",
                  epilog="Start with [b]rapidnn demo[/b]; every command has --help with "
                         "examples. Your own model and data: docs/own-model.md.")


def _print_version(value: bool) -> None:
    if value:
        from rapidnn._version import __version__

        sys.stdout.write(f"rapidnn {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print the version and exit")] = False) -> None:
    """RAPIDNN: deep-network inference inside non-volatile memory."""


def console(stderr: bool = False, width: int | None = None) -> Console:
    """A console for the CLI's output that never wraps a long line (a path) on a terminal, nor
    wraps or crops a table when the output is not a terminal (:data:`UNWRAPPED_WIDTH`);
    ``width``: at least this many columns on a terminal (wide tables)."""
    out = Console(stderr=stderr, soft_wrap=True)
    if not out.is_terminal:
        return Console(stderr=stderr, soft_wrap=True, width=UNWRAPPED_WIDTH)
    if width is not None and out.width < width:
        return Console(stderr=stderr, soft_wrap=True, width=width)
    return out


def progress(out: Console, quiet: bool = False) -> Progress:
    """A transient progress bar on ``out`` (stderr), shown only on a terminal and without
    ``quiet`` (``--json``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=out, transient=True,
                    disable=quiet or not out.is_terminal)


@contextlib.contextmanager
def busy(out: Console, what: str, quiet: bool = False) -> Iterator[None]:
    """A spinner with the elapsed time while a step without a count runs (:func:`progress`)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn(what), TimeElapsedColumn(), console=out,
                  transient=True, disable=quiet or not out.is_terminal) as bar:
        bar.add_task(what, total=None)
        yield


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return " ".join(lines) if lines else "unknown error"


def _error_line(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")


def _shown(text: object) -> str:
    text = str(text)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN // 2]}...{text[-40:]}"


def os_error_message(exc: OSError) -> str:
    """``PATH: reason`` for an OS error (a long path shortened): ``/x/y: File name too long``."""
    reason = exc.strerror or type(exc).__name__
    if exc.filename is None:
        return _one_line(str(exc)) if str(exc) else reason
    target = f" -> {_shown(exc.filename2)}" if exc.filename2 is not None else ""
    return f"{_shown(exc.filename)}{target}: {reason}"


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's mistake, not a bug (imported lazily: fast --help)."""
    from rapidnn.composer.capture import CaptureError
    from rapidnn.composer.compose import ComposeError
    from rapidnn.composer.modelfile import ModelFileError
    from rapidnn.data import DatasetError
    from rapidnn.hardware import HardwareConfigError

    return (CaptureError, ComposeError, DatasetError, HardwareConfigError, ModelFileError,
            OSError, ValueError)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user mistake into one line on stderr and exit status 2."""
    try:
        yield
    except typer.Exit:
        raise
    except user_error_types() as exc:
        if isinstance(exc, OSError):
            message = os_error_message(exc)
        else:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _error_line(" ".join(_shown(word) for word in message.split(" ")))
        raise typer.Exit(2) from None


def print_json(obj: Any) -> None:
    """Print ``obj`` as standard JSON: a NaN or infinite number (which ``json`` would write as
    the non-standard ``NaN``/``Infinity``) is printed as ``null``."""
    sys.stdout.write(json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        value = float(obj)
        return value if math.isfinite(value) else None
    if hasattr(obj, "item"):  # a 0-d tensor or array
        return _finite(obj.item())
    return obj


def check_output(path: str | os.PathLike[str] | None, kind: str = "file") -> None:
    """Fail at once (before any long work) if ``path`` cannot be written as a ``kind``
    ("file" or "folder"): an existing folder or special file (/dev/null, a FIFO) where a file
    goes, a file where a folder goes, a parent that
    is a file, a name too long, a symbolic-link loop, a folder that cannot be created or
    written (tried by creating a file there: ``os.access`` says yes to root on /proc or /sys)."""
    if path is None:
        return
    target = Path(path)
    if kind == "file" and target.is_dir():
        raise IsADirectoryError(21, "is a folder, not a file", str(target))
    if kind == "file" and target.exists() and not target.is_file():
        raise FileExistsError(17, "exists and is not a regular file (a device, FIFO or "
                                  "socket); rapidnn will not replace it", str(target))
    if kind == "folder" and target.exists() and not target.is_dir():
        raise NotADirectoryError(20, "is a file, not a folder", str(target))
    existing = _nearest_existing(target if kind == "folder" else target.parent)
    if not existing.is_dir():
        raise NotADirectoryError(20, "is a file, not a folder", str(existing))
    max_name = os.pathconf(existing, "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    for part in target.parts:
        if len(os.fsencode(part)) > max_name:
            raise OSError(36, "File name too long", str(target))
    try:
        fd, probe = tempfile.mkstemp(prefix=".rapidnn-check.", dir=existing)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(existing)) from None
    os.close(fd)
    os.unlink(probe)


def _nearest_existing(folder: Path) -> Path:
    """``folder`` or its nearest ancestor that exists (a file there is the caller's error)."""
    while True:
        try:
            folder.stat()
            return folder
        except (FileNotFoundError, NotADirectoryError):
            if folder.is_symlink():
                raise FileNotFoundError(2, "is a broken symbolic link", str(folder)) from None
            if folder.parent == folder:  # the root, or "." after the working folder was removed
                raise
            folder = folder.parent


BudgetOption = Annotated[str | None, typer.Option(
    "--budget", help="quick, full (the default) or a budget YAML file (rapidnn.budget): the "
                     "recipes, data subsets, sweep grid and audit factors")]
QuickOption = Annotated[bool, typer.Option("--quick", help="short for --budget quick")]


def choose_budget(budget: str | None, quick: bool) -> Budget:
    """The one budget of a command, from ``--budget`` and its shorthand ``--quick``."""
    from rapidnn.budget import get_budget

    if quick and budget not in (None, "quick"):
        raise ValueError(f"--quick and --budget {budget} exclude each other (--quick is "
                         f"--budget quick)")
    return get_budget("quick" if quick else budget or "full")
