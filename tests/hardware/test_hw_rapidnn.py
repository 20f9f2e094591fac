"""RAPIDNN cost model driven by hand-made Traces: events, layouts, time per position."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidnn.accel.config import BlockSizes
from rapidnn.accel.mapping import Layout
from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.hardware import EstimateOptions, estimate_network, mlp
from rapidnn.hardware import mapper as M
from rapidnn.hardware import rapidnn as R


def test_energy_is_sum_of_events(rapidnn_hw):
    lt = LayerTrace("l", "linear", neurons=4, fan_in=8, entry_bits=8, acc_bits=16,
                    weight_clusters=4, input_clusters=4, tables=1, table_lookups=32.0,
                    product_writes=32.0, additions={8: 16.0, 9: 8.0, 10: 4.0},
                    nor_cycles=1000.0, am_searches=4.0, am_rows=4, am_bits=16,
                    bits_moved_block=200.0, bits_moved_tile=8.0, pool_searches=0.0)
    est = M.estimate(Trace(batch=1, layers=[lt]), rapidnn_hw,
                     EstimateOptions(mapping="dense"))
    fj = 1e-15
    broadcast = 8 * 2  # one 2-bit input code per row of the one block (4 values in one row)
    expected = (1000 * 22.115 + 32 * 8 * 3.45 + 32 * 8 * 22.115 + (200 + broadcast) * 44.23
                + 4 * 4 * 16 * 303.5) * fj + 8 * 0.081e-12
    assert est.energy_j == pytest.approx(expected)
    assert est.static_energy_j == 0.0


def test_preset_geometry_is_the_simulators(rapidnn_hw):
    assert R.block_sizes(rapidnn_hw) == BlockSizes()


def test_dense_layout_of_an_fc_layer(rapidnn_hw, fc_layer):
    lt = fc_layer("fc1", 784, 512)
    c = R.candidate(rapidnn_hw, lt, R.demand_of(lt, rapidnn_hw))
    m = c.lmap
    slot = 8 + 2 * 16 + 5  # B + 2A + scratch
    assert m.values_per_row == 1024 // slot == 22
    assert m.stacks == 1 and m.row_blocks == 1 and m.rows_per_block == 784
    assert m.proc_blocks == math.ceil(512 / 22) == m.blocks
    assert m.am_blocks == 1  # one shared threshold set, held by every block's AM
    assert c.time.mul == pytest.approx(784 * 2e-9)
    depth = math.ceil(math.log2(783 + 1))
    path = sum((13 + 2) * min(8 + i, 16) for i in range(depth))  # 13 NOR cycles per bit
    assert c.time.add == pytest.approx(22 * path * 0.946e-9)
    assert c.time.act == pytest.approx(math.ceil(512 / m.blocks) * (0.2e-9 + 1e-9))


def test_fewer_values_per_row_trade_blocks_for_speed(rapidnn_hw, fc_layer):
    lt = fc_layer("fc", 784, 512)
    d = R.demand_of(lt, rapidnn_hw)
    dense = R.candidate(rapidnn_hw, lt, d)
    sparse = R.candidate(rapidnn_hw, lt, d, Layout(values_per_row=1))
    assert sparse.lmap.values_per_row == 1
    assert sparse.t_pos < dense.t_pos and sparse.blocks > dense.blocks


def test_column_parallel_addition_is_faster(rapidnn_spec, rapidnn_hw, fc_layer):
    lt = fc_layer("fc", 784, 512)
    d = R.demand_of(lt, rapidnn_hw)
    serial = R.candidate(rapidnn_hw, lt, d)
    parallel_hw = R.RapidnnHardware.from_spec(rapidnn_spec.with_overrides({"column_parallel": 1}))
    parallel = R.candidate(parallel_hw, lt, d)
    assert parallel.time.add == pytest.approx(serial.time.add / 22)


def test_row_split_adds_partial_sums(rapidnn_hw, fc_layer):
    lt = fc_layer("fc", 784, 64)
    d = R.demand_of(lt, rapidnn_hw)
    one = R.candidate(rapidnn_hw, lt, d, Layout(1, 1, 1))
    four = R.candidate(rapidnn_hw, lt, d, Layout(1, 4, 1))
    assert four.lmap.row_blocks == 4 and four.lmap.rows_per_block == 196
    assert four.time.mul == pytest.approx(one.time.mul / 4)
    block = rapidnn_hw.rna_block
    assert four.extra[block.nor_cycle] == pytest.approx(64 * 3 * 13 * 16)
    assert block.nor_cycle not in one.extra
    # both send every block the input code of each row it uses: 64 values x 784 rows x 4 bits
    assert one.extra[block.transfer_bit] == pytest.approx(64 * 784 * 4)
    assert four.extra[block.transfer_bit] == pytest.approx(64 * 784 * 4 + 64 * 3 * 16)


def test_candidates_are_pareto(rapidnn_hw, fc_layer):
    cands = R.candidates(rapidnn_hw, fc_layer("fc", 784, 512))
    assert len(cands) > 3
    for a, b in itertools.pairwise(cands):
        assert b.blocks >= a.blocks and b.work_s < a.work_s


def test_pool_and_conv_layers(rapidnn_hw):
    conv = LayerTrace("c", "conv2d", neurons=8 * 64, fan_in=27, positions=64, entry_bits=8,
                      acc_bits=16, weight_clusters=16, input_clusters=16, tables=1,
                      table_lookups=27.0 * 512, product_writes=27.0 * 512,
                      additions={16: 26.0 * 512}, nor_cycles=26 * 512 * 208.0,
                      am_searches=512.0, am_rows=16, am_bits=16)
    pool = LayerTrace("p", "maxpool", neurons=8 * 16, fan_in=4, positions=16,
                      input_clusters=16, pool_searches=128.0)
    est = M.estimate(Trace(batch=1, layers=[conv, pool]), rapidnn_hw, EstimateOptions())
    c, p = est.layers
    assert 1 < c.replicas <= 64
    assert p.units == 1 and p.stage_time_s > 0
    assert p.energy_j == pytest.approx(128 * 4 * 4 * 303.5e-15)


def test_mnist_mlp_hand_built(mnist_trace, rapidnn_spec, rapidnn_hw):
    est = estimate_network(mnist_trace, rapidnn_spec)
    assert [lay.name for lay in est.layers] == ["fc1", "fc2", "fc3"]
    assert est.chips == 1 and est.units_used <= 8192
    assert est.throughput_ips == pytest.approx(1 / max(x.stage_time_s for x in est.layers))
    assert est.latency_s == pytest.approx(sum(x.stage_time_s for x in est.layers))
    assert 0 < est.row_occupancy <= 1
    # the synthetic trace builder reproduces the hand-built one
    synth = R.synthetic_trace(mlp([784, 512, 512, 10]), rapidnn_hw)
    assert estimate_network(synth, rapidnn_spec).energy_j == pytest.approx(est.energy_j)


def test_the_mapper_beats_the_dense_layout(mnist_trace, rapidnn_spec):
    dense = estimate_network(mnist_trace, rapidnn_spec, {"mapping": "dense"})
    best = estimate_network(mnist_trace, rapidnn_spec)
    assert best.throughput_ips > 3 * dense.throughput_ips
    assert best.row_occupancy > dense.row_occupancy
    assert best.units_used <= best.units_available
    fill = estimate_network(mnist_trace, rapidnn_spec, {"replication": "fill"})
    assert fill.throughput_ips > best.throughput_ips and fill.row_occupancy > 0.5


def test_static_power_is_charged_per_inference(mnist_trace, rapidnn_spec, rapidnn_hw):
    leaky = rapidnn_spec.with_overrides({"tile_periphery.leakage": 0.01})
    est = estimate_network(mnist_trace, leaky)
    assert est.static_energy_j == pytest.approx(32 * 0.01 / est.throughput_ips)
    ungated = estimate_network(mnist_trace, rapidnn_spec, {"gating": "ungated"})
    rated = R.chip_figures(rapidnn_hw).power_w  # the chip at its rated power all the time
    assert ungated.energy_j == pytest.approx(rated / ungated.throughput_ips)
    tile_w = rapidnn_hw.controller_static_w_per_tile
    leak = estimate_network(mnist_trace, rapidnn_spec, {"gating": "leakage"})
    tiles = math.ceil(leak.units_used / 256)
    assert leak.static_energy_j == pytest.approx(tiles * tile_w / leak.throughput_ips)


def test_network_too_big_uses_more_chips(rapidnn_spec, fc_layer):
    small_chip = rapidnn_spec.with_overrides({"tiles_per_chip": 1, "blocks_per_tile": 8})
    est = estimate_network(Trace(batch=1, layers=[fc_layer("fc", 784, 512)]), small_chip)
    assert est.chips > 1 and est.notes


pow2 = st.sampled_from([2, 4, 8, 16, 32, 64])


@settings(max_examples=30, deadline=None)
@given(pow2, pow2, pow2, pow2)
def test_more_clusters_never_lower_table_energy_or_rows(w1, w2, u1, u2):
    from rapidnn.hardware import load_hardware

    spec = load_hardware("rapidnn")
    hw = R.RapidnnHardware.from_spec(spec)
    (w1, w2), (u1, u2) = sorted((w1, w2)), sorted((u1, u2))
    net = mlp([256, 128, 10])
    t1 = R.synthetic_trace(net, hw, weight_clusters=w1, input_clusters=u1)
    t2 = R.synthetic_trace(net, hw, weight_clusters=w2, input_clusters=u2)
    m1 = R.candidate(hw, t1.layers[0], R.demand_of(t1.layers[0], hw)).lmap
    m2 = R.candidate(hw, t2.layers[0], R.demand_of(t2.layers[0], hw)).lmap
    assert m2.table_rows >= m1.table_rows
    assert estimate_network(t2, spec).energy_j >= estimate_network(t1, spec).energy_j * (
        1 - 1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64))
def test_more_blocks_never_lower_throughput(t1, t2):
    from rapidnn.hardware import load_hardware

    spec = load_hardware("rapidnn")
    net_trace = R.synthetic_trace(mlp([64, 32, 10]), R.RapidnnHardware.from_spec(spec))
    conv = LayerTrace("c", "conv2d", neurons=4 * 256, fan_in=9, positions=256, entry_bits=8,
                      acc_bits=16, weight_clusters=4, input_clusters=4, tables=1,
                      table_lookups=9.0 * 1024, product_writes=9.0 * 1024,
                      additions={10: 8.0 * 1024}, nor_cycles=8 * 1024 * 130.0,
                      am_searches=1024.0, am_rows=4, am_bits=16)
    trace = Trace(batch=1, layers=[conv, *net_trace.layers])
    lo, hi = sorted((t1, t2))
    opts = {"objective": "latency"}
    small = estimate_network(trace, spec.with_overrides({"blocks_per_tile": lo}), opts)
    big = estimate_network(trace, spec.with_overrides({"blocks_per_tile": hi}), opts)
    assert big.throughput_ips >= small.throughput_ips * (1 - 1e-9)
