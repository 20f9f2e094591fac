"""Exact mode is bit-exact: simulator == ComposedModel.integer_forward on random networks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sim_models import CodesOut, Residual, build, compose_options, inputs, networks

from rapidnn.accel import SimConfig, Simulator, simulate

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def assert_same(cm, x, config: SimConfig) -> None:
    ref = cm.integer_forward(x)
    assert torch.equal(simulate(cm, x, config).outputs, ref.output)  # as configured
    cfg = config.model_copy(update={"record_accumulators": True})
    res = simulate(cm, x, cfg)
    assert torch.equal(res.outputs, cm(x))
    assert res.accumulators is not None
    assert set(res.accumulators) == set(ref.accumulators)
    for k, v in ref.accumulators.items():
        lo, hi = -(2 ** (cm.config.acc_bits - 1)), 2 ** (cm.config.acc_bits - 1) - 1
        if bool(((v == lo) | (v == hi)).any()):
            event("saturated accumulators")
        assert res.accumulators[k].dtype == torch.int64
        assert torch.equal(res.accumulators[k], v), k
    if cfg.record_codes:
        assert res.codes is not None and set(res.codes) == set(ref.codes)
        for k, v in ref.codes.items():
            assert torch.equal(res.codes[k], v), k


@SETTINGS
@given(networks(), compose_options(), st.sampled_from(["tree", "counting"]), st.booleans())
def test_random_networks_bit_exact(netspec, opts, strategy, record_codes):
    net, shape, desc = netspec
    cm = build(net, shape, opts)
    event(f"{desc['kind']} {desc.get('pool', '')} table_bits={opts['table_bits'] is not None}")
    x = inputs(shape, 4)
    assert_same(cm, x, SimConfig(strategy=strategy, record_codes=record_codes))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(networks(), compose_options(), st.integers(1, 5))
def test_small_blocks_and_sampled_counts_stay_exact(netspec, opts, rows):
    """Splitting values over tiny blocks and sampling pair counts never changes the results."""
    net, shape, _ = netspec
    cm = build(net, shape, opts)
    x = inputs(shape, 5)
    blocks = {"proc_rows": rows, "am_rows": 2, "am_bits": 3}
    assert_same(cm, x, SimConfig(blocks=blocks))
    assert_same(cm, x, SimConfig(strategy="counting", count_sample=2, blocks=blocks))


@pytest.mark.parametrize("cls,shape", [(Residual, (1, 6, 6)), (CodesOut, (1, 5, 5))])
@pytest.mark.parametrize("strategy", ["tree", "counting"])
def test_residual_code_activation_and_code_output(cls, shape, strategy):
    torch.manual_seed(0)
    cm = build(cls().eval(), shape, {"weight_clusters": 4, "input_clusters": 5})
    x = inputs(shape, 3)
    for record in (False, True):
        assert_same(cm, x, SimConfig(strategy=strategy, record_codes=record))


def test_lenet_and_tree_codebooks():
    from rapidnn.workloads.models import LeNet5

    torch.manual_seed(0)
    cm = build(LeNet5().eval(), (1, 28, 28), {"weight_clusters": 8, "input_clusters": 8,
                                              "tree": True})
    x = inputs((1, 28, 28), 3)
    assert_same(cm, x, SimConfig())
    assert_same(cm, x, SimConfig(record_codes=True))


def test_float64_and_integer_inputs():
    torch.manual_seed(0)
    from torch import nn

    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    cm = build(net, (6,), {"weight_clusters": 4, "input_clusters": 4})
    x = inputs((6,), 5)
    assert_same(cm, x.double(), SimConfig())
    assert_same(cm, (x * 3).round().to(torch.int32), SimConfig(record_codes=True))


def test_simulator_reuse_matches_fresh_runs():
    torch.manual_seed(0)
    from rapidnn.workloads.models import mlp

    cm = build(mlp((10, 8, 3)), (10,), {"weight_clusters": 6, "input_clusters": 6})
    sim = Simulator(cm, SimConfig(record_accumulators=True))
    for seed in range(3):
        x = inputs((10,), 4, seed)
        a, b = sim.run(x), simulate(cm, x, SimConfig(record_accumulators=True))
        assert torch.equal(a.outputs, b.outputs)
        assert torch.equal(a.outputs, cm(x))


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(networks(), compose_options(), st.integers(1, 8))
def test_fused_value_path_equals_code_path_under_approximation(netspec, opts, bits):
    """Passing decoded values instead of codes between blocks never changes a result."""
    net, shape, _ = netspec
    cm = build(net, shape, opts)
    x = inputs(shape, 4)
    bare = simulate(cm, x, SimConfig(approx_bits=bits))  # fused values, offsets folded
    fused = simulate(cm, x, SimConfig(approx_bits=bits, record_accumulators=True))
    codes = simulate(cm, x, SimConfig(approx_bits=bits, record_accumulators=True,
                                      record_codes=True))
    assert torch.equal(bare.outputs, codes.outputs)
    assert torch.equal(fused.outputs, codes.outputs)
    for k, v in codes.accumulators.items():
        assert torch.equal(fused.accumulators[k], v), k
    assert fused.trace.to_dict() == codes.trace.to_dict() == bare.trace.to_dict()
