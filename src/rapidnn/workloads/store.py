"""The model store: trained float models of the workloads, and composed models, cached on disk.

Layout of the store folder (:func:`store_root`: an explicit ``root`` argument, else
``$RAPIDNN_STORE``, else :func:`rapidnn.workloads.training.models_root`)::

    <workload>[-quick]-<recipe hash>.safetensors   float weights (+ recipe and info in the header)
    <workload>[-quick]-<recipe hash>.json          info: recipe, float test accuracy, time, ...
    <workload>[-quick]-<recipe hash>.checkpoint.safetensors   training state after the last
                                                   finished epoch (only while training)
    composed/<float key>--<tag>-w<W>-u<U>-<options hash>.rapidnn   (+ .json)

The float key is :meth:`Workload.key` (``name-<hash>`` from
:func:`rapidnn.workloads.training.recipe_key`; a weights-only entry of an older cache gets its JSON
written on first use). Every file is written to a temporary
file in the same folder and renamed into place, so an interrupted write leaves no partial entry.
A corrupt or incompatible entry is ignored and replaced by retraining / recomposing; an entry
whose info JSON is readable but has a missing or mistyped field (edited by hand, or by another
program) is a :class:`StoreEntryError` naming the file and the field, never overwritten.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from rapidnn._files import atomic_write, atomic_write_text, clean_stale
from rapidnn._version import __version__
from rapidnn.budget import RecipeSet
from rapidnn.composer.composed import ComposedModel
from rapidnn.composer.composed import load as load_composed_file
from rapidnn.composer.config import ComposeConfig, describe_errors
from rapidnn.composer.modelfile import ModelFileError
from rapidnn.composer.retrain import accuracy
from rapidnn.workloads import Workload, WorkloadError, get_workload
from rapidnn.workloads.checkpoint import (
    CheckpointError,
    TrainingState,
    load_checkpoint,
    write_checkpoint,
)
from rapidnn.workloads.fit import fit
from rapidnn.workloads.splits import Splits, loader_generators
from rapidnn.workloads.training import models_root

__all__ = [
    "ENV_STORE",
    "StoreEntryError",
    "checkpoint_path",
    "composed_key",
    "composed_options",
    "composed_path",
    "entry_lock",
    "entry_paths",
    "get_composed",
    "get_trained",
    "load_composed",
    "load_trained",
    "save_composed",
    "save_trained",
    "store_root",
    "train_workload",
]

ENV_STORE = "RAPIDNN_STORE"
INFO_KEY = "info"


def store_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: ``root`` if given, else ``$RAPIDNN_STORE``, else ``models_root()``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_STORE)
    if env:
        return Path(env).expanduser()
    return models_root()


def _write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


class StoreEntryError(WorkloadError):
    """A store entry's info JSON has a missing or mistyped field (the message names both)."""


def _is(*types: type) -> Callable[[Any], bool]:
    """A check for values of ``types`` (a bool is no number unless ``bool`` is listed)."""
    return lambda v: isinstance(v, types) and (bool in types or not isinstance(v, bool))


def _fraction(v: Any) -> bool:
    return _is(int, float)(v) and 0 <= v <= 1


def _seconds(v: Any) -> bool:
    return v is None or (_is(int, float)(v) and v >= 0)


#: What the store and the CLI read from an info JSON: field -> (required, check, what it is).
_FieldSpec = dict[str, tuple[bool, Callable[[Any], bool], str]]
FLOAT_INFO_FIELDS: _FieldSpec = {
    "key": (True, _is(str), "a string"),
    "workload": (True, _is(str), "a string"),
    "test_accuracy": (True, _fraction, "a number in [0, 1]"),
    "val_accuracy": (True, _fraction, "a number in [0, 1]"),
    "quick": (False, _is(bool), "true or false"),
    "train_seconds": (False, _seconds, "a non-negative number or null"),
    "parameters": (False, _is(int), "an integer"),
    "recipe": (False, _is(dict), "an object"),
    "sizes": (False, _is(dict), "an object"),
    "loss_history": (False, _is(list), "a list"),
}
COMPOSED_INFO_FIELDS: _FieldSpec = {
    "key": (False, _is(str), "a string"),
    "workload": (False, _is(str), "a string"),
    "tag": (False, _is(str), "a string"),
    "quick": (False, _is(bool), "true or false"),
    "options": (False, _is(dict), "an object"),
    "compose_seconds": (False, _seconds, "a non-negative number"),
    "bits_per_neuron": (False, _is(int, float), "a number"),
}


