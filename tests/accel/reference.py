"""A slow, obviously correct per-element reference of the RNA simulator (tests only).

Plain Python loops over images, neurons, positions and synapses: every product is a lookup
``T[g][a][b]`` of Python ints, every sum is built by an explicit adder tree whose operand widths
are tracked one addition at a time, and every encoding is a loop over the stored AM rows. The
event definitions are those of ``docs/simulator.md``; only tiny models are run through it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import torch

from rapidnn.composer.composed import ComposedModel
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
)


@dataclass
class RefConfig:
    strategy: str = "tree"
    approx_bits: int | dict[str, int] | None = None
    proc_rows: int = 1024
    am_rows: int = 1024
    am_bits: int = 64
    per_bit: float = 13.0
    fixed: float = 0.0
    input_word_bits: int = 32

    def bits_for(self, *names: str) -> int | None:
        if self.approx_bits is None or isinstance(self.approx_bits, int):
            return self.approx_bits
        for n in names:
            if n in self.approx_bits:
                return self.approx_bits[n]
        return None


@dataclass
class RefEvents:
    counters: Counter = field(default_factory=Counter)
    additions: Counter = field(default_factory=Counter)


@dataclass
class RefResult:
    outputs: list[list[float]]
    ints: dict[str, list]
    codes: dict[str, list]
    events: dict[str, RefEvents]


# nested-list helpers -------------------------------------------------------------------------
def nested(t: torch.Tensor) -> list:
    return t.tolist()


def shape_of(v) -> list[int]:
    s = []
    while isinstance(v, list):
        s.append(len(v))
        v = v[0] if v else None
    return s


def flat(v) -> list:
    if isinstance(v, list):
        return [y for x in v for y in flat(x)]
    return [v]


def unflat(values: list, shape: list[int]):
    if not shape:
        return values[0]
    if len(shape) == 1:
        return list(values)
    step = math.prod(shape[1:])
    return [unflat(values[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def bitlen(v: int) -> int:
    return abs(int(v)).bit_length()


# explicit adder tree ---------------------------------------------------------------------------
def reduce_widths(widths: list[int], adds: list[int]) -> int:
    """Pairwise tree over operand widths; record each addition's width; return result width."""
    ws = list(widths)
    while len(ws) > 1:
        nxt = []
        for i in range(0, len(ws), 2):
            if i + 1 < len(ws):
                w = max(ws[i], ws[i + 1])
                adds.append(w)
                nxt.append(w + 1)
            else:
                nxt.append(ws[i])
        ws = nxt
    return ws[0]


def tree(widths: list[int], rows: int, adds: list[int]) -> int:
    if len(widths) <= rows:
        return reduce_widths(widths, adds)
    partial = [reduce_widths(widths[i:i + rows], adds) for i in range(0, len(widths), rows)]
    return reduce_widths(partial, adds)


class Recorder:
    def __init__(self, cfg: RefConfig) -> None:
        self.cfg = cfg
        self.events: dict[str, RefEvents] = {}

    def ev(self, name: str) -> RefEvents:
        return self.events.setdefault(name, RefEvents())

    def add(self, name: str, width: int, moved: bool) -> None:
        e = self.ev(name)
        e.additions[width] += 1
        cyc = self.cfg.per_bit * width + self.cfg.fixed
        e.counters["nor_cycles"] += cyc
        e.counters["cells_written"] += cyc
        if moved:
            e.counters["bits_moved_block"] += width
            e.counters["cells_written"] += width


# associative memory by row loops ----------------------------------------------------------------
def am_width(th: list[list[int]], vmin: int, vmax: int) -> int:
    """AM word width W of a layer: covers every finite threshold of every row set."""
    finite = [t for rows in th for t in rows if vmin < t <= vmax]
    return max(2, 1 + max((bitlen(t) for t in finite), default=0))


