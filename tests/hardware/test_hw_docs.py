"""docs/hardware.md lists every number of every preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from rapidnn.hardware import PRESETS, load_hardware

DOC = Path(__file__).resolve().parents[2] / "docs" / "hardware.md"


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_key_is_documented(name):
    text = DOC.read_text()
    spec = load_hardware(name)
    missing = [k for k, _ in spec.all_params() if f"`{k}`" not in text]
    assert not missing, f"{name}: not in docs/hardware.md: {missing}"
