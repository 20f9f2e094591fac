"""Is a loaded model consistent? The semantic half of reading a ``.rapidnn`` file.

The schema (:mod:`rapidnn.composer.manifest`) says each field has the right type and bounds;
this module says the parts fit together (``docs/model-file.md`` §Validation):

1. the captured graph is well formed (one input first, one output last, every input an earlier
   node, weights of the shapes the ops need, finite) and runs in float on an input of its shape,
   giving every node its recorded shape;
2. the *primary* data, the only data composition chose (each codebook's centroids and tree
   levels, each layer's weight codes, centroids and levels), have the dtype and shape the
   configuration gives, are finite and sorted, and codes are in range;
3. everything else (fixed-point values, product tables, biases, thresholds, activation tables,
   every op's spec) is rebuilt from the primary data by :func:`rapidnn.composer.assemble.assemble`
   and must equal what the file holds, bit for bit.

So a file that loads is exactly the model composition would have built from its graph, its
configuration and its centroids: the redundant copies a file holds cannot disagree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rapidnn.composer.assemble import WeightClustering, assemble, input_codebook
from rapidnn.composer.capture import WEIGHTED_OPS, CapturedGraph, CapturedNode
from rapidnn.composer.manifest import ManifestError
from rapidnn.composer.modelfile import ModelParts
from rapidnn.composer.ops import Codebook, ComposedOp, WeightedLayer
from rapidnn.composer.plan import make_plan

MAX_ELEMENTS = 2**24  # values of one node's output (one sample): bounds the dry run's memory
_ARITY: dict[str, int | None] = {"input": 0, "add": 2, "mul": 2, "concat": None}
_RUN_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError, OverflowError)


def check_parts(parts: ModelParts) -> None:
    """Raise :class:`ManifestError` (naming the field) unless ``parts`` are consistent."""
    check_graph(parts.source)
    graph, config = parts.source, parts.config
    try:
        config.check_overrides([n.name for n in graph.weighted()])
        plan = make_plan(graph, config)
    except (ValueError, KeyError) as exc:
        raise ManifestError("config.overrides", str(exc)) from None
    stored = {key: cb for key, cb in parts.codebooks.items()}
    if list(stored) != plan.keys:
        raise ManifestError("codebooks", f"the file has codebooks {list(stored)}; its graph "
                                         f"and configuration give {plan.keys}")
    codebooks = {}
    for key, cb in stored.items():
        opts = plan.options[key]
        centroids = _centroids(cb, "centroids", (opts.input_clusters,), f"codebooks.{key}")
        levels = _levels(cb, "levels_", None, config.tree, centroids, f"codebooks.{key}")
        codebooks[key] = input_codebook(key, centroids, levels, opts)
        _same(codebooks[key], cb, f"codebooks.{key}")
    weights = {}
    layers = {op.name: op for op in parts.ops if isinstance(op, WeightedLayer)}
    for node in graph.weighted():
        if node.name not in layers:
            raise ManifestError("ops", f"no weighted op for layer {node.name!r}")
        opts = config.for_layer(node.name, node.op)
        weights[node.name] = _weight_clustering(layers[node.name], node, opts.weight_clusters,
                                                opts.per_channel, config.tree)
    rebuilt = assemble(graph, plan, codebooks, weights, config)
    if [type(o).kind for o in parts.ops] != [o.kind for o in rebuilt]:
        raise ManifestError("ops", f"the op list {[type(o).kind for o in parts.ops]} is not the "
                                   f"one its graph gives {[o.kind for o in rebuilt]}")
    for i, (have, want) in enumerate(zip(parts.ops, rebuilt, strict=True)):
        _same(want, have, f"ops[{i}] ({want.name})")


# 1. the graph ------------------------------------------------------------------------------
def check_graph(graph: CapturedGraph) -> None:
    """A well-formed captured graph that runs in float, each node giving its recorded shape."""
    nodes = graph.nodes
    if nodes[0].op != "input" or nodes[-1].op != "output":
        raise ManifestError("graph", "the first node must be the input, the last the output")
    seen: set[str] = set()
    for i, node in enumerate(nodes):
        where = f"graph[{i}] ({node.name})"
        if node.name in seen:
            raise ManifestError(where, "duplicate node name")
        if node.op in ("input", "output") and 0 < i < len(nodes) - 1:
            raise ManifestError(where, f"a second {node.op} node")
        arity = _ARITY.get(node.op, 1)
        if (len(node.inputs) < 2) if arity is None else (len(node.inputs) != arity):
            want = "at least 2" if arity is None else arity
            raise ManifestError(f"{where}.inputs", f"{node.op} takes {want} input(s), "
                                                   f"got {len(node.inputs)}")
        missing = [x for x in node.inputs if x not in seen]
        if missing:
            raise ManifestError(f"{where}.inputs", f"{missing[0]!r} is not an earlier node")
        if math.prod(node.shape) > MAX_ELEMENTS:
            raise ManifestError(f"{where}.shape", f"{math.prod(node.shape)} values per sample "
                                                  f"(at most {MAX_ELEMENTS})")
        if node.op == "output" and tuple(node.shape) != tuple(graph[node.inputs[0]].shape):
            raise ManifestError(f"{where}.shape", "differs from the shape of its input")
        _check_parameters(node, where)
        seen.add(node.name)
    _dry_run(graph)


def _check_parameters(node: CapturedNode, where: str) -> None:
    if node.op == "affine":
        channels = node.shape[0]
        for t, what in ((node.weight, "weight"), (node.bias, "bias")):
            if t is None:
                raise ManifestError(f"{where}.{what}", "missing tensor")
            _finite_float(t, torch.float32, f"{where}.{what}")
            if tuple(t.shape) != (channels,):
                raise ManifestError(f"{where}.{what}", f"shape {list(t.shape)}, expected "
                                                       f"[{channels}] (one per channel)")
        return
    if node.op not in WEIGHTED_OPS:
        if node.weight is not None or node.bias is not None:
            raise ManifestError(where, f"a {node.op} node has no weight or bias tensor")
        return
    w, b = node.weight, node.bias
    ndim = {"linear": 2, "conv1d": 3, "conv2d": 4}[node.op]
    if w is None:
        raise ManifestError(f"{where}.weight", "missing tensor")
    _finite_float(w, torch.float32, f"{where}.weight")
    if w.dim() != ndim or 0 in w.shape:
        raise ManifestError(f"{where}.weight", f"shape {list(w.shape)}; a {node.op} weight has "
                                               f"{ndim} non-empty dimensions")
    groups = int(node.params.get("groups", 1))
    if node.op != "linear" and w.shape[0] % groups:
        raise ManifestError(f"{where}.params.groups", f"{groups} groups do not divide "
                                                      f"{w.shape[0]} output channels")
    if node.op != "linear" and tuple(w.shape[2:]) != tuple(node.params["kernel"]):
        raise ManifestError(f"{where}.weight", f"kernel {list(w.shape[2:])} differs from the "
                                               f"node's kernel {list(node.params['kernel'])}")
    if b is not None:
        _finite_float(b, torch.float32, f"{where}.bias")
        if tuple(b.shape) != (w.shape[0],):
            raise ManifestError(f"{where}.bias", f"shape {list(b.shape)}, expected "
                                                 f"[{w.shape[0]}]")


def _dry_run(graph: CapturedGraph) -> None:
    """Run the float graph on one zero sample and compare every node's shape to the record."""
    def record(name: str, value: torch.Tensor) -> torch.Tensor:
        want = (1, *graph[name].shape)
        if tuple(value.shape) != want:
            raise ManifestError(f"graph ({name})", f"gives shape {list(value.shape[1:])}, the "
                                                   f"file records {list(want[1:])}")
        return value

    x = torch.zeros(1, *graph.input.shape)
    try:
        with torch.no_grad():
            graph.forward(x, record)
    except ManifestError:
        raise
    except _RUN_ERRORS as exc:
        raise ManifestError("graph", f"the captured graph does not run: "
                                     f"{str(exc).strip().splitlines()[0]}") from None


