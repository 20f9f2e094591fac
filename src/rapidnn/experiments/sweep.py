"""Accuracy, memory and energy over a grid of (weight clusters w, input clusters u).

Three retraining modes: ``"none"`` (composed models only), ``"all"`` (every point retrained
to the tolerance) and ``"search"``: every point is composed and measured, then points are
retrained in ascending memory per neuron until one is within the tolerance (a point within
it before retraining is taken as it is); that point is the smallest (w, u) within tolerance,
and larger points are not retrained. Points whose loss before retraining exceeds
``retrain_limit`` are not retrained (our choice, see ``docs/reproduce.md``: a few retraining
rounds recover fractions of a point, not several).

:func:`run_sweep` writes ``<out>/sweep.json`` after every point (atomically), so an
interrupted sweep resumes where it stopped: a rerun with the same options skips the finished
points; a rerun with other retraining options keeps the points measured without retraining;
a rerun with other measurement options raises :class:`SweepOptionsError` (or starts afresh
with ``restart=True``), and so does a ``sweep.json`` that is not one (invalid JSON, another
format, a key missing or of the wrong type: :class:`SweepFileError`, naming the field; it is
never silently overwritten). The output folder is locked for the run
(:func:`rapidnn._files.locked`): a second sweep into it fails at once. At the end it writes a
rich table (``sweep.txt``) and a Pareto plot (``pareto.png``: energy per inference against
accuracy, front highlighted).
"""

from __future__ import annotations

import json
import os
import time
from itertools import product
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from rapidnn._files import atomic_write, atomic_write_text, locked
from rapidnn.budget import Budget, get_budget
from rapidnn.composer.retrain import VERSION as RETRAIN_VERSION
from rapidnn.experiments.common import (
    loader,
    machine,
    retrained,
    write_json,
)
from rapidnn.experiments.executor import Executor, LocalExecutor, TaskResult
from rapidnn.experiments.schema import SweepFile, check_shape
from rapidnn.selection import (
    TOLERANCE,
    most_accurate,
    pareto_front,
    search_order,
    smallest_within_tolerance,
)
from rapidnn.workloads import Workload, get_workload

FORMAT = "rapidnn-sweep-v1"
MODES = ("none", "all", "search")
#: search mode: points losing more than this before retraining are not retrained (a fraction):
#: the tolerance plus the largest recovery retraining (version 2) has achieved on our networks
#: (1.20 points, docs/reproduce.md), rounded up; the CLI default of ``--retrain-limit``
#: (points) matches it
RETRAIN_LIMIT = 0.015


class SweepOptionsError(ValueError):
    """``sweep.json`` already exists in the output folder with other options."""


class SweepFileError(ValueError):
    """``sweep.json`` in the output folder is not a sweep this version can resume."""


def sweep_options(wl: Workload, weight_clusters: list[int], input_clusters: list[int],
                  mode: str, max_rounds: int | None, budget: Budget,
                  retrain_limit: float = RETRAIN_LIMIT) -> dict[str, Any]:
    return {"workload": wl.name, "float_key": wl.key(budget.recipes), "quick": budget.quick,
            "weight_clusters": list(weight_clusters), "input_clusters": list(input_clusters),
            "mode": mode, "max_rounds": max_rounds if mode != "none" else None,
            "retrain_version": RETRAIN_VERSION if mode != "none" else None,
            "retrain_limit": retrain_limit if mode == "search" else None,
            "tolerance": TOLERANCE, "budget": budget.data_dict()}


