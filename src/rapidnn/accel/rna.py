"""RNA blocks: the wiring of crossbar, adder and AM per composed layer, and the block mapping.

One **RNA block** (decision H1, paper notes 6.3; our reconstruction) is a product-table crossbar
(``table_rows x table_cols``), a processing crossbar (``proc_rows x proc_cols``) where looked-up
products are written and added with MAGIC NOR, and an associative memory (``am_rows x am_bits``)
holding the encoder thresholds of its neurons. Neurons are mapped onto blocks as follows:

* a neuron occupies one **slot** of ``B + 2A + scratch`` columns of the processing crossbar
  (product, partial sum, incoming partial sum, NOR scratch cells; as in the cost model) and one
  row per product; ``floor(proc_cols / slot)`` slots share a row, ``floor(R / L)`` neurons with L
  products stack vertically;
* a neuron with more products than the block has rows (``L > R``) is **split** over
  ``ceil(L / R)`` blocks; the partial sums are moved to one block and combined (adder.py);
* each block holds the product table(s) its neurons need (one shared table per layer, or one
  per output channel when ``per_channel``); a convolution reuses its table and weight codes at
  every output position (positions are processed one after another by the same blocks);
* the AM holds ``u`` rows per neuron (per-channel thresholds) or one shared set;
* blocks fill tiles of ``blocks_per_tile``; codes travel between layers over the tile links.

The stages below execute the ComposedModel op by op using only the block models (they read the
ops' buffers and specs, never call their ``run``/``accumulate``/``encode``). Each holds the
events of one image that depend on shapes only (``static``) and returns the data-dependent
event totals of a batch (counting strategy); definitions in ``docs/simulator.md`` section 4.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from rapidnn.accel.adder import (
    ProcessingCrossbar,
    counter_bits,
    exact_dtype,
    popcount,
    signed_bits,
    value_additions,
    window_sums,
)
from rapidnn.accel.assoc_memory import InputAM, PoolingAM, ThresholdAM, _gather, windows
from rapidnn.accel.config import SimConfig
from rapidnn.accel.crossbar import Geometry, ProductTableCrossbar
from rapidnn.accel.events import Events, LayerInfo
from rapidnn.accel.mapping import LayerDemand, LayerMap, map_layer
from rapidnn.composer.ops import adaptive_windows


class Env:
    """What travels between blocks during one batch.

    ``codes``: code tensors (int64); ``ints``: integer results (int64, or exact-integer floats
    on the fused path); ``vals``: decoded code tensors (the codebook value of every code, in a
    dtype that holds it exactly; readers convert), produced instead of codes when every consumer
    only selects table columns by them (the AM search fused with the next crossbar's column
    selection; docs/simulator.md section 5).
    """

    def __init__(self, decode: dict[str, torch.Tensor]) -> None:
        self.codes: dict[str, torch.Tensor] = {}
        self.ints: dict[str, torch.Tensor] = {}
        self.vals: dict[str, torch.Tensor] = {}
        self.decode = decode

    def values(self, name: str) -> torch.Tensor:
        v = self.vals.get(name)
        if v is None:
            v = _gather(self.decode[name], self.codes[name])
            self.vals[name] = v
        return v


def code_bits(clusters: int) -> int:
    """Bits of one code of a ``clusters``-entry codebook."""
    return max(1, math.ceil(math.log2(max(2, clusters))))


# encoder AM helper --------------------------------------------------------------------------
class Encoder:
    """An Encode op as a programmed ThresholdAM plus its search/transfer events per value."""

    def __init__(self, op, vmin: int, vmax: int, clusters: int, config: SimConfig,
                 producer: str, decode: torch.Tensor | None = None) -> None:
        self.name = op.name
        bits = config.bits_for(producer, op.name)
        self.am = ThresholdAM(op.thresholds, vmin, vmax, bits, decode)
        self.want_codes, self.want_vals = True, False
        self.clusters = clusters
        b = config.blocks
        self.segments = math.ceil(self.am.rows / b.am_rows) * math.ceil(
            self.am.searched_bits / b.am_bits)
        self.rows_per_search = min(self.am.rows, b.am_rows)
        self.bits_per_search = min(self.am.searched_bits, b.am_bits)

    def events(self, values: float) -> Events:
        """Search + query transfer + code transfer of ``values`` encoded values."""
        cb = code_bits(self.clusters)
        return Events(am_searches=values * self.segments,
                      bits_moved_block=values * self.am.searched_bits,
                      bits_moved_tile=values * cb, cells_written=values * cb)

    def emit_offset(self, env: Env, shifted: torch.Tensor) -> None:
        """Like :meth:`emit`, for values given as ``values - am.vlo`` (ThresholdAM)."""
        am = self.am
        if self.want_codes:
            env.codes[self.name] = am.lookup_offset(shifted, am.lut.table)
            if self.want_vals:
                env.vals[self.name] = _gather(am.decode, env.codes[self.name])
        elif self.want_vals:
            env.vals[self.name] = am.lookup_offset(shifted, am.value_table())

    def emit(self, env: Env, values: torch.Tensor) -> None:
        """Search every value; store the codes and/or the decoded values the consumers need."""
        if self.want_codes:
            env.codes[self.name] = self.am.search(values)
        if self.want_vals:
            env.vals[self.name] = (self.am.search_values(values) if not self.want_codes
                                   else _gather(self.am.decode, env.codes[self.name]))

    def demand(self) -> dict[str, int | bool]:
        """The AM part of a layer's :class:`LayerDemand` (one threshold set per value group)."""
        return {"am_rows": self.am.rows, "am_bits": self.am.searched_bits,
                "am_shared": self.am.groups <= 1}


