"""RAPIDNN cost model: Trace events × per-event energy; RNA-block mapping; layer pipeline.

Everything here is a **reconstruction** (paper-notes §6.3, §9.2 H1–H3, H7): RAPIDNN's block sizes,
cycle counts and energies are unknown, so the preset uses the same group's FloatPIM/DUAL
primitives. Formulas (docs/hardware.md §7), for a trace layer with V output values, P positions,
``V_p = ceil(V / P)`` values per position, ``L = table_lookups / V`` products per value, entry
width B and accumulator width A:

Energy per inference
    ``E = nor_cycles·E_nor + lookups·B·E_read + product_writes·B·E_write
    + bits_moved_block·E_transfer + (am_searches·am_rows·am_bits
    + pool_searches·window·code_bits)·E_search + bits_moved_tile·E_link + P_static / throughput``.

Mapping of one copy (one output position at a time)
    slot ``= B + 2A + scratch`` bits; ``S = max(1, floor(fill · row_bits / slot))`` value slots
    per row; table rows ``ceil(T_blk·w·u·B / row_bits)`` (T_blk = 1 shared table, or one per
    slot for per-channel tables); ``R = block_rows − table rows`` product rows; a value's L
    products occupy L rows of one slot column group (``ceil(L / R)`` row blocks when L > R);
    ``floor(R / L)`` values stack vertically; processing blocks
    ``ceil(L / R) · ceil(V_p / (stacks · S))``; AM blocks ``ceil(V_p / floor(cam_rows / am_rows))``
    (one AM of ``am_rows`` entries per value); pooling blocks ``ceil(V_p · window / cam_rows)``.

Time per output position
    ``t_mul = rows written per block · (t_read + t_write)`` (one table row read and one row write
    per product row, all blocks in parallel);
    ``t_add = S_used · D · (c̄ + k_tr · w̄) · T_nor`` with ``D = ceil(log2(n_a + 1))`` levels of a
    binary adder tree over the ``n_a = Σ additions / V`` additions per value, ``c̄`` NOR cycles and
    ``w̄`` bits per addition (from the trace), ``k_tr`` transfer cycles per bit; rows work in
    parallel, the ``S_used`` slots of a row run column-serially;
    ``t_act = ceil(V_p / AM blocks) · (am_searches / V) · (t_search + t_read)``;
    ``t_pool = ceil(V_p / pool blocks) · (pool_searches / V) · t_search``;
    ``t_move = k_tr · (bits_moved_tile / V) · S_used · T_nor``.
Stage work ``W = P · t_pos`` with replication up to P copies (``pipeline.replicate``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.hardware import pipeline
from rapidnn.hardware.common import Events, LayerCost, assemble
from rapidnn.hardware.estimate import Estimate, EstimateOptions
from rapidnn.hardware.network import LayerShape, NetworkShape, linear
from rapidnn.hardware.spec import HardwareSpec

REQUIRED_PARAMETERS = (
    "tiles_per_chip", "blocks_per_tile", "block_rows", "row_bits", "cam_rows", "cam_word_bits",
    "slot_scratch_bits", "row_fill", "transfer_cycles_per_bit", "pool_window",
    "nor_cycles_per_bit", "nor_cycles_fixed", "synthetic_weight_clusters",
    "synthetic_input_clusters", "synthetic_entry_bits", "synthetic_acc_bits",
)
REQUIRED_COMPONENTS = {
    "rna_block": ["energy.nor_cycle", "energy.read_bit", "energy.write_bit",
                  "energy.transfer_bit", "energy.search_row_bit", "latency.nor_cycle",
                  "latency.read_row", "latency.write_row", "latency.search"],
    "tile_link": ["energy.bit"],
}


def blocks_per_chip(spec: HardwareSpec) -> float:
    return spec.instances("block")


def _lat(spec: HardwareSpec, action: str) -> float:
    return spec.comp("rna_block").latency_s(action)


def _int(spec: HardwareSpec, name: str) -> int:
    return int(spec.value(name))


# --------------------------------------------------------------------- energy
def _widths(lt: LayerTrace, spec: HardwareSpec) -> tuple[int, int, int, int]:
    """(B, A, w, u) of a layer, falling back to the synthetic defaults when the trace has 0."""
    b = lt.entry_bits or _int(spec, "synthetic_entry_bits")
    a = lt.acc_bits or _int(spec, "synthetic_acc_bits")
    w = lt.weight_clusters or _int(spec, "synthetic_weight_clusters")
    u = lt.input_clusters or _int(spec, "synthetic_input_clusters")
    return b, a, w, u


def _pool_geometry(lt: LayerTrace, spec: HardwareSpec) -> tuple[int, int]:
    """(window rows searched, code bits per row) of a pooling search."""
    window = lt.fan_in or _int(spec, "pool_window")
    u = lt.input_clusters or _int(spec, "synthetic_input_clusters")
    return window, max(1, math.ceil(math.log2(max(2, u))))


def layer_events(spec: HardwareSpec, lt: LayerTrace) -> Events:
    """Component actions of one trace layer (module docstring, 'Energy per inference')."""
    b = lt.entry_bits or _int(spec, "synthetic_entry_bits")
    window, code_bits = _pool_geometry(lt, spec)
    search_row_bits = lt.am_searches * lt.am_rows * lt.am_bits
    search_row_bits += lt.pool_searches * window * code_bits
    return {
        "rna_block.nor_cycle": lt.nor_cycles,
        "rna_block.read_bit": lt.table_lookups * b,
        "rna_block.write_bit": lt.product_writes * b,
        "rna_block.transfer_bit": lt.bits_moved_block,
        "rna_block.search_row_bit": search_row_bits,
        "tile_link.bit": lt.bits_moved_tile,
    }


# -------------------------------------------------------------------- mapping
@dataclass(frozen=True)
class BlockMap:
    """How one copy of a layer sits on RNA blocks, and the time of one output position."""

    proc_blocks: int = 0
    am_blocks: int = 0
    pool_blocks: int = 0
    slots_per_row: int = 0
    stacks: int = 0
    row_blocks: int = 0
    table_rows: int = 0
    t_mul: float = 0.0
    t_add: float = 0.0
    t_act: float = 0.0
    t_pool: float = 0.0
    t_move: float = 0.0

    @property
    def blocks(self) -> int:
        return self.proc_blocks + self.am_blocks + self.pool_blocks

    @property
    def t_pos(self) -> float:
        return self.t_mul + self.t_add + self.t_act + self.t_pool + self.t_move


def table_footprint(spec: HardwareSpec, w: int, u: int, entry_bits: int,
                    tables: int = 1) -> tuple[int, float]:
    """(rows, mm²) that ``tables`` w×u tables of B-bit entries take in one block:
    ``rows = ceil(tables · w · u · B / row_bits)``, area ``rows / block_rows × block area``."""
    rows = math.ceil(tables * w * u * entry_bits / spec.value("row_bits"))
    return rows, rows / spec.value("block_rows") * spec.comp("rna_block").area_mm2


def _slots(spec: HardwareSpec, slot_bits: int) -> int:
    """Value slots per row: ``max(1, floor(min(fill, 1) · row_bits / slot_bits))``."""
    row_bits = spec.value("row_bits")
    fill = min(1.0, spec.value("row_fill"))
    return max(1, math.floor(fill * row_bits / slot_bits))


def _add_time(spec: HardwareSpec, lt: LayerTrace, values: float) -> float:
    """Critical path of one value's additions, ``D · (c̄ + k_tr · w̄) · T_nor``."""
    t_nor = _lat(spec, "nor_cycle")
    n_adds = sum(lt.additions.values())
    if n_adds > 0:
        n_a = n_adds / values
        c_bar = lt.nor_cycles / n_adds
        w_bar = sum(k * c for k, c in lt.additions.items()) / n_adds
        depth = math.ceil(math.log2(n_a + 1))
        return depth * (c_bar + spec.value("transfer_cycles_per_bit") * w_bar) * t_nor
    return lt.nor_cycles / values * t_nor  # no breakdown: the value's cycles run serially


