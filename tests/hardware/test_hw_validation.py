"""Every number of a hardware description is checked by its kind, in a file and in an override
(docs/hardware.md, "Validation rules")."""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from rapidnn.hardware import (
    PRESETS,
    EstimateOptions,
    HardwareConfigError,
    chip_summary,
    estimate_network,
    load_hardware,
    mlp,
)
from rapidnn.hardware.components import DIMENSION_KINDS, UNITS
from rapidnn.hardware.loader import preset_path, spec_from_dict

NAN, INF = float("nan"), float("inf")
NET = mlp([64, 32, 10])

# (preset, override key, bad value): one row per kind of rule
BAD: list[tuple[str, str, Any]] = [
    ("isaac", "adc.energy.convert", -1.56),                 # negative energy
    ("rapidnn", "rna_block.energy.nor_cycle", 0),           # zero energy
    ("isaac", "adc.latency.convert", 0),                    # zero latency
    ("pipelayer", "morphable_array.latency.read", -29.31),  # negative latency
    ("isaac", "crossbar_cycle_ns", 0),                      # zero time parameter
    ("isaac", "adc.count", 0),                              # zero component count
    ("isaac", "adc.count", -8),                             # negative component count
    ("isaac", "imas_per_tile", 0),                          # zero count
    ("isaac", "imas_per_tile", 11.5),                       # fractional count
    ("isaac", "crossbar_rows", -128),                       # negative count
    ("isaac", "tiles_per_chip", 0),                         # zero tiles
    ("isaac", "tiles_per_chip", 16.5),                      # fractional tiles
    ("rapidnn", "tiles_per_chip", 0),
    ("rapidnn", "proc_rows", 0),                            # zero block rows
    ("rapidnn", "table_rows", 0),
    ("rapidnn", "am_rows", 1),                              # below BlockSizes' bound
    ("rapidnn", "proc_cols", 4),
    ("pipelayer", "memory_row_bits", 0),                    # zero row bits
    ("pipelayer", "array_rows", 0),
    ("isaac", "weight_bits", 0),                            # zero bit width
    ("isaac", "bits_per_cell", 1.5),
    ("isaac", "idle_leakage_fraction", 1.5),                # fraction > 1
    ("gpu", "compute_efficiency", 0),                       # an efficiency divides
    ("gpu", "memory_efficiency", 1.2),
    ("rapidnn", "column_parallel", 2),                      # flag
    ("rapidnn", "transfer_cycles_per_bit", -2),
    ("rapidnn", "slot_scratch_bits", -1),
    ("isaac", "adc.area", -0.0012),                         # negative area
    ("isaac", "adc.leakage", -1),                           # negative power
    ("isaac", "adc.peak_power", -2.0),
    ("gpu", "board.peak_power", 0),                         # the power the GPU model charges
    ("gpu", "peak_flops", 0),                               # a rate divides
    ("gpu", "batch", 0),
    ("isaac", "crossbar_cycle_ns", NAN),
    ("isaac", "crossbar_cycle_ns", INF),
    ("rapidnn", "rna_block.latency.search", -INF),
    ("isaac", "adc.energy.convert", "1.56"),                # a string
]
ZERO_DIVISORS: list[tuple[str, str]] = [
    ("rapidnn", "proc_rows"), ("rapidnn", "table_rows"), ("rapidnn", "tiles_per_chip"),
    ("rapidnn", "blocks_per_tile"), ("rapidnn", "rna_block.latency.nor_cycle"),
    ("isaac", "crossbar_rows"), ("isaac", "tiles_per_chip"), ("isaac", "bits_per_cell"),
    ("isaac", "edram_access_bits"), ("isaac", "crossbar.count"),
    ("pipelayer", "memory_row_bits"), ("pipelayer", "array_rows"),
    ("pipelayer", "morphable_array.latency.read"), ("gpu", "memory_efficiency"),
    ("gpu", "memory_bandwidth"),
]


