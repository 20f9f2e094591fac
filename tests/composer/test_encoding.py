import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidnn.composer.encoding import activate, thresholds


@settings(max_examples=60, deadline=None)
@given(act=st.sampled_from(["identity", "relu", "sigmoid", "tanh"]),
       exponent=st.integers(-12, -9),  # |z| < 6: float tanh/sigmoid do not saturate
       mids=st.lists(st.floats(-3, 3, allow_nan=False).map(lambda v: round(v, 3)), min_size=1,
                     max_size=15))
def test_threshold_code_equals_nearest_code_of_activated_value(act, exponent, mids):
    mids = np.sort(np.asarray(mids))
    scale = math.ldexp(1.0, exponent)
    lo, hi = -(2**20), 2**20 - 1
    th = thresholds(act, scale, mids, lo, hi)
    acc = np.arange(-3000, 3000)
    by_threshold = np.searchsorted(th, acc, side="right")
    g = activate(act, acc * scale)
    by_definition = (g[:, None] > mids[None, :]).sum(1)
    assert np.array_equal(by_threshold, by_definition)


def test_unknown_activation():
    with pytest.raises(ValueError, match="unknown activation"):
        thresholds("swish", 1.0, np.array([0.0]), -10, 10)
    with pytest.raises(ValueError, match="no threshold form"):
        thresholds("gelu", 1.0, np.array([0.0]), -10, 10, {"approximate": "none"})
