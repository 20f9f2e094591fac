"""The RAPIDNN mapper: layouts and copies within the block budget."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidnn.accel.mapping import Layout
from rapidnn.accel.trace import Trace
from rapidnn.hardware import EstimateOptions, estimate_network
from rapidnn.hardware import mapper as M
from rapidnn.hardware import rapidnn as R


def _cand(blocks: int, work: float, positions: int = 1) -> R.Candidate:
    from rapidnn.accel.mapping import LayerMap

    return R.Candidate(Layout(), LayerMap(blocks=blocks), R.PositionTime(mul=work / positions),
                       positions)


def _brute(options, caps, budget):
    best = math.inf
    for choice in itertools.product(*options):
        for copies in itertools.product(*(range(1, min(cap, 6) + 1) for cap in caps)):
            if sum(c.blocks * r for c, r in zip(choice, copies, strict=True)) <= budget:
                best = min(best, max(c.work_s / r for c, r in zip(choice, copies,
                                                                  strict=True)))
    return best


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(1, 6), st.floats(0.1, 10.0)), min_size=1,
                         max_size=3), min_size=1, max_size=3),
       st.lists(st.integers(1, 5), min_size=3, max_size=3), st.integers(0, 20))
def test_latency_search_finds_the_brute_force_optimum(layers, caps, extra):
    options = [[_cand(b, w * p, p) for b, w in layer] for layer, p in zip(layers, caps,
                                                                         strict=False)]
    caps = caps[:len(options)]
    budget = sum(min(c.blocks for c in o) for o in options) + extra
    m = M.search(options, caps, budget, "latency", lambda m: 1.0)
    assert m.blocks <= budget
    assert all(r <= cap for r, cap in zip(m.copies, caps, strict=True))
    assert m.period_s == pytest.approx(_brute(options, caps, budget), rel=1e-9)


def test_energy_objective_prefers_fewer_blocks_when_static_power_costs():
    options = [[_cand(1, 10.0), _cand(4, 5.0)]]
    energy = lambda m: 1.0 + 0.5 * m.blocks * m.period_s  # noqa: E731
    cheap = M.search(options, [1], 10, "energy", energy)
    fast = M.search(options, [1], 10, "latency", energy)
    assert cheap.blocks == 1 and fast.period_s == pytest.approx(5.0)
    with pytest.raises(ValueError, match="objective"):
        M.search(options, [1], 10, "speed", energy)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="budget"):
        M.search(options, [1], 0.5, "latency", energy)


def test_cap_of_policies():
    assert M.cap_of(64, "balanced") == 64 and M.cap_of(64, "none") == 1
    assert M.cap_of(1, "fill") > 1e9


def test_estimate_reports_the_chosen_mapping(mnist_trace, rapidnn_hw):
    est = M.estimate(mnist_trace, rapidnn_hw, EstimateOptions())
    for lay in est.layers:
        m = lay.mapping
        assert m["blocks_used"] == m["blocks_per_copy"] * m["copies"] == lay.units * lay.replicas
        assert 1 <= m["values_per_row"] <= m["max_values_per_row"]
        assert m["t_pos_s"] == pytest.approx(sum(m["time_split_s"].values()))
    assert est.units_used == sum(lay.mapping["blocks_used"] for lay in est.layers)
    assert sum(lay.mapping["row_occupancy"] for lay in est.layers) == pytest.approx(
        est.row_occupancy)
    budget = M.estimate(mnist_trace, rapidnn_hw, EstimateOptions(block_budget=500))
    assert budget.units_used <= 500 and budget.units_available == 500


def test_every_objective_is_a_valid_mapping(mnist_trace):
    for objective in M.OBJECTIVES:
        est = estimate_network(mnist_trace, "rapidnn", {"objective": objective,
                                                        "gating": "leakage"})
        assert est.units_used <= est.units_available and est.throughput_ips > 0
    lat = estimate_network(mnist_trace, "rapidnn", {"objective": "latency", "gating": "leakage"})
    eng = estimate_network(mnist_trace, "rapidnn", {"objective": "energy", "gating": "leakage"})
    assert lat.throughput_ips >= eng.throughput_ips and eng.energy_j <= lat.energy_j


def test_trace_without_work_maps_nothing(rapidnn_hw):
    est = M.estimate(Trace(batch=1, layers=[]), rapidnn_hw, EstimateOptions())
    assert est.units_used == 0 and est.row_occupancy is None
