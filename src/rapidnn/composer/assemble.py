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
from typing import Any

import numpy as np
import torch

from rapidnn.composer.capture import ELEMENTWISE, WEIGHTED_OPS, CapturedGraph, CapturedNode
from rapidnn.composer.codebook import fixed_point_for, midpoints, nearest_codes, quantize
from rapidnn.composer.config import ComposeConfig, ResolvedLayerOptions
from rapidnn.composer.encoding import FUNCTIONS, activate, apply, thresholds
from rapidnn.composer.ops import (
    AdaptiveAvgPoolSum,
    AdaptiveMaxPoolCodes,
    AddAligned,
    AvgPoolSum,
    CodeActivation,
    Codebook,
    ComposedOp,
    ConcatCodes,
    Encode,
    InputEncode,
    MaxPoolCodes,
    MulTable,
    Output,
    PadCodes,
    PermuteCodes,
    Reshape,
    SliceCodes,
    WeightedLayer,
    accumulator_range,
    adaptive_windows,
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
    if node.op in ("conv2d", "conv1d"):
        spec.update({k2: list(node.params[k2]) for k2 in ("stride", "padding", "dilation",
                                                          "kernel")})
        if node.params.get("groups", 1) != 1:
            spec["groups"] = int(node.params["groups"])
    return WeightedLayer(spec, tensors)


def assemble(graph: CapturedGraph, plan: Plan, codebooks: dict[str, Codebook],
             weights: dict[str, WeightClustering], config: ComposeConfig) -> list[ComposedOp]:
    """The op list of the composed model, one or two ops per graph node, in graph order."""
    cb_of = {t: codebooks[k] for t, k in plan.codebook_of.items()}
    ops: list[ComposedOp] = []
    scales: dict[str, float] = {}  # producer -> real value of one integer unit
    lo, hi = accumulator_range(config.acc_bits)
    skip = {a for a, _ in plan.fused.values()} | plan.folded

    def encode(n: str, scale: float, vlo: int, vhi: int, bias: np.ndarray | None = None) -> None:
        scales[n] = scale
        if n in plan.encoded:
            ops.append(_encoder(n, graph, plan, cb_of, scale, vlo, vhi, bias))

    for node in graph:
        n, op = node.name, node.op
        frame = {"name": n, "inputs": list(node.inputs)}
        if op == "input":
            ops.append(InputEncode({"name": n, "inputs": [], "codebook": n},
                                   {"midpoints": torch.from_numpy(_quantized_midpoints(cb_of[n]))}))
        elif op in WEIGHTED_OPS:
            fold = config.bias_mode == "threshold" and n in plan.encoded and plan.final != n
            layer = weighted_layer(node, cb_of[node.inputs[0]], weights[n],
                                   config.for_layer(n, op), config, bias_in_acc=not fold)
            ops.append(layer)
            encode(n, math.ldexp(1.0, layer.spec["exponent"]), lo, hi,
                   layer.bias.numpy() if fold else None)
        elif op == "avgpool2d":
            src = cb_of[node.inputs[0]]
            area = int(np.prod(node.params["kernel"]))
            ops.append(AvgPoolSum({**frame, "codebook": src.spec["name"],
                                   "kernel": list(node.params["kernel"]),
                                   "stride": list(node.params["stride"]),
                                   "padding": list(node.params["padding"])},
                                  {"input_values": src.values.clone()}))
            encode(n, src.scale / area, -WIDE, WIDE)
        elif op == "adaptive_avgpool2d":
            pool = _adaptive_avgpool(node, graph, cb_of[node.inputs[0]])
            ops.append(pool)
            encode(n, cb_of[node.inputs[0]].scale / pool.spec["multiple"], -WIDE, WIDE)
        elif op == "add":
            a, b = cb_of[node.inputs[0]], cb_of[node.inputs[1]]
            ea, eb = int(a.spec["exponent"]), int(b.spec["exponent"])
            e = min(ea, eb)
            ops.append(AddAligned({**frame, "a_shift": ea - e, "b_shift": eb - e},
                                  {"a_values": a.values.clone(), "b_values": b.values.clone()}))
            encode(n, math.ldexp(1.0, e), -WIDE, WIDE)
        elif op == "mul":
            a, b = cb_of[node.inputs[0]], cb_of[node.inputs[1]]
            table = a.values[:, None] * b.values[None, :]
            ops.append(MulTable({**frame, "a_codebook": a.spec["name"],
                                 "b_codebook": b.spec["name"]}, {"table": table.contiguous()}))
            encode(n, a.scale * b.scale, -WIDE, WIDE)
        elif op in ELEMENTWISE and n not in skip:
            ops.append(_code_activation(node, graph, plan, cb_of))
        elif op == "maxpool2d":
            p = node.params
            ops.append(MaxPoolCodes({**frame, "kernel": list(p["kernel"]),
                                     "stride": list(p["stride"]), "padding": list(p["padding"]),
                                     "dilation": list(p["dilation"]),
                                     "ceil_mode": p["ceil_mode"]}, {}))
        elif op == "adaptive_maxpool2d":
            ops.append(AdaptiveMaxPoolCodes({**frame, "output_size":
                                             list(node.params["output_size"])}, {}))
        elif op == "reshape":
            ops.append(Reshape({**frame, "shape": list(node.shape)}, {}))
        elif op == "permute":
            ops.append(PermuteCodes({**frame, "dims": list(node.params["dims"])}, {}))
        elif op == "slice":
            ops.append(SliceCodes({**frame, "slices": [list(x) for x in node.params["slices"]],
                                   "shape": list(node.shape)}, {}))
        elif op == "concat":
            ops.append(ConcatCodes({**frame, "dim": int(node.params["dim"])}, {}))
        elif op == "pad":
            cb = cb_of[n]
            code = int(nearest_codes(np.array([float(node.params["value"])]),
                                     cb.quantized().numpy())[0])
            ops.append(PadCodes({**frame, "pad": list(node.params["pad"]), "code": code}, {}))
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


def _function_params(node: CapturedNode) -> dict[str, Any]:
    return {k: node.params[k] for k in FUNCTIONS.get(node.op, ())}


def _encoder(producer: str, graph: CapturedGraph, plan: Plan, cb_of: dict[str, Codebook],
             scale: float, lo: int, hi: int, bias: np.ndarray | None) -> Encode:
    act_node, act = plan.fused.get(producer, (producer, "identity"))
    params = _function_params(graph[act_node]) if act_node != producer else {}
    dest = act_node
    cb = cb_of[dest]
    th = thresholds(act, scale, _quantized_midpoints(cb), lo, hi, params)[None, :]
    if bias is not None:  # bias folded into per-neuron thresholds (F8 "threshold")
        th = th - bias[:, None]
    spec = {"name": dest, "inputs": [producer], "activation": act, "scale": scale,
            "codebook": cb.spec["name"], "bias_folded": bias is not None}
    if params:
        spec["activation_params"] = params
    return Encode(spec, {"thresholds": torch.from_numpy(np.ascontiguousarray(th))})


def _code_activation(node: CapturedNode, graph: CapturedGraph, plan: Plan,
                     cb_of: dict[str, Codebook]) -> CodeActivation:
    """The table of an element-wise function (and of the chain folded into it) on codes:
    ``table[j] = nearest code of f(value_j)`` in the destination codebook, per channel when
    the chain holds a per-channel affine (decision F14)."""
    chain = [graph[c] for c in plan.chain.get(node.name, [])] + [node]
    src, dst = cb_of[chain[0].inputs[0]], cb_of[node.name]
    x = torch.from_numpy(src.quantized().numpy())
    channels = next((c.weight.numel() for c in chain if c.op == "affine"), None)
    if channels is not None:
        x = x[None, :].expand(channels, -1)  # (C, u): every value of every channel
    for c in chain:
        if c.op == "affine":
            x = x * c.weight.double()[:, None] + c.bias.double()[:, None]
        elif c.op in ("relu", "sigmoid", "tanh"):
            x = torch.from_numpy(activate(c.op, x.numpy()))
        else:
            x = apply(c.op, x, c.params)
    table = nearest_codes(x.numpy(), dst.quantized().numpy())
    spec: dict[str, Any] = {"name": node.name, "inputs": list(chain[0].inputs),
                            "activation": node.op, "codebook": dst.spec["name"]}
    params = _function_params(node)
    if params:
        spec["activation_params"] = params
    if len(chain) > 1:
        spec["chain"] = [c.name for c in chain[:-1]]
    return CodeActivation(spec, {"table": torch.from_numpy(table)})


def _adaptive_avgpool(node: CapturedNode, graph: CapturedGraph,
                      src: Codebook) -> AdaptiveAvgPoolSum:
    """Windows of PyTorch's adaptive pooling; ``multiple`` = lcm of their areas."""
    _, h, w = graph[node.inputs[0]].shape
    oh, ow = node.params["output_size"]
    rows = [b - a for a, b in adaptive_windows(h, oh)]
    cols = [b - a for a, b in adaptive_windows(w, ow)]
    multiple = math.lcm(*(r * q for r in set(rows) for q in set(cols)))
    bound = multiple * int(src.values.abs().max()) if src.values.numel() else 0
    if bound >= 2**53:
        raise ValueError(f"adaptive pooling {node.name!r}: window sums scaled to a common "
                         f"multiple ({multiple}) exceed 2**53")
    spec = {"name": node.name, "inputs": list(node.inputs), "codebook": src.spec["name"],
            "input_size": [h, w], "output_size": [oh, ow], "multiple": multiple}
    return AdaptiveAvgPoolSum(spec, {"input_values": src.values.clone()})