def _file_key(key: str) -> str:
    """Where an override key's number sits in the file."""
    return f"components.{key}.value" if "." in key else f"parameters.{key}.value"


def _number(data: dict[str, Any], key: str) -> dict[str, Any]:
    if "." not in key:
        return data["parameters"][key]
    comp, fld, *action = key.split(".")
    p = data["components"][comp][fld]
    return p[action[0]] if action else p


@functools.cache
def _preset_data(preset: str) -> dict[str, Any]:
    return yaml.safe_load(preset_path(preset).read_text())


def _data_with(preset: str, key: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_preset_data(preset))
    _number(data, key)["value"] = value
    return data


def _file_with(tmp_path: Path, preset: str, key: str, value: Any) -> Path:
    f = tmp_path / f"{preset}-bad.yaml"
    f.write_text(yaml.safe_dump(_data_with(preset, key, value)))
    return f


def _one_line(err: HardwareConfigError) -> str:
    msg = str(err)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(("preset", "key", "value"), BAD)
def test_a_bad_number_in_a_file_names_the_file_and_the_key(tmp_path, preset, key, value):
    f = _file_with(tmp_path, preset, key, value)
    with pytest.raises(HardwareConfigError) as err:
        load_hardware(f)
    msg = _one_line(err.value)
    assert err.value.key == _file_key(key) and err.value.file == str(f)
    assert msg.startswith(f"{f}: {_file_key(key)}: must be")


@pytest.mark.parametrize(("preset", "key", "value"), BAD)
def test_a_bad_override_names_the_key(preset, key, value):
    with pytest.raises(HardwareConfigError) as err:
        load_hardware(preset).with_overrides({f"{preset}.{key}": value})
    msg = _one_line(err.value)
    assert key in msg and "must be" in msg and str(preset_path(preset)) in msg


@pytest.mark.parametrize(("preset", "key", "value"),
                         [b for b in BAD if not isinstance(b[2], str)])
def test_a_bad_override_in_the_options_names_the_key(preset, key, value):
    """Not a finite number >= 0: rejected by the options; otherwise when applied."""
    config = {"overrides": {f"{preset}.{key}": value}}
    if not math.isfinite(value) or value < 0:
        with pytest.raises(ValidationError) as verr:
            EstimateOptions.model_validate(config)
        first = verr.value.errors()[0]
        assert first["loc"] == ("overrides", f"{preset}.{key}")
        return
    with pytest.raises(HardwareConfigError) as err:
        estimate_network(NET, preset, config)
    assert key in _one_line(err.value)


@pytest.mark.parametrize("value", ["many", True, None, [1], NAN, INF, -1.0])
def test_options_reject_non_numeric_and_non_finite_overrides(value):
    with pytest.raises(ValidationError) as err:
        EstimateOptions(overrides={"nor_cycle_ns": value})
    assert err.value.errors()[0]["loc"] == ("overrides", "nor_cycle_ns")
    assert EstimateOptions(overrides={"nor_cycle_ns": 2}).overrides == {"nor_cycle_ns": 2.0}
    with pytest.raises(ValidationError):
        EstimateOptions(block_budget=INF)


def test_the_cli_config_message_names_the_override(tmp_path):
    from rapidnn.cli.model import _load_config

    f = tmp_path / "opts.yaml"
    f.write_text("overrides: {rapidnn.nor_cycle_ns: .nan}\n")
    with pytest.raises(ValueError, match=r"option 'overrides\.rapidnn\.nor_cycle_ns'.*finite"):
        _load_config(str(f))
    f.write_text("simulator: {nor_cycles_per_bit: .inf}\n")
    with pytest.raises(ValueError, match=r"option 'nor_cycles_per_bit'.*finite"):
        _load_config(str(f))


