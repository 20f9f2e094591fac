"""SimConfig / BlockSizes (the ``simulator:`` section of a --config file) reject non-finite and
out-of-range values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rapidnn.accel.config import BlockSizes, SimConfig


@pytest.mark.parametrize("bad", [
    {"nor_cycles_per_bit": float("inf")}, {"nor_cycles_per_bit": float("nan")},
    {"nor_cycles_fixed": float("-inf")}, {"nor_cycles_fixed": -1.0},
    {"approx_bits": 0}, {"approx_bits": {"fc1": 0}}, {"approx_bits": 2.5},
    {"input_word_bits": 0}, {"input_word_bits": 65}, {"count_sample": 0},
    {"max_chunk_elements": 1}, {"blocks": {"proc_rows": 0}}, {"blocks": {"am_rows": 1}},
    {"blocks": {"proc_cols": 4}}, {"blocks": {"table_rows": 1.5}},
    {"blocks": {"slot_scratch_bits": -1}},
])
def test_sim_config_rejects(bad):
    with pytest.raises(ValidationError) as err:
        SimConfig.model_validate(bad)
    assert err.value.errors()[0]["loc"][0] == next(iter(bad))


def test_defaults_are_valid():
    assert SimConfig().nor_cycles(8) == 104.0
    assert BlockSizes(slot_scratch_bits=0).slot_scratch_bits == 0


@pytest.mark.parametrize("kwargs", [{"approx_bits": True}, {"count_sample": 2.0},
                                    {"record_trace": 1}, {"input_word_bits": "8"}])
def test_simulator_options_are_strict(kwargs):
    with pytest.raises(ValidationError):
        SimConfig(**kwargs)
