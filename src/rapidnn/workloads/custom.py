"""A user's own trained model and data as a :class:`~rapidnn.workloads.Workload`, so that
``rapidnn sweep`` / ``simulate`` / ``compare`` (and :func:`rapidnn.experiments.sweep.run_sweep`)
run it with all their machinery: the resumable ``sweep.json``, the folder lock, the executors,
the composed-model cache (``docs/own-model.md``).

The model (``model`` argument) is one of

* ``package.module:factory``: a function (or class) of an importable module returning the
  network (the working folder is searched first, as ``python -m`` does);
* ``path/to/file.py:factory``: the same from a Python file;
* ``net.onnx``: an ONNX file (:func:`rapidnn.composer.onnx_import.load_onnx`; weights inside).

A factory builds the network; its trained weights come from ``weights``, a ``.safetensors``
state dict (``safetensors.torch.save_file(model.state_dict(), "net.safetensors")``), or the
factory returns the model already trained. Nothing is trained here and nothing is unpickled.

The data (``data``, ``test``) is a ``.npz`` file with arrays ``x`` (inputs, batch first, fed
to the network as they are) and ``y`` (class indices), or an image folder with one sub-folder
per class (:mod:`rapidnn.data.folder`: float32 in [0, 1], channels first). ``data`` feeds
calibration (composing) and retraining, with a seeded 10% held out for validation; the test
set is ``test``, or a seeded 20% of ``data`` held out when it is not given.

The workload's key (its store entry, :meth:`Workload.key`) hashes the network's structure
and weights, the factory's source file and the data, so an edited model or dataset is never
mistaken for an earlier one. Every user mistake is one :class:`CustomWorkloadError` or
:class:`~rapidnn.data.DatasetError` naming the file and the problem.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from rapidnn._files import safe_name
from rapidnn.budget import RecipeSet
from rapidnn.data import DatasetError
from rapidnn.workloads import Recipe, Workload, WorkloadError
from rapidnn.workloads.splits import Splits

__all__ = ["CustomWorkload", "CustomWorkloadError", "custom_workload", "install_float_model",
           "load_model", "read_data"]

VAL_FRACTION = 0.1
TEST_FRACTION = 0.2
BATCH = 128


class CustomWorkloadError(WorkloadError):
    """A user model that cannot be loaded or does not fit its data (the message says why)."""


@dataclass(frozen=True)
class CustomWorkload(Workload):
    """A workload of a user's model and data files: the network is loaded, never trained
    (:attr:`factory` loads it), and its splits are read from the files."""

    model_spec: str = ""
    weights: str | None = None
    data: str = ""
    test: str | None = None
    digest: str = ""

    def key(self, recipes: RecipeSet = "full") -> str:
        """``<name>-<content hash>``: one float model for every recipe set (none is trained)."""
        return f"{self.name}-{self.digest}"

    def splits(self, recipes: RecipeSet = "full") -> Splits:
        """Train / validation / test parts of the data files (seeded, :data:`VAL_FRACTION`
        and :data:`TEST_FRACTION`)."""
        return _splits(self.data, self.test, self.recipe.seed, self.recipe.batch)


def custom_workload(model: str, data: str | os.PathLike[str], *,
                    weights: str | os.PathLike[str] | None = None,
                    test: str | os.PathLike[str] | None = None, seed: int = 0,
                    batch: int = BATCH) -> CustomWorkload:
    """The workload of ``model`` (module docstring) on ``data`` (and ``test``), checked: the
    model loads, accepts the inputs and has an output per class of the labels."""
    data, test = os.fspath(data), None if test is None else os.fspath(test)
    weights = None if weights is None else os.fspath(weights)
    network = load_model(model, weights)
    splits = _splits(data, test, seed, batch)
    x = splits.train.tensors[0]
    classes = _check_fit(network, model, x, splits)
    name = safe_name(_model_name(model))
    digest = hashlib.sha256()
    _hash_model(digest, network, model)
    for part in (splits.train, splits.val, splits.test):
        for t in part.tensors:
            digest.update(str((t.dtype, tuple(t.shape))).encode())
            digest.update(t.numpy().tobytes())
    # absolute paths (and the folder a dotted module was imported from): an executor's worker
    # runs in another folder
    data, test, weights = _absolute(data), test and _absolute(test), weights and _absolute(weights)
    recipe = Recipe(model=model, dataset=data, epochs=0, lr=0.0, batch=batch,
                    val=len(splits.val), seed=seed)
    return CustomWorkload(
        name=name, title=f"{model} on {Path(data).name}",
        description=f"the user's model {model} on {data}"
                    + (f" (test data {test})" if test else ""),
        dataset=test or data, input_shape=tuple(x.shape[1:]), classes=classes,
        factory=functools.partial(load_model, _absolute_spec(model), weights, os.getcwd()),
        recipe=recipe, quick_recipe=recipe, model_spec=model, weights=weights, data=data,
        test=test, digest=digest.hexdigest()[:12])


def _absolute(path: str) -> str:
    return str(Path(path).resolve())


def _absolute_spec(spec: str) -> str:
    """``spec`` with its file path (an .onnx or .py file) absolute."""
    if spec.lower().endswith(".onnx"):
        return _absolute(spec)
    module_name, _, attr = spec.rpartition(":")
    if module_name.endswith(".py") or os.sep in module_name:
        return f"{_absolute(module_name)}:{attr}"
    return spec


def install_float_model(wl: CustomWorkload, root: str | os.PathLike[str] | None = None,
                        ) -> dict[str, Any]:
    """Put the user's float model into the store at ``root`` (unless it holds it already), as
    the trained model of ``wl``, with its validation and test accuracy; returns its info."""
    from rapidnn.composer.retrain import accuracy
    from rapidnn.workloads.store import entry_paths, load_trained, save_trained

    hit = load_trained(wl, "full", root)
    if hit is not None and hit[1] is not None:
        return {**hit[1], "path": str(entry_paths(wl, "full", root)[0])}
    model = wl.build()
    splits = wl.splits()
    with torch.no_grad():
        info = {"key": wl.key(), "workload": wl.name, "quick": False,
                "val_accuracy": accuracy(model, splits.val_loader()),
                "test_accuracy": accuracy(model, splits.test_loader()),
                "train_seconds": None, "parameters": sum(p.numel() for p in model.parameters()),
                "sizes": splits.sizes(), "recipe": wl.recipe.key_dict(),
                "source": {"model": wl.model_spec, "weights": wl.weights, "data": wl.data,
                           "test": wl.test}}
    path = save_trained(wl, model, info, "full", root)
    return {**info, "path": str(path)}


# The model ------------------------------------------------------------------------------------
def load_model(spec: str, weights: str | None = None, folder: str | None = None) -> nn.Module:
    """The network of ``spec`` (module docstring) with ``weights`` loaded, in eval mode; a
    dotted module is looked for in ``folder`` (default: the working folder) first."""
    if spec.lower().endswith(".onnx"):
        if weights is not None:
            raise CustomWorkloadError(f"{spec}: an ONNX file holds its weights; leave out "
                                      f"--weights {weights}")
        # a sweep builds the network at every point: converted once, a fresh copy per call
        return copy.deepcopy(_converted(os.path.abspath(spec), _stamp(spec)))
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise CustomWorkloadError(f"--model {spec}: expected package.module:factory, "
                                  f"path/to/file.py:factory or an .onnx file")
    module = _import(module_name, spec, folder or os.getcwd())
    factory = getattr(module, attr, None)
    if factory is None:
        raise CustomWorkloadError(f"--model {spec}: {module_name} has no {attr!r} (names: "
                                  f"{', '.join(_public(module)) or 'none'})")
    if not callable(factory):
        raise CustomWorkloadError(f"--model {spec}: {attr} is not callable (a "
                                  f"{type(factory).__name__}); name a function returning a "
                                  f"torch.nn.Module")
    try:
        network = factory()
    except Exception as exc:
        raise CustomWorkloadError(f"--model {spec}: {attr}() failed: {type(exc).__name__}: "
                                  f"{_first_line(exc)}") from exc
    if not isinstance(network, nn.Module):
        raise CustomWorkloadError(f"--model {spec}: {attr}() returned a "
                                  f"{type(network).__name__}, not a torch.nn.Module")
    if weights is not None:
        _load_weights(network, weights, attr)
    return network.eval()


def _import(module_name: str, spec: str, folder: str) -> Any:
    """The module ``module_name``: a ``.py`` file path, or a dotted name importable from
    ``folder`` or ``sys.path``."""
    path = Path(module_name)
    if module_name.endswith(".py") or os.sep in module_name:
        if not path.is_file():
            raise CustomWorkloadError(f"--model {spec}: {module_name}: no such Python file")
        unique = "rapidnn_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        loader_spec = importlib.util.spec_from_file_location(unique, path)
        if loader_spec is None or loader_spec.loader is None:
            raise CustomWorkloadError(f"--model {spec}: {module_name} cannot be imported")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[unique] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[unique]
            raise _import_error(spec, module_name, exc) from exc
        return module
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise CustomWorkloadError(f"--model {spec}: no module named {exc.name!r} (is its "
                                      f"folder the working folder or on PYTHONPATH?)") from exc
        raise _import_error(spec, module_name, exc) from exc
    except Exception as exc:
        raise _import_error(spec, module_name, exc) from exc
    finally:
        if added:
            sys.path.remove(folder)


def _import_error(spec: str, module_name: str, exc: BaseException) -> CustomWorkloadError:
    return CustomWorkloadError(f"--model {spec}: importing {module_name} failed: "
                               f"{type(exc).__name__}: {_first_line(exc)}")


def _public(module: Any) -> list[str]:
    return sorted(n for n, v in vars(module).items() if not n.startswith("_") and callable(v)
                  and getattr(v, "__module__", None) == module.__name__)[:10]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _load_weights(network: nn.Module, weights: str, factory: str) -> None:
    """Load a ``.safetensors`` state dict into ``network``; a key or shape that does not fit
    is named."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not weights.lower().endswith(".safetensors"):
        raise CustomWorkloadError(f"--weights {weights}: not a .safetensors file; rapidnn never "
                                  f"unpickles (.pt/.pth), save the state dict with "
                                  f"safetensors.torch.save_file(model.state_dict(), "
                                  f"'net.safetensors')")
    if not Path(weights).is_file():
        raise CustomWorkloadError(f"--weights {weights}: no such file")
    try:
        state = load_file(weights)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CustomWorkloadError(f"--weights {weights}: not a readable .safetensors file "
                                  f"({_first_line(exc)})") from exc
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} (network {tuple(own[k].shape)})"
             for k in sorted(set(own) & set(state)) if state[k].shape != own[k].shape]
    problems = ([f"missing {', '.join(missing[:5])}"] if missing else []) + \
        ([f"unexpected {', '.join(unexpected[:5])}"] if unexpected else []) + \
        ([f"shape of {', '.join(wrong[:3])}"] if wrong else [])
    if problems:
        raise CustomWorkloadError(f"--weights {weights} do not fit {factory}()'s network: "
                                  f"{'; '.join(problems)}")
    network.load_state_dict(state)


