"""The one mapping of a composed layer onto RNA blocks, shared by the simulator and cost model.

A layer states its **demand** (:class:`LayerDemand`: values per output position, products each
value adds, operand widths, product-table size, associative-memory rows), which depends on the
composed model only. :func:`map_layer` places one copy of it on RNA blocks of given sizes
(:class:`~rapidnn.accel.config.BlockSizes`) under a :class:`Layout` (how many values share a
row, how many row blocks a long sum is split over) and returns a :class:`LayerMap`. The
simulator records the dense map (``Layout()``) in its Trace; the cost model's mapper
(``rapidnn.hardware.mapper``) searches layouts and copies with the same function, so both count
the same blocks (docs/hardware.md section 7; decision H1 in docs/simulator.md).

Placement (our reconstruction; paper notes 6.3):

* a value occupies one **slot** of ``slot = B + 2A + scratch`` columns of the processing
  crossbar (product, partial sum, incoming partial sum, NOR scratch) and one row per product;
  ``S <= floor(proc_cols / slot)`` slots share a row (``Layout.values_per_row``; dense = max);
* a sum of ``L`` products is split over ``k = max(row_split, ceil(L / proc_rows))`` row blocks of
  ``L_k = ceil(L / k)`` rows; up to ``floor(proc_rows / L_k)`` values stack in one column group
  (``Layout.values_per_column``; rows are written one at a time, so fewer stacks are faster);
* a block holds the product table(s) its values need in its table crossbar: one shared table,
  or one per value when tables are per output channel (``tables > 1``), at most
  ``floor(table_rows · table_cols / table_bits)`` per block;
* processing blocks ``k · ceil(V / (S · stacks))``; AM blocks ``ceil(groups / floor(am_rows_blk
  / am_rows)) · segments`` (``groups`` = 1 for a shared threshold set, V for per-value sets;
  ``segments`` = row × word splits of a set larger than one AM); pooling blocks
  ``ceil(V · window / am_rows_blk)``; a layer's blocks are the maximum of the three (every RNA
  block has all three memories); tiles ``ceil(blocks / blocks_per_tile)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from rapidnn.accel.config import BlockSizes


@dataclass(frozen=True)
class LayerDemand:
    """What one copy of a layer asks of the RNA blocks, per output position.

    ``values``: output values per position (V); ``positions``: positions processed one after
    another (P); ``rows_per_value``: products (operands) one value adds (L; 0 = no addition);
    ``entry_bits`` / ``acc_bits``: widths of a written product (B) and of the accumulator (A);
    ``exact_entry_bits``: the smallest two's-complement width holding every table entry;
    ``table_bits``: bits of one product table; ``tables``: distinct tables (1 = shared);
    ``am_rows`` / ``am_bits``: rows and searched bits of one value's threshold set;
    ``am_shared``: one threshold set for all values; ``pool_window``: rows searched per pooled
    value (max pooling); ``serial_adds``: additions per value that run one after another
    (counter increments of the counting strategy), ``serial_cycles`` / ``serial_bits``: their
    NOR cycles (all of them) and width (each).
    """

    kind: str = "none"
    values: int = 0
    positions: int = 1
    rows_per_value: int = 0
    entry_bits: int = 0
    acc_bits: int = 0
    exact_entry_bits: int = 0
    table_bits: int = 0
    tables: int = 1
    am_rows: int = 0
    am_bits: int = 0
    am_shared: bool = True
    pool_window: int = 0
    serial_adds: float = 0.0
    serial_cycles: float = 0.0
    serial_bits: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerDemand:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"layer demand has unknown keys: {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class Layout:
    """A mapping choice for one layer: values per row and values stacked in one column group
    (None = as many as fit: dense), and the row-block split of a long sum."""

    values_per_row: int | None = None
    row_split: int = 1
    values_per_column: int | None = None

    def __post_init__(self) -> None:
        if any(x is not None and x < 1 for x in (self.values_per_row, self.values_per_column)) \
                or self.row_split < 1:
            raise ValueError(f"invalid layout {self}")


@dataclass(frozen=True)
class LayerMap:
    """One copy of a layer on RNA blocks (positions run one after another on the same blocks).

    ``rows_used``: processing rows that hold the layer's products while a position runs;
    ``values_per_row``: slots used per row (S); ``max_values_per_row``: dense packing.
    """

    values_per_position: int = 0
    positions: int = 1
    rows_per_value: int = 0
    slot_bits: int = 0
    values_per_row: int = 0
    max_values_per_row: int = 0
    stacks: int = 0
    row_blocks: int = 0
    rows_per_block: int = 0
    values_per_block: int = 0
    tables_per_block: int = 0
    table_rows: int = 0
    proc_blocks: int = 0
    am_segments: int = 0
    am_blocks: int = 0
    pool_blocks: int = 0
    blocks: int = 0
    tiles: int = 0
    rows_used: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def slots_per_row(d: LayerDemand, sizes: BlockSizes) -> tuple[int, int]:
    """(slot width in columns, dense values per row) of a layer that adds products."""
    slot = d.entry_bits + 2 * d.acc_bits + sizes.slot_scratch_bits
    return slot, max(1, sizes.proc_cols // slot)


def _am(d: LayerDemand, sizes: BlockSizes) -> tuple[int, int]:
    """(segments per value, AM blocks) of the layer's threshold sets."""
    if d.am_rows <= 0:
        return 0, 0
    segments = math.ceil(d.am_rows / sizes.am_rows) * math.ceil(d.am_bits / sizes.am_bits)
    per_am = max(1, sizes.am_rows // d.am_rows)
    groups = 1 if d.am_shared else d.values
    return segments, math.ceil(groups / per_am) * segments


def map_layer(d: LayerDemand, sizes: BlockSizes, layout: Layout | None = None) -> LayerMap:
    """Blocks, rows and slots of one copy of ``d`` (module docstring, 'Placement')."""
    layout = layout or Layout()
    v = d.values
    segments, am_blocks = _am(d, sizes)
    out: dict[str, int] = {"values_per_position": v, "positions": d.positions,
                           "am_segments": segments, "am_blocks": am_blocks}
    if d.rows_per_value > 0 and v > 0:
        slot, dense = slots_per_row(d, sizes)
        s = min(dense, layout.values_per_row or dense)
        r = sizes.proc_rows
        lrows = d.rows_per_value
        split = min(lrows, max(layout.row_split, math.ceil(lrows / r)))
        per_block_rows = math.ceil(lrows / split)
        stacks = min(r // per_block_rows, layout.values_per_column or r)
        per_block = s * stacks
        tables = 1
        if d.table_bits > 0:
            capacity = (sizes.table_rows * sizes.table_cols) // d.table_bits
            if capacity < 1:
                raise ValueError(
                    f"a {d.table_bits}-bit product table does not fit a {sizes.table_rows}x"
                    f"{sizes.table_cols} table crossbar")
            if d.tables > 1:
                per_block = min(per_block, capacity)
                tables = per_block
        proc = split * math.ceil(v / per_block)
        out.update(rows_per_value=lrows, slot_bits=slot, values_per_row=min(s, v),
                   max_values_per_row=dense, stacks=stacks, row_blocks=split,
                   rows_per_block=per_block_rows, values_per_block=per_block,
                   tables_per_block=tables if d.table_bits else 0,
                   table_rows=math.ceil(tables * d.table_bits / sizes.table_cols),
                   proc_blocks=proc, rows_used=split * per_block_rows * math.ceil(v / s))
    if d.pool_window > 0 and v > 0:
        out["pool_blocks"] = math.ceil(v * d.pool_window / sizes.am_rows)
        out["rows_used"] = v * d.pool_window
    blocks = max(out.get("proc_blocks", 0), am_blocks, out.get("pool_blocks", 0))
    out.update(blocks=blocks, tiles=math.ceil(blocks / sizes.blocks_per_tile))
    return LayerMap(**out)


def _powers(top: int) -> list[int]:
    """1, 2, 4, ... up to ``top``, and ``top``."""
    return sorted({1 << i for i in range(top.bit_length()) if 1 << i <= top} | {top})


def layouts(d: LayerDemand, sizes: BlockSizes, max_split: int = 64) -> list[Layout]:
    """Candidate layouts of a layer: values per row and per column 1, 2, 4, ... up to dense
    packing, and row splits 1, 2, 4, ... (up to ``max_split`` and the products per value). One
    (dense) layout for a layer that adds nothing."""
    if d.rows_per_value <= 0 or d.values <= 0:
        return [Layout()]
    _, dense = slots_per_row(d, sizes)
    base = math.ceil(d.rows_per_value / sizes.proc_rows)
    splits = sorted({base} | {1 << i for i in range(max_split.bit_length())
                              if base < 1 << i <= min(max_split, d.rows_per_value)})
    out = []
    for k in splits:
        stacks = sizes.proc_rows // math.ceil(d.rows_per_value / k)
        for s in _powers(min(dense, d.values)):
            for c in _powers(max(1, min(stacks, math.ceil(d.values / s)))):
                out.append(Layout(s, k, c))
    return out