def evaluate_point(wl: Workload, w: int, u: int, splits: Any, budget: Budget,
                   reference: tuple[torch.Tensor, torch.Tensor], *, retrain: bool,
                   max_rounds: int | None, progress: bool, console: Console | None,
                   root: str | os.PathLike[str] | None,
                   before: float | None = None) -> dict[str, Any]:
    """One sweep point: compose (store-cached), optionally retrain, test accuracy and quality
    loss with its paired standard error against ``reference`` (the float model's predictions
    and the labels of the test examples,
    :mod:`rapidnn.composer.quality`), memory, RAPIDNN energy per
    inference (cost model on the simulator's trace of example inputs). ``before``: the composed
    model's test accuracy when already measured (the search retrains measured points)."""
    from rapidnn.composer.quality import paired_loss, predictions
    from rapidnn.composer.retrain import accuracy
    from rapidnn.hardware.costs import compare
    from rapidnn.workloads.store import get_composed

    t0 = time.perf_counter()
    test = loader(splits.test, budget.test_images)
    row: dict[str, Any] = {"weight_clusters": w, "input_clusters": u}
    if retrain:
        composed, final, info = retrained(wl, w, u, splits, budget,
                                          max_rounds=max_rounds, progress=progress,
                                          console=console, root=root)
        row["accuracy_before_retraining"] = (accuracy(composed, test) if before is None
                                             else before)
        row["retrain_rounds"] = info["retrain"]["rounds"]
        row["converged"] = info["retrain"]["converged"]
    else:
        final, _ = get_composed(wl, w, u, budget.recipes, progress, root=root, console=console)
    float_pred, labels = reference
    paired = paired_loss(float_pred, predictions(final, test)[0], labels)
    row["composed_accuracy"] = paired.composed_accuracy
    row.setdefault("accuracy_before_retraining", paired.composed_accuracy)
    row["retrained"] = retrain
    row["float_accuracy"] = paired.float_accuracy
    row["quality_loss"] = paired.quality_loss
    row["quality_loss_se"] = paired.standard_error
    row["float_only"], row["composed_only"] = paired.float_only, paired.composed_only
    mem = final.memory()
    row["bits_per_neuron"] = mem["bits_per_neuron"]
    row["bytes_per_neuron"] = mem["bits_per_neuron"] / 8
    row["total_bits"] = mem["total_bits"]
    cmp = compare(final, name=wl.name, policies=()).to_dict()
    row["energy_j"] = cmp["rapidnn"]["energy_j"]
    row["throughput_ips"] = cmp["rapidnn"]["throughput_ips"]
    row["vs"] = {b: {"energy_efficiency": r["energy_efficiency"], "speedup": r["speedup"]}
                 for b, r in cmp["baselines"].items()}
    row["seconds"] = round(time.perf_counter() - t0, 3)
    return row


def point_task(wl: Workload, w: int, u: int, budget: Budget,
               reference: tuple[torch.Tensor, torch.Tensor], retrain: bool,
               max_rounds: int | None, root: str | os.PathLike[str] | None,
               float_model: tuple[bytes, bytes], before: float | None) -> dict[str, Any]:
    """:func:`evaluate_point` as an executor's task (``rapidnn.experiments.executor``): the
    driver's float model (``float_model``: the store entry's weights and info files) is
    installed into this worker's store when it is not there yet, so a worker never trains it.
    The workload travels as an object (its recipe and network factory), not as a name."""
    from rapidnn.workloads.store import entry_paths

    for path, content in zip(entry_paths(wl, budget.recipes, root), float_model, strict=True):
        if not path.is_file() or path.stat().st_size != len(content):
            atomic_write(path, lambda tmp, content=content: Path(tmp).write_bytes(content))
    splits = wl.splits(budget.recipes)
    return evaluate_point(wl, w, u, splits, budget, reference, retrain=retrain,
                          max_rounds=max_rounds, progress=False, console=None, root=root,
                          before=before)


#: option keys that only concern retraining (older sweeps named the rounds ``max_epochs``)
RETRAIN_OPTIONS = ("mode", "max_rounds", "max_epochs", "retrain_limit", "retrain_version")


def _measurement(options: dict[str, Any]) -> dict[str, Any]:
    """The options that determine a point's measurement before retraining."""
    view = {k: v for k, v in options.items() if k not in RETRAIN_OPTIONS}
    view["budget"] = {"test_images": (options.get("budget") or {}).get("test_images")}
    return view


