"""The DNN composer: captured graph + calibration data -> ComposedModel.

Steps (paper notes section 5; every choice is ours where the paper is silent, see
``docs/decisions.md``):

1. **plan**: decide which values travel as codes, which ops produce integers (weighted layers,
   average-pool sums, residual sums, element-wise products) and which activation each integer
   producer is fused with;
2. **collect**: run the float network on calibration data and sample the values of every code
   tensor (seeded);
3. **cluster**: input codebooks per code tensor, weight codebooks per layer (or per output
   channel), flat or tree (multi-level) k-means;
4. **build**: fixed-point centroids, product tables, biases, encoding thresholds
   (:mod:`rapidnn.composer.assemble`; step 1 is :mod:`rapidnn.composer.plan`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from rapidnn.composer.assemble import WeightClustering, assemble, input_codebook
from rapidnn.composer.capture import CapturedGraph, CapturedNode, capture
from rapidnn.composer.codebook import Clustering, cluster, sample_values
from rapidnn.composer.composed import ComposedModel
from rapidnn.composer.config import ComposeConfig, ResolvedLayerOptions, describe_errors
from rapidnn.composer.plan import Plan, make_plan

#: Version of the composition algorithm: bumped whenever the same model, data and options
#: compose differently (2: calibration values drawn with replacement; 3: layers named by
#: module path, which also seeds their k-means), so caches keyed by the options
#: (rapidnn.workloads.store) never serve a model of another version.
ALGORITHM_VERSION = 3


class ComposeError(ValueError):
    """Composition failed because of the model, the data or the options given."""


def compose(model: torch.nn.Module | str | os.PathLike[str],
            calibration_data: Iterable[Any] | torch.Tensor, weight_clusters: int = 16,
            input_clusters: int = 16, **options: Any) -> ComposedModel:
    """Reinterpret ``model`` for the RAPIDNN accelerator.

    ``model`` is a torch module or the path of an ``.onnx`` file (converted by onnx2torch, the
    ``rapidnn[onnx]`` extra; ``docs/onnx.md``). ``calibration_data`` is one input batch (a
    tensor), or an iterable (list, DataLoader) of input batches or of ``(input, label)``
    batches; it feeds input clustering. ``options`` are the fields of :class:`ComposeConfig`.
    """
    if isinstance(model, str | os.PathLike):
        from rapidnn.composer.onnx_import import is_onnx_path, load_onnx  # the optional extra

        if not is_onnx_path(model):
            raise ComposeError(f"{os.fspath(model)}: a model given as a path must be an .onnx "
                               f"file (or pass a torch.nn.Module)")
        model = load_onnx(model)
    try:
        config = ComposeConfig(weight_clusters=weight_clusters, input_clusters=input_clusters,
                               **options)
    except ValidationError as exc:
        raise ComposeError(f"invalid compose options: {describe_errors(exc)}") from exc
    batches = calibration_batches(calibration_data, config.calibration_batches)
    graph = capture(model, batches[0])
    if not graph.weighted():
        raise ComposeError(f"{type(model).__name__} has no Linear or Conv2d layer: there is "
                           f"nothing to compose into product tables")
    return compose_graph(graph, batches, config)


def compose_graph(graph: CapturedGraph, batches: list[torch.Tensor], config: ComposeConfig,
                  forward: Callable | None = None) -> ComposedModel:
    """Compose an already captured graph. ``forward(x, record)`` overrides the float forward
    used to collect calibration values (retraining collects them from its quantized model)."""
    config.check_overrides([n.name for n in graph.weighted()])
    plan = make_plan(graph, config)
    values = collect_values(graph, batches, plan, config, forward)
    return build(graph, plan, values, config)


def calibration_batches(data: Iterable[Any] | torch.Tensor,
                        limit: int | None) -> list[torch.Tensor]:
    """Input tensors of the calibration data (labels dropped), at most ``limit`` batches.

    A tensor is one batch. Every batch is checked here, so that a bad one is named instead of
    failing inside torch: a non-empty real (float, integer or bool) tensor on a real device,
    with finite values and the first batch's shape after the batch dimension.
    """
    if isinstance(data, torch.Tensor):
        data = [data]
    try:
        iterator = iter(data)
    except TypeError as exc:
        raise ComposeError(f"calibration_data must be a tensor or an iterable of batches, got "
                           f"{type(data).__name__}") from exc
    out: list[torch.Tensor] = []
    for i, item in enumerate(iterator):
        x = _calibration_input(i, item)
        if out and x.shape[1:] != out[0].shape[1:]:
            raise ComposeError(f"calibration: batch {i} has shape {tuple(x.shape)}, the first "
                               f"had {tuple(out[0].shape)} (batches may differ only in size)")
        out.append(x)
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise ComposeError("calibration_data is empty")
    return out


def _calibration_input(i: int, item: Any) -> torch.Tensor:
    """The checked input tensor (float32, CPU) of calibration batch ``i``."""
    x = item[0] if isinstance(item, tuple | list) and item else item
    if not isinstance(x, torch.Tensor):
        raise ComposeError(f"calibration: batch {i} is a {type(x).__name__}; calibration "
                           f"batches must be tensors or (input, label) pairs of tensors")
    where = f"calibration: batch {i} (shape {tuple(x.shape)}, {x.dtype}"
    if x.is_complex() or x.is_quantized:
        raise ComposeError(f"{where}) is not real-valued: give float, integer or bool inputs")
    if x.is_meta:
        raise ComposeError(f"{where}) is on the meta device: it holds no values")
    if x.dim() < 2:
        raise ComposeError(f"{where}) has no batch dimension: a batch is (batch, ...features)")
    if x.shape[0] == 0:
        raise ComposeError(f"{where}) is an empty batch")
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ComposeError(f"{where}) contains NaN or infinite values")
    return x.float().cpu()


# 2. collect ---------------------------------------------------------------------------------
def collect_values(graph: CapturedGraph, batches: list[torch.Tensor], plan: Plan,
                   config: ComposeConfig, forward: Callable | None = None) -> dict[str, np.ndarray]:
    """Sample (seeded) the float values of every codebook's tensor over the calibration data."""
    gen = torch.Generator().manual_seed(config.seed)
    # ordered by the plan (never by set order: string hashing differs between processes)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in plan.keys}

    def record(name: str, value: torch.Tensor) -> torch.Tensor:
        key = plan.origins.get(name)
        if key is not None:
            parts[key].append(sample_values(value, config.calibration_values, gen))
        return value

    run = forward if forward is not None else graph.forward
    with torch.no_grad():
        for x in batches:
            run(x, record)
    out = {}
    for k, chunks in parts.items():
        if not chunks:
            raise ComposeError(f"no calibration values were recorded for tensor {k!r}")
        out[k] = sample_values(torch.cat(chunks), config.calibration_values, gen).numpy()
    return out


