"""RAPIDNN cost model driven by hand-made Traces."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.hardware import estimate_network, mlp
from rapidnn.hardware import rapidnn as R


def test_energy_is_sum_of_events(rapidnn_spec):
    lt = LayerTrace("l", "linear", neurons=4, fan_in=8, entry_bits=8, acc_bits=16,
                    weight_clusters=4, input_clusters=4, tables=1, table_lookups=32.0,
                    product_writes=32.0, additions={8: 16.0, 9: 8.0, 10: 4.0},
                    nor_cycles=1000.0, am_searches=4.0, am_rows=4, am_bits=16,
                    bits_moved_block=200.0, bits_moved_tile=8.0, pool_searches=0.0)
    est = R.estimate(Trace(batch=1, layers=[lt]), rapidnn_spec, R.EstimateOptions())
    fj = 1e-15
    expected = (1000 * 22.115 + 32 * 8 * 3.45 + 32 * 8 * 22.115 + 200 * 44.23
                + 4 * 4 * 16 * 303.5) * fj + 8 * 0.081e-12
    assert est.energy_j == pytest.approx(expected)
    assert est.static_energy_j == 0.0


def test_mapping_of_an_fc_layer(rapidnn_spec, fc_layer):
    lt = fc_layer("fc1", 784, 512)
    bm = R.map_layer(rapidnn_spec, lt)
    slot = 8 + 2 * 16 + 5  # B + 2A + scratch
    assert bm.slots_per_row == 1024 // slot == 22
    assert bm.table_rows == 2  # 16 x 16 x 8 bits in 1K-bit rows
    assert bm.stacks == 1 and bm.row_blocks == 1
    assert bm.proc_blocks == math.ceil(512 / 22)
    assert bm.am_blocks == math.ceil(512 / (1024 // 16))
    assert bm.t_mul == pytest.approx(784 * 2e-9)
    depth = math.ceil(math.log2(783 + 1))
    n_add = sum(lt.additions.values())
    c_bar = lt.nor_cycles / n_add
    w_bar = sum(k * c for k, c in lt.additions.items()) / n_add
    assert bm.t_add == pytest.approx(22 * depth * (c_bar + 2 * w_bar) * 0.946e-9)
    assert bm.t_act == pytest.approx(64 * 1 * (0.2e-9 + 1e-9))


def test_large_fan_in_spans_row_blocks(rapidnn_spec, fc_layer):
    bm = R.map_layer(rapidnn_spec, fc_layer("big", 4608, 64))
    assert bm.row_blocks == math.ceil(4608 / 1022) and bm.stacks == 1
    small = R.map_layer(rapidnn_spec, fc_layer("small", 100, 64))
    assert small.stacks == 1022 // 100 and small.row_blocks == 1


def test_row_fill_trades_area_for_speed(rapidnn_spec, fc_layer):
    lt = fc_layer("fc", 784, 512)
    dense = R.map_layer(rapidnn_spec, lt)
    sparse = R.map_layer(rapidnn_spec.with_overrides({"row_fill": 1 / 22}), lt)
    assert sparse.slots_per_row == 1
    assert sparse.t_pos < dense.t_pos and sparse.blocks > dense.blocks


def test_pool_and_conv_layers(rapidnn_spec):
    conv = LayerTrace("c", "conv2d", neurons=8 * 64, fan_in=27, positions=64, entry_bits=8,
                      acc_bits=16, weight_clusters=16, input_clusters=16, tables=1,
                      table_lookups=27.0 * 512, product_writes=27.0 * 512,
                      additions={16: 26.0 * 512}, nor_cycles=26 * 512 * 208.0,
                      am_searches=512.0, am_rows=16, am_bits=16)
    pool = LayerTrace("p", "maxpool", neurons=8 * 16, fan_in=4, positions=16,
                      input_clusters=16, pool_searches=128.0)
    est = R.estimate(Trace(batch=1, layers=[conv, pool]), rapidnn_spec, R.EstimateOptions())
    c, p = est.layers
    assert c.replicas > 1 and c.replicas <= 64
    assert p.units == 1 and p.stage_time_s > 0
    assert p.energy_j == pytest.approx(128 * 4 * 4 * 303.5e-15)


def test_mnist_mlp_hand_built(mnist_trace, rapidnn_spec):
    est = estimate_network(mnist_trace, rapidnn_spec)
    assert [lay.name for lay in est.layers] == ["fc1", "fc2", "fc3"]
    assert est.chips == 1 and est.units_used <= 8192
    assert est.throughput_ips == pytest.approx(1 / max(x.stage_time_s for x in est.layers))
    assert est.latency_s == pytest.approx(sum(x.stage_time_s for x in est.layers))
    # the synthetic trace builder reproduces the hand-built one
    synth = R.synthetic_trace(mlp([784, 512, 512, 10]), rapidnn_spec)
    assert estimate_network(synth, rapidnn_spec).energy_j == pytest.approx(est.energy_j)


def test_static_power_is_charged_per_inference(mnist_trace, rapidnn_spec):
    leaky = rapidnn_spec.with_overrides({"tile_periphery.leakage": 0.01})
    est = estimate_network(mnist_trace, leaky)
    assert est.static_energy_j == pytest.approx(32 * 0.01 / est.throughput_ips)


def test_network_too_big_uses_more_chips(rapidnn_spec, fc_layer):
    small_chip = rapidnn_spec.with_overrides({"tiles_per_chip": 1, "blocks_per_tile": 8})
    est = estimate_network(Trace(batch=1, layers=[fc_layer("fc", 784, 512)]), small_chip)
    assert est.chips > 1 and est.notes


pow2 = st.sampled_from([2, 4, 8, 16, 32, 64])


@settings(max_examples=40, deadline=None)
@given(pow2, pow2, pow2, pow2)
def test_more_clusters_never_lower_table_energy_or_area(w1, w2, u1, u2):
    from rapidnn.hardware import load_hardware

    spec = load_hardware("rapidnn")
    (w1, w2), (u1, u2) = sorted((w1, w2)), sorted((u1, u2))
    rows1, area1 = R.table_footprint(spec, w1, u1, 8)
    rows2, area2 = R.table_footprint(spec, w2, u2, 8)
    assert rows2 >= rows1 and area2 >= area1
    net = mlp([256, 128, 10])
    e1 = estimate_network(R.synthetic_trace(net, spec, weight_clusters=w1, input_clusters=u1),
                          spec)
    e2 = estimate_network(R.synthetic_trace(net, spec, weight_clusters=w2, input_clusters=u2),
                          spec)
    assert e2.energy_j >= e1.energy_j * (1 - 1e-12)
    assert sum(x.units for x in e2.layers) >= sum(x.units for x in e1.layers)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64))
def test_more_blocks_never_lower_throughput(t1, t2):
    from rapidnn.hardware import load_hardware

    spec = load_hardware("rapidnn")
    net_trace = R.synthetic_trace(mlp([64, 32, 10]), spec)
    conv = LayerTrace("c", "conv2d", neurons=4 * 256, fan_in=9, positions=256, entry_bits=8,
                      acc_bits=16, weight_clusters=4, input_clusters=4, tables=1,
                      table_lookups=9.0 * 1024, product_writes=9.0 * 1024,
                      additions={10: 8.0 * 1024}, nor_cycles=8 * 1024 * 130.0,
                      am_searches=1024.0, am_rows=4, am_bits=16)
    trace = Trace(batch=1, layers=[conv, *net_trace.layers])
    lo, hi = sorted((t1, t2))
    small = estimate_network(trace, spec.with_overrides({"blocks_per_tile": lo}))
    big = estimate_network(trace, spec.with_overrides({"blocks_per_tile": hi}))
    assert big.throughput_ips >= small.throughput_ips * (1 - 1e-9)