def _load_existing(path: Path, options: dict[str, Any], restart: bool,
                   console: Console) -> list[dict[str, Any]]:
    """The finished points of an earlier run in ``path``. With other retraining options only,
    the points measured without retraining are kept (and their search status cleared) and the
    retrained ones are dropped, to be measured again; other differences raise."""
    if restart or not path.exists():
        return []
    old = _read_sweep(path)
    old_options = old["options"]
    points = list(old["points"])
    if old_options == options:
        return points
    if _measurement(old_options) == _measurement(options):
        kept = [p for p in points if not p.get("retrained")]
        for p in kept:
            p.pop("search", None)
            p.pop("pareto", None)
        console.print(f"{path}: other retraining options; {len(kept)} point(s) measured "
                      f"without retraining kept, {len(points) - len(kept)} retrained point(s) "
                      "to measure again")
        return kept
    diff = sorted(k for k in set(options) | set(old_options)
                  if options.get(k) != old_options.get(k))
    raise SweepOptionsError(f"{path} was written with other options ({', '.join(diff)}); "
                            "use another --out folder or pass --restart")


def _read_sweep(path: Path) -> dict[str, Any]:
    """The content of an earlier ``sweep.json``, checked (:class:`SweepFileError`)."""
    hint = "; fix it, or pass --restart to discard it"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SweepFileError(f"{path}: not a readable JSON sweep file ({exc}){hint}") from None
    found = old.get("format") if isinstance(old, dict) else type(old).__name__
    if found != FORMAT:
        raise SweepFileError(f"{path}: not a rapidnn sweep file (format {found!r}, expected "
                             f"{FORMAT!r}){hint}")
    try:
        check_shape(SweepFile, old, path)
    except ValueError as exc:
        raise SweepFileError(f"{exc}{hint}") from None
    return old


def _describe(p: dict[str, Any]) -> str:
    text = (f"w={p['weight_clusters']} u={p['input_clusters']}: accuracy "
            f"{100 * p['composed_accuracy']:.2f}% (loss {100 * p['quality_loss']:+.2f}")
    if p.get("quality_loss_se") is not None:
        text += f" ± {100 * p['quality_loss_se']:.2f}"
    text += " points"
    if p.get("retrained"):
        text += f", {p.get('retrain_rounds')} retraining round(s)"
    return f"{text}), {p['bytes_per_neuron']:.1f} bytes/neuron, {p['seconds']:.0f} s"


def _needs_retraining(p: dict[str, Any], retrain_limit: float) -> bool:
    return (p.get("search") != "retrained" and p["quality_loss"] > TOLERANCE + 1e-12
            and p["quality_loss"] <= retrain_limit + 1e-12)


def _wave(order: list[dict[str, Any]], i: int, retrain_limit: float,
          size: int) -> list[dict[str, Any]]:
    """The points from ``order[i]`` (one that needs retraining) that the search would retrain
    next if none of them were within tolerance: up to ``size``, stopping at a point the search
    would stop at without retraining."""
    wave = []
    for p in order[i:]:
        if p.get("search") == "retrained" or p["quality_loss"] <= TOLERANCE + 1e-12:
            break
        if _needs_retraining(p, retrain_limit):
            wave.append(p)
            if len(wave) == size:
                break
    return wave


def _search(wl: Workload, points: list[dict[str, Any]], splits: Any,
            budget: Budget, reference: tuple[torch.Tensor, torch.Tensor],
            max_rounds: int | None, retrain_limit: float, *,
            save: Any, progress: bool, console: Console | None,
            root: str | os.PathLike[str] | None,
            retrain_many: Any = None, parallelism: int = 1) -> list[dict[str, Any]]:
    """Retrain in ascending memory until a point is within tolerance (updates ``points`` in
    place and sets each point's ``search`` status; resumes from points already retrained).
    A point already within tolerance before retraining is the answer as it is.

    ``retrain_many(points) -> [TaskResult]`` retrains several points at once (an executor:
    the next ``parallelism`` points the search would retrain, their results used in order
    until one is within tolerance, the rest discarded: the same answer as one at a time).
    Returns the points whose retraining failed (``{"weight_clusters", "input_clusters",
    "error"}``)."""
    def one_at_a_time(wave: list[dict[str, Any]]) -> list[TaskResult]:
        return [TaskResult((p["weight_clusters"], p["input_clusters"]), evaluate_point(
            wl, p["weight_clusters"], p["input_clusters"], splits, budget, reference,
            retrain=True, max_rounds=max_rounds, progress=progress, console=console,
            root=root, before=p["composed_accuracy"])) for p in wave]

    retrain_many = retrain_many or one_at_a_time
    pending: dict[tuple[int, int], TaskResult] = {}
    failed: list[dict[str, Any]] = []
    found = False
    order = search_order(points)
    for i, p in enumerate(order):
        if found:
            p["search"] = "not needed (a smaller point is within tolerance)"
            continue
        if p.get("search") != "retrained":
            if p["quality_loss"] <= TOLERANCE + 1e-12:
                p["search"] = "within tolerance before retraining"
                found = True
                continue
            if p["quality_loss"] > retrain_limit + 1e-12:
                p["search"] = (f"not retrained (loss {100 * p['quality_loss']:.2f} points > "
                               f"limit {100 * retrain_limit:.2f})")
                continue
            key = (p["weight_clusters"], p["input_clusters"])
            if key not in pending:
                wave = _wave(order, i, retrain_limit, max(1, parallelism))
                for r in retrain_many(wave):
                    pending[r.key] = r
            result = pending.pop(key)
            if result.error is not None:
                failed.append({"weight_clusters": key[0], "input_clusters": key[1],
                               "error": result.error})
                p["search"] = f"retraining failed: {result.error}"
                if console is not None:
                    console.print(f"search {wl.name}: w={key[0]} u={key[1]} failed: "
                                  f"{result.error}")
                continue
            p.clear()
            p.update(result.value)
            p["search"] = "retrained"
            save()
            if progress and console is not None:
                console.print(f"search {wl.name}: retrained {_describe(p)}")
        found = p["quality_loss"] <= TOLERANCE + 1e-12
    return failed


