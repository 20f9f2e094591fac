"""The ``rapidnn`` typer app and what every command shares: user mistakes (a bad path, a corrupt
file, an invalid option, an unsupported layer) print one line ``error: ...`` on stderr and exit
with status 2; nothing is half-written."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rapidnn.budget import Budget

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="RAPIDNN: deep-network inference inside non-volatile memory.")


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's mistake, not a bug (imported lazily: fast --help)."""
    from rapidnn.composer.capture import CaptureError
    from rapidnn.composer.compose import ComposeError
    from rapidnn.composer.modelfile import ModelFileError
    from rapidnn.data import DatasetError
    from rapidnn.hardware import HardwareConfigError

    return (CaptureError, ComposeError, DatasetError, HardwareConfigError, ModelFileError,
            FileNotFoundError, IsADirectoryError, PermissionError, ValueError)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user mistake into one line on stderr and exit status 2."""
    try:
        yield
    except typer.Exit:
        raise
    except user_error_types() as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        sys.stderr.write(f"error: {message}\n")
        raise typer.Exit(2) from None


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=float) + "\n")


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