def _model_name(spec: str) -> str:
    if spec.lower().endswith(".onnx"):
        return Path(spec).stem
    module_name, _, attr = spec.rpartition(":")
    return f"{Path(module_name).stem if module_name.endswith('.py') else module_name}-{attr}"


def _hash_model(digest: Any, network: nn.Module, spec: str) -> None:
    """Feed the network's structure, weights and source file into ``digest``."""
    digest.update(repr(network).encode())
    for name, t in network.state_dict().items():
        digest.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    source = spec if spec.lower().endswith(".onnx") else spec.rpartition(":")[0]
    module = sys.modules.get(source)
    path = Path(source) if source.endswith(".py") else Path(getattr(module, "__file__", "") or "")
    if path.is_file():
        digest.update(path.read_bytes())


def _check_fit(network: nn.Module, spec: str, x: torch.Tensor, splits: Splits) -> int:
    """The number of classes: the network's outputs, checked against the data's labels."""
    try:
        with torch.no_grad():
            out = network(x[:2])
    except Exception as exc:
        raise CustomWorkloadError(f"--model {spec} fails on inputs of shape "
                                  f"{tuple(x.shape[1:])} (from the data): {type(exc).__name__}: "
                                  f"{_first_line(exc)}") from exc
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CustomWorkloadError(f"--model {spec}: output {shape} on a batch of 2; expected "
                                  f"(batch, classes) scores")
    classes = int(out.shape[1])
    top = max(int(part.tensors[1].max()) for part in (splits.train, splits.val, splits.test))
    if top >= classes:
        raise CustomWorkloadError(f"--model {spec}: {classes} outputs, but the data has label "
                                  f"{top} (labels must be 0..{classes - 1})")
    return classes


