"""Typed hardware views and the registry of architectures."""

from __future__ import annotations

import math

import pytest
import yaml

from rapidnn.hardware import (
    ARCHITECTURES,
    PRESETS,
    HardwareConfigError,
    estimate_network,
    isaac,
    load_hardware,
    mlp,
    rapidnn,
    synthetic_trace,
)
from rapidnn.hardware.common import event_energy
from rapidnn.hardware.loader import preset_path, spec_from_dict
from rapidnn.hardware.network import NetworkShape, linear


def test_the_registry_has_every_preset():
    assert tuple(ARCHITECTURES) == PRESETS
    for name, arch in ARCHITECTURES.items():
        hw = arch.view(load_hardware(name))
        assert isinstance(hw, arch.hardware) and hw.model == name == arch.name


def test_fields_are_typed_numbers_in_the_units_the_formulas_use(isaac_hw, rapidnn_hw):
    assert isaac_hw.crossbar_rows == 128 and isinstance(isaac_hw.crossbar_rows, int)
    assert isaac_hw.crossbar_cycle_s == pytest.approx(100e-9)
    assert isaac_hw.adc.convert.energy == pytest.approx(1.56e-12)
    assert isaac_hw.adc.convert.key == "adc.convert"
    assert isaac_hw.crossbar.count == 8 and isaac_hw.crossbar.per_chip == 16_128
    assert isaac_hw.gops_per_w == pytest.approx(380.7)
    assert rapidnn_hw.blocks_per_chip == 32 * 256
    assert rapidnn_hw.column_parallel is False
    assert rapidnn_hw.rna_block.nor_cycle.latency == pytest.approx(0.946e-9)
    assert math.isnan(rapidnn_hw.rna_block.search.energy)  # a latency-only action
    assert math.isnan(rapidnn_hw.tile_link.peak_power_w)


def test_a_view_follows_overrides(isaac_spec):
    hw = isaac.IsaacHardware.from_spec(isaac_spec.with_overrides({"isaac.adc_energy_pj": 3.0,
                                                                  "tiles_per_chip": 84}))
    assert hw.adc.convert.energy == pytest.approx(3e-12)
    assert hw.crossbar.per_chip == 8 * 12 * 84


def test_events_count_actions(isaac_hw):
    ev = isaac.layer_events(isaac_hw, linear("fc", 256, 32))
    total, by_comp = event_energy(ev)
    assert total == pytest.approx(sum(n * a.energy for a, n in ev.items()))
    assert set(by_comp) == {a.component for a, n in ev.items() if n}


def _broken(name, mutate, tmp_path):
    data = yaml.safe_load(preset_path(name).read_text())
    mutate(data)
    f = tmp_path / f"{name}.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(HardwareConfigError) as err:
        load_hardware(f)
    assert str(f) in str(err.value)
    return err.value


@pytest.mark.parametrize(("name", "key", "mutate"), [
    ("rapidnn", "components.rna_block.latency.search",
     lambda d: d["components"]["rna_block"]["latency"].pop("search")),
    ("rapidnn", "hierarchy.block",
     lambda d: (d["hierarchy"].pop("block"), d["components"]["rna_block"].update(level="tile"))),
    ("pipelayer", "components.morphable_array.count",
     lambda d: d["components"]["morphable_array"].pop("count")),
    ("gpu", "components.board.peak_power", lambda d: d["components"]["board"].pop("peak_power")),
    ("isaac", "parameters.idle_leakage_fraction",
     lambda d: d["parameters"].pop("idle_leakage_fraction")),
])
def test_a_missing_number_is_named_with_its_model(tmp_path, name, key, mutate):
    e = _broken(name, mutate, tmp_path)
    assert e.key == key and f"missing key (needed by the {name} model)" in str(e)


def test_wrong_units_and_models(tmp_path, rapidnn_spec):
    e = _broken("isaac", lambda d: d["parameters"]["crossbar_cycle_ns"].update(unit="pJ"),
                tmp_path)
    assert e.key == "parameters.crossbar_cycle_ns" and "cannot convert" in str(e)
    e = _broken("isaac", lambda d: d.update(model="tpu"), tmp_path)
    assert e.key == "model" and "unknown model 'tpu'" in str(e)
    with pytest.raises(HardwareConfigError, match="a rapidnn description, not isaac"):
        isaac.IsaacHardware.from_spec(rapidnn_spec)


def test_published_efficiency_needs_the_published_figure(isaac_spec):
    data = isaac_spec.model_dump(exclude={"source_file"})
    data["published"].pop("gops_per_w")
    spec = spec_from_dict(data, file="mine.yaml")
    net = NetworkShape("fc", [linear("fc", 128, 16)])
    assert estimate_network(net, spec).energy_j > 0
    with pytest.raises(HardwareConfigError, match=r"published\.gops_per_w: missing key"):
        estimate_network(net, spec, {"baseline_energy": "published_efficiency"})


def test_package_synthetic_trace_is_the_preset_one(rapidnn_hw):
    net = mlp([64, 32, 10])
    assert synthetic_trace(net) == rapidnn.synthetic_trace(net, rapidnn_hw)


def test_a_fractional_count_is_an_error_not_truncated() -> None:
    from rapidnn.hardware import HardwareConfigError, estimate_network, load_hardware, mlp

    whole = r"parameters\.crossbar_rows\.value: must be a whole"
    with pytest.raises(HardwareConfigError, match=whole):
        load_hardware("isaac").with_overrides({"crossbar_rows": 100.5})
    with pytest.raises(HardwareConfigError, match=whole):
        estimate_network(mlp((64, 32, 10)), "isaac", {"overrides": {"crossbar_rows": 100.5}})
