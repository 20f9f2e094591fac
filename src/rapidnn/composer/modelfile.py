"""The ``.rapidnn`` file: one safetensors file whose header carries a JSON manifest.

Tensors: ``ops.<i>.<buffer>``, ``codebooks.<key>.<buffer>`` and ``source.<node>.weight|bias``
(the BatchNorm-folded float weights, kept so a loaded model can be retrained). The manifest
(header metadata key ``rapidnn``) holds the format version, the configuration, the op list with
each op's spec, the captured graph and the SHA-256 of the tensors; the header key
``rapidnn.sha256`` holds the SHA-256 of the manifest text, so any change to a written file is
detected (format version 2; ``docs/model-file.md``). Loading never unpickles; writing goes to a
temporary file that is renamed into place, so a failed save leaves no half-written file.
:func:`rapidnn.load` (:func:`rapidnn.composer.composed.load`) turns the parts back into a model.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from rapidnn._files import atomic_write
from rapidnn._version import __version__
from rapidnn.composer.capture import CapturedGraph, CapturedNode
from rapidnn.composer.config import ComposeConfig
from rapidnn.composer.manifest import (
    FORMAT_NAME,
    FORMAT_VERSION,
    Manifest,
    ManifestError,
    first_error,
    parse_manifest,
)
from rapidnn.composer.ops import OP_TYPES, Codebook, SpecModule

MANIFEST_KEY = "rapidnn"
CHECKSUM_KEY = "rapidnn.sha256"  # SHA-256 of the manifest text, beside it in the header


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
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "rapidnn_version": __version__,
                "config": model.config.model_dump(mode="json"), "ops": ops,
                "codebooks": codebooks, "graph": graph, "metadata": model.metadata,
                "tensors_sha256": tensors_sha256(tensors)}
    text = json.dumps(manifest, allow_nan=False)
    header = {MANIFEST_KEY: text, CHECKSUM_KEY: _sha256(text.encode())}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=header))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_jsonable(v) for v in obj]
    return obj


def read_model_file(path: str | os.PathLike[str]) -> ModelParts:
    """Read a ``.rapidnn`` file: its checksums, its manifest against the schema
    (:mod:`rapidnn.composer.manifest`), the configuration, and the tensors' names. A defect
    raises :class:`ModelFileError` naming the file and the field. Whether the ops are the ones
    the graph and the codebooks give is :func:`rapidnn.composer.filecheck.check_parts`'s job."""
    path = Path(path)
    try:
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except ModelFileError:
        raise
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (SafetensorError, ValueError, RuntimeError, TypeError) as exc:
        # a .rapidnn (safetensors) file begins with its header's 8-byte length, then "{"
        try:
            with open(path, "rb") as f:
                head = f.read(9)
        except OSError:
            head = b""
        if head[8:9] != b"{" and (path.suffix != ".rapidnn" or head[:1] == b"{"):
            kind = (f"its suffix is {path.suffix}" if path.suffix else "it has no suffix") + (
                "; it begins like JSON text" if head[:1] == b"{" else "")
            raise ModelFileError(f"{path}: not a .rapidnn file ({kind}); give a .rapidnn "
                                 f"file (written by rapidnn demo or rapidnn compose)") from exc
        raise ModelFileError(f"{path}: not a readable .rapidnn file (truncated or corrupt?): "
                             f"{exc}") from exc
    try:
        return _parts(meta, tensors)
    except (ManifestError, ValueError) as exc:
        raise ModelFileError(f"{path}: {exc}") from exc


def _parts(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> ModelParts:
    if MANIFEST_KEY not in meta:
        raise ManifestError("", "a safetensors file without a rapidnn manifest")
    text = meta[MANIFEST_KEY]
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError("", f"the manifest is not valid JSON: {exc}") from None
    manifest = parse_manifest(data)
    if manifest.version >= 2:
        if meta.get(CHECKSUM_KEY) != _sha256(text.encode()):
            raise ManifestError("", "the manifest does not match its SHA-256 checksum (the file "
                                    "was changed after it was written)")
        if manifest.tensors_sha256 != tensors_sha256(tensors):
            raise ManifestError("tensors_sha256", "the tensor data does not match its SHA-256 "
                                                  "checksum (the file was changed after it was "
                                                  "written)")
    try:
        config = ComposeConfig.model_validate(manifest.config)
    except ValidationError as exc:
        raise first_error(exc, "config") from None
    return _assemble(manifest, config, dict(tensors))


def _assemble(manifest: Manifest, config: ComposeConfig,
              tensors: dict[str, torch.Tensor]) -> ModelParts:
    """The parts, taking every tensor by its expected name (a tensor left over is an error)."""
    nodes = []
    for node in manifest.graph:
        nodes.append(CapturedNode(node.name, node.op, list(node.inputs), tuple(node.shape),
                                  node.checked_params(),
                                  tensors.pop(f"source.{node.name}.weight", None),
                                  tensors.pop(f"source.{node.name}.bias", None), node.source))
    ops = []
    for i, o in enumerate(manifest.ops):
        ops.append(OP_TYPES[o.kind](o.spec, _take(tensors, f"ops.{i}.")))
    codebooks = {}
    for i, c in enumerate(manifest.codebooks):
        if c.key in codebooks:
            raise ManifestError(f"codebooks[{i}].key", f"duplicate codebook {c.key!r}")
        codebooks[c.key] = Codebook(c.spec, _take(tensors, f"codebooks.{c.key}."))
    if tensors:
        raise ManifestError("", f"tensor {sorted(tensors)[0]!r} belongs to no op, codebook or "
                                f"graph node")
    return ModelParts(ops, codebooks, CapturedGraph(nodes), config, dict(manifest.metadata))


def _take(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove and return the tensors named ``prefix<buffer>`` (buffer names have no dots)."""
    keys = [k for k in tensors if k.startswith(prefix) and k[len(prefix):].isidentifier()]
    return {k[len(prefix):]: tensors.pop(k) for k in keys}


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{list(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
