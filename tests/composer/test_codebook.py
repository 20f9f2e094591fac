import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rapidnn.composer.codebook import (
    cluster,
    fixed_point_for,
    nearest_codes,
    pad_centroids,
    quantize,
    sample_values,
)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=50),
       st.integers(2, 12))
@example(values=[5e-324], bits=2)  # a denormal peak: peak / qmax underflowed to 0
@example(values=[2.0**-1070, -(2.0**-1060)], bits=12)
def test_fixed_point_fits_and_is_tight(values, bits):
    v = np.asarray(values)
    fmt = fixed_point_for(v, bits)
    q = quantize(v, fmt)
    assert q.min() >= fmt.qmin and q.max() <= fmt.qmax
    assert np.all(np.abs(q * fmt.scale - v) <= fmt.scale / 2 + 1e-12)
    if np.abs(v).max() > 0:  # the smallest scale with peak / scale <= qmax
        with np.errstate(divide="ignore"):  # half the smallest scale is 0 for a denormal peak
            assert np.abs(v).max() / fmt.scale <= fmt.qmax < np.abs(v).max() / (fmt.scale / 2)


def test_unsigned_when_nonnegative():
    assert not fixed_point_for(np.array([0.0, 1.0]), 8).signed
    assert fixed_point_for(np.array([-1.0, 1.0]), 8).signed
    with pytest.raises(ValueError):
        fixed_point_for(np.array([1.0]), 1)


def test_padding_and_nearest_codes_ties_go_low():
    c = pad_centroids(np.array([0.0, 1.0]), 4)
    assert list(c) == [0.0, 1.0, 1.0, 1.0]
    codes = nearest_codes(np.array([0.5, 0.49, 0.51, 5.0]), c)
    assert list(codes[:3]) == [0, 0, 1]
    assert c[codes[3]] == 1.0  # a padded copy decodes to the same value
    t = nearest_codes(torch.tensor([0.5, 0.51], dtype=torch.float64), c)
    assert t.tolist() == [0, 1]


def test_cluster_pads_to_k_and_is_sorted():
    clus = cluster(np.array([1.0, 1.0, 2.0]), 4, seed=0)
    assert clus.centroids.shape == (4,)
    assert np.all(np.diff(clus.centroids) >= 0)


def test_sample_values_is_seeded():
    t = torch.arange(1000.0)
    a = sample_values(t, 10, torch.Generator().manual_seed(1))
    b = sample_values(t, 10, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.numel() == 10
    assert sample_values(t, 5000, torch.Generator()).numel() == 1000
