"""Endurance: per-cell writes of the processing crossbar, lifetime with and without levelling."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import rapidnn
from rapidnn.accel.config import BlockSizes, SimConfig
from rapidnn.hardware import HardwareConfigError, lifetime
from rapidnn.hardware.costs import model_trace
from rapidnn.hardware.endurance import SECONDS_PER_YEAR, duration, slot_writes
from rapidnn.hardware.rapidnn import RapidnnHardware
from rapidnn.workloads.models import mlp


def _compose(model: nn.Module, shape: tuple[int, ...]) -> rapidnn.ComposedModel:
    g = torch.Generator().manual_seed(1)
    return rapidnn.compose(model, [torch.rand(8, *shape, generator=g) for _ in range(2)], 8, 8)


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return _compose(mlp((4, 3, 2)).eval(), (4,))


def test_hand_computed_rows_of_a_four_product_sum():
    cfg = SimConfig()  # 13 NOR cycles per bit, one written cell per cycle
    b, a, s = 8, 16, 5
    w = slot_writes(4, b, a, 1024, a, cfg, s)
    assert (w["product"] == 1).all()
    # row 0: level 1 (b bits), level 2 (b + 1 bits), bias (max(b + 2, a) = a bits)
    assert w["partial_sum"][0, :b].tolist() == [3.0] * b
    assert w["partial_sum"][0, b] == 2.0 and w["partial_sum"][0, a - 1] == 1.0
    assert w["incoming"][0, :b].tolist() == [2.0] * b and w["incoming"][0, b] == 1.0
    assert w["scratch"][0].tolist() == pytest.approx([12 * (b + b + 1 + a) / s] * s)
    # row 2: level 1 only; rows 1 and 3 only hold their products
    assert w["partial_sum"][2].sum() == b and w["scratch"][2, 0] == pytest.approx(12 * b / s)
    assert w["partial_sum"][[1, 3]].sum() == 0 and w["incoming"][[1, 3]].sum() == 0
    total = sum(x.sum() for x in w.values())
    adds = [(b, True), (b, True), (b + 1, True), (a, False)]
    assert total == pytest.approx(4 * b + sum(13 * n + n * moved for n, moved in adds))


def test_split_sum_matches_the_single_tree_on_a_power_of_two_block():
    cfg = SimConfig()
    one = slot_writes(10, 4, 8, 1024, None, cfg, 5)
    split = slot_writes(10, 4, 8, 4, None, cfg, 5)
    total = sum(x.sum() for x in split.values())
    assert total == pytest.approx(sum(x.sum() for x in one.values()))


def test_per_cell_writes_sum_to_the_traces_cells_written(small):
    e = lifetime(small)
    trace = model_trace(small)
    for layer in e.layers:
        if layer.kind != "linear":
            continue
        lt = trace.layer(layer.name)
        proc = sum(c.writes for c in layer.classes if c.name.startswith("processing."))
        assert layer.trace_scale == 1.0
        assert proc == pytest.approx(lt.cells_written - lt.bits_moved_tile, rel=1e-12)
        codes = [c for c in layer.classes if c.name == "codes"]
        assert [(c.max, c.cells) for c in codes] == (
            [(1.0, lt.bits_moved_tile)] if lt.bits_moved_tile else [])
        table = next(c for c in layer.classes if c.name == "product_table")
        assert table.writes == 0 and table.cells > 0


def test_lifetime_levelling_years_and_json(small):
    e = lifetime(small)
    assert e.endurance_writes["value"] == 1e9 and e.endurance_writes["tag"] == "assumed"
    assert e.lifetime_inferences == pytest.approx(1e9 / e.hottest["writes_per_inference"])
    assert e.lifetime_years == pytest.approx(
        e.lifetime_inferences / e.throughput_ips / SECONDS_PER_YEAR)
    lev = e.with_wear_levelling
    assert lev["lifetime_inferences"] >= e.lifetime_inferences
    assert e.levelling_gain == pytest.approx(lev["lifetime_inferences"] / e.lifetime_inferences)
    for layer in e.layers:
        assert layer.levelled <= layer.hottest
    d = json.loads(json.dumps(e.to_dict()))
    assert d["hottest"]["layer"] == e.hottest["layer"]
    assert {"p50", "p90", "p99", "max", "mean", "cells"} <= set(d["layers"][1]["classes"][0])


def test_endurance_override_and_trace_input(small):
    e = lifetime(small)
    trace = model_trace(small)
    f = lifetime(trace, endurance_writes=1e6)
    assert f.endurance_writes["tag"] == "assumed"
    assert f.lifetime_inferences == pytest.approx(e.lifetime_inferences / 1e3)
    with pytest.raises(HardwareConfigError, match="endurance_writes"):
        lifetime(trace, endurance_writes=0)


def test_conv_lifetime_scales_inversely_with_positions():
    hottest = []
    for side in (6, 10):  # 3x3 kernel, no padding: 16 and 64 positions
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(),
                              nn.Linear(2 * (side - 2) ** 2, 2)).eval()
        layer = next(x for x in lifetime(_compose(model, (1, side, side))).layers
                     if x.kind == "conv2d")
        assert layer.trace_scale == 1.0
        hottest.append(layer.hottest_one_copy)
    assert hottest[1] / hottest[0] == pytest.approx(64 / 16)


def test_the_mappers_copies_share_the_writes():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(2 * 8 ** 2, 2)).eval()
    composed = _compose(model, (1, 10, 10))
    mapped = lifetime(composed)
    dense = lifetime(composed, config={"mapping": "dense", "replication": "none"})
    conv = next(x for x in mapped.layers if x.kind == "conv2d")
    assert conv.copies > 1  # 64 positions: the mapper copies the bottleneck
    one = next(x for x in dense.layers if x.kind == "conv2d")
    assert one.copies == 1 and one.hottest == pytest.approx(conv.hottest_one_copy)
    assert conv.hottest == pytest.approx(one.hottest / conv.copies)
    assert conv.levelled == pytest.approx(one.levelled / conv.copies)
    assert mapped.lifetime_inferences >= dense.lifetime_inferences
    assert mapped.lifetime_one_copy_inferences == pytest.approx(dense.lifetime_inferences)


def test_counting_strategy_totals_agree(small):
    cfg = SimConfig(strategy="counting", blocks=BlockSizes())
    e = lifetime(small, sim_config=cfg)
    for layer in e.layers:
        if layer.kind == "linear":
            assert layer.trace_scale == pytest.approx(1.0)
            assert layer.levelled <= layer.hottest


def test_view_accepts_the_endurance_parameter(rapidnn_spec):
    assert rapidnn_spec.parameters["endurance_writes"].value == 1e9
    assert RapidnnHardware.from_spec(rapidnn_spec.with_overrides({"endurance_writes": 1e12}))
    assert math.isclose(lifetime(
        model_trace(_compose(mlp((4, 2)).eval(), (4,))),
        rapidnn_spec.with_overrides({"endurance_writes": 1e12})).endurance_writes["value"], 1e12)


def test_duration_units():
    assert duration(5.6) == "5.6 s"
    assert duration(90) == "1.5 min"
    assert duration(2 * 3600) == "2 h"
    assert duration(3 * 86400) == "3 days"
    assert duration(2 * 365.25 * 86400) == "2 years"
    assert duration(math.inf) == "unbounded"
