"""Layer pipelining and replication (pipeline.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rapidnn.hardware import pipeline as pl


def stages():
    return [pl.Stage("conv1", 100.0, 2, max_copies=100, fill_s=1.0),
            pl.Stage("conv2", 25.0, 4, max_copies=25, fill_s=1.0),
            pl.Stage("fc", 1.0, 8, max_copies=1, fill_s=1.0)]


def test_balanced_reaches_the_fc_rate_when_budget_allows():
    s = stages()
    reps = pl.replicate(s, budget=1000)
    assert reps == [100, 25, 1]
    assert pl.throughput(s, reps) == pytest.approx(1.0)
    assert pl.latency(s, reps) == pytest.approx(3.0)


def test_budget_limits_replication():
    s = stages()
    reps = pl.replicate(s, budget=2 * 10 + 4 * 3 + 8)  # 40 units
    assert sum(r * x.units for r, x in zip(reps, s, strict=True)) <= 40
    assert pl.bottleneck(s, reps) == pytest.approx(max(100 / reps[0], 25 / reps[1], 1.0))
    assert pl.bottleneck(s, reps) <= 10.0


def test_policies_and_errors():
    s = stages()
    assert pl.replicate(s, 1000, "none") == [1, 1, 1]
    fill = pl.replicate(s, 1000, "fill")
    assert fill[2] > 1  # copies of the fc work on different inferences
    with pytest.raises(ValueError, match="more than the budget"):
        pl.replicate(s, 10)
    with pytest.raises(ValueError, match="policy"):
        pl.replicate(s, 1000, "wild")  # type: ignore[arg-type]
    assert pl.chips_needed(s, 5) == 3


def test_overlap_latency_is_never_longer():
    s = stages()
    reps = [1, 1, 1]
    assert pl.latency(s, reps, "overlap") == pytest.approx(3.0 + 100.0)
    assert pl.latency(s, reps, "overlap") <= pl.latency(s, reps, "sequential")


stage_st = st.builds(pl.Stage, name=st.just("s"),
                     work_s=st.floats(1e-9, 1e-3), units=st.integers(1, 50),
                     max_copies=st.integers(1, 500))


@settings(max_examples=60, deadline=None)
@given(st.lists(stage_st, min_size=1, max_size=6), st.integers(0, 2000), st.integers(0, 2000),
       st.sampled_from(["balanced", "fill"]))
def test_replication_never_lowers_throughput(ss, extra1, extra2, policy):
    base = sum(s.units for s in ss)
    small, large = base + min(extra1, extra2), base + max(extra1, extra2)
    ones = [1] * len(ss)
    r_small = pl.replicate(ss, small, policy)
    r_large = pl.replicate(ss, large, policy)
    assert sum(r * s.units for r, s in zip(r_small, ss, strict=True)) <= small
    assert pl.throughput(ss, r_small) >= pl.throughput(ss, ones) * (1 - 1e-9)
    assert pl.throughput(ss, r_large) >= pl.throughput(ss, r_small) * (1 - 1e-9)