def _tree_events(hist: dict[int, float], width: int, rows: int, bias_bits: int | None,
                 config: SimConfig) -> Events:
    """Adder-tree events of values whose operand counts follow ``hist`` ({operands: values})."""
    ev = Events()
    for n, count in hist.items():
        tree, bias = value_additions(int(n), width, rows, bias_bits)
        ev.add_additions({k: v * count for k, v in tree.items()})
        ev.add_additions({k: v * count for k, v in bias.items()})
        ev.bits_moved_block += count * sum(k * v for k, v in tree.items())
        ev.nor_cycles += count * sum(config.nor_cycles(k) * v for k, v in tree.items())
        ev.nor_cycles += count * sum(config.nor_cycles(k) * v for k, v in bias.items())
    return ev


def _finish(ev: Events, entry_bits: int, moved_reduction: float) -> Events:
    """cells_written += products written + one NOR output cell per cycle + moved operands."""
    ev.cells_written += ev.product_writes * entry_bits + ev.nor_cycles + moved_reduction
    return ev


# stages ---------------------------------------------------------------------------------------
class Stage:
    """One step of the simulated program."""

    info: LayerInfo | None = None
    mapping: LayerMap | None = None
    name: str = ""
    want_codes: bool = True  # whether the produced code tensor is needed as codes
    want_vals: bool = False  # ... and/or as decoded values
    static: Events | None = None  # events of one image that depend on shapes only
    demand: LayerDemand | None = None

    def place(self, demand: LayerDemand, config: SimConfig) -> None:
        """Record the layer's demand and its dense map on the configured blocks (mapping.py)."""
        self.demand = demand
        self.mapping = map_layer(demand, config.blocks)
        if self.info is not None:
            self.info.demand = demand.to_dict()
            self.info.blocks = self.mapping.blocks

    def needs(self) -> dict[str, str]:
        """Consumed code tensors and the form needed: "codes", "vals" or "pass" (any)."""
        return {}

    def produced(self) -> str | None:
        """The code tensor this stage produces (None: none)."""
        return None

    def set_wants(self, codes: bool, vals: bool) -> None:
        self.want_codes, self.want_vals = codes, vals

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        """Execute on the batch; return the data-dependent event totals (None: none)."""
        raise NotImplementedError


class EncodedStage(Stage):
    """A stage whose integers go through an encoder AM (or, last, to the output)."""

    encoder: Encoder | None = None

    def produced(self) -> str | None:
        return self.encoder.name if self.encoder is not None else None

    def set_wants(self, codes: bool, vals: bool) -> None:
        super().set_wants(codes, vals)
        if self.encoder is not None:
            self.encoder.want_codes, self.encoder.want_vals = codes, vals

    def finish(self, env: Env, total: torch.Tensor) -> None:
        """Store the integers and search them in the encoder AM (if any)."""
        env.ints[self.name] = total
        if self.encoder is not None:
            self.encoder.emit(env, total)


class InputStage(Stage):
    """Raw input -> codes by the input AM (one search per input value)."""

    def __init__(self, op, clusters: int, shape: tuple[int, ...], config: SimConfig,
                 decode: torch.Tensor) -> None:
        self.name = op.name
        self.am = InputAM(op.midpoints, decode)
        self.values = int(math.prod(shape))
        self.clusters = clusters
        self.config = config
        self.info = LayerInfo(op.name, "encode_input", neurons=self.values,
                              positions=1, input_clusters=clusters, am_rows=self.am.rows,
                              am_bits=config.input_word_bits or 32)
        self.place(self._demand(self.info.am_bits), config)
        cb = code_bits(clusters)
        self.static = Events(am_searches=self.values, bits_moved_tile=self.values * cb,
                             cells_written=self.values * cb)

    def _demand(self, word_bits: int) -> LayerDemand:
        """Every raw value is one search of the shared midpoint AM: a value is a position."""
        return LayerDemand("encode_input", values=1, positions=self.values,
                           am_rows=self.am.rows, am_bits=word_bits)

    def produced(self) -> str | None:
        return self.name

    def run(self, env: Env, x: torch.Tensor) -> None:
        if self.want_codes:
            env.codes[self.name] = self.am.search(x)
        if self.want_vals:
            env.vals[self.name] = (env.values(self.name) if self.want_codes
                                   else self.am.search_values(x))
        bits = self.config.input_word_bits or (
            torch.finfo(x.dtype).bits if x.is_floating_point() else torch.iinfo(x.dtype).bits)
        if bits != self.info.am_bits:
            self.info.am_bits = bits
            self.place(self._demand(bits), self.config)


