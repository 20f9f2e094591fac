"""The one mapping of a layer onto RNA blocks (accel/mapping.py)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidnn.accel.config import BlockSizes
from rapidnn.accel.mapping import LayerDemand, Layout, layouts, map_layer
from rapidnn.accel.trace import LayerTrace, Trace

SIZES = BlockSizes()


def fc(values: int, products: int, **kw) -> LayerDemand:
    base = {"values": values, "rows_per_value": products, "entry_bits": 16, "acc_bits": 32,
            "table_bits": 16 * 16 * 16, "am_rows": 16, "am_bits": 32}
    return LayerDemand("weighted", **{**base, **kw})


def test_dense_map_of_the_second_mnist_layer():
    m = map_layer(fc(512, 512), SIZES)
    slot = 16 + 2 * 32 + 5
    assert m.slot_bits == slot and m.values_per_row == 1024 // slot == 12
    assert m.stacks == 2 and m.values_per_block == 24
    assert m.proc_blocks == math.ceil(512 / 24) == 22 and m.am_blocks == 1
    assert m.blocks == 22 and m.tiles == 1
    assert m.table_rows == math.ceil(16 * 16 * 16 / 1024)
    assert m.rows_used == 512 * math.ceil(512 / 12)


def test_long_sums_split_over_row_blocks_and_layouts_trade_blocks():
    d = fc(64, 3000)
    m = map_layer(d, SIZES)
    assert m.row_blocks == 3 and m.rows_per_block == 1000 and m.stacks == 1
    split = map_layer(d, SIZES, Layout(1, 8, 1))
    assert split.row_blocks == 8 and split.rows_per_block == 375
    assert split.blocks == 8 * 64 > m.blocks


def test_per_value_tables_and_thresholds():
    d = fc(100, 9, tables=100, am_shared=False, table_bits=16 * 16 * 16)
    m = map_layer(d, SIZES)
    capacity = 64 * 1024 // (16 * 16 * 16)
    assert m.tables_per_block == m.values_per_block == capacity
    assert m.am_blocks == math.ceil(100 / (1024 // 16))
    with pytest.raises(ValueError, match="does not fit"):
        map_layer(fc(4, 4, table_bits=64 * 1024 + 1), SIZES)


def test_am_segments_and_pooling_blocks():
    wide = LayerDemand("encode_input", values=1, positions=784, am_rows=2048, am_bits=100)
    m = map_layer(wide, SIZES)
    assert m.am_segments == 2 * 2 and m.blocks == 4
    pool = map_layer(LayerDemand("maxpool", values=64, pool_window=4), SIZES)
    assert pool.pool_blocks == math.ceil(64 * 4 / 1024) == pool.blocks


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 600), st.integers(1, 3000), st.integers(0, 4))
def test_every_layout_holds_every_product(values, products, pick):
    d = fc(values, products)
    options = layouts(d, SIZES)
    lay = options[pick % len(options)]
    m = map_layer(d, SIZES, lay)
    # every value gets rows_per_block rows in each of its row blocks, inside the block rows
    assert m.rows_per_block * m.row_blocks >= products
    assert m.rows_per_block * m.stacks <= SIZES.proc_rows
    assert m.values_per_row * m.slot_bits <= SIZES.proc_cols or m.values_per_row == 1
    held = (m.proc_blocks // m.row_blocks) * m.values_per_block
    assert held >= values
    assert map_layer(d, SIZES).blocks <= m.blocks  # dense packing needs the fewest blocks


def test_demand_and_blocks_round_trip_through_a_trace():
    d = fc(10, 20)
    lt = LayerTrace("l", "linear", neurons=10, demand=d.to_dict(), blocks=3)
    back = Trace.from_json(Trace(batch=1, layers=[lt]).to_json())
    assert LayerDemand.from_dict(back.layers[0].demand) == d and back.layers[0].blocks == 3
    with pytest.raises(ValueError, match="unknown keys"):
        LayerDemand.from_dict({"values": 1, "nope": 2})
    with pytest.raises(ValueError, match="unsupported trace format 1"):
        Trace.from_dict({"format": 1, "batch": 1, "layers": []})
    with pytest.raises(ValueError):
        Layout(values_per_row=0)
