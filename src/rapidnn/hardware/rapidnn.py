"""RAPIDNN cost model: Trace events × per-event energy; layouts on RNA blocks; layer pipeline.

Everything here is a **reconstruction** (paper-notes §6.3, §9.2 H1–H3, H7): RAPIDNN's block sizes,
cycle counts and energies are unknown, so the preset uses the same group's FloatPIM/DUAL
primitives. The placement of a layer on RNA blocks is ``rapidnn.accel.mapping.map_layer``, the
function the simulator uses; this module adds time and energy and hands the layouts to the
mapper (``rapidnn.hardware.mapper``). Formulas (docs/hardware.md §7), for a layer with V values
per position, L products per value, entry width B and accumulator width A:

Energy per inference
    ``E = nor_cycles·E_nor + lookups·B·E_read + product_writes·B·E_write
    + bits_moved_block·E_transfer + (am_searches·am_rows·am_bits
    + pool_searches·window·code_bits)·E_search + bits_moved_tile·E_link + static``, plus the
    partial-sum additions a row split adds (``(k − k_min)`` A-bit additions per value) and the
    input codes sent to the processing blocks (``P · blocks · L_k · stacks_used · log2 u`` bits).

Time per output position of a layout (S values per row, k row blocks, map ``m``)
    ``t_mul = L_k · stacks_used · (t_read + t_write)`` (one table read and one row write per
    product row; all blocks in parallel);
    ``t_add = lanes · (Σ_{i<D} (c_bit + k_tr) · min(B + i, A_max) + serial / k) · T_nor`` over
    the ``D = ceil(log2(n_a + 1))`` levels of a binary adder tree of the ``n_a`` additions per
    value (trace, plus the split's), ``c_bit`` the trace's NOR cycles per added bit, ``k_tr``
    transfer cycles per bit, ``serial`` the NOR cycles of additions that cannot overlap (counter
    increments of the counting strategy, shared by the k row blocks); ``lanes = S`` when the S
    slots of a row add one after another (``column_parallel = 0``), 1 otherwise;
    ``t_act = ceil(V / AM units) · segments · (t_search + t_read)`` (a shared threshold set is
    held by every block of the layer, per-value sets by their AM blocks);
    ``t_pool = ceil(V / pool blocks) · t_search``;
    ``t_move = k_tr · code bits per value · lanes · T_nor``.
Stage work ``W = P · t_pos``; copies up to P (``pipeline``) or beyond (``fill``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Annotated, ClassVar

from rapidnn.accel.config import BlockSizes
from rapidnn.accel.mapping import LayerDemand, LayerMap, Layout, layouts, map_layer
from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.hardware.common import Events, event_energy
from rapidnn.hardware.components import Kind
from rapidnn.hardware.estimate import ChipFigures
from rapidnn.hardware.network import NetworkShape, linear
from rapidnn.hardware.parts import Bus, RnaBlock
from rapidnn.hardware.views import Hardware, level, param, part


def block_size(name: str) -> Kind:
    """The kind of a parameter that is also a :class:`BlockSizes` field (the simulator's and the
    cost model's one geometry): a whole number with that field's lower bound."""
    low = next(m.ge for m in BlockSizes.model_fields[name].metadata if hasattr(m, "ge"))
    return Kind(f"a block size, as BlockSizes.{name}", low=float(low), whole=True)


@dataclass(frozen=True)
class RapidnnHardware(Hardware):
    """What the RAPIDNN formulas read (presets/rapidnn.yaml; hardware-parameters.md §4)."""

    MODEL: ClassVar[str] = "rapidnn"

    blocks_per_chip: Annotated[float, level("block")]
    blocks_per_tile: Annotated[int, param(kind=block_size("blocks_per_tile"))]
    table_rows: Annotated[int, param(kind=block_size("table_rows"))]
    table_cols: Annotated[int, param(kind=block_size("table_cols"))]
    proc_rows: Annotated[int, param(kind=block_size("proc_rows"))]
    proc_cols: Annotated[int, param(kind=block_size("proc_cols"))]
    am_rows: Annotated[int, param(kind=block_size("am_rows"))]
    am_bits: Annotated[int, param(kind=block_size("am_bits"))]
    # 0 scratch bits: NOR intermediates overwrite the operands' cells
    slot_scratch_bits: Annotated[int, param(kind=block_size("slot_scratch_bits"))]
    column_parallel: Annotated[bool, param()]
    # cycle counts and the controllers' static power may be 0 (free transfers, an addition
    # without a constant term as FloatPIM's 13 N, no controller leakage): their unit's >= 0
    transfer_cycles_per_bit: Annotated[float, param()]
    controller_static_w_per_tile: Annotated[float, param(unit="W")]
    pool_window: Annotated[int, param()]
    nor_cycles_per_bit: Annotated[float, param()]
    nor_cycles_fixed: Annotated[float, param()]
    synthetic_weight_clusters: Annotated[int, param()]
    synthetic_input_clusters: Annotated[int, param()]
    synthetic_entry_bits: Annotated[int, param()]
    synthetic_acc_bits: Annotated[int, param()]
    rna_block: Annotated[RnaBlock, part()]
    tile_link: Annotated[Bus, part()]


def block_sizes(hw: RapidnnHardware) -> BlockSizes:
    """The RNA block as the simulator's :class:`BlockSizes` (one geometry for both)."""
    return BlockSizes(
        table_rows=hw.table_rows, table_cols=hw.table_cols, proc_rows=hw.proc_rows,
        proc_cols=hw.proc_cols, am_rows=hw.am_rows, am_bits=hw.am_bits,
        blocks_per_tile=hw.blocks_per_tile, slot_scratch_bits=hw.slot_scratch_bits)


def code_bits(clusters: int) -> int:
    return max(1, math.ceil(math.log2(max(2, clusters))))


# --------------------------------------------------------------------- demand
def demand_of(lt: LayerTrace, hw: RapidnnHardware) -> LayerDemand:
    """The layer's demand: recorded by the simulator (Trace format 2), or derived from the
    trace fields for hand-written layers (weighted kinds, pooling, AM-only encoders)."""
    if lt.demand:
        return LayerDemand.from_dict(lt.demand)
    p = max(1, lt.positions)
    v = math.ceil(lt.neurons / p) if lt.neurons else 0
    am = {"am_rows": lt.am_rows, "am_bits": lt.am_bits} if lt.am_searches > 0 else {}
    if lt.kind == "encode_input":
        return LayerDemand(lt.kind, values=1, positions=max(1, lt.neurons), **am)
    if lt.pool_searches > 0:
        window = lt.fan_in or hw.pool_window
        return LayerDemand(lt.kind, values=v, positions=p, pool_window=window)
    if lt.table_lookups > 0 and lt.neurons > 0 and lt.kind in ("linear", "conv2d"):
        b = lt.entry_bits or hw.synthetic_entry_bits
        a = lt.acc_bits or hw.synthetic_acc_bits
        w = lt.weight_clusters or hw.synthetic_weight_clusters
        u = lt.input_clusters or hw.synthetic_input_clusters
        return LayerDemand("weighted", values=v, positions=p,
                           rows_per_value=math.ceil(lt.table_lookups / lt.neurons),
                           entry_bits=b, acc_bits=a, exact_entry_bits=b, table_bits=w * u * b,
                           tables=max(1, lt.tables), **am)
    return LayerDemand(lt.kind, values=v, positions=p, **am)


# --------------------------------------------------------------------- energy
def layer_events(hw: RapidnnHardware, lt: LayerTrace, entry_width: str = "fixed") -> Events:
    """Component actions of one trace layer (module docstring, 'Energy per inference').

    ``entry_width="exact"`` reads and writes table entries at the smallest width that holds
    every product of the table (``LayerDemand.exact_entry_bits``) instead of the composed B."""
    b = lt.entry_bits or hw.synthetic_entry_bits
    if entry_width == "exact" and lt.demand.get("exact_entry_bits"):
        b = min(b, int(lt.demand["exact_entry_bits"]))
    window = lt.fan_in or hw.pool_window
    pool_bits = code_bits(lt.input_clusters or hw.synthetic_input_clusters)
    search_row_bits = lt.am_searches * lt.am_rows * lt.am_bits
    search_row_bits += lt.pool_searches * window * pool_bits
    block = hw.rna_block
    return {
        block.nor_cycle: lt.nor_cycles,
        block.read_bit: lt.table_lookups * b,
        block.write_bit: lt.product_writes * b,
        block.transfer_bit: lt.bits_moved_block,
        block.search_row_bit: search_row_bits,
        hw.tile_link.bit: lt.bits_moved_tile,
    }


def _split_additions(hw: RapidnnHardware, d: LayerDemand, m: LayerMap) -> tuple[float, float]:
    """(additions, NOR cycles) per value that a row split beyond the minimum adds."""
    if d.rows_per_value <= 0 or d.values <= 0:
        return 0.0, 0.0
    extra = m.row_blocks - math.ceil(d.rows_per_value / hw.proc_rows)
    if extra <= 0:
        return 0.0, 0.0
    cycles = hw.nor_cycles_per_bit * d.acc_bits + hw.nor_cycles_fixed
    return float(extra), extra * cycles


def layout_events(hw: RapidnnHardware, lt: LayerTrace, d: LayerDemand, m: LayerMap) -> Events:
    """Events a layout adds to the trace's: the partial sums of extra row blocks, and the input
    codes every processing block needs (one per row it uses: a layout spread over more blocks
    sends the same codes to more blocks). The one-off writes of replicated tables are not
    charged (they are not per inference)."""
    if not m.proc_blocks:
        return {}
    adds, cycles = _split_additions(hw, d, m)
    n = d.values * d.positions
    stacks_used = min(m.stacks, math.ceil(d.values / max(1, m.values_per_row)))
    u = lt.input_clusters or hw.synthetic_input_clusters
    broadcast = d.positions * m.proc_blocks * m.rows_per_block * stacks_used * code_bits(u)
    ev: Events = {hw.rna_block.transfer_bit: n * adds * d.acc_bits + broadcast}
    if adds:
        ev[hw.rna_block.nor_cycle] = n * cycles
    return ev


# ----------------------------------------------------------------------- time
@dataclass(frozen=True)
class PositionTime:
    """Time of one output position on one copy, by step (seconds)."""

    mul: float = 0.0
    add: float = 0.0
    act: float = 0.0
    pool: float = 0.0
    move: float = 0.0

    @property
    def total(self) -> float:
        return self.mul + self.add + self.act + self.pool + self.move


def _tree_time(hw: RapidnnHardware, lt: LayerTrace, d: LayerDemand, m: LayerMap) -> float:
    """Critical path of one value's additions: level i of the binary tree adds
    ``min(B + i, A_max)``-bit operands, ``(c_bit + k_tr) · width`` cycles each (``c_bit`` = the
    trace's NOR cycles per added bit), over ``D = ceil(log2(n_a + 1))`` levels, plus the serial
    counter increments of the counting strategy (shared by the row blocks they are split over)."""
    t_nor = hw.rna_block.nor_cycle.latency
    k_tr = hw.transfer_cycles_per_bit
    n = max(1, lt.neurons)
    tree = dict(lt.additions)
    if d.serial_adds and d.serial_bits in tree:
        tree[d.serial_bits] = max(0.0, tree[d.serial_bits] - d.serial_adds * n)
    n_adds = sum(tree.values())
    bits = sum(k * c for k, c in tree.items())
    cycles = lt.nor_cycles - d.serial_cycles * n
    extra_adds, _ = _split_additions(hw, d, m)
    serial = d.serial_cycles / max(1, m.row_blocks)
    if n_adds > 0 or extra_adds > 0:
        per_bit = cycles / bits if bits > 0 else hw.nor_cycles_per_bit
        widths = sorted(k for k, c in tree.items() if c > 0) or [d.acc_bits]
        lo, hi = widths[0], max(widths[-1], d.acc_bits if extra_adds else 0)
        depth = math.ceil(math.log2(n_adds / n + extra_adds + 1))
        path = sum((per_bit + k_tr) * min(lo + i, hi) for i in range(depth))
        return (path + serial) * t_nor
    return max(0.0, lt.nor_cycles / n) * t_nor  # no breakdown: the value's cycles run serially


def position_time(hw: RapidnnHardware, lt: LayerTrace, d: LayerDemand,
                  m: LayerMap) -> PositionTime:
    """Time of one output position (module docstring, 'Time per output position')."""
    v = d.values
    if v <= 0:
        return PositionTime()
    block = hw.rna_block
    t_nor, t_read, t_write, t_search = (block.nor_cycle.latency, block.read_row.latency,
                                        block.write_row.latency, block.search.latency)
    k_tr = hw.transfer_cycles_per_bit
    lanes = 1
    mul = add = act = pool = move = 0.0
    if m.proc_blocks:
        lanes = 1 if hw.column_parallel else m.values_per_row
        stacks_used = min(m.stacks, math.ceil(v / m.values_per_row))
        mul = m.rows_per_block * stacks_used * (t_read + t_write)
        add = lanes * _tree_time(hw, lt, d, m)
    if m.am_blocks:
        units = m.blocks if d.am_shared else max(1, m.am_blocks // max(1, m.am_segments))
        act = math.ceil(v / units) * m.am_segments * (t_search + t_read)
    if m.pool_blocks:
        pool = math.ceil(v / m.pool_blocks) * t_search
    if lt.bits_moved_tile > 0:
        move = k_tr * (lt.bits_moved_tile / max(1, lt.neurons)) * lanes * t_nor
    return PositionTime(mul, add, act, pool, move)


# ------------------------------------------------------------------- layouts
@dataclass(frozen=True)
class Candidate:
    """One layout of one layer: its map, time per position and the events it adds."""

    layout: Layout
    lmap: LayerMap
    time: PositionTime
    positions: int
    extra: Events = field(default_factory=dict)

    @property
    def blocks(self) -> int:
        return self.lmap.blocks

    @property
    def t_pos(self) -> float:
        return self.time.total

    @property
    def work_s(self) -> float:
        return self.positions * self.t_pos


def candidate(hw: RapidnnHardware, lt: LayerTrace, d: LayerDemand,
              layout: Layout | None = None, sizes: BlockSizes | None = None) -> Candidate:
    m = map_layer(d, sizes or block_sizes(hw), layout)
    return Candidate(layout or Layout(), m, position_time(hw, lt, d, m), max(1, d.positions),
                     layout_events(hw, lt, d, m))


def candidates(hw: RapidnnHardware, lt: LayerTrace, d: LayerDemand | None = None,
               sizes: BlockSizes | None = None) -> list[Candidate]:
    """Every layout of the layer (``mapping.layouts``), Pareto-pruned on (blocks, work): a
    layout that needs more blocks and is not faster than another is dropped."""
    sizes = sizes or block_sizes(hw)
    d = d or demand_of(lt, hw)
    cands = [candidate(hw, lt, d, lay, sizes) for lay in layouts(d, sizes)]
    cands.sort(key=lambda c: (c.blocks, c.work_s, c.layout.row_split))
    kept: list[Candidate] = []
    for c in cands:
        if not kept or c.work_s < kept[-1].work_s * (1 - 1e-12):
            kept.append(c)
    return kept


# ----------------------------------------------------------- synthetic traces
def tree_additions(operands: int, entry_bits: int, acc_bits: int) -> dict[int, int]:
    """Additions of a balanced binary adder tree over ``operands`` B-bit values, by width.

    Level i adds (B + i)-bit operands (capped at the accumulator width A)."""
    counts: dict[int, int] = {}
    o, width = operands, entry_bits
    while o > 1:
        adds = o // 2
        wd = min(width, acc_bits)
        counts[wd] = counts.get(wd, 0) + adds
        o -= adds
        width += 1
    return counts


def synthetic_trace(net: NetworkShape, hw: RapidnnHardware, *,
                    weight_clusters: int | None = None, input_clusters: int | None = None,
                    entry_bits: int | None = None, acc_bits: int | None = None,
                    output_search: bool = False) -> Trace:
    """Analytical event counts of ``net`` under the adder-tree strategy (docs/hardware.md §7.4).

    An approximation of what the simulator records: one lookup and one product write per
    synapse, a binary adder tree per output value, one fused activation/encoding search per
    value (a shared AM of u rows × A bits; none on the last weighted layer unless
    ``output_search``), tree partial sums moved between rows, log2(u)-bit codes sent to the next
    layer, one pooling search per pooled value. Activation layers are fused into the preceding
    layer. Each layer carries its ``demand`` and dense ``blocks`` as a simulated one does.
    """
    sizes = block_sizes(hw)
    w = weight_clusters or hw.synthetic_weight_clusters
    u = input_clusters or hw.synthetic_input_clusters
    b = entry_bits or hw.synthetic_entry_bits
    a = acc_bits or hw.synthetic_acc_bits
    per_bit, fixed = hw.nor_cycles_per_bit, hw.nor_cycles_fixed
    cbits = code_bits(u)
    weighted = [layer.name for layer in net.layers if layer.weighted]
    layers: list[LayerTrace] = []
    for layer in net.layers:
        v = layer.output_values
        if layer.weighted:
            per_value = tree_additions(layer.fan_in, b, a)
            adds = {k: float(c * v) for k, c in per_value.items()}
            n_add = sum(adds.values())
            moved = sum(k * c for k, c in adds.items())
            last = layer.name == weighted[-1]
            searches = v if (output_search or not last) else 0
            d = LayerDemand("weighted", values=layer.out_channels, positions=layer.positions,
                            rows_per_value=layer.fan_in, entry_bits=b, acc_bits=a,
                            exact_entry_bits=b, table_bits=w * u * b,
                            am_rows=u if searches else 0, am_bits=a if searches else 0)
            layers.append(LayerTrace(
                name=layer.name, kind="linear" if layer.kind == "linear" else "conv2d",
                neurons=v, fan_in=layer.fan_in, positions=layer.positions, weight_clusters=w,
                input_clusters=u, entry_bits=b, tables=1, acc_bits=a,
                table_lookups=float(layer.macs), product_writes=float(layer.macs),
                additions=adds, nor_cycles=sum(c * (per_bit * k + fixed) for k, c in adds.items()),
                am_searches=float(searches), am_rows=u if searches else 0,
                am_bits=a if searches else 0, bits_moved_block=float(moved),
                bits_moved_tile=float(v * cbits) if not last else 0.0,
                cells_written=float(layer.macs * b + moved + n_add),
                demand=d.to_dict(), blocks=map_layer(d, sizes).blocks))
        elif layer.kind == "pool":
            d = LayerDemand("maxpool", values=layer.out_channels, positions=layer.positions,
                            pool_window=layer.fan_in or hw.pool_window)
            layers.append(LayerTrace(
                name=layer.name, kind="maxpool" if layer.pool != "avg" else "avgpool",
                neurons=v, fan_in=layer.fan_in, positions=layer.positions, input_clusters=u,
                pool_searches=float(v), bits_moved_tile=float(v * cbits),
                demand=d.to_dict(), blocks=map_layer(d, sizes).blocks))
    return Trace(batch=1, layers=layers,
                 config={"name": net.name, "synthetic": True, "weight_clusters": w,
                         "input_clusters": u, "entry_bits": b, "acc_bits": a})


def chip_figures(hw: RapidnnHardware) -> ChipFigures:
    """Peak ops/s, power at peak ("events at peak": its rated power) and area: a synthetic
    linear layer filling one block densely (``proc_rows`` products per value, dense values per
    row, synthetic w/u/B/A), tiled over the chip's blocks."""
    slot = hw.synthetic_entry_bits + 2 * hw.synthetic_acc_bits + hw.slot_scratch_bits
    slots = max(1, hw.proc_cols // slot)
    fan_in = hw.proc_rows
    net = NetworkShape("peak", [linear("peak", fan_in, slots), linear("next", slots, 1)])
    lt = synthetic_trace(net, hw).layers[0]
    c = candidate(hw, lt, demand_of(lt, hw))
    energy = event_energy(layer_events(hw, lt))[0]
    copies = hw.blocks_per_chip / c.blocks
    ops = 2.0 * fan_in * slots / c.t_pos * copies
    power = energy / c.t_pos * copies + hw.leakage_w
    return ChipFigures(ops, power, "events at peak", hw.area_mm2 or None)
