"""The per-element reference (tests/accel/reference.py) against integer_forward and the simulator.

Values (outputs, accumulators, codes) and every Trace counter must agree, for both strategies,
exact and approximate search, and tiny block sizes that force split values and AM segments.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import RefConfig, flat, run_reference
from sim_models import CodesOut, Residual, build, compose_options, inputs, networks
from torch import nn

from rapidnn.accel import SimConfig, simulate
from rapidnn.accel.events import COUNTERS

BATCH = 2


def compare(cm, x, strategy="tree", approx=None, rows=1024, am_rows=1024, am_bits=64):
    ref = run_reference(cm, x, RefConfig(strategy=strategy, approx_bits=approx, proc_rows=rows,
                                         am_rows=am_rows, am_bits=am_bits))
    cfg = SimConfig(strategy=strategy, approx_bits=approx, record_codes=True,
                    record_accumulators=True,
                    blocks={"proc_rows": rows, "am_rows": am_rows, "am_bits": am_bits})
    res = simulate(cm, x, cfg)
    # values
    assert torch.equal(torch.tensor(ref.outputs, dtype=torch.float32), res.outputs)
    assert res.accumulators is not None and res.codes is not None
    for k, v in ref.ints.items():
        assert flat(v) == res.accumulators[k].flatten().tolist(), k
    for k, v in ref.codes.items():
        assert flat(v) == res.codes[k].flatten().tolist(), k
    if approx is None:  # the reference is also the composed semantics
        exact = cm.integer_forward(x)
        assert torch.equal(torch.tensor(ref.outputs, dtype=torch.float32), exact.output)
        for k, v in exact.accumulators.items():
            assert flat(ref.ints[k]) == v.flatten().tolist(), k
        for k, v in exact.codes.items():
            assert flat(ref.codes[k]) == v.flatten().tolist(), k
    # events (the simulator reports per inference)
    assert res.trace is not None
    n = x.shape[0]
    names = {lt.name for lt in res.trace.layers}
    assert set(ref.events) <= names
    for lt in res.trace.layers:
        ev = ref.events.get(lt.name)
        for c in COUNTERS:
            want = ev.counters[c] if ev else 0.0
            assert getattr(lt, c) * n == pytest.approx(want, abs=1e-6), (lt.name, c)
        want_adds = {k: float(v) for k, v in ev.additions.items()} if ev else {}
        assert {k: v * n for k, v in lt.additions.items()} == pytest.approx(want_adds), lt.name
    return res


@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(networks(), compose_options(), st.sampled_from(["tree", "counting"]),
       st.sampled_from([None, 1, 2, 3, 5]), st.sampled_from([1024, 3, 7]))
def test_reference_random(netspec, opts, strategy, approx, rows):
    net, shape, _ = netspec
    cm = build(net, shape, opts)
    compare(cm, inputs(shape, BATCH), strategy, approx, rows)


class Net(nn.Module):
    """Stride, padding, dilation, ceil-mode max pooling, padded average pooling, tanh."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(2, 3, 3, stride=1, padding=2, dilation=2)
        self.p = nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True)
        self.c2 = nn.Conv2d(3, 2, 2, stride=2, padding=1)
        self.a = nn.AvgPool2d(2, stride=1, padding=1)
        self.fc = nn.Linear(2 * 4 * 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.p(torch.relu(self.c1(x)))
        x = self.a(torch.tanh(self.c2(x)))
        return self.fc(torch.flatten(x, 1))


OPTIONS = [
    {"weight_clusters": 5, "input_clusters": 6},
    {"weight_clusters": 7, "input_clusters": 3, "bias_mode": "threshold", "per_channel": True},
    {"weight_clusters": 4, "input_clusters": 9, "table_bits": 6, "acc_bits": 9,
     "weight_bits": 5, "input_bits": 4},
]


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("strategy", ["tree", "counting"])
@pytest.mark.parametrize("approx,rows", [(None, 1024), (2, 5), (4, 1024)])
def test_reference_conv_pools(opts, strategy, approx, rows):
    torch.manual_seed(0)
    cm = build(Net().eval(), (2, 7, 7), opts)
    compare(cm, inputs((2, 7, 7), BATCH), strategy, approx, rows)


@pytest.mark.parametrize("cls,shape", [(Residual, (1, 6, 6)), (CodesOut, (1, 5, 5))])
@pytest.mark.parametrize("strategy", ["tree", "counting"])
def test_reference_residual_and_code_output(cls, shape, strategy):
    torch.manual_seed(1)
    cm = build(cls().eval(), shape, {"weight_clusters": 4, "input_clusters": 5})
    compare(cm, inputs(shape, BATCH), strategy, None, 4, am_rows=3, am_bits=4)
    compare(cm, inputs(shape, BATCH), strategy, 3)


def test_approximation_changes_codes_monotonically():
    """Truncated search gives codes >= the exact ones (floors favour the higher row)."""
    torch.manual_seed(0)
    cm = build(Net().eval(), (2, 7, 7), OPTIONS[0])
    x = inputs((2, 7, 7), 4)
    exact = simulate(cm, x, SimConfig(record_codes=True)).codes
    approx = compare(cm, x, "tree", 3).codes
    assert exact is not None and approx is not None
    first = "relu"  # the first encoder sees the same accumulators in both runs
    assert bool((approx[first] >= exact[first]).all())
    assert not torch.equal(approx[first], exact[first])
