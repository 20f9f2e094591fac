"""Step 4 of composition: the integer operations, built from the graph, the plan and the
clusterings (paper notes section 5, steps 3-5; ``docs/formulas.md``).

Everything here is a deterministic function of its arguments: fixed-point centroids, product
tables, biases, encoding thresholds and activation tables follow from the codebooks' centroids,
the weight codes and centroids, the captured graph and the configuration. Composition calls it
after clustering; loading a ``.rapidnn`` file calls it again on the stored centroids and codes
and requires the stored ops to be exactly these (``rapidnn.composer.filecheck``), so a file
cannot hold a table that disagrees with the centroids it came from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from rapidnn.composer.capture import ACTIVATIONS, CapturedGraph, CapturedNode
from rapidnn.composer.codebook import fixed_point_for, midpoints, nearest_codes, quantize
from rapidnn.composer.config import ComposeConfig, ResolvedLayerOptions
from rapidnn.composer.encoding import activate, thresholds
from rapidnn.composer.ops import (
    AddAligned,
    AvgPoolSum,
    CodeActivation,
    Codebook,
    ComposedOp,
    Encode,
    InputEncode,
    MaxPoolCodes,
    Output,
    Reshape,
    WeightedLayer,
    accumulator_range,
)
from rapidnn.composer.plan import Plan

WIDE = 2**62  # range of un-saturated integer sums (pooling, residual add)


@dataclass(frozen=True)
class WeightClustering:
    """A weighted layer's clustered weights: one codebook per group (the layer, or each output
    channel with ``per_channel``), the weight codes, and the coarser levels of a tree."""

    centroids: np.ndarray  # (G, w) float64, each row non-decreasing
    codes: np.ndarray  # int64, the weight's shape, values in [0, w)
    levels: tuple[np.ndarray, ...] | None = None  # levels[b]: (G, 2**b) for a tree codebook


def input_codebook(key: str, centroids: np.ndarray, levels: tuple[np.ndarray, ...] | None,
                   opts: ResolvedLayerOptions) -> Codebook:
    """The codebook of one code tensor: centroids and their fixed point (decision F5)."""
    fmt = fixed_point_for(centroids, opts.input_bits)
    tensors = {"centroids": torch.from_numpy(centroids.copy()),
               "values": torch.from_numpy(quantize(centroids, fmt))}
    for b, lv in enumerate(levels or ()):
        tensors[f"levels_{b}"] = torch.from_numpy(lv.copy())
    spec = {"name": key, "bits": fmt.bits, "signed": fmt.signed, "exponent": fmt.exponent,
            "tree": levels is not None}
    return Codebook(spec, tensors)


def _quantized_midpoints(cb: Codebook) -> np.ndarray:
    return midpoints(cb.quantized().numpy())


def weighted_layer(node: CapturedNode, cb: Codebook, wc: WeightClustering,
                   opts: ResolvedLayerOptions, config: ComposeConfig,
                   bias_in_acc: bool) -> WeightedLayer:
    """A Linear/Conv2d as product tables: ``T[g, i, j] = w_i * x_j`` in fixed point, rounded
    to ``table_bits`` (docs/formulas.md §2), the bias in accumulator units."""
    out = node.weight.shape[0]
    k = wc.centroids.shape[1]
    fmt_w = fixed_point_for(wc.centroids, opts.weight_bits)
    wv = quantize(wc.centroids, fmt_w)
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
        "weight_codes": torch.from_numpy(wc.codes.astype(np.uint8 if k <= 256 else np.int16)),
        "weight_centroids": torch.from_numpy(wc.centroids),
        "weight_values": torch.from_numpy(wv),
        "input_values": cb.values.clone(),
        "table": torch.from_numpy(table.astype(np.int64)),
        "bias": torch.from_numpy(bias),
    }
    for lv, level in enumerate(wc.levels or ()):
        tensors[f"weight_levels_{lv}"] = torch.from_numpy(level)
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


def assemble(graph: CapturedGraph, plan: Plan, codebooks: dict[str, Codebook],
             weights: dict[str, WeightClustering], config: ComposeConfig) -> list[ComposedOp]:
    """The op list of the composed model, one or two ops per graph node, in graph order."""
    cb_of = {t: codebooks[k] for t, k in plan.codebook_of.items()}
    ops: list[ComposedOp] = []
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
            layer = weighted_layer(node, cb_of[node.inputs[0]], weights[n],
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
    return ops


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
