"""The DNN composer: captured graph + calibration data -> ComposedModel.

Steps (paper notes section 5; every choice is ours where the paper is silent, see
``docs/decisions.md``):

1. **plan**: decide which values travel as codes, which ops produce integers (weighted layers,
   average-pool sums, residual sums) and which activation each integer producer is fused with;
2. **collect**: run the float network on calibration data and sample the values of every code
   tensor (seeded);
3. **cluster**: input codebooks per code tensor, weight codebooks per layer (or per output
   channel), flat or tree (multi-level) k-means;
4. **build**: fixed-point centroids, product tables, biases, encoding thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rapidnn.composer.capture import ACTIVATIONS, CapturedGraph, CapturedNode, capture
from rapidnn.composer.codebook import (
    Clustering,
    cluster,
    fixed_point_for,
    midpoints,
    nearest_codes,
    quantize,
    sample_values,
)
from rapidnn.composer.composed import Codebook, ComposedModel
from rapidnn.composer.config import ComposeConfig, ResolvedLayerOptions
from rapidnn.composer.encoding import activate, thresholds
from rapidnn.composer.ops import (
    AddAligned,
    AvgPoolSum,
    CodeActivation,
    Encode,
    InputEncode,
    MaxPoolCodes,
    Output,
    Reshape,
    WeightedLayer,
    accumulator_range,
)

#: Version of the composition algorithm: bumped whenever the same model, data and options
#: compose differently (2: calibration values drawn with replacement), so caches keyed by the
#: options (rapidnn.workloads.store) never serve a model of another version.
ALGORITHM_VERSION = 2
PRODUCERS = ("linear", "conv2d", "avgpool2d", "add")
WIDE = 2**62  # range of un-saturated integer sums (pooling, residual add)


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


# 1. plan ------------------------------------------------------------------------------------
@dataclass
class Plan:
    """How the captured graph maps onto codes and integer producers."""

    codebook_of: dict[str, str] = field(default_factory=dict)  # code tensor -> codebook key
    fused: dict[str, tuple[str, str]] = field(default_factory=dict)  # producer -> (node, op)
    encoded: set[str] = field(default_factory=set)  # producers followed by an encoder
    final: str | None = None  # producer whose integers are the network output
    options: dict[str, ResolvedLayerOptions] = field(default_factory=dict)  # per codebook key

    @property
    def keys(self) -> list[str]:
        return list(dict.fromkeys(self.codebook_of.values()))


def make_plan(graph: CapturedGraph, config: ComposeConfig) -> Plan:
    plan = Plan()
    for node in graph:
        if node.op == "input":
            plan.codebook_of[node.name] = node.name
        elif node.op in PRODUCERS:
            users = graph.users(node.name)
            inner = [u for u in users if u.op != "output"]
            if len(users) == 1 and users[0].op in ACTIVATIONS:
                plan.fused[node.name] = (users[0].name, users[0].op)
                plan.codebook_of[users[0].name] = users[0].name
                plan.encoded.add(node.name)
            elif inner:
                plan.codebook_of[node.name] = node.name
                plan.encoded.add(node.name)
            if len(inner) < len(users):
                plan.final = node.name
        elif node.op in ACTIVATIONS:
            if node.name not in plan.codebook_of:
                plan.codebook_of[node.name] = node.name
        elif node.op in ("maxpool2d", "reshape"):
            plan.codebook_of[node.name] = plan.codebook_of[node.inputs[0]]
    default = config.for_layer("", "")
    for node in graph.weighted():
        key = plan.codebook_of[node.inputs[0]]
        plan.options.setdefault(key, config.for_layer(node.name, node.op))
    for key in plan.keys:
        plan.options.setdefault(key, default)
    return plan


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


# 3-4. cluster and build --------------------------------------------------------------------
def _seed(config: ComposeConfig, name: str) -> int:
    """A per-tensor seed derived from the config seed and the tensor name (stable)."""
    return (config.seed * 1_000_003 + sum((i + 1) * ord(c) for i, c in enumerate(name))) % 2**31


def _input_codebook(key: str, values: np.ndarray, opts: ResolvedLayerOptions, graph, config):
    k = opts.input_clusters
    if key == graph.input.name and config.raw_input == "uniform":
        lo, hi = float(values.min()), float(values.max())
        clus = Clustering(np.linspace(lo, hi, k), np.zeros(0, dtype=np.int64))
    else:
        clus = cluster(values, k, _seed(config, key), tree=config.tree)
    fmt = fixed_point_for(clus.centroids, opts.input_bits)
    tensors = {"centroids": torch.from_numpy(clus.centroids.copy()),
               "values": torch.from_numpy(quantize(clus.centroids, fmt))}
    for b, lv in enumerate(clus.levels or ()):
        tensors[f"levels_{b}"] = torch.from_numpy(lv.copy())
    spec = {"name": key, "bits": fmt.bits, "signed": fmt.signed, "exponent": fmt.exponent,
            "tree": clus.levels is not None}
    return Codebook(spec, tensors)


def _quantized_midpoints(cb: Codebook) -> np.ndarray:
    return midpoints(cb.quantized().numpy())


def _weighted_layer(node: CapturedNode, cb: Codebook, opts: ResolvedLayerOptions,
                    config: ComposeConfig, bias_in_acc: bool) -> WeightedLayer:
    w = node.weight.detach().to(torch.float64).cpu().numpy()
    out = w.shape[0]
    k = opts.weight_clusters
    rows = [w[o].reshape(-1) for o in range(out)] if opts.per_channel else [w.reshape(-1)]
    seed = _seed(config, node.name)
    clusterings = [cluster(r, k, seed + i, tree=config.tree) for i, r in enumerate(rows)]
    centroids = np.stack([c.centroids for c in clusterings])  # (G, w)
    codes = np.stack([c.codes.reshape(-1) for c in clusterings]).reshape(w.shape)
    fmt_w = fixed_point_for(centroids, opts.weight_bits)
    wv = quantize(centroids, fmt_w)
    xv = cb.values.numpy()
    table = wv[:, :, None] * xv[None, None, :]
    full = opts.weight_bits + opts.input_bits
    entry_bits = full if opts.table_bits is None else min(opts.table_bits, full)
    shift = full - entry_bits
    if shift:
        table = np.rint(table / float(2**shift)).astype(np.int64)
    exponent = fmt_w.exponent + int(cb.spec["exponent"]) + shift
    lo, hi = accumulator_range(config.acc_bits)
    b = np.zeros(out) if node.bias is None else node.bias.detach().double().cpu().numpy()
    bias = np.clip(np.rint(b / math.ldexp(1.0, exponent)), lo, hi).astype(np.int64)
    tensors = {
        "weight_codes": torch.from_numpy(codes.astype(np.uint8 if k <= 256 else np.int16)),
        "weight_centroids": torch.from_numpy(centroids),
        "weight_values": torch.from_numpy(wv),
        "input_values": cb.values.clone(),
        "table": torch.from_numpy(table.astype(np.int64)),
        "bias": torch.from_numpy(bias),
    }
    if config.tree:
        for lv in range(len(clusterings[0].levels)):
            tensors[f"weight_levels_{lv}"] = torch.from_numpy(
                np.stack([c.levels[lv] for c in clusterings]))
    spec = {
        "name": node.name, "inputs": list(node.inputs), "op": node.op,
        "codebook": cb.spec["name"], "weight_clusters": k, "input_clusters": cb.size,
        "weight_bits": opts.weight_bits, "weight_signed": fmt_w.signed,
        "weight_exponent": fmt_w.exponent, "input_bits": opts.input_bits,
        "entry_bits": entry_bits, "table_shift": shift, "acc_bits": config.acc_bits,
        "exponent": exponent, "per_channel": opts.per_channel,
        "bias_in_accumulator": bias_in_acc,
    }
    if node.op == "conv2d":
        spec.update({k2: list(node.params[k2]) for k2 in ("stride", "padding", "dilation",
                                                          "kernel")})
    return WeightedLayer(spec, tensors)


def build(graph: CapturedGraph, plan: Plan, values: dict[str, np.ndarray],
          config: ComposeConfig) -> ComposedModel:
    """Cluster and build the integer operations (steps 3-4)."""
    codebooks = {k: _input_codebook(k, values[k], plan.options[k], graph, config)
                 for k in plan.keys}
    cb_of = {t: codebooks[k] for t, k in plan.codebook_of.items()}
    ops: list[torch.nn.Module] = []
    scales: dict[str, float] = {}  # producer -> real value of one integer unit
    lo, hi = accumulator_range(config.acc_bits)
    skip = {a for a, _ in plan.fused.values()}
    for node in graph:
        n, op = node.name, node.op
        if op == "input":
            ops.append(InputEncode({"name": n, "inputs": [], "codebook": n},
                                   {"midpoints": torch.from_numpy(_quantized_midpoints(cb_of[n]))}))
        elif op in ("linear", "conv2d"):
            fold = config.bias_mode == "threshold" and n in plan.encoded and plan.final != n
            layer = _weighted_layer(node, cb_of[node.inputs[0]],
                                    config.for_layer(n, op), config, bias_in_acc=not fold)
            ops.append(layer)
            scales[n] = math.ldexp(1.0, layer.spec["exponent"])
            if n in plan.encoded:
                bias = None if not fold else layer.bias.numpy()
                ops.append(_encoder(n, plan, cb_of, scales[n], lo, hi, bias))
        elif op == "avgpool2d":
            src = cb_of[node.inputs[0]]
            area = int(np.prod(node.params["kernel"]))
            ops.append(AvgPoolSum({"name": n, "inputs": list(node.inputs), "codebook":
                                   src.spec["name"], "kernel": list(node.params["kernel"]),
                                   "stride": list(node.params["stride"]),
                                   "padding": list(node.params["padding"])},
                                  {"input_values": src.values.clone()}))
            scales[n] = src.scale / area
            if n in plan.encoded:
                ops.append(_encoder(n, plan, cb_of, scales[n], -WIDE, WIDE, None))
        elif op == "add":
            a, b = cb_of[node.inputs[0]], cb_of[node.inputs[1]]
            ea, eb = int(a.spec["exponent"]), int(b.spec["exponent"])
            e = min(ea, eb)
            ops.append(AddAligned({"name": n, "inputs": list(node.inputs), "a_shift": ea - e,
                                   "b_shift": eb - e},
                                  {"a_values": a.values.clone(), "b_values": b.values.clone()}))
            scales[n] = math.ldexp(1.0, e)
            if n in plan.encoded:
                ops.append(_encoder(n, plan, cb_of, scales[n], -WIDE, WIDE, None))
        elif op in ACTIVATIONS and n not in skip:
            src, dst = cb_of[node.inputs[0]], cb_of[n]
            table = nearest_codes(activate(op, src.quantized().numpy()), dst.quantized().numpy())
            ops.append(CodeActivation({"name": n, "inputs": list(node.inputs), "activation": op,
                                       "codebook": dst.spec["name"]},
                                      {"table": torch.from_numpy(table)}))
        elif op == "maxpool2d":
            p = node.params
            ops.append(MaxPoolCodes({"name": n, "inputs": list(node.inputs),
                                     "kernel": list(p["kernel"]), "stride": list(p["stride"]),
                                     "padding": list(p["padding"]),
                                     "dilation": list(p["dilation"]),
                                     "ceil_mode": p["ceil_mode"]}, {}))
        elif op == "reshape":
            ops.append(Reshape({"name": n, "inputs": list(node.inputs),
                                "shape": list(node.shape)}, {}))
        elif op == "output":
            src = node.inputs[0]
            if src == plan.final:
                ops.append(Output({"name": n, "inputs": [src], "from": "integers",
                                   "scale": scales[src]}, {}))
            else:
                cb = cb_of[src]
                ops.append(Output({"name": n, "inputs": [src], "from": "codes",
                                   "scale": cb.scale}, {"values": cb.values.clone()}))
    return ComposedModel(ops, codebooks, graph, config)


def _encoder(producer: str, plan: Plan, cb_of: dict[str, Codebook], scale: float, lo: int,
             hi: int, bias: np.ndarray | None) -> Encode:
    act_node, act = plan.fused.get(producer, (producer, "identity"))
    dest = act_node
    cb = cb_of[dest]
    th = thresholds(act, scale, _quantized_midpoints(cb), lo, hi)[None, :]
    if bias is not None:  # bias folded into per-neuron thresholds (F8 "threshold")
        th = th - bias[:, None]
    spec = {"name": dest, "inputs": [producer], "activation": act, "scale": scale,
            "codebook": cb.spec["name"], "bias_folded": bias is not None}
    return Encode(spec, {"thresholds": torch.from_numpy(np.ascontiguousarray(th))})
