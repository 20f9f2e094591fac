"""The ``rapidnn`` command line (typer).

User mistakes (a bad path, a corrupt file, an invalid option, an unsupported layer) print one
line ``error: ...`` on stderr and exit with status 2; nothing is half-written.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="RAPIDNN: deep-network inference inside non-volatile memory.")


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exceptions that are the user's mistake, not a bug (imported lazily: fast --help)."""
    from rapidnn.capture import CaptureError
    from rapidnn.compose import ComposeError
    from rapidnn.data import DatasetError
    from rapidnn.hardware import HardwareConfigError
    from rapidnn.io import ModelFileError

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


@app.command()
def demo(
    weight_clusters: Annotated[int, typer.Option(min=2, max=256, help="w")] = 16,
    input_clusters: Annotated[int, typer.Option(min=2, max=256, help="u")] = 16,
    max_epochs: Annotated[int, typer.Option(min=0, help="retraining epochs at most")] = 5,
    save: Annotated[str | None, typer.Option(help="write the composed model (.rapidnn)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Train (or load) an MNIST MLP, compose it, retrain it, print quality and memory."""
    from rapidnn.demo import run_demo

    with user_errors():
        console = Console(stderr=True) if as_json else Console()
        figures = run_demo(weight_clusters, input_clusters, max_epochs, console=console,
                           save=save)
    if as_json:
        print_json(figures)


hardware_app = typer.Typer(no_args_is_help=True, help="Hardware descriptions of the cost model.")
app.add_typer(hardware_app, name="hardware")


@hardware_app.command("show")
def hardware_show(
    name: Annotated[str, typer.Argument(help="preset (rapidnn, isaac, pipelayer, gpu) or YAML")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Chip-level peak throughput, area, power, GOPS/s/mm^2 and GOPS/s/W of an architecture."""
    from rich.table import Table

    from rapidnn.hardware import chip_summary, load_hardware

    with user_errors():
        summary = chip_summary(load_hardware(name))
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"hardware {summary['name']}")
    table.add_column("figure")
    table.add_column("modelled", justify="right")
    table.add_column("published", justify="right")
    published = summary.get("published", {})
    for key, unit in (("peak_gops", "GOPS"), ("area_mm2", "mm^2"), ("power_w", "W"),
                      ("gops_per_mm2", "GOPS/s/mm^2"), ("gops_per_w", "GOPS/s/W")):
        value = summary.get(key)
        pub = published.get(key.removesuffix("_mm2").removesuffix("_w")) or published.get(key)
        table.add_row(f"{key} ({unit})", "-" if value is None else f"{value:,.1f}",
                      "-" if not pub else f"{pub['value']:,}")
    Console().print(table)
    Console().print(f"power basis: {summary.get('power_basis')}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
