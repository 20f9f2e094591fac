"""Public API: estimate_network, chip_summary, compare_estimates."""

from __future__ import annotations

import json
import math

import pytest

from rapidnn.hardware import (
    PRESETS,
    chip_summary,
    compare_estimates,
    estimate_network,
    mlp,
    summarize_comparisons,
)


@pytest.mark.parametrize("hw", PRESETS)
def test_estimate_every_preset_from_a_trace(mnist_trace, hw):
    est = estimate_network(mnist_trace, hw)
    d = json.loads(json.dumps(est.to_dict()))
    assert d["energy_j"] > 0 and d["latency_s"] > 0 and d["throughput_ips"] > 0
    assert d["hardware"] == hw and len(d["layers"]) == 3
    assert math.isclose(sum(x["energy_j"] for x in d["layers"]) + d["static_energy_j"],
                        d["energy_j"])


@pytest.mark.parametrize("hw", PRESETS)
def test_chip_summary_keys(hw):
    s = chip_summary(hw)
    for k in ("peak_gops", "area_mm2", "power_w", "gops_per_mm2", "gops_per_w"):
        assert k in s
    assert s["peak_gops"] > 0 and s["power_w"] > 0
    json.dumps(s)


def test_compare_definitions(mnist_trace):
    r = estimate_network(mnist_trace, "rapidnn")
    base = {h: estimate_network(mnist_trace, h) for h in ("isaac", "pipelayer", "gpu")}
    cmp = compare_estimates(r, base)
    assert set(cmp) == {"isaac", "pipelayer", "gpu"}
    i = base["isaac"]
    assert cmp["isaac"]["energy_efficiency"] == pytest.approx(i.energy_j / r.energy_j)
    assert cmp["isaac"]["speedup"] == pytest.approx(r.throughput_ips / i.throughput_ips)
    assert cmp["isaac"]["latency_ratio"] == pytest.approx(i.latency_s / r.latency_s)
    assert compare_estimates(r, list(base.values())) == cmp


def test_geometric_mean():
    per = [{"isaac": {"speedup": 2.0}}, {"isaac": {"speedup": 8.0}}]
    assert summarize_comparisons(per)["isaac"]["speedup"] == pytest.approx(4.0)


def test_shape_input_for_rapidnn_uses_a_synthetic_trace():
    est = estimate_network(mlp([784, 512, 512, 10]), "rapidnn")
    assert any("synthetic" in n for n in est.notes)


def test_config_overrides_and_validation(mnist_trace):
    base = estimate_network(mnist_trace, "rapidnn")
    slow = estimate_network(mnist_trace, "rapidnn", {"overrides": {"nor_cycle_ns": 1.892}})
    assert slow.throughput_ips < base.throughput_ips
    with pytest.raises(ValueError):
        estimate_network(mnist_trace, "rapidnn", {"replication": "sideways"})
    cfg = {"overrides": {"rapidnn.nor_cycle_ns": 0.473, "isaac.tiles_per_chip": 84}}
    assert estimate_network(mnist_trace, "isaac", cfg).area_mm2 < 85.4 / 1.5
    assert estimate_network(mnist_trace, "rapidnn", cfg).throughput_ips > base.throughput_ips
    with pytest.raises(ValueError, match="unknown parameter key"):
        estimate_network(mnist_trace, "isaac", {"overrides": {"no_such_key": 1.0}})