def am_search(value: int, rows: list[int], vmin: int, vmax: int, w: int, k: int) -> int:
    lo, hi = -(2 ** (w - 1)), 2 ** (w - 1) - 1
    s = w - k
    q = min(max(value, lo), hi) // 2**s
    best = 0  # row 0 always matches
    for r, t in enumerate(rows, start=1):
        if t > vmax:
            continue  # disabled row
        stored = lo if t <= vmin else t
        if stored // 2**s <= q:
            best = r  # largest matching row (rows are sorted)
    return best


def code_bits(u: int) -> int:
    return max(1, math.ceil(math.log2(max(2, u))))


# the reference ------------------------------------------------------------------------------------
def run_reference(cm: ComposedModel, x: torch.Tensor, cfg: RefConfig | None = None) -> RefResult:
    cfg = cfg or RefConfig()
    rec = Recorder(cfg)
    xs = nested(x.to(torch.float64))
    codes: dict[str, list] = {}
    ints: dict[str, list] = {}
    clusters: dict[str, int] = {}
    ops = list(cm.ops)
    ranges: dict[str, tuple[int, int]] = {}
    outputs = None

    for op in ops:
        s = op.spec
        if isinstance(op, InputEncode):
            mids = op.midpoints.tolist()
            clusters[op.name] = cm.codebooks[s["codebook"]].size
            out = []
            e = rec.ev(op.name)
            for img in xs:
                vals = flat(img)
                cs = []
                for v in vals:
                    c = 0
                    for m in mids:
                        if m < v:
                            c += 1
                    cs.append(c)
                    e.counters["am_searches"] += 1
                    e.counters["bits_moved_tile"] += code_bits(clusters[op.name])
                    e.counters["cells_written"] += code_bits(clusters[op.name])
                out.append(unflat(cs, shape_of(img)))
            codes[op.name] = out
        elif isinstance(op, Reshape):
            clusters[op.name] = clusters[op.inputs[0]]
            codes[op.name] = [unflat(flat(img), list(s["shape"])) for img in codes[op.inputs[0]]]
        elif isinstance(op, WeightedLayer):
            ints[op.name] = weighted(op, codes[op.inputs[0]], rec, cfg)
            lo, hi = -(2 ** (s["acc_bits"] - 1)), 2 ** (s["acc_bits"] - 1) - 1
            ranges[op.name] = (lo, hi)
        elif isinstance(op, Encode):
            prod = op.inputs[0]
            vmin, vmax = ranges[prod]
            th = op.thresholds.tolist()
            bits = cfg.bits_for(prod, op.name)
            u = cm.codebooks[s["codebook"]].size
            clusters[op.name] = u
            w = am_width(th, vmin, vmax)
            k = w if bits is None else min(bits, w)
            seg = math.ceil((len(th[0]) + 1) / cfg.am_rows) * math.ceil(k / cfg.am_bits)
            out = []
            e = rec.ev(prod)
            for img in ints[prod]:
                shp = shape_of(img)
                vals = flat(img)
                per_ch = math.prod(shp[1:]) if len(shp) > 1 else 1
                cs = []
                for i, v in enumerate(vals):
                    rows = th[0] if len(th) == 1 else th[i // per_ch]
                    cs.append(am_search(int(v), rows, vmin, vmax, w, k))
                    e.counters["am_searches"] += seg
                    e.counters["bits_moved_block"] += k
                    e.counters["bits_moved_tile"] += code_bits(u)
                    e.counters["cells_written"] += code_bits(u)
                out.append(unflat(cs, shp))
            codes[op.name] = out
        elif isinstance(op, MaxPoolCodes):
            clusters[op.name] = clusters[op.inputs[0]]
            codes[op.name] = maxpool(op, codes[op.inputs[0]], rec, clusters[op.name])
        elif isinstance(op, AvgPoolSum):
            vals = [int(v) for v in op.input_values.tolist()]
            area = s["kernel"][0] * s["kernel"][1]
            ranges[op.name] = (min(0, min(vals)) * area, max(0, max(vals)) * area)
            ints[op.name] = avgpool(op, vals, codes[op.inputs[0]], rec, cfg)
        elif isinstance(op, AddAligned):
            av, bv = [int(v) for v in op.a_values.tolist()], [int(v) for v in op.b_values.tolist()]
            sa, sb = s["a_shift"], s["b_shift"]
            ranges[op.name] = ((min(av) << sa) + (min(bv) << sb), (max(av) << sa) + (max(bv) << sb))
            width = max(bitlen(max(av, key=abs)) + 1 + sa, bitlen(max(bv, key=abs)) + 1 + sb)
            out = []
            e = rec.ev(op.name)
            for ia, ib in zip(codes[op.inputs[0]], codes[op.inputs[1]], strict=True):
                fa, fb = flat(ia), flat(ib)
                res = []
                for ca, cb in zip(fa, fb, strict=True):
                    e.counters["table_lookups"] += 2
                    e.counters["product_writes"] += 2
                    e.counters["cells_written"] += 2 * width
                    rec.add(op.name, width, moved=True)
                    res.append((av[ca] << sa) + (bv[cb] << sb))
                out.append(unflat(res, shape_of(ia)))
            ints[op.name] = out
        elif isinstance(op, CodeActivation):
            table = op.table.tolist()
            u = cm.codebooks[s["codebook"]].size
            clusters[op.name] = u
            e = rec.ev(op.name)
            out = []
            for img in codes[op.inputs[0]]:
                res = []
                for c in flat(img):
                    res.append(table[c])
                    e.counters["table_lookups"] += 1
                    e.counters["bits_moved_tile"] += code_bits(u)
                    e.counters["cells_written"] += code_bits(u)
                out.append(unflat(res, shape_of(img)))
            codes[op.name] = out
        elif isinstance(op, Output):
            scale = float(s["scale"])
            src = op.inputs[0]
            if s["from"] == "integers":
                outputs = [[float(v) * scale for v in flat(img)] for img in ints[src]]
            else:
                vals = op.values.tolist()
                e = rec.ev(op.name)
                outputs = []
                for img in codes[src]:
                    outputs.append([vals[c] * scale for c in flat(img)])
                    e.counters["table_lookups"] += len(flat(img))
    assert outputs is not None
    return RefResult(outputs, ints, codes, rec.events)


def weighted(op: WeightedLayer, inp: list, rec: Recorder, cfg: RefConfig) -> list:
    s = op.spec
    table = op.table.tolist()
    wcodes = op.weight_codes.long().tolist()
    bias = op.bias.tolist()
    groups = len(table)
    entry = s["entry_bits"]
    acc_bits = s["acc_bits"]
    lo, hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
    with_bias = s["bias_in_accumulator"]
    e = rec.ev(op.name)
    out = []
    for img in inp:
        if s["op"] == "linear":
            fan = len(wcodes[0])
            res = []
            for o, row in enumerate(wcodes):
                pairs = [(row[k], img[k]) for k in range(fan)]
                res.append(neuron(pairs, table[o % groups], bias[o], with_bias, entry, acc_bits,
                                  fan, lo, hi, rec, op.name, cfg, e))
            out.append(res)
        else:
            c_in, h, w = len(img), len(img[0]), len(img[0][0])
            o_n = len(wcodes)
            kh, kw = len(wcodes[0][0]), len(wcodes[0][0][0])
            (sh, sw), (ph, pw), (dh, dw) = s["stride"], s["padding"], s["dilation"]
            oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
            ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
            fan = c_in * kh * kw
            res = []
            for o in range(o_n):
                plane = []
                for i in range(oh):
                    line = []
                    for j in range(ow):
                        pairs = []
                        for c in range(c_in):
                            for a in range(kh):
                                for b in range(kw):
                                    y, xx = i * sh - ph + a * dh, j * sw - pw + b * dw
                                    if 0 <= y < h and 0 <= xx < w:
                                        pairs.append((wcodes[o][c][a][b], img[c][y][xx]))
                        line.append(neuron(pairs, table[o % groups], bias[o], with_bias, entry,
                                           acc_bits, fan, lo, hi, rec, op.name, cfg, e))
                    plane.append(line)
                res.append(plane)
            out.append(res)
    return out


def neuron(pairs, t, bias, with_bias, entry, acc_bits, fan, lo, hi, rec, name, cfg, e) -> int:
    """One output value: lookups, additions (tree or counting), bias, saturation."""
    if cfg.strategy == "tree":
        total = 0
        for a, b in pairs:
            total += t[a][b]
            e.counters["table_lookups"] += 1
            e.counters["product_writes"] += 1
            e.counters["cells_written"] += entry
        adds: list[int] = []
        final = tree([entry] * len(pairs), cfg.proc_rows, adds) if pairs else 0
    else:
        c = max(1, fan.bit_length())
        counts: Counter = Counter()
        for a, b in pairs:
            counts[(a, b)] += 1
            rec.add(name, c, moved=False)  # counter increment
        total = 0
        width = entry + c
        for (a, b), n in sorted(counts.items()):
            total += n * t[a][b]
            e.counters["table_lookups"] += 1
            e.counters["product_writes"] += 1
            e.counters["cells_written"] += entry
            for _ in range(bin(n).count("1") - 1):
                rec.add(name, width, moved=True)  # shift-and-add
        adds = []
        final = tree([width] * len(counts), cfg.proc_rows, adds) if counts else 0
    for wd in adds:
        rec.add(name, wd, moved=True)
    if with_bias:
        total += bias
        if pairs:
            rec.add(name, max(final, acc_bits), moved=False)
    return min(max(total, lo), hi)


def pool_size(size, k, s, p, d, ceil_mode) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    out = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def maxpool(op: MaxPoolCodes, inp: list, rec: Recorder, u: int) -> list:
    s = op.spec
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = s["kernel"], s["stride"], s["padding"], s["dilation"]
    e = rec.ev(op.name)
    out = []
    for img in inp:
        res = []
        for ch in img:
            h, w = len(ch), len(ch[0])
            oh = pool_size(h, kh, sh, ph, dh, s["ceil_mode"])
            ow = pool_size(w, kw, sw, pw, dw, s["ceil_mode"])
            plane = []
            for i in range(oh):
                line = []
                for j in range(ow):
                    best = -1
                    for a in range(kh):
                        for b in range(kw):
                            y, x = i * sh - ph + a * dh, j * sw - pw + b * dw
                            if 0 <= y < h and 0 <= x < w:
                                best = max(best, ch[y][x])
                                e.counters["cells_written"] += code_bits(u)
                    line.append(best)
                    e.counters["pool_searches"] += 1
                    e.counters["bits_moved_tile"] += code_bits(u)
                    e.counters["cells_written"] += code_bits(u)
                plane.append(line)
            res.append(plane)
        out.append(res)
    return out


def avgpool(op: AvgPoolSum, vals: list[int], inp: list, rec: Recorder, cfg: RefConfig) -> list:
    s = op.spec
    (kh, kw), (sh, sw), (ph, pw) = s["kernel"], s["stride"], s["padding"]
    entry = bitlen(max(vals, key=abs)) + 1
    e = rec.ev(op.name)
    out = []
    for img in inp:
        res = []
        for ch in img:
            h, w = len(ch), len(ch[0])
            oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            plane = []
            for i in range(oh):
                line = []
                for j in range(ow):
                    total, n = 0, 0
                    for a in range(kh):
                        for b in range(kw):
                            y, x = i * sh - ph + a, j * sw - pw + b
                            if 0 <= y < h and 0 <= x < w:
                                total += vals[ch[y][x]]
                                n += 1
                                e.counters["table_lookups"] += 1
                                e.counters["product_writes"] += 1
                                e.counters["cells_written"] += entry
                    adds: list[int] = []
                    if n:
                        tree([entry] * n, cfg.proc_rows, adds)
                    for wd in adds:
                        rec.add(op.name, wd, moved=True)
                    line.append(total)
                plane.append(line)
            res.append(plane)
        out.append(res)
    return out
