"""GPU roofline."""

from __future__ import annotations

import pytest

from rapidnn.hardware import estimate_network, gpu, load_hardware
from rapidnn.hardware.network import NetworkShape, conv2d, linear


def test_memory_bound_fc_and_compute_bound_conv():
    spec = gpu.GpuHardware.from_spec(load_hardware("gpu"))
    fc = linear("fc", 4096, 4096)
    t = gpu.layer_time_s(spec, fc, 1)
    assert t == pytest.approx((4096 * 4096 + 8192) * 4 / 320e9)
    conv = conv2d("c", 256, 256, 3, (56, 56), padding=1)
    t = gpu.layer_time_s(spec, conv, 64)
    assert t == pytest.approx(2 * conv.macs * 64 / 8.873e12)


def test_energy_is_power_times_time():
    net = NetworkShape("n", [linear("fc", 512, 512)])
    est = estimate_network(net, "gpu", {"batch": 8})
    assert est.energy_j == pytest.approx(180 * est.latency_s / 8)
    assert est.throughput_ips == pytest.approx(8 / est.latency_s)
    assert est.power_w == pytest.approx(180)
    assert est.area_mm2 is None