# 2. the primary data -----------------------------------------------------------------------
def _tensor(module: torch.nn.Module, name: str, where: str) -> torch.Tensor:
    t = getattr(module, name, None)
    if not isinstance(t, torch.Tensor):
        raise ManifestError(f"{where}.{name}", "missing tensor")
    return t


def _finite_float(t: torch.Tensor, dtype: torch.dtype, where: str) -> None:
    if t.dtype != dtype:
        raise ManifestError(where, f"dtype {t.dtype}, expected {dtype}")
    # a finite sum proves every value finite (cheap); otherwise check element by element
    if not math.isfinite(float(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ManifestError(where, "contains NaN or infinite values")


def _centroids(module: torch.nn.Module, name: str, shape: tuple[int, ...],
               where: str) -> np.ndarray:
    """A finite float64 tensor of ``shape`` whose last axis is non-decreasing, as numpy."""
    t = _tensor(module, name, where)
    _finite_float(t, torch.float64, f"{where}.{name}")
    if tuple(t.shape) != shape:
        raise ManifestError(f"{where}.{name}", f"shape {list(t.shape)}, the configuration "
                                               f"gives {list(shape)}")
    if t.shape[-1] > 1 and not bool((t.diff(dim=-1) >= 0).all()):
        raise ManifestError(f"{where}.{name}", "not sorted (a codebook is non-decreasing)")
    return t.numpy().copy()


def _levels(module: torch.nn.Module, prefix: str, groups: int | None, tree: bool,
            leaves: np.ndarray, where: str) -> tuple[np.ndarray, ...] | None:
    """The coarser levels of a tree codebook (``prefix<b>``, ``2**b`` entries per group), the
    last equal to the leaves; none without ``tree``."""
    depth = round(math.log2(leaves.shape[-1]))
    names = {n for n, _ in module.named_buffers() if n.startswith(prefix)}
    expected = {f"{prefix}{b}" for b in range(depth + 1)} if tree else set()
    if names != expected:
        extra = sorted(names ^ expected)[0]
        raise ManifestError(f"{where}.{extra}", "unexpected tensor" if extra in names else
                            "missing tensor")
    if not tree:
        return None
    lead = () if groups is None else (groups,)
    levels = tuple(_centroids(module, f"{prefix}{b}", (*lead, 2**b), where)
                   for b in range(depth + 1))
    if not np.array_equal(levels[-1], leaves):
        raise ManifestError(f"{where}.{prefix}{depth}", "the finest level differs from the "
                                                        "centroids")
    return levels


def _weight_clustering(layer: WeightedLayer, node: CapturedNode, k: int, per_channel: bool,
                       tree: bool) -> WeightClustering:
    where = f"ops ({layer.name})"
    groups = node.weight.shape[0] if per_channel else 1
    centroids = _centroids(layer, "weight_centroids", (groups, k), where)
    codes = _tensor(layer, "weight_codes", where)
    if codes.dtype != torch.uint8 or tuple(codes.shape) != tuple(node.weight.shape):
        raise ManifestError(f"{where}.weight_codes", f"{codes.dtype} of shape "
                                                     f"{list(codes.shape)}, expected uint8 of "
                                                     f"shape {list(node.weight.shape)}")
    if codes.numel() and int(codes.max()) >= k:
        raise ManifestError(f"{where}.weight_codes", f"code {int(codes.max())} is out of range "
                                                     f"for {k} weight centroids")
    levels = _levels(layer, "weight_levels_", groups, tree, centroids, where)
    return WeightClustering(centroids, codes.numpy().astype(np.int64), levels)


# 3. everything else equals its rebuild -----------------------------------------------------
def _same(want: ComposedOp | Codebook, have: ComposedOp | Codebook, where: str) -> None:
    """``have`` (from the file) is exactly ``want`` (rebuilt): spec and every tensor."""
    for key in sorted(set(want.spec) | set(have.spec)):
        a, b = want.spec.get(key, _MISSING), have.spec.get(key, _MISSING)
        if not _equal_json(a, b):
            raise ManifestError(f"{where}.spec.{key}", f"is {_show(b)}; its graph, "
                                                       f"configuration and codebooks give "
                                                       f"{_show(a)}")
    want_t, have_t = dict(want.named_buffers()), dict(have.named_buffers())
    for key in sorted(set(want_t) | set(have_t)):
        if key not in have_t:
            raise ManifestError(f"{where}.{key}", "missing tensor")
        if key not in want_t:
            raise ManifestError(f"{where}.{key}", "unexpected tensor")
        a, b = want_t[key], have_t[key]
        if a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            raise ManifestError(f"{where}.{key}", f"{b.dtype} {list(b.shape)} does not match "
                                                  f"what its centroids, codes and graph give "
                                                  f"({a.dtype} {list(a.shape)})")


_MISSING = object()


def _equal_json(a: Any, b: Any) -> bool:
    """Equal as JSON values: a tuple is a list, but ``True`` is not ``1`` and ``1`` not ``1.0``."""
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(_equal_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _show(v: Any) -> str:
    return "missing" if v is _MISSING else repr(v)[:80]
