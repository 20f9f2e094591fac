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

from rapidnn.accel.config import BlockSizes
from rapidnn.accel.mapping import LayerDemand, LayerMap, Layout, layouts, map_layer
from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.hardware.common import Events
from rapidnn.hardware.network import LayerShape, NetworkShape, linear
from rapidnn.hardware.spec import HardwareSpec

REQUIRED_PARAMETERS = (
    "tiles_per_chip", "blocks_per_tile", "table_rows", "table_cols", "proc_rows", "proc_cols",
    "am_rows", "am_bits", "slot_scratch_bits", "column_parallel", "transfer_cycles_per_bit",
    "pool_window", "nor_cycles_per_bit", "nor_cycles_fixed", "synthetic_weight_clusters",
    "synthetic_input_clusters", "synthetic_entry_bits", "synthetic_acc_bits",
)
REQUIRED_COMPONENTS = {
    "rna_block": ["energy.nor_cycle", "energy.read_bit", "energy.write_bit",
                  "energy.transfer_bit", "energy.search_row_bit", "latency.nor_cycle",
                  "latency.read_row", "latency.write_row", "latency.search"],
    "tile_link": ["energy.bit"],
}


def _int(spec: HardwareSpec, name: str) -> int:
    return int(spec.value(name))


def block_sizes(spec: HardwareSpec) -> BlockSizes:
    """The RNA block of a spec as the simulator's :class:`BlockSizes` (one geometry for both)."""
    return BlockSizes(
        table_rows=_int(spec, "table_rows"), table_cols=_int(spec, "table_cols"),
        proc_rows=_int(spec, "proc_rows"), proc_cols=_int(spec, "proc_cols"),
        am_rows=_int(spec, "am_rows"), am_bits=_int(spec, "am_bits"),
        blocks_per_tile=_int(spec, "blocks_per_tile"),
        slot_scratch_bits=_int(spec, "slot_scratch_bits"))


def blocks_per_chip(spec: HardwareSpec) -> float:
    return spec.instances("block")


def rows_per_chip(spec: HardwareSpec) -> float:
    return blocks_per_chip(spec) * spec.value("proc_rows")


def _lat(spec: HardwareSpec, action: str) -> float:
    return spec.comp("rna_block").latency_s(action)


def code_bits(clusters: int) -> int:
    return max(1, math.ceil(math.log2(max(2, clusters))))


# --------------------------------------------------------------------- demand
def demand_of(lt: LayerTrace, spec: HardwareSpec) -> LayerDemand:
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
        window = lt.fan_in or _int(spec, "pool_window")
        return LayerDemand(lt.kind, values=v, positions=p, pool_window=window)
    if lt.table_lookups > 0 and lt.neurons > 0 and lt.kind in ("linear", "conv2d"):
        b = lt.entry_bits or _int(spec, "synthetic_entry_bits")
        a = lt.acc_bits or _int(spec, "synthetic_acc_bits")
        w = lt.weight_clusters or _int(spec, "synthetic_weight_clusters")
        u = lt.input_clusters or _int(spec, "synthetic_input_clusters")
        return LayerDemand("weighted", values=v, positions=p,
                           rows_per_value=math.ceil(lt.table_lookups / lt.neurons),
                           entry_bits=b, acc_bits=a, exact_entry_bits=b, table_bits=w * u * b,
                           tables=max(1, lt.tables), **am)
    return LayerDemand(lt.kind, values=v, positions=p, **am)


# --------------------------------------------------------------------- energy
def layer_events(spec: HardwareSpec, lt: LayerTrace, entry_width: str = "fixed") -> Events:
    """Component actions of one trace layer (module docstring, 'Energy per inference').

    ``entry_width="exact"`` reads and writes table entries at the smallest width that holds
    every product of the table (``LayerDemand.exact_entry_bits``) instead of the composed B."""
    b = lt.entry_bits or _int(spec, "synthetic_entry_bits")
    if entry_width == "exact" and lt.demand.get("exact_entry_bits"):
        b = min(b, int(lt.demand["exact_entry_bits"]))
    window = lt.fan_in or _int(spec, "pool_window")
    pool_bits = code_bits(lt.input_clusters or _int(spec, "synthetic_input_clusters"))
    search_row_bits = lt.am_searches * lt.am_rows * lt.am_bits
    search_row_bits += lt.pool_searches * window * pool_bits
    return {
        "rna_block.nor_cycle": lt.nor_cycles,
        "rna_block.read_bit": lt.table_lookups * b,
        "rna_block.write_bit": lt.product_writes * b,
        "rna_block.transfer_bit": lt.bits_moved_block,
        "rna_block.search_row_bit": search_row_bits,
        "tile_link.bit": lt.bits_moved_tile,
    }


