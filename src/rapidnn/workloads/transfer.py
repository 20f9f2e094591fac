"""Moving trained float models between stores: list, export and import.

Training the CIFAR-10 models takes hours on a small CPU machine, so trained float models travel
as their store entries: ``<key>.safetensors`` with the recipe and the training info in its
header (and the ``<key>.json`` sidecar for people). :func:`export_trained` copies entries out of
the store; :func:`import_trained` checks each file and copies it into a store. The check is the
one :func:`rapidnn.workloads.store.get_trained` relies on: the file's key must be the current
key of a workload recipe (a file of a changed recipe is *stale* and refused, never used in its
place), and its tensors must load into that workload's network. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

import rapidnn.workloads as registry
from rapidnn._files import atomic_write
from rapidnn.budget import RECIPE_SETS, RecipeSet
from rapidnn.workloads import Workload, WorkloadError, get_workload
from rapidnn.workloads.store import (
    FLOAT_INFO_FIELDS,
    INFO_KEY,
    StoreEntryError,
    _read_json,
    check_info,
    entry_paths,
    load_trained,
    save_trained,
    store_root,
)

__all__ = ["TransferResult", "export_trained", "import_trained", "list_trained"]


@dataclass(frozen=True)
class TransferResult:
    """What happened to one file: ``status`` is ``exported``, ``imported``, ``present`` (the
    store already holds a usable entry of that key) or ``stale`` (trained with a recipe that
    is no workload's current one: not imported)."""

    key: str
    workload: str
    recipes: RecipeSet
    status: str
    path: str
    test_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _current_keys() -> dict[str, tuple[Workload, RecipeSet]]:
    """Every current store key: the full and quick recipe of every workload and the warm-start
    bases they continue (as a full recipe of the workload, which is how training finds them)."""
    keys: dict[str, tuple[Workload, RecipeSet]] = {}
    for wl in registry.WORKLOADS.values():
        for recipes in RECIPE_SETS:
            keys[wl.key(recipes)] = (wl, recipes)
            base = wl.warm_start_base(recipes)
            while base is not None:
                keys[base.key()] = (base, "full")
                base = base.warm_start_base()
    return keys


def _recipes_of(info: dict[str, Any]) -> RecipeSet:
    """The recipe set a stored or exported model's info records (its ``quick`` flag)."""
    return "quick" if info.get("quick") else "full"


def _float_models(folder: Path) -> Iterator[Path]:
    """The float-model files of a folder, sorted (training checkpoints are not models)."""
    return (p for p in sorted(folder.glob("*.safetensors"))
            if not p.name.endswith(".checkpoint.safetensors"))


def list_trained(root: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The float-model entries of the store: one dict per ``.safetensors`` file with its key,
    workload, whether it is the current recipe's (``current``; else stale), test and
    validation accuracy and training time (None where the sidecar JSON lacks them), and
    ``problem``: why the entry is unreadable (a mistyped or missing field; None if sound), so
    one bad entry never hides the others."""
    folder = store_root(root)
    current = _current_keys()
    rows = []
    for weights in _float_models(folder):
        sidecar = weights.with_suffix(".json")
        info = _read_json(sidecar) or {}
        problem = None
        try:
            if info:
                check_info(info, FLOAT_INFO_FIELDS, str(sidecar))
        except StoreEntryError as exc:
            problem, info = str(exc), {}
        key = weights.stem
        wl, recipes = current.get(key, (None, None))
        rows.append({"key": key, "workload": wl.name if wl else info.get("workload"),
                     "recipes": recipes or _recipes_of(info),
                     "current": wl is not None,
                     "test_accuracy": info.get("test_accuracy"),
                     "val_accuracy": info.get("val_accuracy"),
                     "train_seconds": info.get("train_seconds"), "path": str(weights),
                     "problem": problem})
    return rows


def export_trained(workloads: list[str], out: str | os.PathLike[str], recipes: RecipeSet = "full",
                   root: str | os.PathLike[str] | None = None) -> list[TransferResult]:
    """Copy the stored float models of ``workloads`` (current recipe) into folder ``out``:
    ``<key>.safetensors`` and ``<key>.json``, each written to a temporary file and renamed.
    A workload that is not in the store is a :class:`WorkloadError` (nothing is written)."""
    entries = []
    for name in workloads:
        wl = get_workload(name)
        hit = load_trained(wl, recipes, root)
        if hit is None or hit[1] is None:
            flag = " --quick" if recipes == "quick" else ""
            raise WorkloadError(f"{wl.name}{' (quick)' if flag else ''} is not in the store "
                                f"{store_root(root)}: train it first (rapidnn train {wl.name}"
                                f"{flag})")
        entries.append((wl, entry_paths(wl, recipes, root), hit[1]))
    folder = Path(out).expanduser()
    results = []
    for wl, (weights, meta), info in entries:
        for src in (weights, meta):
            atomic_write(folder / src.name, lambda tmp, src=src: shutil.copyfile(src, tmp))
        results.append(TransferResult(wl.key(recipes), wl.name, recipes, "exported",
                                      str(folder / weights.name), info.get("test_accuracy")))
    return results


def _candidates(sources: list[str]) -> list[Path]:
    files: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            found = list(_float_models(path))
            if not found:
                raise WorkloadError(f"{path} holds no .safetensors float model")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def _check(path: Path) -> tuple[Workload | None, bool, Any, dict[str, Any]]:
    """The workload, recipe set, loaded model and info of an exported float-model file (workload
    and model None when the file is stale: its key is no current recipe's); a
    :class:`WorkloadError` naming the file for anything unusable."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError) as exc:
        raise WorkloadError(f"{path} is not a readable safetensors file: {exc}") from None
    try:
        info = json.loads(header[INFO_KEY])
        key = info["key"]
    except (KeyError, TypeError, ValueError):
        raise WorkloadError(f"{path} is not a rapidnn float model (no training info in its "
                            f"header)") from None
    current = _current_keys()
    if key not in current:
        return None, _recipes_of(info), None, info
    wl, recipes = current[key]
    model = wl.build()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WorkloadError(f"{path} does not fit the {wl.name} network: {first}") from None
    return wl, recipes, model.eval(), info


def import_trained(sources: list[str], root: str | os.PathLike[str] | None = None,
                   overwrite: bool = False) -> list[TransferResult]:
    """Check every float-model file in ``sources`` (files, or folders of ``.safetensors``) and
    copy it into the store. All files are checked before anything is written, so a bad file
    leaves the store as it was. A file of a changed recipe is not imported (``stale``); an
    entry the store already holds is kept (``present``) unless ``overwrite``. The imported
    entry's info records ``imported_from``."""
    checked = [(path, *_check(path)) for path in _candidates(sources)]
    results = []
    for path, wl, recipes, model, info in checked:
        if wl is None:
            results.append(TransferResult(str(info["key"]), str(info.get("workload", "?")),
                                          recipes, "stale", str(path), info.get("test_accuracy")))
            continue
        weights, _ = entry_paths(wl, recipes, root)
        hit = load_trained(wl, recipes, root)
        if hit is not None and hit[1] is not None and not overwrite:
            results.append(TransferResult(wl.key(recipes), wl.name, recipes, "present",
                                          str(weights), hit[1].get("test_accuracy")))
            continue
        save_trained(wl, model, {**info, "imported_from": str(path.resolve())}, recipes, root)
        results.append(TransferResult(wl.key(recipes), wl.name, recipes, "imported", str(weights),
                                      info.get("test_accuracy")))
    return results
