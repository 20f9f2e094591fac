"""What mitigations cost through the cost model: area from the block's devices, energy from
the table reads; no mitigation costs nothing."""

import pytest
import torch
from torch import nn

import rapidnn
from rapidnn.accel.config import FaultConfig
from rapidnn.hardware.loader import load_hardware
from rapidnn.hardware.mitigation import block_area_factor, mitigation_cost
from rapidnn.hardware.rapidnn import RapidnnHardware


@pytest.fixture(scope="module")
def composed():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()
    return rapidnn.compose(net, torch.randn(32, 16), 8, 8)


def test_the_area_factor_counts_the_added_devices():
    hw = RapidnnHardware.from_spec(load_hardware("rapidnn"))
    proc, table = hw.proc_rows * hw.proc_cols, hw.table_rows * hw.table_cols
    am = 2 * hw.am_rows * hw.am_bits
    plain = proc + table + am
    assert block_area_factor(hw, FaultConfig(), 8) == 1.0
    assert block_area_factor(hw, FaultConfig(table_protection="tmr"), 8) == pytest.approx(
        (plain + 2 * table) / plain)
    spares = block_area_factor(hw, FaultConfig(spare_rows=8), 8)
    assert spares == pytest.approx((proc * (1 + 8 / hw.proc_rows) + table * (
        1 + 8 / hw.table_rows) + am * (1 + 8 / hw.am_rows)) / plain)


def test_mitigations_cost_area_and_energy(composed):
    none = mitigation_cost(composed, FaultConfig())
    assert none["area_ratio"] == pytest.approx(1.0)
    assert none["energy_ratio"] == pytest.approx(1.0)
    tmr = mitigation_cost(composed, FaultConfig(table_protection="tmr"))
    assert tmr["area_ratio"] > 1.05 and tmr["energy_ratio"] > 1.0
    assert tmr["lookup_read_factor"] == 3.0
    parity = mitigation_cost(composed, FaultConfig(table_protection="parity"))
    assert 1.0 < parity["energy_ratio"] < tmr["energy_ratio"]
    spare = mitigation_cost(composed, FaultConfig(spare_rows=16))
    assert spare["area_ratio"] > 1.0 and spare["energy_ratio"] == pytest.approx(1.0)