def _split_additions(spec: HardwareSpec, d: LayerDemand, m: LayerMap) -> tuple[float, float]:
    """(additions, NOR cycles) per value that a row split beyond the minimum adds."""
    if d.rows_per_value <= 0 or d.values <= 0:
        return 0.0, 0.0
    extra = m.row_blocks - math.ceil(d.rows_per_value / spec.value("proc_rows"))
    if extra <= 0:
        return 0.0, 0.0
    cycles = spec.value("nor_cycles_per_bit") * d.acc_bits + spec.value("nor_cycles_fixed")
    return float(extra), extra * cycles


def layout_events(spec: HardwareSpec, lt: LayerTrace, d: LayerDemand, m: LayerMap) -> Events:
    """Events a layout adds to the trace's: the partial sums of extra row blocks, and the input
    codes every processing block needs (one per row it uses: a layout spread over more blocks
    sends the same codes to more blocks). The one-off writes of replicated tables are not
    charged (they are not per inference)."""
    if not m.proc_blocks:
        return {}
    adds, cycles = _split_additions(spec, d, m)
    n = d.values * d.positions
    stacks_used = min(m.stacks, math.ceil(d.values / max(1, m.values_per_row)))
    u = lt.input_clusters or _int(spec, "synthetic_input_clusters")
    broadcast = d.positions * m.proc_blocks * m.rows_per_block * stacks_used * code_bits(u)
    ev: Events = {"rna_block.transfer_bit": n * adds * d.acc_bits + broadcast}
    if adds:
        ev["rna_block.nor_cycle"] = n * cycles
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


def _tree_time(spec: HardwareSpec, lt: LayerTrace, d: LayerDemand, m: LayerMap) -> float:
    """Critical path of one value's additions: level i of the binary tree adds
    ``min(B + i, A_max)``-bit operands, ``(c_bit + k_tr) · width`` cycles each (``c_bit`` = the
    trace's NOR cycles per added bit), over ``D = ceil(log2(n_a + 1))`` levels, plus the serial
    counter increments of the counting strategy (shared by the row blocks they are split over)."""
    t_nor = _lat(spec, "nor_cycle")
    k_tr = spec.value("transfer_cycles_per_bit")
    n = max(1, lt.neurons)
    tree = dict(lt.additions)
    if d.serial_adds and d.serial_bits in tree:
        tree[d.serial_bits] = max(0.0, tree[d.serial_bits] - d.serial_adds * n)
    n_adds = sum(tree.values())
    bits = sum(k * c for k, c in tree.items())
    cycles = lt.nor_cycles - d.serial_cycles * n
    extra_adds, _ = _split_additions(spec, d, m)
    serial = d.serial_cycles / max(1, m.row_blocks)
    if n_adds > 0 or extra_adds > 0:
        per_bit = cycles / bits if bits > 0 else spec.value("nor_cycles_per_bit")
        widths = sorted(k for k, c in tree.items() if c > 0) or [d.acc_bits]
        lo, hi = widths[0], max(widths[-1], d.acc_bits if extra_adds else 0)
        depth = math.ceil(math.log2(n_adds / n + extra_adds + 1))
        path = sum((per_bit + k_tr) * min(lo + i, hi) for i in range(depth))
        return (path + serial) * t_nor
    return max(0.0, lt.nor_cycles / n) * t_nor  # no breakdown: the value's cycles run serially


