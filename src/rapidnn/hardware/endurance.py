"""Endurance: inferences (and years) until the first NVM cell of a RAPIDNN design wears out.

From a Trace (its ``cells_written`` per layer, the layer's ``demand`` and the simulator's
``SimConfig``), a per-cell write model spreads each layer's writes over the cells that take them;
the hottest cell and a device endurance ``E`` (writes per cell, ``parameters.endurance_writes``
of the description) give ``lifetime_inferences = E / hottest writes per inference``, and the
design's throughput (the cost model's ``throughput_ips``) turns that into years. With ideal wear
levelling (rotating which rows/columns do the writes, as FloatPIM rotates its processing
columns) a layer's processing writes spread evenly over every processing-crossbar cell of its
blocks (``proc_blocks × proc_rows × proc_cols``, the dense mapping ``map_layer``).

Per-cell write model (OUR reconstruction; the paper gives no endurance analysis), per
inference, docs/hardware.md section 14:

* a value of a weighted, average-pooling, add or mul layer occupies a **slot** of one row per
  operand: product field (B cells), partial-sum field (A cells), incoming-operand field (A cells),
  NOR scratch (``slot_scratch_bits`` cells); a convolution's positions reuse the same slot, so
  every count is multiplied by ``positions``;
* row k's product field is written once per sum; a balanced binary tree at level l adds the pair
  (r, r + 2^(l-1)), r a multiple of 2^l: the partner's N-bit operand is moved into row r's
  incoming field (N writes), and the addition's ``SimConfig.nor_cycles(N)`` cycles each write
  one cell (the trace's convention): N into row r's partial-sum field (its low N cells), the
  rest spread evenly over row r's scratch cells (over the N result cells when there is no
  scratch); the bias addend is one more addition into row 0 (no move). A sum longer than
  ``proc_rows`` is reduced per block of ``proc_rows`` rows and the block results (held at each
  block's first row) by a second tree, as ``adder.split_tree_additions`` counts it;
* counting strategy: the ``fan_in`` counter increments (c-bit additions, no move) spread evenly
  over the ``min(w·u, fan_in)`` counter rows (low c cells of the partial-sum field, and the
  scratch); the data-dependent rest (term writes, shift-and-add, tree, bias) spread evenly over
  every cell of the slot;
* codes delivered to the next layer (``bits_moved_tile``): one cell per code bit, written once;
  max pooling's window codes written into its pooling AM: spread evenly over its
  ``values × window × code bits`` cells;
* product tables and AM thresholds are written once, when the model is programmed: 0 writes per
  inference (listed with 0).

Every layer's modelled total is checked against the trace's ``cells_written``: the model is
exact for unpadded layers (``trace_scale`` = 1); padded convolutions and windows (positions with
fewer operands) are modelled as full windows and scaled to the trace's total (``trace_scale``
< 1).

Copies: the cost model's mapper gives a layer ``r`` copies (``LayerEstimate.replicas``), which
share its stream (positions of a convolution, or inferences in turn), so each cell of a copy
takes ``1 / r`` of the writes per inference above; the throughput that turns inferences into
years is the same mapped design's. ``lifetime_one_copy_inferences`` keeps the one-copy figure
(the lower bound that ignores the copies).

Wear levelling (ideal): a layer's writes per inference (every class) spread evenly over the
processing crossbars of its processing blocks in all its copies (a layer without sums: of its
blocks; a layer with no blocks, an activation on codes, is not levelled); the levelled lifetime
is set by the layer with the most writes per levelled cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rapidnn.accel.adder import split_tree_additions, tree_depth
from rapidnn.accel.config import SimConfig
from rapidnn.accel.mapping import LayerDemand, LayerMap, map_layer
from rapidnn.accel.simulator import example_inputs, model_trace
from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.composer.composed import ComposedModel
from rapidnn.hardware.architectures import architecture_of
from rapidnn.hardware.components import Kind
from rapidnn.hardware.estimate import EstimateOptions
from rapidnn.hardware.loader import load_hardware
from rapidnn.hardware.rapidnn import RapidnnHardware, demand_of
from rapidnn.hardware.spec import HardwareConfigError, HardwareSpec

SECONDS_PER_YEAR = 365.25 * 86400.0
ENDURANCE = Kind("writes per cell before wear-out", strict=True)
_SLOT_KINDS = ("weighted", "avgpool", "add", "mul")


def duration(seconds: float) -> str:
    """``seconds`` in the unit that reads best: ``5.6 s``, ``3.2 min``, ``4.1 h``, ``12 days``,
    ``3.4 years`` (a lifetime at the design's throughput); infinite: ``unbounded``."""
    if not math.isfinite(seconds):
        return "unbounded"
    for unit, size in (("years", SECONDS_PER_YEAR), ("days", 86400.0), ("h", 3600.0),
                       ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"

_FIELDS = ("product", "partial_sum", "incoming", "scratch")


# ------------------------------------------------------------------ per-cell model of one slot
def _tree(first: int, count: int, stride: int, width: int) -> Iterator[tuple[np.ndarray, int]]:
    """(rows written, operand width) of each level of a balanced tree over ``count`` operands at
    rows ``first + stride · i``: level l adds (i, i + 2^(l-1)) for i a multiple of 2^l."""
    step, level = 1, 0
    while step < count:
        yield first + stride * np.arange(0, count - step, 2 * step), width + level
        step, level = step * 2, level + 1


def slot_writes(operands: int, width: int, acc_bits: int, proc_rows: int,
                bias_bits: int | None, config: SimConfig, scratch_bits: int
                ) -> dict[str, np.ndarray]:
    """Writes per cell of one value's slot for one sum of ``operands`` ``width``-bit products
    (adder tree; module docstring): field -> ``(operands, cells)`` array."""
    adds: list[tuple[np.ndarray, int, bool]] = []  # (rows, width, operand moved)
    if operands <= proc_rows:
        adds += [(r, n, True) for r, n in _tree(0, operands, 1, width)]
    else:
        blocks = math.ceil(operands / proc_rows)
        for b in range(blocks):
            part = min(proc_rows, operands - b * proc_rows)
            adds += [(r, n, True) for r, n in _tree(b * proc_rows, part, 1, width)]
        base = width + tree_depth(proc_rows)
        adds += [(r, n, True) for r, n in _tree(0, blocks, proc_rows, base)]
    if bias_bits is not None and operands > 0:
        final = split_tree_additions(operands, width, proc_rows)[1]
        adds.append((np.zeros(1, dtype=np.int64), max(final, bias_bits), False))
    wide = max([acc_bits, *(n for _, n, _ in adds)])
    out = {"product": np.ones((operands, width)), "partial_sum": np.zeros((operands, wide)),
           "incoming": np.zeros((operands, wide)),
           "scratch": np.zeros((operands, scratch_bits))}
    for rows, n, moved in adds:
        cycles = config.nor_cycles(n)
        result = min(cycles, n)
        out["partial_sum"][rows, :n] += result / n
        if scratch_bits:
            out["scratch"][rows] += (cycles - result) / scratch_bits
        else:
            out["partial_sum"][rows, :n] += (cycles - result) / n
        if moved:
            out["incoming"][rows, :n] += 1.0
    return out


def _counting_slot(lt: LayerTrace, d: LayerDemand, config: SimConfig, scratch_bits: int,
                   total: float) -> dict[str, np.ndarray]:
    """Counting strategy: counter increments on the counter rows, the rest of the layer's
    ``total`` processing writes spread evenly over the slot (module docstring)."""
    rows, c = d.rows_per_value, d.serial_bits
    wide = max(d.acc_bits, c)
    out = {"product": np.zeros((rows, d.entry_bits)), "partial_sum": np.zeros((rows, wide)),
           "incoming": np.zeros((rows, wide)), "scratch": np.zeros((rows, scratch_bits))}
    per_row = lt.additions.get(c, 0.0) / d.values / rows  # increments per counter row
    cycles = config.nor_cycles(c)
    result = min(cycles, c)
    out["partial_sum"][:, :c] += per_row * result / c
    if scratch_bits:
        out["scratch"] += per_row * (cycles - result) / scratch_bits
    else:
        out["partial_sum"][:, :c] += per_row * (cycles - result) / c
    counters = sum(float(a.sum()) for a in out.values())
    cells = sum(a.size for a in out.values())
    rest = max(0.0, total / d.values - counters) / cells
    return {k: a + rest for k, a in out.items()}


# ------------------------------------------------------------------------------ results
@dataclass
class CellClass:
    """Writes per cell per inference of one class of cells of a layer, over its written cells
    (``cells``: how many; ``writes``: their total per inference)."""

    name: str
    cells: float
    writes: float
    mean: float
    p50: float
    p90: float
    p99: float
    max: float


def _stats(name: str, per_cell: np.ndarray, copies: float) -> CellClass:
    """Stats of a per-cell array replicated ``copies`` times (identical slots)."""
    w = per_cell[per_cell > 0]
    if w.size == 0:
        return CellClass(name, float(per_cell.size * copies), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p50, p90, p99 = (float(x) for x in np.percentile(w, [50, 90, 99]))
    return CellClass(name, float(w.size * copies), float(w.sum() * copies), float(w.mean()),
                     p50, p90, p99, float(w.max()))


def _uniform(name: str, cells: float, writes: float) -> CellClass:
    """A class whose ``writes`` spread evenly over ``cells`` cells."""
    x = writes / cells if cells else 0.0
    return CellClass(name, cells, writes, x, x, x, x, x)


@dataclass
class LayerEndurance:
    """One layer: its cell classes (per copy, as if one copy took the whole stream), its
    ``copies`` (the mapper's), its hottest cell (writes per inference, over the copies) and,
    with wear levelling, its writes per cell (``levelled``) over ``levelled_cells``
    processing-crossbar cells of all copies; ``trace_scale``: the trace's total / the modelled
    total (1: exact)."""

    name: str
    kind: str
    classes: list[CellClass]
    hottest: float
    hottest_class: str
    levelled: float
    levelled_cells: float
    trace_scale: float
    copies: int = 1

    @property
    def hottest_one_copy(self) -> float:
        """The hottest cell's writes per inference if one copy took the whole stream."""
        return self.hottest * self.copies


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class Endurance:
    """Lifetime of a design: ``endurance_writes`` (value, tag, source), throughput, per-layer
    cells, the hottest cell, lifetime without and ``with_wear_levelling``, ``levelling_gain``."""

    endurance_writes: dict[str, Any]
    throughput_ips: float
    layers: list[LayerEndurance]
    hottest: dict[str, Any]
    lifetime_inferences: float
    lifetime_years: float
    with_wear_levelling: dict[str, Any] = field(default_factory=dict)
    levelling_gain: float = 1.0
    lifetime_one_copy_inferences: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (an infinite lifetime, nothing written, is None)."""
        d = asdict(self)
        for lay, out in zip(self.layers, d["layers"], strict=True):
            out["hottest_one_copy"] = lay.hottest_one_copy
        for k in ("throughput_ips", "lifetime_inferences", "lifetime_years", "levelling_gain",
                  "lifetime_one_copy_inferences"):
            d[k] = _num(d[k])
        for k in ("lifetime_inferences", "lifetime_years"):
            d["with_wear_levelling"][k] = _num(d["with_wear_levelling"][k])
        return d


# ------------------------------------------------------------------------------ per layer
def _bias_bits(lt: LayerTrace) -> int | None:
    """The bias addend's width, when the trace's additions hold one per value (additions −
    product writes = (bias − 1) per value of an adder tree)."""
    extra = (sum(lt.additions.values()) - lt.product_writes) / lt.neurons + 1
    return lt.acc_bits if round(extra) >= 1 else None


def _layer(lt: LayerTrace, hw: RapidnnHardware, config: SimConfig, copies: int
           ) -> LayerEndurance:
    d = demand_of(lt, hw)
    m: LayerMap = map_layer(d, config.blocks)
    sizes = config.blocks
    codes = lt.bits_moved_tile
    processing = max(0.0, lt.cells_written - codes)
    classes: list[CellClass] = []
    scale = 1.0
    if d.kind in _SLOT_KINDS and d.rows_per_value > 0 and d.values > 0:
        scratch = sizes.slot_scratch_bits
        if d.kind == "weighted" and config.strategy == "counting":
            slot = _counting_slot(lt, d, config, scratch, processing)
        else:
            bias = _bias_bits(lt) if d.kind == "weighted" else None
            slot = slot_writes(d.rows_per_value, d.entry_bits, d.acc_bits, sizes.proc_rows,
                               bias, config, scratch)
            slot = {k: a * d.positions for k, a in slot.items()}
        modelled = sum(float(a.sum()) for a in slot.values()) * d.values
        if processing > 0 and modelled > 0:
            scale = processing / modelled
        classes += [_stats(f"processing.{k}", slot[k] * scale, d.values) for k in _FIELDS]
    elif d.pool_window > 0 and processing > 0:
        cb = codes / lt.neurons
        classes.append(_uniform("pool_am", d.values * d.pool_window * cb, processing))
    if codes > 0:
        classes.append(_uniform("codes", codes, codes))
    if m.table_rows:
        classes.append(_uniform("product_table", m.blocks * m.table_rows * sizes.table_cols, 0))
    if m.am_blocks:
        classes.append(_uniform("am_thresholds", m.am_blocks * sizes.am_rows * sizes.am_bits, 0))
    hot = max(classes, key=lambda c: c.max, default=CellClass("", 0, 0, 0, 0, 0, 0, 0))
    blocks = m.proc_blocks if m.proc_blocks else m.blocks
    levelled_cells = float(blocks * sizes.proc_rows * sizes.proc_cols * copies)
    total = sum(c.writes for c in classes)
    levelled = total / levelled_cells if levelled_cells else hot.max / copies
    return LayerEndurance(lt.name, lt.kind, classes, hot.max / copies, hot.name, levelled,
                          levelled_cells, scale, copies)


# ------------------------------------------------------------------------------ the API
def _sim_config(trace: Trace, sim_config: SimConfig | None) -> SimConfig:
    """The simulator's config: given, else the one the trace records, else the defaults."""
    if sim_config is not None:
        return sim_config
    known = {k: v for k, v in trace.config.items() if k in SimConfig.model_fields}
    return SimConfig.model_validate(known)


def _endurance(spec: HardwareSpec, value: float | None) -> dict[str, Any]:
    """The endurance parameter: the override, else ``parameters.endurance_writes``."""
    key = "parameters.endurance_writes"
    if value is not None:
        out = {"value": float(value), "tag": "assumed", "source": "endurance_writes argument"}
    else:
        p = spec.parameters.get("endurance_writes")
        if p is None:
            raise HardwareConfigError("missing key (needed by the endurance analysis)",
                                      file=spec.source_file, key=key)
        out = {"value": float(p.value), "tag": p.tag, "source": p.source}
    try:
        ENDURANCE.check(out["value"])
    except ValueError as exc:
        raise HardwareConfigError(str(exc), file=spec.source_file, key=f"{key}.value") from None
    return out


def lifetime(composed_or_trace: ComposedModel | Trace,
             hardware: str | Path | HardwareSpec = "rapidnn", *,
             endurance_writes: float | None = None, sim_config: SimConfig | None = None,
             config: EstimateOptions | Mapping[str, Any] | None = None) -> Endurance:
    """Inferences and years until the first cell wears out, without and with ideal wear
    levelling (module docstring). ``composed_or_trace``: a ComposedModel (simulated with
    ``sim_config``) or its Trace; ``hardware``: a RAPIDNN description (its
    ``endurance_writes``, unless given, and the throughput); ``config``: the cost model's
    ``EstimateOptions`` for the throughput."""
    spec = load_hardware(hardware)
    if isinstance(composed_or_trace, ComposedModel):
        cfg = sim_config or SimConfig()
        trace = model_trace(composed_or_trace, example_inputs(composed_or_trace, batch=8), cfg)
    else:
        trace = composed_or_trace
        cfg = _sim_config(trace, sim_config)
    opts = EstimateOptions.coerce(config)
    if opts.overrides:
        spec = spec.with_own_overrides(opts.overrides)
    arch = architecture_of(spec)
    hw = arch.view(spec)
    if not isinstance(hw, RapidnnHardware):
        raise HardwareConfigError("the endurance analysis needs a rapidnn description",
                                  file=spec.source_file, key="model")
    endurance = _endurance(spec, endurance_writes)
    est = arch.estimate(trace, hw, opts)
    copies = {lay.name: max(1, lay.replicas) for lay in est.layers}
    layers = [_layer(lt, hw, cfg, copies.get(lt.name, 1)) for lt in trace.layers]
    e = endurance["value"]
    ips = est.throughput_ips
    hot = max(layers, key=lambda lay: lay.hottest)
    lev = max(layers, key=lambda lay: lay.levelled)
    one = max(lay.hottest_one_copy for lay in layers)
    n = e / hot.hottest if hot.hottest > 0 else math.inf
    n_lev = e / lev.levelled if lev.levelled > 0 else math.inf
    return Endurance(
        endurance_writes=endurance, throughput_ips=ips, layers=layers,
        hottest={"layer": hot.name, "class": hot.hottest_class,
                 "writes_per_inference": hot.hottest, "copies": hot.copies},
        lifetime_inferences=n, lifetime_years=n / ips / SECONDS_PER_YEAR,
        with_wear_levelling={"layer": lev.name, "writes_per_cell": lev.levelled,
                             "lifetime_inferences": n_lev,
                             "lifetime_years": n_lev / ips / SECONDS_PER_YEAR},
        levelling_gain=n_lev / n if math.isfinite(n) else 1.0,
        lifetime_one_copy_inferences=e / one if one > 0 else math.inf)
