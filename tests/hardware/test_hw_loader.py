"""YAML presets, loader errors, overrides."""

from __future__ import annotations

import pytest
import yaml

from rapidnn.hardware import PRESETS, TAGS, HardwareConfigError, load_hardware
from rapidnn.hardware.loader import preset_path


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load_and_cite_everything(name):
    spec = load_hardware(name)
    assert spec.name == name and spec.source_file.endswith(f"{name}.yaml")
    params = spec.all_params() + list(spec.published.items())
    assert params
    for key, p in params:
        assert p.tag in TAGS, key
        assert len(p.source) > 5, key


def test_user_yaml_path(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(preset_path("isaac").read_text().replace("name: isaac", "name: mine"))
    spec = load_hardware(f)
    assert spec.name == "mine" and spec.model == "isaac" and spec.source_file == str(f)


def _broken(tmp_path, mutate):
    data = yaml.safe_load(preset_path("isaac").read_text())
    mutate(data)
    f = tmp_path / "broken.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(HardwareConfigError) as err:
        load_hardware(f)
    assert str(f) in str(err.value)
    return err.value


def test_missing_key_is_named(tmp_path):
    e = _broken(tmp_path, lambda d: d["components"]["adc"]["energy"]["convert"].pop("source"))
    assert e.key == "components.adc.energy.convert.source" and "missing key" in str(e)
    e = _broken(tmp_path, lambda d: d["parameters"].pop("crossbar_rows"))
    assert e.key == "parameters.crossbar_rows"
    e = _broken(tmp_path, lambda d: d["components"]["adc"]["energy"].pop("convert"))
    assert e.key == "components.adc.energy.convert"
    e = _broken(tmp_path, lambda d: d.pop("model"))
    assert e.key == "model"


def test_bad_tag_wrong_type_and_unit(tmp_path):
    e = _broken(tmp_path, lambda d: d["parameters"]["tiles_per_chip"].update(tag="guess"))
    assert e.key == "parameters.tiles_per_chip.tag" and "unknown tag 'guess'" in str(e)
    e = _broken(tmp_path, lambda d: d["parameters"]["tiles_per_chip"].update(value="168"))
    assert e.key == "parameters.tiles_per_chip.value" and "must be a number" in str(e)
    e = _broken(tmp_path, lambda d: d["components"]["adc"]["area"].update(unit="pJ"))
    assert e.key == "components.adc" or e.key.startswith("components.adc.area")
    e = _broken(tmp_path, lambda d: d["parameters"].update(extra=[1, 2]))
    assert e.key == "parameters.extra"


def test_malformed_and_missing_files(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: x\n  model: [isaac\n")
    with pytest.raises(HardwareConfigError, match=r"malformed YAML at line 2") as err:
        load_hardware(f)
    assert str(f) in str(err.value)
    f.write_text("- just\n- a list\n")
    with pytest.raises(HardwareConfigError, match="mapping"):
        load_hardware(f)
    with pytest.raises(HardwareConfigError, match="no such hardware"):
        load_hardware(tmp_path / "absent.yaml")
    assert issubclass(HardwareConfigError, ValueError)


def test_overrides(rapidnn_spec, isaac_spec):
    s = rapidnn_spec.with_overrides({"rapidnn.nor_cycle_ns": 2.0, "proc_rows": 512,
                                     "rna_block.energy.search_row_bit": 100.0})
    assert s.get("rna_block.latency.nor_cycle").value == 2.0
    assert s.get("nor_cycle_ns").tag == "assumed"
    assert s.get("proc_rows").value == 512
    assert rapidnn_spec.get("proc_rows").value == 1024  # the original is untouched
    assert isaac_spec.with_overrides({"adc.peak_power": 1.0}).table_power_w() < 65.8
    with pytest.raises(HardwareConfigError, match="unknown parameter key"):
        rapidnn_spec.with_overrides({"rapidnn.nonexistent": 1.0})
    with pytest.raises(HardwareConfigError):
        rapidnn_spec.with_overrides({"proc_rows": "many"})
    assert rapidnn_spec.scaled("tiles_per_chip", 2).get("tiles_per_chip").value == 64