def run_sweep(workload: str | Workload, weight_clusters: list[int], input_clusters: list[int],
              *, mode: str = "none", max_rounds: int | None = None,
              out: str | os.PathLike[str] = "sweep", restart: bool = False,
              budget: Budget | str = "full", progress: bool = True,
              console: Console | None = None, root: str | os.PathLike[str] | None = None,
              plot: bool = True, retrain_limit: float = RETRAIN_LIMIT,
              executor: Executor | None = None) -> dict[str, Any]:
    """Run (or resume) the sweep over the grid ``weight_clusters`` x ``input_clusters`` and
    return the content of ``sweep.json``. ``mode`` is one of :data:`MODES` (module
    docstring). ``executor``: where the points run (``rapidnn.experiments.executor``; default
    this process, one after another); with Ray, a point that fails is listed in the file's
    ``failed`` (the file is then not ``complete``, and a rerun measures it again)."""
    if mode not in MODES:
        raise ValueError(f"unknown sweep mode {mode!r} ({', '.join(MODES)})")
    if not 0 <= retrain_limit <= 1:
        raise ValueError(f"retrain limit must be a fraction in [0, 1], got {retrain_limit}")
    wl = get_workload(workload)
    budget = get_budget(budget)
    if mode != "none" and max_rounds is None:
        max_rounds = budget.max_rounds
    with locked(out) as folder:
        options = sweep_options(wl, weight_clusters, input_clusters, mode, max_rounds, budget,
                                retrain_limit)
        return _sweep(wl, list(product(weight_clusters, input_clusters)), options, folder,
                      restart=restart, budget=budget, progress=progress,
                      console=console or Console(stderr=True), root=root, plot=plot,
                      executor=executor)


