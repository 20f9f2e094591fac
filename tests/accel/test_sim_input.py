"""simulate() checks its input like ComposedModel.forward and reads it the same way."""

from __future__ import annotations

import pytest
import torch

import rapidnn


@pytest.fixture
def composed(small_mlp, mlp_batches):
    return rapidnn.compose(small_mlp, mlp_batches, 8, 8)


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int64, torch.float16,
                                   torch.float64])
def test_real_inputs_simulate_as_forward_reads_them(composed, mlp_batches, dtype):
    x = (mlp_batches[0] * 3).to(dtype) if dtype != torch.bool else mlp_batches[0] > 0.5
    assert torch.equal(rapidnn.simulate(composed, x).outputs, composed(x))


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_complex_inputs_are_refused_naming_the_dtype(composed, mlp_batches, dtype):
    x = mlp_batches[0].to(dtype)
    for run in (composed, lambda v: rapidnn.simulate(composed, v)):
        with pytest.raises(TypeError, match=f"input of dtype {dtype} is not real-valued"):
            run(x)


def test_other_bad_inputs_are_named(composed):
    for run in (composed, lambda v: rapidnn.simulate(composed, v)):
        with pytest.raises(TypeError, match="expected a tensor input, got list"):
            run([[0.0] * 64])
        with pytest.raises(ValueError, match="meta device"):
            run(torch.zeros(2, 64, device="meta"))
        with pytest.raises(ValueError, match=r"input shape \(2, 63\)"):
            run(torch.zeros(2, 63))
        with pytest.raises(ValueError, match="NaN"):
            run(torch.full((2, 64), float("nan")))


def test_wrong_arguments_are_type_errors_naming_them(composed):
    with pytest.raises(TypeError, match="composed must be a ComposedModel"):
        rapidnn.simulate("m.rapidnn", torch.zeros(1, 64))
    with pytest.raises(TypeError, match="config must be a SimConfig"):
        rapidnn.simulate(composed, torch.zeros(1, 64), config=3)
    with pytest.raises(TypeError, match=r"path must be a str or os\.PathLike"):
        rapidnn.load(3)


def test_a_dict_config_is_a_simconfig(composed, mlp_batches):
    x = mlp_batches[0]
    a = rapidnn.simulate(composed, x, {"strategy": "counting"}).outputs
    b = rapidnn.simulate(composed, x, rapidnn.SimConfig(strategy="counting")).outputs
    assert torch.equal(a, b)