def test_own_overrides_and_scaled_are_checked(isaac_spec, rapidnn_spec):
    with pytest.raises(HardwareConfigError, match="crossbar_rows"):
        isaac_spec.with_own_overrides({"isaac.crossbar_rows": 0, "rapidnn.proc_rows": 1})
    assert isaac_spec.with_own_overrides({"rapidnn.proc_rows": 0}) is not None  # not ISAAC's
    with pytest.raises(HardwareConfigError, match=r"nor_cycle_ns: must be > 0 \(a time\)"):
        rapidnn_spec.scaled("nor_cycle_ns", 0)
    with pytest.raises(HardwareConfigError, match=r"idle_leakage_fraction\.value: must be in"):
        isaac_spec.scaled("idle_leakage_fraction", 20)
    with pytest.raises(HardwareConfigError, match="is not a unit of J"):
        isaac_spec.with_overrides({"adc.energy.convert": isaac_spec.get("adc.latency.convert")})
    assert rapidnn_spec.scaled("tiles_per_chip", 1e-3).get("tiles_per_chip").value == 1


def test_the_rule_of_a_zero_allowed_number():
    """Zero where it is physically meaningful: leakage, area, peak power of a unit, a fraction,
    a flag, scratch bits, cycle counts; the result stays finite."""
    spec = load_hardware("rapidnn").with_overrides({
        "rna_block.leakage": 0, "rna_block.area": 0, "slot_scratch_bits": 0,
        "column_parallel": 0, "nor_cycles_fixed": 0, "controller_static_w_per_tile": 0})
    assert math.isfinite(estimate_network(NET, spec).energy_j)
    isaac = load_hardware("isaac").with_overrides({"idle_leakage_fraction": 0,
                                                   "adc.peak_power": 0})
    assert math.isfinite(estimate_network(NET, isaac, {"gating": "leakage"}).energy_j)


@pytest.mark.parametrize(("preset", "key"), ZERO_DIVISORS)
def test_zero_divisors_never_reach_a_division(tmp_path, preset, key, mnist_trace):
    with pytest.raises(HardwareConfigError, match=key.rpartition(".")[2]):
        load_hardware(_file_with(tmp_path, preset, key, 0))
    workload = mnist_trace if preset == "rapidnn" else NET
    with pytest.raises(HardwareConfigError, match=key.rpartition(".")[2]):
        estimate_network(workload, preset, {"overrides": {key: 0}})
    with pytest.raises(HardwareConfigError):
        chip_summary(load_hardware(preset).with_overrides({key: 0}))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("value", [0, -1])
def test_every_number_either_fails_by_name_or_estimates_finite(preset, value):
    """Each number of each preset set to 0 (or -1) alone: the description fails naming that
    number, or every figure of an estimate and of the chip summary is finite."""
    for key, _ in load_hardware(preset).all_params():
        try:
            spec = spec_from_dict(_data_with(preset, key, value), file=f"{preset}.yaml")
        except HardwareConfigError as err:
            assert err.key == _file_key(key), key
            continue
        assert value == 0, key  # no number of a description may be negative
        est = estimate_network(NET, spec)
        figures = [est.energy_j, est.latency_s, est.throughput_ips,
                   chip_summary(spec)["peak_gops"]]
        assert all(math.isfinite(x) for x in figures), key


def test_published_figures_are_checked(tmp_path):
    data = yaml.safe_load(preset_path("isaac").read_text())
    data["published"]["gops_per_w"]["value"] = 0
    f = tmp_path / "isaac.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(HardwareConfigError, match=r"published\.gops_per_w\.value: must be > 0"):
        load_hardware(f)


def test_every_dimension_has_a_kind():
    assert {dim for dim, _ in UNITS.values()} == set(DIMENSION_KINDS)


@pytest.mark.parametrize("options", [{"chips": True}, {"chips": 2.0}, {"batch": "8"}])
def test_estimate_options_are_strict(options):
    from pydantic import ValidationError

    from rapidnn.hardware import EstimateOptions

    with pytest.raises(ValidationError, match=next(iter(options))):
        EstimateOptions(**options)