def _sweep(wl: Workload, grid: list[tuple[int, int]], options: dict[str, Any], folder: Path,
           *, restart: bool, budget: Budget, progress: bool, console: Console,
           root: str | os.PathLike[str] | None, plot: bool,
           executor: Executor | None = None) -> dict[str, Any]:
    """:func:`run_sweep` over ``grid`` in the locked folder ``folder``."""
    from rich.progress import Progress

    from rapidnn.composer.quality import predictions
    from rapidnn.workloads.store import entry_paths, get_trained

    mode, max_rounds = options["mode"], options["max_rounds"]
    path = folder / "sweep.json"
    points = _load_existing(path, options, restart, console)
    done = {(p["weight_clusters"], p["input_clusters"]) for p in points}
    t0 = time.perf_counter()
    model, info = get_trained(wl, budget.recipes, progress, root=root, console=console)
    splits = wl.splits(budget.recipes)
    with torch.no_grad():
        reference = predictions(model, loader(splits.test, budget.test_images))
    float_acc = int((reference[0] == reference[1]).sum()) / reference[1].numel()
    doc: dict[str, Any] = {"format": FORMAT, "options": options, "machine": machine(),
                           "float_accuracy": float_acc, "float_model": info.get("path"),
                           "test_images": len(loader(splits.test, budget.test_images).dataset),
                           "points": points, "complete": False}
    todo = [(w, u) for w, u in grid if (w, u) not in done]
    if done:
        console.print(f"sweep {wl.name}: {len(done)} point(s) already in {path}, "
                      f"{len(todo)} to go")
    failed: list[dict[str, Any]] = []
    remote = executor is not None and not isinstance(executor, LocalExecutor)
    if remote:  # sent once, whatever the number of tasks
        shipped = executor.share(tuple(p.read_bytes() for p in entry_paths(
            wl, budget.recipes, root)))
        shared_reference = executor.share(reference)

        def tasks(specs: list[tuple[int, int, bool, float | None]]) -> list[tuple]:
            return [((w, u), (wl, w, u, budget, shared_reference, retrain, max_rounds,
                              root, shipped, before)) for w, u, retrain, before in specs]
    with Progress(console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task(f"sweep {wl.name}", total=len(todo))
        if remote:
            bar.update(task, description=f"sweep {wl.name} on {executor.name} "
                                         f"({executor.parallelism} at once)")
            for r in executor.run(point_task, tasks([(w, u, mode == "all", None)
                                                     for w, u in todo])):
                if r.error is not None:
                    failed.append({"weight_clusters": r.key[0], "input_clusters": r.key[1],
                                   "error": r.error})
                    console.print(f"sweep {wl.name}: w={r.key[0]} u={r.key[1]} failed: "
                                  f"{r.error}")
                else:
                    points.append(r.value)
                    write_json(path, doc)
                    if progress:
                        console.print(f"sweep {wl.name}: {_describe(points[-1])}")
                bar.advance(task)
        for w, u in todo if not remote else ():
            bar.update(task, description=f"sweep {wl.name} w={w} u={u}")
            points.append(evaluate_point(wl, w, u, splits, budget, reference,
                                         retrain=mode == "all", max_rounds=max_rounds,
                                         progress=progress, console=console, root=root))
            write_json(path, doc)
            if progress:
                console.print(f"sweep {wl.name}: {_describe(points[-1])}")
            bar.advance(task)
    if mode == "search" and not failed:
        many = (lambda wave: list(executor.run(point_task, tasks(
            [(p["weight_clusters"], p["input_clusters"], True, p["composed_accuracy"])
             for p in wave])))) if remote else None
        failed += _search(wl, points, splits, budget, reference, max_rounds,
                          options["retrain_limit"], save=lambda: write_json(path, doc),
                          progress=progress, console=console, root=root, retrain_many=many,
                          parallelism=executor.parallelism if remote else 1)
    order = {(w, u): i for i, (w, u) in enumerate(grid)}
    points.sort(key=lambda p: order.get((p["weight_clusters"], p["input_clusters"]), 1 << 30))
    front = set(pareto_front(points))
    for i, p in enumerate(points):
        p["pareto"] = i in front
    if failed:
        doc["failed"] = failed
    doc.update({"complete": not failed,
                "smallest_within_tolerance": smallest_within_tolerance(points),
                "most_accurate": most_accurate(points),
                "seconds_this_run": round(time.perf_counter() - t0, 2)})
    if plot:
        _write_plot_and_table(doc, wl, budget, folder)
    write_json(path, doc)
    return doc


def _write_plot_and_table(doc: dict[str, Any], wl: Workload, budget: Budget,
                          folder: Path) -> None:
    """``pareto.png`` and ``sweep.txt`` of a finished sweep (``doc['plot']`` names the plot)."""
    from rapidnn.report.plots import pareto_plot
    from rapidnn.report.tables import render_text, sweep_table

    label = f"{wl.name}{' (quick)' if budget.quick else ''}"
    pareto_plot(doc["points"], folder / "pareto.png",
                title=f"{label}: energy per inference vs quality loss")
    doc["plot"] = str(folder / "pareto.png")
    atomic_write_text(folder / "sweep.txt",
                      render_text(sweep_table(doc["points"], title=f"sweep {label}")))