class ReshapeStage(Stage):
    """Layout change only (no hardware work, no trace layer)."""

    def __init__(self, op) -> None:
        self.name, self.src, self.shape = op.name, op.inputs[0], list(op.spec["shape"])

    def needs(self) -> dict[str, str]:
        return {self.src: "pass"}

    def produced(self) -> str | None:
        return self.name

    def run(self, env: Env, x: torch.Tensor) -> None:
        for store in (env.codes, env.vals):
            c = store.get(self.src)
            if c is not None:
                store[self.name] = c.reshape(c.shape[0], *self.shape)


def _valid_products(geom: Geometry, in_shape: tuple[int, ...]) -> torch.Tensor:
    """Products (non-padding synapses) of every output value position, ``(P,)`` int64."""
    if geom.op == "linear":
        return torch.tensor([geom.fan_in], dtype=torch.int64)
    c, h, w = in_shape
    c //= geom.groups  # an output value adds over its group's channels only
    ones = torch.ones(1, c, h, w, dtype=torch.float64)
    k = torch.ones(1, c, *geom.kernel, dtype=torch.float64)
    cnt = F.conv2d(ones, k, None, geom.stride, geom.padding, geom.dilation)
    return cnt.reshape(-1).round().to(torch.int64)


def _hist(values: torch.Tensor, scale: float = 1.0) -> dict[int, float]:
    u, c = torch.unique(values.reshape(-1).cpu(), return_counts=True)
    return {int(a): float(b) * scale for a, b in zip(u.tolist(), c.tolist(), strict=True)}