# The data -------------------------------------------------------------------------------------
def read_data(path: str, classes: tuple[str, ...] | None = None, mode: str | None = None,
              ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """``(x, y, class names or None)`` of a ``.npz`` file (arrays ``x`` and ``y``) or an image
    folder (``classes`` and ``mode``: those of the training folder, for a test folder)."""
    from rapidnn.data.arrays import read_npz
    from rapidnn.data.folder import read_image_folder

    if Path(path).is_dir():
        return read_image_folder(path, classes, mode)
    if not path.lower().endswith(".npz"):
        raise DatasetError(f"{path}: expected a .npz file (arrays x and y) or an image folder "
                           f"(one sub-folder per class)")
    x, y = read_npz(path)
    if y is None:
        raise DatasetError(f"{path}: no labels: the file needs arrays 'x' (inputs) and 'y' "
                           f"(class indices)")
    return x, y, None


@functools.lru_cache(maxsize=4)
def _read_cached(path: str, stamp: tuple, classes: tuple[str, ...] | None,
                 mode: str | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """:func:`read_data`, cached while the files' sizes and times (``stamp``) stay the same."""
    return read_data(path, classes, mode)


@functools.lru_cache(maxsize=1)
def _converted(path: str, stamp: tuple) -> nn.Module:
    """The ONNX file at ``path`` as a module, cached while its size and time (``stamp``) stay
    the same (a missing or bad file raises, and nothing is cached)."""
    from rapidnn.composer.onnx_import import load_onnx

    return load_onnx(path).eval()


def _stamp(path: str) -> tuple:
    p = Path(path)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    return tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files if f.exists())


def _read(path: str, classes: tuple[str, ...] | None = None,
          mode: str | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    return _read_cached(path, _stamp(path), classes, mode)


def _splits(data: str, test: str | None, seed: int, batch: int) -> Splits:
    """The seeded train / validation / test split of the data files."""
    x, y, classes = _read(data)
    n = len(x)
    n_val = max(1, round(VAL_FRACTION * n))
    n_test = 0 if test is not None else max(1, round(TEST_FRACTION * n))
    if n - n_val - n_test < 1:
        raise DatasetError(f"{data}: {n} example(s); too few to hold out validation"
                           + ("" if test is not None else " and test") + " examples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    val, held, train = perm[:n_val], perm[n_val:n_val + n_test], perm[n_val + n_test:]
    if test is None:
        test_part = TensorDataset(xt[held], yt[held])
    else:
        mode = None if classes is None else ("L" if x.shape[1] == 1 else "RGB")
        tx, ty, _ = _read(test, classes, mode)
        if tx.shape[1:] != x.shape[1:]:
            raise DatasetError(f"{test}: inputs of shape {tx.shape[1:]}, the training data "
                               f"{data} {x.shape[1:]}")
        test_part = TensorDataset(torch.from_numpy(tx), torch.from_numpy(ty))
    return Splits(TensorDataset(xt[train], yt[train]), TensorDataset(xt[val], yt[val]),
                  test_part, batch, seed)