# 3. cluster (then 4. build: rapidnn.composer.assemble) ---------------------------------------
def _seed(config: ComposeConfig, name: str) -> int:
    """A per-tensor seed derived from the config seed and the tensor name (stable)."""
    return (config.seed * 1_000_003 + sum((i + 1) * ord(c) for i, c in enumerate(name))) % 2**31


def _input_clustering(key: str, values: np.ndarray, opts: ResolvedLayerOptions,
                      graph: CapturedGraph, config: ComposeConfig) -> Clustering:
    k = opts.input_clusters
    if key == graph.input.name and config.raw_input == "uniform":
        lo, hi = float(values.min()), float(values.max())
        return Clustering(np.linspace(lo, hi, k), np.zeros(0, dtype=np.int64))
    return cluster(values, k, _seed(config, key), tree=config.tree)


def _weight_clustering(node: CapturedNode, opts: ResolvedLayerOptions,
                       config: ComposeConfig) -> WeightClustering:
    w = node.weight.detach().to(torch.float64).cpu().numpy()
    rows = [w[o].reshape(-1) for o in range(w.shape[0])] if opts.per_channel else [w.reshape(-1)]
    seed = _seed(config, node.name)
    clusterings = [cluster(r, opts.weight_clusters, seed + i, tree=config.tree)
                   for i, r in enumerate(rows)]
    levels = None
    if config.tree:
        levels = tuple(np.stack([c.levels[lv] for c in clusterings])
                       for lv in range(len(clusterings[0].levels)))
    return WeightClustering(np.stack([c.centroids for c in clusterings]),
                            np.stack([c.codes.reshape(-1) for c in clusterings]).reshape(w.shape),
                            levels)


def build(graph: CapturedGraph, plan: Plan, values: dict[str, np.ndarray],
          config: ComposeConfig) -> ComposedModel:
    """Cluster (step 3) and build the integer operations (step 4)."""
    codebooks = {}
    for key in plan.keys:
        c = _input_clustering(key, values[key], plan.options[key], graph, config)
        codebooks[key] = input_codebook(key, c.centroids, c.levels, plan.options[key])
    weights = {node.name: _weight_clustering(node, config.for_layer(node.name, node.op), config)
               for node in graph.weighted()}
    ops = assemble(graph, plan, codebooks, weights, config)
    return ComposedModel(ops, codebooks, graph, config)
