"""The ``.rapidnn`` file: one safetensors file whose header carries a JSON manifest.

Tensors: ``ops.<i>.<buffer>``, ``codebooks.<key>.<buffer>`` and ``source.<node>.weight|bias``
(the BatchNorm-folded float weights, kept so a loaded model can be retrained). The manifest
(header metadata key ``rapidnn``) holds the format version, the configuration, the op list with
each op's spec, and the captured graph. Loading never unpickles; writing goes to a temporary
file that is renamed into place, so a failed save leaves no half-written file.
:func:`rapidnn.load` (:func:`rapidnn.composer.composed.load`) turns the parts back into a model.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rapidnn._files import atomic_write
from rapidnn._version import __version__
from rapidnn.composer.capture import CapturedGraph, CapturedNode
from rapidnn.composer.config import ComposeConfig
from rapidnn.composer.ops import OP_TYPES, Codebook, SpecModule

FORMAT_NAME = "rapidnn.composed"
FORMAT_VERSION = 1
MANIFEST_KEY = "rapidnn"


class ModelFileError(ValueError):
    """A ``.rapidnn`` file is missing, truncated, corrupt or of an unsupported version."""


@dataclass
class ModelParts:
    """What a ``.rapidnn`` file holds: a composed model's ops, codebooks, captured source graph,
    configuration and metadata (:class:`rapidnn.composer.composed.ComposedModel` is built from
    them; this module does not import it, so the format sits below the model)."""

    ops: list[SpecModule]
    codebooks: dict[str, Codebook]
    source: CapturedGraph
    config: ComposeConfig
    metadata: dict[str, Any]


def write_model_file(path: str | os.PathLike[str], model: ModelParts) -> None:
    """Write ``model`` to ``path`` atomically."""
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    ops = []
    for i, op in enumerate(model.ops):
        ops.append({"kind": op.kind, "spec": op.spec})
        for k, t in op.named_buffers():
            tensors[f"ops.{i}.{k}"] = t
    codebooks = []
    for key, cb in model.codebooks.items():
        codebooks.append({"key": key, "spec": cb.spec})
        for k, t in cb.named_buffers():
            tensors[f"codebooks.{key}.{k}"] = t
    graph = []
    for node in model.source:
        graph.append({"name": node.name, "op": node.op, "inputs": node.inputs,
                      "shape": list(node.shape), "params": _jsonable(node.params),
                      "source": node.source})
        if node.weight is not None:
            tensors[f"source.{node.name}.weight"] = node.weight
        if node.bias is not None:
            tensors[f"source.{node.name}.bias"] = node.bias
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "rapidnn_version": __version__,
                "config": model.config.model_dump(mode="json"), "ops": ops,
                "codebooks": codebooks, "graph": graph, "metadata": model.metadata}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp,
                                             metadata={MANIFEST_KEY: json.dumps(manifest)}))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_jsonable(v) for v in obj]
    return obj


def read_model_file(path: str | os.PathLike[str]) -> ModelParts:
    """Read and check a ``.rapidnn`` file; any defect raises :class:`ModelFileError`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: not a readable .rapidnn file (truncated or corrupt?): "
                             f"{exc}") from exc
    if MANIFEST_KEY not in meta:
        raise ModelFileError(f"{path}: safetensors file without a rapidnn manifest")
    try:
        manifest = json.loads(meta[MANIFEST_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: the manifest is not valid JSON: {exc}") from exc
    if manifest.get("format") != FORMAT_NAME:
        raise ModelFileError(f"{path}: unknown format {manifest.get('format')!r}")
    if manifest.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{path}: file format version {manifest.get('version')!r} is not "
                             f"supported (this rapidnn reads version {FORMAT_VERSION})")
    try:
        return _rebuild(manifest, tensors)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: inconsistent manifest or tensors: {exc}") from exc


def _take(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def _rebuild(manifest: dict[str, Any], tensors: dict[str, torch.Tensor]) -> ModelParts:
    config = ComposeConfig(**manifest["config"])
    nodes = []
    for g in manifest["graph"]:
        params = {k: tuple(v) if isinstance(v, list) else v for k, v in g["params"].items()}
        nodes.append(CapturedNode(g["name"], g["op"], list(g["inputs"]), tuple(g["shape"]),
                                  params, tensors.get(f"source.{g['name']}.weight"),
                                  tensors.get(f"source.{g['name']}.bias"), g["source"]))
    ops = []
    for i, o in enumerate(manifest["ops"]):
        cls = OP_TYPES.get(o["kind"])
        if cls is None:
            raise ValueError(f"unknown op kind {o['kind']!r}")
        ops.append(cls(o["spec"], _take(tensors, f"ops.{i}.")))
    codebooks = {c["key"]: Codebook(c["spec"], _take(tensors, f"codebooks.{c['key']}."))
                 for c in manifest["codebooks"]}
    return ModelParts(ops, codebooks, CapturedGraph(nodes), config,
                      dict(manifest.get("metadata", {})))