def position_time(spec: HardwareSpec, lt: LayerTrace, d: LayerDemand,
                  m: LayerMap) -> PositionTime:
    """Time of one output position (module docstring, 'Time per output position')."""
    v = d.values
    if v <= 0:
        return PositionTime()
    t_nor, t_read, t_write, t_search = (_lat(spec, "nor_cycle"), _lat(spec, "read_row"),
                                        _lat(spec, "write_row"), _lat(spec, "search"))
    k_tr = spec.value("transfer_cycles_per_bit")
    lanes = 1
    mul = add = act = pool = move = 0.0
    if m.proc_blocks:
        lanes = 1 if spec.value("column_parallel") else m.values_per_row
        stacks_used = min(m.stacks, math.ceil(v / m.values_per_row))
        mul = m.rows_per_block * stacks_used * (t_read + t_write)
        add = lanes * _tree_time(spec, lt, d, m)
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


def candidate(spec: HardwareSpec, lt: LayerTrace, d: LayerDemand,
              layout: Layout | None = None, sizes: BlockSizes | None = None) -> Candidate:
    m = map_layer(d, sizes or block_sizes(spec), layout)
    return Candidate(layout or Layout(), m, position_time(spec, lt, d, m), max(1, d.positions),
                     layout_events(spec, lt, d, m))


def candidates(spec: HardwareSpec, lt: LayerTrace, d: LayerDemand | None = None,
               sizes: BlockSizes | None = None) -> list[Candidate]:
    """Every layout of the layer (``mapping.layouts``), Pareto-pruned on (blocks, work): a
    layout that needs more blocks and is not faster than another is dropped."""
    sizes = sizes or block_sizes(spec)
    d = d or demand_of(lt, spec)
    cands = [candidate(spec, lt, d, lay, sizes) for lay in layouts(d, sizes)]
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


def synthetic_trace(net: NetworkShape, spec: HardwareSpec | None = None, *,
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
    from rapidnn.hardware.spec import load_hardware

    spec = spec or load_hardware("rapidnn")
    sizes = block_sizes(spec)
    w = weight_clusters or _int(spec, "synthetic_weight_clusters")
    u = input_clusters or _int(spec, "synthetic_input_clusters")
    b = entry_bits or _int(spec, "synthetic_entry_bits")
    a = acc_bits or _int(spec, "synthetic_acc_bits")
    per_bit, fixed = spec.value("nor_cycles_per_bit"), spec.value("nor_cycles_fixed")
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
                            pool_window=layer.fan_in or _int(spec, "pool_window"))
            layers.append(LayerTrace(
                name=layer.name, kind="maxpool" if layer.pool != "avg" else "avgpool",
                neurons=v, fan_in=layer.fan_in, positions=layer.positions, input_clusters=u,
                pool_searches=float(v), bits_moved_tile=float(v * cbits),
                demand=d.to_dict(), blocks=map_layer(d, sizes).blocks))
    return Trace(batch=1, layers=layers,
                 config={"name": net.name, "synthetic": True, "weight_clusters": w,
                         "input_clusters": u, "entry_bits": b, "acc_bits": a})


def peak_figures(spec: HardwareSpec) -> tuple[float, float]:
    """(peak ops/s, power at peak in W): a synthetic linear layer filling one block densely
    (``proc_rows`` products per value, dense values per row, synthetic w/u/B/A), tiled over the
    chip's blocks."""
    slot = (_int(spec, "synthetic_entry_bits") + 2 * _int(spec, "synthetic_acc_bits")
            + _int(spec, "slot_scratch_bits"))
    slots = max(1, _int(spec, "proc_cols") // slot)
    fan_in = _int(spec, "proc_rows")
    net = NetworkShape("peak", [linear("peak", fan_in, slots), linear("next", slots, 1)])
    lt = synthetic_trace(net, spec).layers[0]
    c = candidate(spec, lt, demand_of(lt, spec))
    energy = sum(n * spec.comp(k.split(".")[0]).energy_j(k.split(".")[1])
                 for k, n in layer_events(spec, lt).items() if n)
    copies = blocks_per_chip(spec) / c.blocks
    ops = 2.0 * fan_in * slots / c.t_pos * copies
    power = energy / c.t_pos * copies + spec.leakage_w()
    return ops, power


def layer_shape(lt: LayerTrace) -> LayerShape:
    """The LayerShape of a trace layer (for the baselines)."""
    return LayerShape.from_trace_layer(lt)