def map_layer(spec: HardwareSpec, lt: LayerTrace) -> BlockMap:
    """Blocks of one copy and per-position time (module docstring, 'Mapping' and 'Time')."""
    v = float(lt.neurons)
    if v <= 0:
        return BlockMap()
    positions = max(1, lt.positions)
    v_pos = math.ceil(v / positions)
    rows = _int(spec, "block_rows")
    k_tr = spec.value("transfer_cycles_per_bit")
    t_nor = _lat(spec, "nor_cycle")
    t_read, t_write, t_search = (_lat(spec, "read_row"), _lat(spec, "write_row"),
                                 _lat(spec, "search"))
    out: dict[str, float | int] = {}
    slots_used = 1
    if lt.table_lookups > 0:
        b, a, w, u = _widths(lt, spec)
        slot = b + 2 * a + _int(spec, "slot_scratch_bits")
        slots = _slots(spec, slot)
        t_blk = 1 if lt.tables <= 1 else min(lt.tables, slots)
        table_rows = table_footprint(spec, w, u, b, t_blk)[0]
        r_eff = rows - table_rows
        if r_eff < 1:
            raise ValueError(f"layer {lt.name}: a {w}x{u}x{b}-bit table fills a whole block")
        n_rows = math.ceil(lt.table_lookups / v)
        if n_rows <= r_eff:
            row_blocks, stacks = 1, r_eff // n_rows
        else:
            row_blocks, stacks = math.ceil(n_rows / r_eff), 1
        slots_used = min(slots, v_pos)
        stacks_used = min(stacks, math.ceil(v_pos / slots))
        out.update(
            proc_blocks=row_blocks * math.ceil(v_pos / (stacks * slots)), slots_per_row=slots,
            stacks=stacks, row_blocks=row_blocks, table_rows=table_rows,
            t_mul=min(n_rows, r_eff) * stacks_used * (t_read + t_write),
            t_add=slots_used * _add_time(spec, lt, v))
    elif lt.nor_cycles > 0:  # additions without lookups (e.g. residual add, average pooling)
        out.update(proc_blocks=math.ceil(v_pos / rows), t_add=_add_time(spec, lt, v))
    if lt.am_searches > 0:
        am_rows = max(1, lt.am_rows)
        per_cam = max(1, _int(spec, "cam_rows") // am_rows)
        words = max(1, math.ceil(lt.am_bits / spec.value("cam_word_bits")))
        am_blocks = math.ceil(v_pos / per_cam)
        out.update(am_blocks=am_blocks * words,
                   t_act=math.ceil(v_pos / am_blocks) * (lt.am_searches / v)
                   * (t_search + t_read))
    if lt.pool_searches > 0:
        window, _ = _pool_geometry(lt, spec)
        pool_blocks = math.ceil(v_pos * window / _int(spec, "cam_rows"))
        out.update(pool_blocks=pool_blocks,
                   t_pool=math.ceil(v_pos / pool_blocks) * (lt.pool_searches / v) * t_search)
    if lt.bits_moved_tile > 0:
        out["t_move"] = k_tr * (lt.bits_moved_tile / v) * slots_used * t_nor
    return BlockMap(**out)  # type: ignore[arg-type]


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
    value (AM of u rows × A bits; none on the last weighted layer unless ``output_search``),
    tree partial sums moved between rows, log2(u)-bit codes sent to the next layer, one
    pooling search per pooled value. Activation layers are fused into the preceding layer.
    """
    from rapidnn.hardware.spec import load_hardware

    spec = spec or load_hardware("rapidnn")
    w = weight_clusters or _int(spec, "synthetic_weight_clusters")
    u = input_clusters or _int(spec, "synthetic_input_clusters")
    b = entry_bits or _int(spec, "synthetic_entry_bits")
    a = acc_bits or _int(spec, "synthetic_acc_bits")
    per_bit, fixed = spec.value("nor_cycles_per_bit"), spec.value("nor_cycles_fixed")
    code_bits = max(1, math.ceil(math.log2(max(2, u))))
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
            layers.append(LayerTrace(
                name=layer.name, kind="linear" if layer.kind == "linear" else "conv2d",
                neurons=v, fan_in=layer.fan_in, positions=layer.positions, weight_clusters=w,
                input_clusters=u, entry_bits=b, tables=1, acc_bits=a,
                table_lookups=float(layer.macs), product_writes=float(layer.macs),
                additions=adds, nor_cycles=sum(c * (per_bit * k + fixed) for k, c in adds.items()),
                am_searches=float(searches), am_rows=u if searches else 0,
                am_bits=a if searches else 0, bits_moved_block=float(moved),
                bits_moved_tile=float(v * code_bits) if not last else 0.0,
                cells_written=float(layer.macs * b + moved + n_add)))
        elif layer.kind == "pool":
            layers.append(LayerTrace(
                name=layer.name, kind="maxpool" if layer.pool != "avg" else "avgpool",
                neurons=v, fan_in=layer.fan_in, positions=layer.positions, input_clusters=u,
                pool_searches=float(v), bits_moved_tile=float(v * code_bits)))
    return Trace(batch=1, layers=layers,
                 config={"name": net.name, "synthetic": True, "weight_clusters": w,
                         "input_clusters": u, "entry_bits": b, "acc_bits": a})


# ------------------------------------------------------------------- estimate
def estimate(trace: Trace, spec: HardwareSpec, options: EstimateOptions,
             network: str | None = None) -> Estimate:
    """Energy, latency, throughput, area of a simulated (or synthetic) Trace on RAPIDNN."""
    costs: list[LayerCost] = []
    for lt in trace.layers:
        bm = map_layer(spec, lt)
        stage = None
        if bm.blocks > 0 and bm.t_pos > 0:
            p = max(1, lt.positions)
            stage = pipeline.Stage(lt.name, p * bm.t_pos, bm.blocks, max_copies=p,
                                   fill_s=bm.t_pos)
        costs.append(LayerCost(lt.name, lt.kind, layer_events(spec, lt), stage))
    notes = []
    if trace.config.get("synthetic"):
        notes.append("synthetic trace (rapidnn.hardware.rapidnn.synthetic_trace), not simulated")
    name = network or str(trace.config.get("name", "trace"))
    return assemble(spec, name, costs, blocks_per_chip(spec), options, notes)


def peak_figures(spec: HardwareSpec) -> tuple[float, float]:
    """(peak ops/s, power at peak in W): a synthetic linear layer filling one processing block
    (F = product rows, V = slots per row, synthetic w/u/B/A), tiled over the chip's blocks."""
    b, a = _int(spec, "synthetic_entry_bits"), _int(spec, "synthetic_acc_bits")
    w, u = _int(spec, "synthetic_weight_clusters"), _int(spec, "synthetic_input_clusters")
    slot = b + 2 * a + _int(spec, "slot_scratch_bits")
    slots = _slots(spec, slot)
    fan_in = _int(spec, "block_rows") - table_footprint(spec, w, u, b)[0]
    net = NetworkShape("peak", [linear("peak", fan_in, slots), linear("next", slots, 1)])
    lt = synthetic_trace(net, spec).layers[0]
    bm = map_layer(spec, lt)
    energy = sum(n * spec.comp(k.split(".")[0]).energy_j(k.split(".")[1])
                 for k, n in layer_events(spec, lt).items() if n)
    copies = blocks_per_chip(spec) / bm.blocks
    ops = 2.0 * fan_in * slots / bm.t_pos * copies
    power = energy / bm.t_pos * copies + spec.leakage_w()
    return ops, power


def layer_shape(lt: LayerTrace) -> LayerShape:
    """The LayerShape of a trace layer (for the baselines)."""
    return LayerShape.from_trace_layer(lt)
