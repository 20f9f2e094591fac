"""The DNN composer: captured graph + calibration data -> ComposedModel.

Steps (paper notes section 5; every choice is ours where the paper is silent, see
``docs/decisions.md``):

1. **plan**: decide which values travel as codes, which ops produce integers (weighted layers,
   average-pool sums, residual sums) and which activation each integer producer is fused with;
2. **collect**: run the float network on calibration data and sample the values of every code
   tensor (seeded);
3. **cluster**: input codebooks per code tensor, weight codebooks per layer (or per output
   channel), flat or tree (multi-level) k-means;
4. **build**: fixed-point centroids, product tables, biases, encoding thresholds
   (:mod:`rapidnn.composer.assemble`; step 1 is :mod:`rapidnn.composer.plan`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from rapidnn.composer.assemble import WeightClustering, assemble, input_codebook
from rapidnn.composer.capture import CapturedGraph, CapturedNode, capture
from rapidnn.composer.codebook import Clustering, cluster, sample_values
from rapidnn.composer.composed import ComposedModel
from rapidnn.composer.config import ComposeConfig, ResolvedLayerOptions
from rapidnn.composer.plan import Plan, make_plan

#: Version of the composition algorithm: bumped whenever the same model, data and options
#: compose differently (2: calibration values drawn with replacement), so caches keyed by the
#: options (rapidnn.workloads.store) never serve a model of another version.
ALGORITHM_VERSION = 2


class ComposeError(ValueError):
    """Composition failed because of the model, the data or the options given."""


def compose(model: torch.nn.Module, calibration_data: Iterable[Any], weight_clusters: int = 16,
            input_clusters: int = 16, **options: Any) -> ComposedModel:
    """Reinterpret ``model`` for the RAPIDNN accelerator.

    ``calibration_data`` is an iterable of input batches, or of ``(input, label)`` batches;
    it feeds input clustering. ``options`` are the fields of :class:`ComposeConfig`.
    """
    try:
        config = ComposeConfig(weight_clusters=weight_clusters, input_clusters=input_clusters,
                               **options)
    except ValueError as exc:
        raise ComposeError(f"invalid compose options: {exc}") from exc
    batches = calibration_batches(calibration_data, config.calibration_batches)
    graph = capture(model, batches[0])
    return compose_graph(graph, batches, config)


def compose_graph(graph: CapturedGraph, batches: list[torch.Tensor], config: ComposeConfig,
                  forward: Callable | None = None) -> ComposedModel:
    """Compose an already captured graph. ``forward(x, record)`` overrides the float forward
    used to collect calibration values (retraining collects them from its quantized model)."""
    config.check_overrides([n.name for n in graph.weighted()])
    plan = make_plan(graph, config)
    values = collect_values(graph, batches, plan, config, forward)
    return build(graph, plan, values, config)


def calibration_batches(data: Iterable[Any], limit: int | None) -> list[torch.Tensor]:
    """Input tensors of the calibration data (labels dropped), at most ``limit`` batches."""
    out: list[torch.Tensor] = []
    try:
        iterator = iter(data)
    except TypeError as exc:
        raise ComposeError("calibration_data must be an iterable of batches") from exc
    for item in iterator:
        x = item[0] if isinstance(item, tuple | list) else item
        if not isinstance(x, torch.Tensor):
            raise ComposeError(f"calibration batches must be tensors, got {type(x).__name__}")
        if x.is_floating_point() and not torch.isfinite(x).all():
            raise ComposeError("calibration data contains NaN or infinite values")
        out.append(x.float().cpu())
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise ComposeError("calibration_data is empty")
    return out


# 2. collect ---------------------------------------------------------------------------------
def collect_values(graph: CapturedGraph, batches: list[torch.Tensor], plan: Plan,
                   config: ComposeConfig, forward: Callable | None = None) -> dict[str, np.ndarray]:
    """Sample (seeded) the float values of every codebook's tensor over the calibration data."""
    gen = torch.Generator().manual_seed(config.seed)
    # ordered by the plan (never by set order: string hashing differs between processes)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in plan.keys}

    def record(name: str, value: torch.Tensor) -> torch.Tensor:
        if name in parts:
            parts[name].append(sample_values(value, config.calibration_values, gen))
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
