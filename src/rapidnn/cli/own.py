"""The options that give ``sweep``, ``simulate`` and ``compare`` the user's own model and data
(:mod:`rapidnn.workloads.custom`, ``docs/own-model.md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from rapidnn.cli.app import busy

if TYPE_CHECKING:
    from rapidnn.composer.composed import ComposedModel
    from rapidnn.workloads.custom import CustomWorkload

ModelOption = Annotated[str | None, typer.Option(
    "--model", help="your trained model: package.module:factory, path/to/file.py:factory "
                    "(with --weights, or a factory returning the trained network) or an .onnx "
                    "file", rich_help_panel="Your own model and data")]
WeightsOption = Annotated[str | None, typer.Option(
    "--weights", help="--model factory: its trained state dict as a .safetensors file "
                      "(never a pickle)", rich_help_panel="Your own model and data")]
DataOption = Annotated[str | None, typer.Option(
    "--data", help="--model: its data, a .npz file (arrays x, y) or an image folder (one "
                   "sub-folder per class): calibration, retraining, validation (a seeded 10%)",
    rich_help_panel="Your own model and data")]
TestOption = Annotated[str | None, typer.Option(
    "--test", help="--model: test data as --data (default: a seeded 20% of --data held out)",
    rich_help_panel="Your own model and data")]


def user_workload(model: str | None, weights: str | None, data: str | None, test: str | None,
                  console: Console, quiet: bool = False) -> CustomWorkload | None:
    """The workload of ``--model`` on ``--data`` (checked), or None without ``--model``; the
    data options without ``--model``, or ``--model`` without ``--data``, are a ValueError."""
    from rapidnn.workloads.custom import custom_workload

    if model is None:
        given = [f"--{n}" for n, v in (("weights", weights), ("data", data), ("test", test))
                 if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} go with --model (your own model)")
        return None
    if data is None:
        raise ValueError(f"--model {model}: pass its data with --data (a .npz file with "
                         f"arrays x and y, or an image folder)")
    with busy(console, f"loading {model} and {data}", quiet):
        wl = custom_workload(model, data, weights=weights, test=test)
    if weights is None and not model.lower().endswith(".onnx"):
        # on stderr, also with --json (stdout stays JSON)
        console.print(f"note: no --weights: using the weights {model} returns as they are",
                      markup=False, highlight=False)
    return wl


def describe_test(wl: CustomWorkload, count: int, unit: str = "examples") -> str:
    """Where a user's test examples come from: ``test: test.npz (400 examples)`` or ``test:
    20% of train.npz held out (400 examples)``."""
    if wl.test:
        return f"test: {wl.test} ({count} {unit})"
    return f"test: 20% of {wl.data} held out ({count} {unit})"


def compose_user_model(wl: CustomWorkload, weight_clusters: int, input_clusters: int,
                       console: Console, quiet: bool = False) -> ComposedModel:
    """``wl``'s network composed at ``(weight_clusters, input_clusters)``, calibrated on 20
    seeded batches of its training data (as the sweep composes)."""
    from rapidnn.composer.compose import compose

    with busy(console, f"composing {wl.model_spec} (w={weight_clusters}, u={input_clusters})",
              quiet):
        composed = compose(wl.build(), wl.splits().calibration(20), weight_clusters,
                           input_clusters, calibration_batches=20)
    composed.metadata.update({"workload": wl.name, "dataset": wl.dataset})
    return composed