class WeightedStage(EncodedStage):
    """A Linear/Conv2d layer on RNA blocks: table lookups, NOR addition, encoder AM search."""

    def __init__(self, op, encoder_op, in_shape: tuple[int, ...], next_clusters: int,
                 config: SimConfig, decode_next: torch.Tensor | None = None) -> None:
        s = op.spec
        self.name, self.src = op.name, op.inputs[0]
        self.config = config
        self.conv = s["op"] in ("conv2d", "conv1d")
        self.conv1d = s["op"] == "conv1d"  # runs as a conv2d of height 1
        codes = op.weight_codes
        fan_in = int(codes[0].numel())
        geom = Geometry(s["op"], int(codes.shape[0]), fan_in)
        if self.conv:
            one = (lambda v, first: (first, int(v[0]))) if self.conv1d else (
                lambda v, first: (int(v[0]), int(v[1])))
            if self.conv1d:
                codes = codes.unsqueeze(2)
                in_shape = (in_shape[0], 1, in_shape[1])
            geom = Geometry("conv2d", int(codes.shape[0]), fan_in, one(s["stride"], 1),
                            one(s["padding"], 0), one(s["dilation"], 1),
                            tuple(codes.shape[2:4]), int(s.get("groups", 1)))
        self.xbar = ProductTableCrossbar(op.table, codes, op.weight_values, op.input_values,
                                         int(s["entry_bits"]), geom)
        self.acc_bits = int(s["acc_bits"])
        bias = op.bias if s["bias_in_accumulator"] else None
        self.adder = ProcessingCrossbar(self.xbar, bias, self.acc_bits)
        self.bias_bits = self.acc_bits if bias is not None else None
        self.encoder = None
        if encoder_op is not None:
            self.encoder = Encoder(encoder_op, self.adder.lo, self.adder.hi, next_clusters,
                                   config, op.name, decode_next)
        # decoded input values suffice (no codes) for the adder tree over a rank-one table
        self.use_values = config.strategy == "tree" and self.adder.value_path
        self.fold_offset = (not config.record_accumulators and self.encoder is not None
                            and self.encoder.am.offset_ok)
        self.valid = _valid_products(geom, in_shape)  # (P,)
        self.positions = int(self.valid.numel())
        self.out = geom.out
        self.values = self.out * self.positions
        self.entry_bits = self.xbar.entry_bits
        self.counter_bits = counter_bits(fan_in)
        self.rows = config.blocks.proc_rows
        self.static = self._static_events()
        enc = self.encoder
        self.info = LayerInfo(
            op.name, s["op"], neurons=self.values, fan_in=fan_in, positions=self.positions,
            weight_clusters=self.xbar.w, input_clusters=self.xbar.u, entry_bits=self.entry_bits,
            tables=self.xbar.groups, acc_bits=self.acc_bits,
            am_rows=enc.rows_per_search if enc else 0, am_bits=enc.bits_per_search if enc else 0)
        self.place(self._demand(op.table), config)

    # events ---------------------------------------------------------------------------------
    def _static_events(self) -> Events:
        """Per-image events that depend only on shapes (everything for the adder tree)."""
        hist = {n: c * self.out for n, c in _hist(self.valid).items()}
        products = float(sum(n * c for n, c in hist.items()))
        ev = Events()
        if self.config.strategy == "tree":
            ev = _tree_events(hist, self.entry_bits, self.rows, self.bias_bits, self.config)
            ev.table_lookups = ev.product_writes = products
            _finish(ev, self.entry_bits, ev.bits_moved_block)
        else:  # counter increments: one c-bit addition per synapse
            c = self.counter_bits
            ev.add_additions({c: products})
            ev.nor_cycles = products * self.config.nor_cycles(c)
            ev.cells_written = ev.nor_cycles
        if self.encoder is not None:
            ev.add(self.encoder.events(self.values))
        return ev

    def _counting_events(self, counts: torch.Tensor, scale: float) -> Events:
        """Data-dependent counting events from pair counts ``(n, O, P, w, u)``."""
        nz = counts > 0
        nnz = nz.sum((-2, -1))  # (n, O, P) non-zero pairs per value
        c = self.counter_bits
        width = self.entry_bits + c
        ev = _tree_events(_hist(nnz, scale), width, self.rows, self.bias_bits, self.config)
        moved = ev.bits_moved_block
        lookups = float(nnz.sum()) * scale
        ev.table_lookups = ev.product_writes = lookups
        pc = popcount(counts[nz], c)
        shift_adds = float((pc - 1).sum()) * scale
        ev.add_additions({width: shift_adds})
        ev.nor_cycles += shift_adds * self.config.nor_cycles(width)
        ev.bits_moved_block += shift_adds * width
        return _finish(ev, self.entry_bits, moved + shift_adds * width)

    # execution ------------------------------------------------------------------------------
    def _counting(self, b: torch.Tensor) -> tuple[torch.Tensor | None, Events]:
        n = b.shape[0]
        per_image = self.values * self.xbar.w * self.xbar.u
        chunk = max(1, self.config.max_chunk_elements // max(1, per_image))
        sample = n if self.config.count_sample is None else min(n, self.config.count_sample)
        ev = Events()
        sums = []
        for i in range(0, sample, chunk):
            counts = self.adder.pair_counts(b[i:i + chunk])
            ev.add(self._counting_events(counts, n / sample))
            if self.config.count_sample is None:
                sums.append(self.adder.sum_counts(counts))
        out = None
        if sums:
            out = torch.cat(sums).reshape(n, self.out, -1)
            if not self.conv:
                out = out.reshape(n, self.out)
            else:
                out = out.reshape(n, self.out, *self._out_hw(b))
        return out, ev

    def _out_hw(self, b: torch.Tensor) -> tuple[int, int]:
        g = self.xbar.geometry
        h, w = b.shape[-2:]
        oh = (h + 2 * g.padding[0] - g.dilation[0] * (g.kernel[0] - 1) - 1) // g.stride[0] + 1
        ow = (w + 2 * g.padding[1] - g.dilation[1] * (g.kernel[1] - 1) - 1) // g.stride[1] + 1
        return oh, ow

    def needs(self) -> dict[str, str]:
        return {self.src: "vals" if self.use_values else "codes"}

    def _lift(self, t: torch.Tensor) -> torch.Tensor:
        """A Conv1d's (N, C, L) input as the (N, C, 1, L) input of its height-1 conv2d."""
        return t.unsqueeze(2) if self.conv1d else t

    def _drop(self, t: torch.Tensor) -> torch.Tensor:
        return t.squeeze(2) if self.conv1d else t

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        ev = None
        if self.use_values:
            enc = self.encoder
            vals = self._lift(env.values(self.src))
            if self.fold_offset and enc is not None:
                # accumulators are not recorded: sum + bias - vlo straight into the AM
                shifted = self.adder.accumulate_values(vals, -enc.am.vlo)
                if shifted is not None and shifted.is_floating_point():
                    enc.emit_offset(env, self._drop(shifted))
                    return None
            acc = self.adder.accumulate_values(vals)
        else:
            b = self._lift(env.codes[self.src])
            sums = None
            if self.config.strategy == "counting":
                sums, ev = self._counting(b)
            if sums is None:
                sums = self.adder.sum_products(b)
            acc = self.adder.saturate(sums)
        acc = self._drop(acc)
        env.ints[self.name] = acc
        if self.encoder is not None:
            self.encoder.emit(env, acc)
        return ev

    # mapping --------------------------------------------------------------------------------
    def _demand(self, table: torch.Tensor) -> LayerDemand:
        """Rows per value: every product (tree) or every (weight, input) code pair (counting,
        whose ``fan_in`` counter increments per value run one after another)."""
        xb, cfg = self.xbar, self.config
        counting = cfg.strategy == "counting"
        fan_in = xb.geometry.fan_in
        rows = min(xb.w * xb.u, fan_in) if counting else fan_in
        width = self.entry_bits + (self.counter_bits if counting else 0)
        am = self.encoder.demand() if self.encoder is not None else {}
        return LayerDemand(
            "weighted", values=self.out, positions=self.positions, rows_per_value=rows,
            entry_bits=width, acc_bits=self.acc_bits,
            exact_entry_bits=signed_bits(int(table.abs().max())) if table.numel() else 1,
            table_bits=xb.w * xb.u * self.entry_bits, tables=xb.groups,
            serial_adds=float(fan_in) if counting else 0.0,
            serial_cycles=fan_in * cfg.nor_cycles(self.counter_bits) if counting else 0.0,
            serial_bits=self.counter_bits if counting else 0, **am)


class MaxPoolStage(Stage):
    """Max pooling on codes: one pooling-AM search per pooled value."""

    def __init__(self, op, in_shape: tuple[int, ...], clusters: int, config: SimConfig) -> None:
        s = op.spec
        self.name, self.src = op.name, op.inputs[0]
        self.am = PoolingAM(s["kernel"], s["stride"], s["padding"], s["dilation"],
                            s["ceil_mode"])
        c, h, w = in_shape
        rows = self.am.rows_per_window(h, w)
        self.positions = int(rows.numel())
        self.values = c * self.positions
        self.rows_written = float(rows.sum()) * c
        self.clusters = clusters
        window = int(s["kernel"][0]) * int(s["kernel"][1])
        self.info = LayerInfo(op.name, "maxpool", neurons=self.values, fan_in=window,
                              positions=self.positions, input_clusters=clusters)
        self.place(LayerDemand("maxpool", values=c, positions=self.positions,
                               pool_window=window), config)
        cb = code_bits(clusters)
        self.static = Events(pool_searches=self.values, bits_moved_tile=self.values * cb,
                             cells_written=(self.rows_written + self.values) * cb)

    def needs(self) -> dict[str, str]:
        return {self.src: "pass"}

    def produced(self) -> str | None:
        return self.name

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        if self.src in env.codes:
            env.codes[self.name] = self.am.search(env.codes[self.src])
        if self.src in env.vals:
            env.vals[self.name] = self.am.search_values(env.vals[self.src])
        return None


class AvgPoolStage(EncodedStage):
    """Average pooling: decode (lookup), add each window (NOR adder tree), re-encode (AM)."""

    def __init__(self, op, encoder_op, in_shape: tuple[int, ...], clusters: int,
                 next_clusters: int, config: SimConfig,
                 decode_next: torch.Tensor | None = None) -> None:
        s = op.spec
        self.name, self.src = op.name, op.inputs[0]
        self.kernel, self.stride = tuple(s["kernel"]), tuple(s["stride"])
        self.padding = tuple(s["padding"])
        self.decode = op.input_values.to(torch.int64)
        self.config = config
        c, h, w = in_shape
        ones = torch.ones(1, 1, h, w, dtype=torch.int64)
        rows = windows(ones, self.kernel, self.stride, self.padding, (1, 1), False, 0).sum(
            (-2, -1))[0, 0]
        self.positions = int(rows.numel())
        self.values = c * self.positions
        area = self.kernel[0] * self.kernel[1]
        vmax = int(self.decode.max().clamp(min=0)) * area
        vmin = int(self.decode.min().clamp(max=0)) * area
        self.entry_bits = signed_bits(int(self.decode.abs().max()))
        self.encoder = None
        if encoder_op is not None:
            self.encoder = Encoder(encoder_op, vmin, vmax, next_clusters, config, op.name,
                                   decode_next)
        self.sum_dtype = exact_dtype(max(abs(vmin), abs(vmax)))
        hist = {k: v * c for k, v in _hist(rows).items()}
        ev = _tree_events(hist, self.entry_bits, config.blocks.proc_rows, None, config)
        ev.table_lookups = ev.product_writes = float(rows.sum()) * c
        _finish(ev, self.entry_bits, ev.bits_moved_block)
        if self.encoder is not None:
            ev.add(self.encoder.events(self.values))
        self.static = ev
        enc = self.encoder
        self.info = LayerInfo(
            op.name, "avgpool", neurons=self.values, fan_in=area, positions=self.positions,
            weight_clusters=1, input_clusters=clusters, entry_bits=self.entry_bits, tables=1,
            acc_bits=signed_bits(max(abs(vmin), abs(vmax))),
            am_rows=enc.rows_per_search if enc else 0, am_bits=enc.bits_per_search if enc else 0)
        am = self.encoder.demand() if self.encoder is not None else {}
        self.place(LayerDemand(
            "avgpool", values=c, positions=self.positions, rows_per_value=area,
            entry_bits=self.entry_bits, acc_bits=self.info.acc_bits,
            exact_entry_bits=self.entry_bits, table_bits=int(self.decode.numel()) * self.entry_bits,
            **am), config)

    def needs(self) -> dict[str, str]:
        return {self.src: "vals" if self.sum_dtype is not None else "codes"}

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        if self.sum_dtype is not None:  # exact float window sums of the decoded values
            v = env.values(self.src).to(self.sum_dtype)
            total = F.avg_pool2d(v, self.kernel, self.stride, self.padding,
                                 count_include_pad=True, divisor_override=1)
        else:
            v = self.decode[env.codes[self.src]]
            total = window_sums(v, self.kernel, self.stride, self.padding)
        self.finish(env, total)
        return None


class AddStage(EncodedStage):
    """Residual add: decode both codes (lookups), align, one NOR addition, re-encode (AM)."""

    def __init__(self, op, encoder_op, shape: tuple[int, ...], next_clusters: int,
                 config: SimConfig, decode_next: torch.Tensor | None = None) -> None:
        s = op.spec
        self.name, self.srcs = op.name, list(op.inputs)
        self.sa, self.sb = int(s["a_shift"]), int(s["b_shift"])
        self.av, self.bv = op.a_values.to(torch.int64), op.b_values.to(torch.int64)
        self.values = int(math.prod(shape))
        vmin = (int(self.av.min()) << self.sa) + (int(self.bv.min()) << self.sb)
        vmax = (int(self.av.max()) << self.sa) + (int(self.bv.max()) << self.sb)
        width = max(signed_bits(int(self.av.abs().max())) + self.sa,
                    signed_bits(int(self.bv.abs().max())) + self.sb)
        self.encoder = None
        if encoder_op is not None:
            self.encoder = Encoder(encoder_op, vmin, vmax, next_clusters, config, op.name,
                                   decode_next)
        ev = Events(table_lookups=2.0 * self.values, product_writes=2.0 * self.values,
                    additions={width: float(self.values)},
                    nor_cycles=self.values * config.nor_cycles(width),
                    bits_moved_block=float(self.values * width))
        _finish(ev, width, ev.bits_moved_block)
        if self.encoder is not None:
            ev.add(self.encoder.events(self.values))
        self.static = ev
        enc = self.encoder
        positions = int(math.prod(shape[1:])) if len(shape) == 3 else 1
        self.info = LayerInfo(op.name, "add", neurons=self.values, positions=positions,
                              entry_bits=width, acc_bits=width + 1,
                              am_rows=enc.rows_per_search if enc else 0,
                              am_bits=enc.bits_per_search if enc else 0)
        am = self.encoder.demand() if self.encoder is not None else {}
        self.place(LayerDemand(
            "add", values=self.values // positions, positions=positions, rows_per_value=2,
            entry_bits=width, acc_bits=width + 1, exact_entry_bits=width,
            table_bits=int(self.av.numel() + self.bv.numel()) * width, **am), config)

    def needs(self) -> dict[str, str]:
        return dict.fromkeys(self.srcs, "codes")

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        a = self.av[env.codes[self.srcs[0]]] << self.sa
        b = self.bv[env.codes[self.srcs[1]]] << self.sb
        total = a + b
        self.finish(env, total)
        return None


class CodeActivationStage(Stage):
    """An unfused activation on codes: one lookup of a u-entry code table per value."""

    def __init__(self, op, shape: tuple[int, ...], clusters: int, next_clusters: int) -> None:
        self.name, self.src = op.name, op.inputs[0]
        self.table = op.table.to(torch.int64)
        self.values = int(math.prod(shape))
        self.bits = code_bits(next_clusters)
        tables = 1 if self.table.dim() == 1 else int(self.table.shape[0])
        self.info = LayerInfo(op.name, "activation", neurons=self.values,
                              input_clusters=clusters, weight_clusters=1,
                              entry_bits=self.bits, tables=tables)
        self.place(LayerDemand("lookup", values=self.values), SimConfig())
        self.static = Events(table_lookups=self.values, bits_moved_tile=self.values * self.bits,
                             cells_written=self.values * self.bits)

    def needs(self) -> dict[str, str]:
        return {self.src: "codes"}

    def produced(self) -> str | None:
        return self.name

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        c = env.codes[self.src]
        if self.table.dim() == 1:
            env.codes[self.name] = self.table[c]
        else:  # one table per channel
            ch = torch.arange(c.shape[1], device=c.device).reshape(1, -1, *(1,) * (c.dim() - 2))
            env.codes[self.name] = self.table[ch, c]
        return None


class LayoutStage(Stage):
    """concat / slice / permute / pad of code tensors: an addressing change, no hardware work
    and no trace layer (like a reshape; padding positions read a fixed code). Applied to the
    codes and to the decoded values alike, whichever the consumers read."""

    def __init__(self, op, decode: torch.Tensor) -> None:
        self.name, self.srcs = op.name, list(op.inputs)
        self.kind, self.spec = type(op).kind, op.spec
        self.pad_value = None
        if self.kind == "pad":
            self.pad_value = decode[int(op.spec["code"])]

    def needs(self) -> dict[str, str]:
        # a concatenation joins its inputs in one form: codes (values are decoded on demand)
        return dict.fromkeys(self.srcs, "codes" if self.kind == "concat" else "pass")

    def produced(self) -> str | None:
        return self.name

    def _layout(self, parts: list[torch.Tensor], value: Any) -> torch.Tensor:
        s, c = self.spec, parts[0]
        if self.kind == "concat":
            return torch.cat(parts, int(s["dim"]))
        if self.kind == "slice":
            index = (slice(None), *(slice(*t) for t in s["slices"]))
            return c[index].reshape(c.shape[0], *s["shape"])
        if self.kind == "permute":
            return c.permute(0, *(int(d) + 1 for d in s["dims"]))
        return F.pad(c, list(s["pad"]), value=value)

    def run(self, env: Env, x: torch.Tensor) -> None:
        if all(i in env.codes for i in self.srcs):
            env.codes[self.name] = self._layout([env.codes[i] for i in self.srcs],
                                                int(self.spec.get("code", 0)))
        if self.kind != "concat" and all(i in env.vals for i in self.srcs):
            value = None if self.pad_value is None else self.pad_value.item()
            env.vals[self.name] = self._layout([env.vals[i] for i in self.srcs], value)


class MulStage(EncodedStage):
    """Element-wise product of two code tensors: one lookup per value in the product table of
    the two codebooks (``u_a x u_b`` entries, a crossbar table like a layer's), re-encoded by the
    encoder AM; size-1 dimensions broadcast (the same code is read for every position)."""

    def __init__(self, op, encoder_op, shape: tuple[int, ...], clusters: tuple[int, int],
                 next_clusters: int, config: SimConfig,
                 decode_next: torch.Tensor | None = None) -> None:
        self.name, self.srcs = op.name, list(op.inputs)
        self.table = op.table.to(torch.int64)
        self.values = int(math.prod(shape))
        peak = int(self.table.abs().max()) if self.table.numel() else 0
        width = signed_bits(peak)
        self.encoder = None
        if encoder_op is not None:
            self.encoder = Encoder(encoder_op, int(self.table.min()), int(self.table.max()),
                                   next_clusters, config, op.name, decode_next)
        ev = Events(table_lookups=float(self.values), product_writes=float(self.values))
        _finish(ev, width, 0.0)
        if self.encoder is not None:
            ev.add(self.encoder.events(self.values))
        self.static = ev
        enc = self.encoder
        positions = int(math.prod(shape[1:])) if len(shape) >= 2 else 1
        self.info = LayerInfo(op.name, "mul", neurons=self.values, positions=positions,
                              weight_clusters=clusters[0], input_clusters=clusters[1],
                              entry_bits=width, tables=1, acc_bits=width,
                              am_rows=enc.rows_per_search if enc else 0,
                              am_bits=enc.bits_per_search if enc else 0)
        am = self.encoder.demand() if self.encoder is not None else {}
        self.place(LayerDemand(
            "mul", values=self.values // positions, positions=positions, rows_per_value=1,
            entry_bits=width, acc_bits=width, exact_entry_bits=width,
            table_bits=int(self.table.numel()) * width, **am), config)

    def needs(self) -> dict[str, str]:
        return dict.fromkeys(self.srcs, "codes")

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        total = self.table[env.codes[self.srcs[0]], env.codes[self.srcs[1]]]
        self.finish(env, total)
        return None


class AdaptiveAvgPoolStage(EncodedStage):
    """Adaptive average pooling: per window, lookups of the decoded values scaled by
    ``L / area`` (one decode table per distinct factor), NOR adder tree, encoder AM."""

    def __init__(self, op, encoder_op, in_shape: tuple[int, ...], clusters: int,
                 next_clusters: int, config: SimConfig,
                 decode_next: torch.Tensor | None = None) -> None:
        self.name, self.src, self.op = op.name, op.inputs[0], op
        c = int(in_shape[0])
        ph, pw, factor = op.programmed()
        area = ph.sum(1)[:, None] * pw.sum(1)[None, :]  # (oh, ow) window sizes
        self.positions = int(area.numel())
        self.values = c * self.positions
        decode = op.input_values.to(torch.int64)
        fmax = int(factor.max())
        peak = int(decode.abs().max()) * fmax if decode.numel() else 0
        self.entry_bits = signed_bits(peak)
        vmax = int(decode.max().clamp(min=0)) * int(op.spec["multiple"])
        vmin = int(decode.min().clamp(max=0)) * int(op.spec["multiple"])
        self.encoder = None
        if encoder_op is not None:
            self.encoder = Encoder(encoder_op, vmin, vmax, next_clusters, config, op.name,
                                   decode_next)
        hist = {k: v * c for k, v in _hist(area.round().to(torch.int64)).items()}
        ev = _tree_events(hist, self.entry_bits, config.blocks.proc_rows, None, config)
        ev.table_lookups = ev.product_writes = float(area.sum()) * c
        _finish(ev, self.entry_bits, ev.bits_moved_block)
        if self.encoder is not None:
            ev.add(self.encoder.events(self.values))
        self.static = ev
        enc = self.encoder
        window = int(area.max())
        acc = signed_bits(max(abs(vmin), abs(vmax)))
        self.info = LayerInfo(
            op.name, "avgpool", neurons=self.values, fan_in=window, positions=self.positions,
            weight_clusters=len(torch.unique(factor)), input_clusters=clusters,
            entry_bits=self.entry_bits, tables=1, acc_bits=acc,
            am_rows=enc.rows_per_search if enc else 0, am_bits=enc.bits_per_search if enc else 0)
        am = self.encoder.demand() if self.encoder is not None else {}
        tables = len(torch.unique(factor))
        self.place(LayerDemand(
            "avgpool", values=c, positions=self.positions, rows_per_value=window,
            entry_bits=self.entry_bits, acc_bits=acc, exact_entry_bits=self.entry_bits,
            table_bits=int(decode.numel()) * tables * self.entry_bits, **am), config)

    def needs(self) -> dict[str, str]:
        return {self.src: "codes"}

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        ph, pw, factor = self.op.programmed()
        v = self.op.input_values.to(torch.float64)[env.codes[self.src]]
        total = (torch.einsum("nchw,ih,jw->ncij", v, ph, pw) * factor).round().to(torch.int64)
        self.finish(env, total)
        return None


class AdaptiveMaxPoolStage(Stage):
    """Adaptive max pooling on codes: one pooling-AM search per pooled value over its window."""

    def __init__(self, op, in_shape: tuple[int, ...], clusters: int, config: SimConfig) -> None:
        self.name, self.src = op.name, op.inputs[0]
        self.size = tuple(int(v) for v in op.spec["output_size"])
        c, h, w = in_shape
        rows = [b - a for a, b in adaptive_windows(h, self.size[0])]
        cols = [b - a for a, b in adaptive_windows(w, self.size[1])]
        self.positions = len(rows) * len(cols)
        self.values = c * self.positions
        written = float(sum(rows) * sum(cols)) * c
        window = max(rows) * max(cols)
        self.info = LayerInfo(op.name, "maxpool", neurons=self.values, fan_in=window,
                              positions=self.positions, input_clusters=clusters)
        self.place(LayerDemand("maxpool", values=c, positions=self.positions,
                               pool_window=window), config)
        cb = code_bits(clusters)
        self.static = Events(pool_searches=self.values, bits_moved_tile=self.values * cb,
                             cells_written=(written + self.values) * cb)

    def needs(self) -> dict[str, str]:
        return {self.src: "pass"}

    def produced(self) -> str | None:
        return self.name

    def run(self, env: Env, x: torch.Tensor) -> Events | None:
        for store in (env.codes, env.vals):
            c = store.get(self.src)
            if c is not None:
                out = F.adaptive_max_pool2d(c.to(torch.float64), self.size)
                store[self.name] = out.to(c.dtype)
        return None


class OutputStage(Stage):
    """Network output: dequantized accumulators (no hardware work) or decoded codes (lookups)."""

    def __init__(self, op, shape: tuple[int, ...], clusters: int) -> None:
        s = op.spec
        self.name, self.src = op.name, op.inputs[0]
        self.scale = float(s["scale"])
        self.from_codes = s["from"] != "integers"
        self.decode = op.values.to(torch.float64) if self.from_codes else None
        self.values = int(math.prod(shape))
        if self.from_codes:
            self.info = LayerInfo(op.name, "output", neurons=self.values,
                                  input_clusters=clusters, weight_clusters=1, tables=1)
            self.place(LayerDemand("lookup", values=self.values), SimConfig())
            self.static = Events(table_lookups=float(self.values))

    def needs(self) -> dict[str, str]:
        return {self.src: "codes"} if self.from_codes else {}

    def value(self, env: Env) -> torch.Tensor:
        if self.from_codes:
            return (self.decode[env.codes[self.src]] * self.scale).to(torch.float32)
        return (env.ints[self.src].to(torch.float64) * self.scale).to(torch.float32)

    def run(self, env: Env, x: torch.Tensor) -> None:
        return None
