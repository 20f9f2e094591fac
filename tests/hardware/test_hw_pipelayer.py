"""PipeLayer: consistency with the published area / CE; the power its PE implies."""

from __future__ import annotations

import pytest

from rapidnn.hardware import chip_summary, estimate_network, pipelayer
from rapidnn.hardware.network import NetworkShape, conv2d, linear


def test_area_and_ce_within_10_percent(pipelayer_spec):
    s = chip_summary(pipelayer_spec)
    assert abs(s["area_mm2"] - 82.63) <= 0.10 * 82.63
    assert abs(s["gops_per_mm2"] - 1485) <= 0.10 * 1485


def test_power_implied_by_published_efficiency(pipelayer_spec):
    """CE × area / PE = 1485 × 82.63 / 142.9 ≈ 859 W (reference §9 item 5)."""
    pub = pipelayer_spec.published
    implied = pub["gops_per_mm2"].value * pub["area"].value / pub["gops_per_w"].value
    assert implied == pytest.approx(858.7, abs=0.5)
    s = chip_summary(pipelayer_spec)
    assert s["power_basis"] == "events at peak"
    assert s["power_w"] < implied / 10  # the modelled events explain only a small part


def test_mapping_example(pipelayer_hw):
    layer = linear("fc", 1152, 256)
    assert pipelayer.layer_arrays(pipelayer_hw, layer) == 18 * 4  # 9 x 2 per 4-bit slice
    assert pipelayer.position_time_s(pipelayer_hw) == pytest.approx(16 * 29.31e-9)
    ev = pipelayer.layer_events(pipelayer_hw, layer)
    assert ev[pipelayer_hw.morphable_array.read] == 16 * 72
    assert ev[pipelayer_hw.memory_subarray.write] == pytest.approx(256 * 16 / 512)


def test_parallelism_granularity(pipelayer_spec):
    net = NetworkShape("c", [conv2d("c1", 3, 64, 3, (112, 112), padding=1)])
    est = estimate_network(net, pipelayer_spec)
    assert est.layers[0].replicas > 1
    g = est.layers[0].replicas
    assert est.layers[0].stage_time_s == pytest.approx(12_544 * 16 * 29.31e-9 / g)
