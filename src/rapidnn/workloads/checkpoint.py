"""Training checkpoints: the whole state of a float training at an epoch boundary, so an
interrupted ``rapidnn train`` resumes where it stopped and ends with the same weights as an
uninterrupted run.

A checkpoint is one safetensors file: the tensors (model parameters and buffers, optimizer
state tensors, the running weight average of stochastic weight averaging, the global torch RNG
and the training loader's generators) plus a JSON header (completed epochs, loss history,
elapsed seconds, optimizer hyper-parameters and scheduler state). Nothing is pickled. It is
written atomically by the store after every epoch and deleted once the trained model is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "TrainingState", "load_checkpoint",
           "write_checkpoint"]

CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (corrupt, another recipe, another format)."""


@dataclass
class TrainingState:
    """A float training after ``epoch`` completed epochs (all of :func:`fit`'s state)."""

    epoch: int
    history: list[float]
    seconds: float
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: torch.Tensor
    loader_rng: list[torch.Tensor] = field(default_factory=list)
    resumed_at: list[int] = field(default_factory=list)
    #: The state of the weight average (``torch.optim.swa_utils.AveragedModel``), if any.
    averaged: dict[str, torch.Tensor] = field(default_factory=dict)


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` as (tensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.{index}.{name}"] = value
            else:
                rest.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "state": rest}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(k): dict(v) for k, v in meta["state"].items()}
    for key, value in tensors.items():
        index, name = key.split(".", 2)[1:]
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def write_checkpoint(filename: str, state: TrainingState, key: str) -> None:
    """Write ``state`` of the training of store entry ``key`` to ``filename`` (the store
    writes to a temporary file and renames it into place)."""
    opt_tensors, opt_meta = _split_optimizer(state.optimizer)
    tensors = {f"model.{k}": v for k, v in state.model.items()}
    tensors.update(opt_tensors)
    tensors.update({f"averaged.{k}": v for k, v in state.averaged.items()})
    tensors["rng.torch"] = state.rng
    tensors.update({f"rng.loader.{i}": s for i, s in enumerate(state.loader_rng)})
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {"format": str(CHECKPOINT_FORMAT), "key": key,
              "meta": json.dumps({"epoch": state.epoch, "history": state.history,
                                  "seconds": state.seconds, "resumed_at": state.resumed_at,
                                  "optimizer": opt_meta, "scheduler": state.scheduler})}
    save_file(tensors, filename, metadata=header)


def load_checkpoint(path: Path, key: str) -> TrainingState:
    """The training state in ``path``; :class:`CheckpointError` if it is unreadable or belongs
    to another store entry or format."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
        if header.get("format") != str(CHECKPOINT_FORMAT) or header.get("key") != key:
            raise CheckpointError(f"checkpoint {path} is for {header.get('key')!r} (format "
                                  f"{header.get('format')}), not {key!r}")
        meta = json.loads(header["meta"])
        loader = sorted((k for k in tensors if k.startswith("rng.loader.")),
                        key=lambda k: int(k.rsplit(".", 1)[1]))
        return TrainingState(
            epoch=int(meta["epoch"]), history=[float(v) for v in meta["history"]],
            seconds=float(meta["seconds"]),
            model={k[6:]: v for k, v in tensors.items() if k.startswith("model.")},
            optimizer=_join_optimizer({k: v for k, v in tensors.items()
                                       if k.startswith("optimizer.")}, meta["optimizer"]),
            scheduler=meta["scheduler"], rng=tensors["rng.torch"],
            loader_rng=[tensors[k] for k in loader],
            resumed_at=[int(e) for e in meta.get("resumed_at", [])],
            averaged={k[9:]: v for k, v in tensors.items() if k.startswith("averaged.")})
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"checkpoint {path} is unreadable: {exc}") from exc
