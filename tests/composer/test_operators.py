"""The CNN zoo operators (issue 20): capture, composition, integer semantics, simulator,
files and retraining, on small hand-written networks holding each operator."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.composer.operator_models import MODELS, make
from torch import nn

import rapidnn
from rapidnn.accel.config import SimConfig
from rapidnn.composer.capture import UnsupportedOperationError, capture
from rapidnn.composer.codebook import nearest_codes
from rapidnn.composer.encoding import activate, monotonic, thresholds
from rapidnn.composer.ops import (
    AdaptiveAvgPoolSum,
    CodeActivation,
    ConcatCodes,
    MulTable,
    PadCodes,
    WeightedLayer,
)
from rapidnn.composer.plan import make_plan


@pytest.fixture(scope="module", params=sorted(MODELS))
def composed(request):
    net, shape = make(request.param)
    torch.manual_seed(1)
    x = torch.randn(24, *shape)
    cm = rapidnn.compose(net, x, 32, 32)
    return request.param, net, cm, x


def test_every_operator_captures_and_runs_in_float(composed):
    _, net, _, x = composed
    g = capture(net, x[:2])
    assert torch.allclose(g.forward(x), net(x), atol=1e-5)


def test_composed_output_follows_the_float_network(composed):
    name, net, cm, x = composed
    ref, out = net(x), cm(x)
    err = (out - ref).abs().max() / ref.abs().max().clamp(min=1e-6)
    assert err < 0.35, f"{name}: relative error {float(err):.3f}"


@pytest.mark.parametrize("strategy", ["tree", "counting"])
def test_simulator_is_bit_exact_with_every_code_and_accumulator(composed, strategy):
    _, _, cm, x = composed
    cfg = SimConfig(strategy=strategy, record_codes=True, record_accumulators=True)
    res = rapidnn.simulate(cm, x, cfg)
    ref = cm.integer_forward(x)
    assert torch.equal(res.outputs, ref.output)
    assert set(ref.codes) <= set(res.codes)
    for k, v in ref.codes.items():
        assert torch.equal(v, res.codes[k]), k
    for k, v in ref.accumulators.items():
        assert torch.equal(v.to(torch.int64), res.accumulators[k].to(torch.int64)), k
    # the fast path (values instead of codes, offsets folded) gives the same outputs
    assert torch.equal(rapidnn.simulate(cm, x, SimConfig(strategy=strategy)).outputs, ref.output)
    assert res.trace.totals()["table_lookups"] > 0


def test_save_load_is_identical(composed, tmp_path):
    _, _, cm, x = composed
    cm.save(tmp_path / "m.rapidnn")
    back = rapidnn.load(tmp_path / "m.rapidnn")
    assert torch.equal(back(x), cm(x))


def test_retraining_runs_through_every_operator(composed):
    _, net, cm, x = composed
    y = net(x).argmax(1)
    data = [(x[i:i + 8], y[i:i + 8]) for i in range(0, len(x), 8)]
    res = rapidnn.retrain(cm, data, data, max_rounds=1, min_rounds=1, progress=False)
    assert res.rounds == 1
    assert torch.equal(rapidnn.simulate(res.composed, x).outputs, res.composed(x))


def test_estimate_costs_every_operator(composed):
    _, _, cm, _ = composed
    est = rapidnn.estimate(cm, "rapidnn")
    assert est.energy_j > 0 and est.latency_s > 0


# semantics of single operators --------------------------------------------------------------
FUNCTIONS = [("hardtanh", {"min_val": -0.5, "max_val": 1.5}), ("hardtanh", {"min_val": 0.0,
                                                                              "max_val": 6.0}),
             ("leaky_relu", {"negative_slope": 0.1}), ("hardsigmoid", {}),
             ("scale", {"factor": 0.37}), ("offset", {"value": -0.3}), ("relu", {}),
             ("sigmoid", {}), ("tanh", {})]


@pytest.mark.parametrize(("act", "params"), FUNCTIONS)
def test_thresholds_are_the_definition_for_every_monotonic_function(act, params):
    rng = np.random.default_rng(0)
    mids = np.sort(rng.uniform(-3, 6, 40))
    scale = math.ldexp(1.0, -9)
    lo, hi = -(2**20), 2**20 - 1
    th = thresholds(act, scale, mids, lo, hi, params)
    acc = np.arange(-4000, 4000)
    by_threshold = np.searchsorted(th, acc, side="right")
    by_definition = (activate(act, acc * scale, params)[:, None] > mids[None, :]).sum(1)
    assert np.array_equal(by_threshold, by_definition)


def test_non_monotonic_functions_become_code_tables():
    assert not monotonic("hardswish") and not monotonic("silu")
    assert not monotonic("leaky_relu", {"negative_slope": -0.2})
    _, _, cm, _ = _compose("tail")
    tables = {op.name: op for op in cm.ops if isinstance(op, CodeActivation)}
    assert {"leaky_relu", "mish"} <= set(tables)  # hardsigmoid is fused into fc2's encoder
    assert "hardsigmoid" not in tables


def _compose(name: str, w: int = 32, u: int = 32):
    net, shape = make(name)
    torch.manual_seed(1)
    x = torch.randn(24, *shape)
    return name, net, rapidnn.compose(net, x, w, u), x


def test_mul_is_a_lookup_in_the_product_table_of_two_codebooks():
    _, _, cm, x = _compose("mobile")
    mul = next(op for op in cm.ops if isinstance(op, MulTable))
    a, b = cm.codebooks[mul.spec["a_codebook"]], cm.codebooks[mul.spec["b_codebook"]]
    assert torch.equal(mul.table, a.values[:, None] * b.values[None, :])
    r = cm.integer_forward(x)
    ca, cb = r.codes[mul.inputs[0]], r.codes[mul.inputs[1]]
    assert cb.shape[2:] == (1, 1)  # the excitation broadcasts over positions
    assert torch.equal(r.accumulators[mul.name], a.values[ca] * b.values[cb])


def test_concatenated_tensors_share_one_codebook():
    _, _, cm, _ = _compose("dense")
    cat = next(op for op in cm.ops if isinstance(op, ConcatCodes))
    assert len(cat.inputs) == 2
    plan = make_plan(cm.source, cm.config)
    assert len({plan.codebook_of[i] for i in [*cat.inputs, cat.name]}) == 1
    # the encoders of both inputs write codes of that one codebook
    books = {op.spec["codebook"] for op in cm.ops if type(op).kind == "encode" and op.name in
             cat.inputs}
    assert books == {plan.codebook_of[cat.name]}


def test_per_channel_affine_and_relu_are_one_table_per_channel():
    _, _, cm, _ = _compose("dense")
    table = next(op for op in cm.ops if isinstance(op, CodeActivation) and op.name == "relu_1")
    assert table.spec["chain"] == ["norm2"] and table.inputs == ["cat"]
    assert table.table.shape[0] == 10  # one row per channel
    plan = make_plan(cm.source, cm.config)
    src = cm.codebooks[plan.codebook_of["cat"]].quantized()
    dst = cm.codebooks[table.spec["codebook"]].quantized()
    bn = cm.source["norm2"]
    want = torch.relu(src[None, :] * bn.weight.double()[:, None] + bn.bias.double()[:, None])
    assert np.array_equal(table.table.numpy(), nearest_codes(want.numpy(), dst.numpy()))


def test_padding_holds_the_code_nearest_zero():
    _, _, cm, x = _compose("shortcut")
    pad = next(op for op in cm.ops if isinstance(op, PadCodes))
    r = cm.integer_forward(x)
    key = next(op.spec["codebook"] for op in cm.ops if op.name == "relu")
    values = cm.codebooks[key].quantized()
    assert int(pad.spec["code"]) == int(values.abs().argmin())
    assert torch.equal(r.codes[pad.name][:, :2], torch.full_like(r.codes[pad.name][:, :2],
                                                                 pad.spec["code"]))


def test_adaptive_average_pool_of_any_ratio_is_exact():
    _, _, cm, x = _compose("shortcut")
    pool = next(op for op in cm.ops if isinstance(op, AdaptiveAvgPoolSum))
    assert pool.spec["input_size"] == [2, 2] and pool.spec["multiple"] == 4
    r = cm.integer_forward(x)
    src = cm.codebooks[pool.spec["codebook"]]
    v = src.quantized()[r.codes[pool.inputs[0]]]
    want = F.adaptive_avg_pool2d(v, (7, 7))
    got = r.accumulators[pool.name].to(torch.float64) * src.scale / pool.spec["multiple"]
    assert torch.allclose(got, want, atol=1e-12)


def test_grouped_and_1d_convolutions_keep_their_geometry():
    _, _, cm, _ = _compose("signal")
    layers = {op.name: op for op in cm.ops if isinstance(op, WeightedLayer)}
    assert layers["c1"].spec["op"] == "conv1d" and "groups" not in layers["c1"].spec
    assert layers["c2"].spec["groups"] == 4 and layers["c2"].spec["stride"] == [2]
    assert layers["c1"].spec.get("bias_in_accumulator") is not None


# capture ------------------------------------------------------------------------------------
def test_capture_names_each_zoo_operator():
    ops = {name: [n.op for n in capture(make(name)[0], torch.randn(2, *make(name)[1]))]
           for name in MODELS}
    assert {"hardtanh", "hardswish", "mul", "add", "hardsigmoid"} <= set(ops["mobile"])
    assert ops["mobile"][-5:-2] == ["reshape", "avgpool2d", "reshape"]  # the spatial mean
    assert {"slice", "concat", "permute", "adaptive_maxpool2d", "silu"} <= set(ops["shuffle"])
    assert {"affine", "concat", "gelu", "adaptive_avgpool2d"} <= set(ops["dense"])
    assert {"slice", "pad", "leaky_relu", "adaptive_avgpool2d"} <= set(ops["shortcut"])
    assert {"conv1d", "silu", "gelu", "mish", "scale", "offset", "hardtanh"} <= set(
        ops["signal"])


@pytest.mark.parametrize(
    ("forward", "fragment"),
    [
        (lambda x: F.layer_norm(x, x.shape[1:]), "out of scope"),
        (lambda x: x - x, "difference of two tensors"),
        (lambda x: x[0], "batch dimension"),
        (lambda x: x[:, torch.tensor([0, 1])], "not supported"),
        (lambda x: torch.cat([x, x], 0), "batch dimension"),
        (lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect"), "constant padding"),
        (lambda x: x.permute(1, 0, 2, 3), "batch dimension must stay first"),
        (lambda x: x.mean(1), "after the channel dimension"),
        (lambda x: x / x, "quotient"),
    ],
)
def test_unsupported_uses_name_node_op_and_the_supported_list(forward, fragment):
    class Net(nn.Module):
        def forward(self, x):
            return forward(x)

    with pytest.raises(UnsupportedOperationError) as err:
        capture(Net(), torch.randn(2, 4, 6, 6))
    msg = str(err.value)
    assert fragment in msg and "node" in msg and "Supported:" in msg


def test_attention_is_out_of_scope():
    net = nn.MultiheadAttention(8, 2, batch_first=True)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = net

        def forward(self, x):
            return self.attn(x, x, x)[0]

    with pytest.raises(UnsupportedOperationError, match="out of scope"):
        capture(Net().eval(), torch.randn(2, 3, 8))


@torch.fx.wrap
def stochastic_depth(x, p, mode, training=True):  # torchvision.ops' signature, fx-wrapped
    return x


stochastic_depth.__module__ = "torchvision.ops.stochastic_depth"


def test_stochastic_depth_and_shape_assertions_are_identity_at_inference():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 2)

        def forward(self, x):
            torch._assert(x.shape[1] == 3, "three channels")
            y = stochastic_depth(F.relu(self.conv(x)), 0.2, "row", self.training)
            return self.fc(y.mean([2, 3]))

    ops = [n.op for n in capture(Net().eval(), torch.randn(2, 3, 6, 6))]
    assert ops == ["input", "conv2d", "relu", "reshape", "avgpool2d", "reshape", "linear",
                   "output"]