def check_info(info: dict[str, Any], fields: _FieldSpec, source: str) -> dict[str, Any]:
    """``info`` itself if every field in ``fields`` is as described, else a
    :class:`StoreEntryError` naming ``source`` (the file) and the first bad field."""
    for name, (required, ok, what) in fields.items():
        if name not in info:
            if required:
                raise StoreEntryError(f"store entry {source}: field {name!r} is missing "
                                      f"(it must be {what})")
        elif not ok(info[name]):
            raise StoreEntryError(f"store entry {source}: field {name!r} must be {what}, got "
                                  f"{info[name]!r}")
    return info


def _console(console: Console | None) -> Console:
    return console if console is not None else Console(stderr=True)


@contextlib.contextmanager
def entry_lock(path: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the store entry ``path`` (a ``.<name>.lock`` file next to it,
    removed on release), so two processes never train the same model at once; ``on_wait`` is
    called once if another process holds the lock. Taking it removes the stale temporary files
    of killed writes in the entry's folder. Without ``fcntl`` nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    lock = path.parent / f".{path.name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        f = open(lock, "a")  # noqa: SIM115 (held across the yield)
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None and not waited:
                on_wait()
            waited = True
            fcntl.flock(f, fcntl.LOCK_EX)
        try:  # the holder before us may have removed the file: lock the current one
            if os.stat(lock).st_ino == os.fstat(f.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()
    clean_stale(path.parent)  # temporary files of writes killed before their rename
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        f.close()  # closing releases the lock


# Float models ---------------------------------------------------------------------------------
def entry_paths(workload: str | Workload, recipes: RecipeSet = "full",
                root: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """``(weights, info)`` paths of a workload's float-model entry."""
    key = get_workload(workload).key(recipes)
    folder = store_root(root)
    return folder / f"{key}.safetensors", folder / f"{key}.json"


def save_trained(workload: str | Workload, model: nn.Module, info: dict[str, Any],
                 recipes: RecipeSet = "full", root: str | os.PathLike[str] | None = None) -> Path:
    """Write ``model``'s weights and ``info`` atomically (weights first, then the JSON)."""
    wl = get_workload(workload)
    weights, meta = entry_paths(wl, recipes, root)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    header = {"recipe": json.dumps(wl.recipe_for(recipes).key_dict(), sort_keys=True),
              INFO_KEY: json.dumps(info, sort_keys=True)}
    atomic_write(weights, lambda tmp: save_file(state, tmp, metadata=header))
    _write_json(meta, info)
    return weights


def load_trained(workload: str | Workload, recipes: RecipeSet = "full",
                 root: str | os.PathLike[str] | None = None,
                 ) -> tuple[nn.Module, dict[str, Any] | None] | None:
    """The cached float model and its info, or None if there is no usable entry. The info is
    None when the entry has weights but no metadata (e.g. written by the demo)."""
    wl = get_workload(workload)
    weights, meta = entry_paths(wl, recipes, root)
    if not weights.is_file():
        return None
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
        model = wl.build()
        model.load_state_dict(state)
    except (SafetensorError, OSError, RuntimeError, ValueError):
        return None  # corrupt or incompatible: retrained and overwritten by get_trained
    info, source = _read_json(meta), str(meta)
    if info is None and INFO_KEY in header:
        try:
            info, source = json.loads(header[INFO_KEY]), f"{weights} (header {INFO_KEY!r})"
        except ValueError:
            info = None
    if not isinstance(info, dict) or info.get("key") != wl.key(recipes):
        return model.eval(), None  # another entry's info (or none): completed by get_trained
    return model.eval(), check_info(info, FLOAT_INFO_FIELDS, source)


def _base_info(wl: Workload, recipes: RecipeSet, splits: Splits) -> dict[str, Any]:
    recipe = wl.recipe_for(recipes)
    return {"workload": wl.name, "key": wl.key(recipes), "quick": recipes == "quick",
            "recipe": recipe.key_dict(), "dataset": wl.dataset, "sizes": splits.sizes(),
            "rapidnn_version": __version__, "torch_version": torch.__version__}


def _evaluate(model: nn.Module, splits: Splits) -> dict[str, float]:
    with torch.no_grad():
        return {"val_accuracy": accuracy(model, splits.val_loader()),
                "test_accuracy": accuracy(model, splits.test_loader())}


def checkpoint_path(workload: str | Workload, recipes: RecipeSet = "full",
                    root: str | os.PathLike[str] | None = None) -> Path:
    """Where the training of a workload's float model keeps its per-epoch checkpoint."""
    key = get_workload(workload).key(recipes)
    return store_root(root) / f"{key}.checkpoint.safetensors"


def _resume_state(wl: Workload, recipes: RecipeSet, root: str | os.PathLike[str] | None,
                  out: Console | None) -> TrainingState | None:
    path = checkpoint_path(wl, recipes, root)
    if not path.is_file():
        return None
    try:
        state = load_checkpoint(path, wl.key(recipes))
    except CheckpointError as exc:
        if out is not None:
            out.print(f"{exc}; training from the start")
        return None
    if out is not None:
        out.print(f"training {wl.name}: resuming from the checkpoint after epoch "
                  f"{state.epoch}/{wl.recipe_for(recipes).epochs} ({path})")
    return state


def train_workload(workload: str | Workload, recipes: RecipeSet = "full", progress: bool = True,
                   console: Console | None = None, splits: Splits | None = None, *,
                   root: str | os.PathLike[str] | None = None,
                   ) -> tuple[nn.Module, dict[str, Any]]:
    """Train a workload's recipe now (seeded) and evaluate it; the model itself is not stored
    (:func:`get_trained` does that). After every epoch the training state is checkpointed in
    the store (:func:`checkpoint_path`), and a training that finds a checkpoint of its recipe
    resumes from it, ending with the same weights. A ``warm_start`` base recipe is taken from
    the store (or trained and stored)."""
    wl = get_workload(workload)
    recipe = wl.recipe_for(recipes)
    splits = splits if splits is not None else wl.splits(recipes)
    out = _console(console) if progress else None
    base_info: dict[str, Any] | None = None
    base = wl.warm_start_base(recipes)
    if base is not None:
        model, base_info = get_trained(base, "full", progress, root=root, console=console)
        model.train()
    else:
        model = wl.build(seed=recipe.seed)
    loader = splits.train_loader()
    resume = _resume_state(wl, recipes, root, out)
    ckpt, key = checkpoint_path(wl, recipes, root), wl.key(recipes)

    def on_epoch(state: TrainingState) -> None:
        nonlocal last
        last = state
        atomic_write(ckpt, lambda tmp: write_checkpoint(tmp, state, key))

    last = resume
    before = 0.0 if resume is None else resume.seconds  # training time of earlier runs
    t0 = time.perf_counter()
    fit_args = {"generators": loader_generators(loader), "resume": resume, "on_epoch": on_epoch}
    if out is not None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn())
        label = f"training {wl.name}{' (quick)' if recipes == 'quick' else ''}"
        losses: list[float] = []

        def on_batch(epoch: int, i: int, loss: float) -> None:
            bar.update(task, advance=1, loss=loss)
            losses.append(loss)
            if i == len(loader):  # one line per epoch: visible in logs without a terminal
                out.print(f"{label}: epoch {epoch + 1}/{recipe.epochs}, mean loss "
                          f"{sum(losses) / len(losses):.4f}, "
                          f"{before + time.perf_counter() - t0:.0f} s")
                losses.clear()

        with Progress(*columns, console=out, transient=True) as bar:
            done = 0 if resume is None else resume.epoch * len(loader)
            task = bar.add_task(label, total=recipe.epochs * len(loader), completed=done,
                                loss=float("nan"))
            history = fit(model, loader, recipe, on_batch=on_batch, **fit_args)
    else:
        history = fit(model, loader, recipe, **fit_args)
    seconds = time.perf_counter() - t0 if last is None else last.seconds
    info = _base_info(wl, recipes, splits)
    info.update(_evaluate(model, splits))
    info.update({"train_seconds": round(seconds, 2), "threads": torch.get_num_threads(),
                 "loss_history": [round(v, 5) for v in history],
                 "parameters": sum(p.numel() for p in model.parameters()),
                 "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")})
    if last is not None and last.resumed_at:
        info["resumed_after_epochs"] = last.resumed_at
    if base_info is not None:
        base_seconds = base_info.get("train_seconds")
        info["warm_start"] = {k: base_info.get(k) for k in
                              ("key", "test_accuracy", "val_accuracy", "train_seconds")}
        info["total_train_seconds"] = (None if base_seconds is None
                                       else round(seconds + base_seconds, 2))
    return model.eval(), info


def get_trained(workload: str | Workload, recipes: RecipeSet = "full", progress: bool = True, *,
                root: str | os.PathLike[str] | None = None, console: Console | None = None,
                ) -> tuple[nn.Module, dict[str, Any]]:
    """The trained float model of a workload and its info: from the store, or trained now
    (seeded, with a progress bar if ``progress``) and stored.

    ``info`` holds the recipe, ``test_accuracy`` / ``val_accuracy`` (fractions),
    ``train_seconds`` (None if the weights were found without metadata), the split sizes and
    ``path`` (the weights file).
    """
    wl = get_workload(workload)
    weights, _ = entry_paths(wl, recipes, root)
    out = _console(console) if progress else None
    hit = load_trained(wl, recipes, root)
    if hit is not None:
        model, info = hit
        if info is None:  # weights without metadata (e.g. the demo's cache): complete it
            splits = wl.splits(recipes)
            info = _base_info(wl, recipes, splits)
            info.update(_evaluate(model, splits))
            info.update({"train_seconds": None, "parameters":
                         sum(p.numel() for p in model.parameters()),
                         "note": "weights found without metadata; accuracy measured on reuse"})
            _write_json(entry_paths(wl, recipes, root)[1], info)
        if out is not None:
            out.print(f"float model {wl.name}: loaded from the store ({weights})")
        return model, {**info, "path": str(weights)}
    def waiting() -> None:
        if out is not None:
            out.print(f"float model {wl.name}: another process is training it; waiting")

    with entry_lock(weights, waiting):
        if load_trained(wl, recipes, root) is not None:  # trained by the lock's holder
            return get_trained(wl, recipes, progress, root=root, console=console)
        model, info = train_workload(wl, recipes, progress, console, root=root)
        save_trained(wl, model, info, recipes, root)
        checkpoint_path(wl, recipes, root).unlink(missing_ok=True)
    if out is not None:
        out.print(f"float model {wl.name}: trained in {info['train_seconds']:.0f} s, test "
                  f"accuracy {info['test_accuracy']:.4f}, stored ({weights})")
    return model, {**info, "path": str(weights)}


# Composed models ------------------------------------------------------------------------------
def composed_options(options: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    """Canonical form of compose options: the composer's ``ALGORITHM_VERSION`` under
    ``"algorithm"``, every :class:`ComposeConfig` field (defaults filled in, validated) under
    ``"compose"``; any other key (e.g. retraining settings) under
    ``"extra"``. ``calibration_batches`` defaults to 20 (the demo's choice)."""
    opts = {"calibration_batches": 20, **(options or {}), **more}
    fields = ComposeConfig.model_fields
    try:
        config = ComposeConfig(**{k: v for k, v in opts.items() if k in fields})
    except ValidationError as exc:
        raise WorkloadError(f"invalid compose options: {describe_errors(exc)}") from exc
    from rapidnn.composer.compose import ALGORITHM_VERSION

    out: dict[str, Any] = {"algorithm": ALGORITHM_VERSION,
                           "compose": config.model_dump(mode="json")}
    extra = {k: v for k, v in opts.items() if k not in fields}
    if extra:
        out["extra"] = extra
    return out


def composed_key(workload: str | Workload, options: dict[str, Any] | None = None,
                 recipes: RecipeSet = "full", tag: str = "composed") -> str:
    """``<float key>--<tag>-w<W>-u<U>-<hash of the canonical options>``."""
    wl = get_workload(workload)
    canon = composed_options(options)
    digest = hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()[:12]
    c = canon["compose"]
    return f"{wl.key(recipes)}--{tag}-w{c['weight_clusters']}-u{c['input_clusters']}-{digest}"


def composed_path(workload: str | Workload, options: dict[str, Any] | None = None,
                  recipes: RecipeSet = "full", root: str | os.PathLike[str] | None = None,
                  tag: str = "composed") -> Path:
    """Where the composed model of ``workload`` with ``options`` is cached."""
    key = composed_key(workload, options, recipes, tag)
    return store_root(root) / "composed" / f"{key}.rapidnn"


def save_composed(composed: ComposedModel, workload: str | Workload,
                  options: dict[str, Any] | None = None, recipes: RecipeSet = "full",
                  root: str | os.PathLike[str] | None = None, tag: str = "composed",
                  meta: dict[str, Any] | None = None) -> Path:
    """Store a composed model (``ComposedModel.save``, atomic) and a JSON with its options."""
    path = composed_path(workload, options, recipes, root, tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    composed.save(str(path))
    info = {"workload": get_workload(workload).name, "quick": recipes == "quick", "tag": tag,
            "key": path.stem, "options": composed_options(options), **(meta or {})}
    _write_json(path.with_suffix(".json"), info)
    return path


def load_composed(workload: str | Workload, options: dict[str, Any] | None = None,
                  recipes: RecipeSet = "full", root: str | os.PathLike[str] | None = None,
                  tag: str = "composed") -> ComposedModel | None:
    """The cached composed model (``rapidnn.load``), or None if missing or unreadable."""
    path = composed_path(workload, options, recipes, root, tag)
    if not path.is_file():
        return None
    try:
        return load_composed_file(path)
    except ModelFileError:
        return None


def get_composed(workload: str | Workload, weight_clusters: int = 16, input_clusters: int = 16,
                 recipes: RecipeSet = "full", progress: bool = True, *,
                 root: str | os.PathLike[str] | None = None, console: Console | None = None,
                 **options: Any) -> tuple[ComposedModel, dict[str, Any]]:
    """The workload's float model composed with ``(weight_clusters, input_clusters)`` and
    ``options`` (fields of :class:`ComposeConfig`; ``calibration_batches`` defaults to 20
    seeded, un-augmented training batches): from the store, or composed now and stored.
    Trains the float model first if it is not stored."""
    from rapidnn.composer.compose import compose

    wl = get_workload(workload)
    opts = {"weight_clusters": weight_clusters, "input_clusters": input_clusters, **options}
    canon = composed_options(opts)
    if "extra" in canon:
        raise WorkloadError(f"not compose options: {', '.join(canon['extra'])}; valid: "
                            f"{', '.join(ComposeConfig.model_fields)}")
    path = composed_path(wl, opts, recipes, root)
    cached = load_composed(wl, opts, recipes, root)
    out = _console(console) if progress else None
    if cached is not None:
        if out is not None:
            out.print(f"composed model {wl.name}: loaded from the store ({path})")
        meta_path = path.with_suffix(".json")
        info = check_info(_read_json(meta_path) or {}, COMPOSED_INFO_FIELDS, str(meta_path))
        return cached, {**info, "path": str(path)}
    model, _ = get_trained(wl, recipes, progress, root=root, console=console)
    n_batches = canon["compose"]["calibration_batches"]
    kwargs = {k: v for k, v in opts.items() if k not in ("weight_clusters", "input_clusters")}
    kwargs["calibration_batches"] = n_batches
    t0 = time.perf_counter()
    batches = wl.splits(recipes).calibration(n_batches)
    composed = compose(model, batches, weight_clusters, input_clusters, **kwargs)
    composed.metadata.update({"workload": wl.name, "dataset": wl.dataset})  # for the CLI
    meta = {"compose_seconds": round(time.perf_counter() - t0, 2),
            "float_key": wl.key(recipes),
            "bits_per_neuron": composed.memory()["bits_per_neuron"]}
    save_composed(composed, wl, opts, recipes, root, meta=meta)
    if out is not None:
        out.print(f"composed model {wl.name}: composed in {meta['compose_seconds']:.0f} s, "
                  f"stored ({path})")
    return composed, {**meta, "options": canon, "path": str(path)}
