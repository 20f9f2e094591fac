import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import rapidnn
from rapidnn.composer.compose import ComposeError
from rapidnn.composer.ops import WeightedLayer, accumulator_range


def reference_accumulators(layer: WeightedLayer, b: torch.Tensor) -> torch.Tensor:
    """sum_k T[g(o), a[o,k], b[k]] + bias, saturated: gathers in int64, no float at all."""
    s = layer.spec
    table, a = layer.table, layer.weight_codes.long()
    g = torch.arange(a.shape[0]) % table.shape[0]
    if s["op"] == "conv2d":
        # -1 marks zero padding: no product
        bp = F.pad(b + 1, [s["padding"][1]] * 2 + [s["padding"][0]] * 2) - 1
        cols = F.unfold(bp.double(), s["kernel"], dilation=s["dilation"],
                        stride=s["stride"]).long()  # (B, C*kh*kw, L)
        a2 = a.reshape(a.shape[0], -1)  # (O, K)
        prod = table[g[:, None, None], a2[:, :, None], cols.clamp_min(0)[:, None]]  # (B,O,K,L)
        prod = prod * (cols >= 0)[:, None]
        acc = prod.sum(2)
        out_hw = [(b.shape[2 + i] + 2 * s["padding"][i] - s["dilation"][i] * (s["kernel"][i] - 1)
                   - 1) // s["stride"][i] + 1 for i in (0, 1)]
        acc = acc.reshape(b.shape[0], a.shape[0], *out_hw)
    else:
        acc = table[g[None, :, None], a[None], b[:, None, :]].sum(-1)
    if s["bias_in_accumulator"]:
        acc = acc + layer.bias.reshape((1, -1) + (1,) * (acc.dim() - 2))
    lo, hi = accumulator_range(s["acc_bits"])
    return acc.clamp(lo, hi)


OPTIONS = [
    {},
    {"per_channel": True},
    {"table_bits": 9},
    {"acc_bits": 12},
    {"bias_mode": "threshold"},
    {"weight_bits": 4, "input_bits": 3},
    {"tree": True, "weight_clusters": 8, "input_clusters": 4},
    {"raw_input": "uniform"},
]


@pytest.mark.parametrize("opts", OPTIONS)
def test_accumulators_equal_the_table_lookup_definition(lenet, image_batches, opts):
    cm = rapidnn.compose(lenet, image_batches, **{"weight_clusters": 8, "input_clusters": 8,
                                                  **opts})
    x = image_batches[1]
    res = cm.integer_forward(x)
    for op in cm.ops:
        if isinstance(op, WeightedLayer):
            b = res.codes[op.inputs[0]]
            assert torch.equal(res.accumulators[op.name], reference_accumulators(op, b)), op.name


@pytest.mark.parametrize("opts", OPTIONS)
def test_forward_is_the_dequantized_integer_forward(lenet, image_batches, opts):
    cm = rapidnn.compose(lenet, image_batches, **{"weight_clusters": 8, "input_clusters": 8,
                                                  **opts})
    x = image_batches[1]
    res = cm.integer_forward(x)
    last = cm.layer_names()[-1]
    scale = math.ldexp(1.0, cm.layer(last).layer.spec["exponent"])
    expected = (res.accumulators[last].double() * scale).float()
    assert torch.equal(cm(x), expected)
    assert torch.equal(res.output, expected)


def test_codes_are_the_nearest_centroid_of_the_activated_value(small_mlp, mlp_batches):
    cm = rapidnn.compose(small_mlp, mlp_batches, weight_clusters=16, input_clusters=8)
    res = cm.integer_forward(mlp_batches[0])
    for view in cm.layers()[:-1]:
        enc = view.encoder
        z = res.accumulators[view.name].double() * enc.spec["scale"]
        g = torch.relu(z)
        c = cm.codebooks[enc.spec["codebook"]].quantized()
        dist = (g[..., None] - c).abs()
        codes = res.codes[enc.name]
        chosen = dist.gather(-1, codes[..., None])[..., 0]
        assert torch.all(chosen <= dist.min(-1).values + 1e-12)


def test_codebooks_are_sorted_with_requested_sizes_and_fixed_point(small_mlp, mlp_batches):
    cm = rapidnn.compose(small_mlp, mlp_batches, weight_clusters=16, input_clusters=8,
                         weight_bits=6, input_bits=5)
    for v in cm.layers():
        assert v.weight_centroids.shape == (1, 16)
        assert torch.all(v.weight_centroids[:, 1:] >= v.weight_centroids[:, :-1])
        assert v.table.shape == (1, 16, 8)
        assert int(v.layer.weight_values.abs().max()) <= 2**5 - 1
        cb = v.input_codebook
        assert cb.size == 8 and torch.all(cb.centroids[1:] >= cb.centroids[:-1])
        assert int(cb.values.max()) <= 2**5 - 1
        assert torch.equal(v.table[0], v.layer.weight_values[0][:, None] * cb.values[None, :])


def test_per_layer_overrides_by_name_and_type(lenet, image_batches):
    cm = rapidnn.compose(lenet, image_batches, weight_clusters=8, input_clusters=8,
                         overrides={"conv2d": {"weight_clusters": 4},
                                    "conv2": {"weight_clusters": 16, "per_channel": True},
                                    "fc1": {"input_clusters": 4}})
    assert cm.layer("conv1").table.shape == (1, 4, 8)
    assert cm.layer("conv2").table.shape == (16, 16, 8)
    assert cm.layer("fc1").table.shape == (1, 8, 4)
    assert cm.layer("fc2").table.shape == (1, 8, 8)
    with pytest.raises(ValueError, match="name no layer"):
        rapidnn.compose(lenet, image_batches, overrides={"nope": {"weight_clusters": 4}})


def test_composition_is_deterministic(lenet, image_batches):
    a = rapidnn.compose(lenet, image_batches, 8, 8, seed=3)
    b = rapidnn.compose(lenet, image_batches, 8, 8, seed=3)
    x = image_batches[1]
    assert torch.equal(a(x), b(x))
    for k in a.codebooks:
        assert torch.equal(a.codebooks[k].centroids, b.codebooks[k].centroids)


def test_saturation_clamps_accumulators(small_mlp, mlp_batches):
    cm = rapidnn.compose(small_mlp, mlp_batches, 16, 16, acc_bits=8)
    res = cm.integer_forward(mlp_batches[0] * 50)
    lo, hi = accumulator_range(8)
    for name in cm.layer_names():
        acc = res.accumulators[name]
        assert acc.min() >= lo and acc.max() <= hi
    assert any(int(res.accumulators[n].abs().max()) in (-lo, hi) for n in cm.layer_names())


def test_truncated_tables_round_entries(small_mlp, mlp_batches):
    full = rapidnn.compose(small_mlp, mlp_batches, 16, 16)
    cut = rapidnn.compose(small_mlp, mlp_batches, 16, 16, table_bits=10)
    t_full = full.layer(full.layer_names()[0]).table
    t_cut = cut.layer(cut.layer_names()[0]).table
    assert cut.layer(cut.layer_names()[0]).layer.spec["entry_bits"] == 10
    assert torch.equal(t_cut, torch.round(t_full.double() / 2**6).long())


def test_tree_codebooks_give_valid_coarser_levels(small_mlp, mlp_batches):
    cm = rapidnn.compose(small_mlp, mlp_batches, 16, 8, tree=True)
    layer = cm.layer(cm.layer_names()[0]).layer
    codes = layer.weight_codes.long()
    w = cm.source[layer.name].weight.double()
    for bits in range(1, 4):
        coarse = codes >> (4 - bits)
        level = getattr(layer, f"weight_levels_{bits}")[0]
        for c in range(2**bits):
            members = w[coarse == c]
            if members.numel():
                assert math.isclose(float(members.mean()), float(level[c]), rel_tol=1e-9,
                                    abs_tol=1e-12)
    with pytest.raises(ComposeError, match="power-of-two"):
        rapidnn.compose(small_mlp, mlp_batches, 12, 8, tree=True)


def test_maxpool_on_codes_equals_code_of_the_max(lenet, image_batches):
    cm = rapidnn.compose(lenet, image_batches, 8, 8)
    res = cm.integer_forward(image_batches[1])
    before = res.codes["relu"]
    assert torch.equal(res.codes["pool1"],
                       F.max_pool2d(before.float(), 2).long())


def test_memory_footprint(small_mlp, mlp_batches):
    cm = rapidnn.compose(small_mlp, mlp_batches, 16, 16)
    mem = cm.layer(cm.layer_names()[0]).memory()
    assert mem["table_bits"] == 16 * 16 * 16
    assert mem["weight_code_bits"] == 64 * 32 * 4
    assert mem["threshold_bits"] == 15 * 32
    assert mem["neurons"] == 32
    total = cm.memory()
    assert total["total_bits"] == sum(m["total_bits"] for m in total["layers"].values())


def test_quality_close_to_float_on_a_learnable_task():
    torch.manual_seed(0)
    x = torch.randn(2000, 20)
    y = (x[:, :10].sum(1) > x[:, 10:].sum(1)).long()
    net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(200):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    cm = rapidnn.compose(net, [x[:500]], 32, 32)
    float_acc = (net(x).argmax(1) == y).float().mean().item()
    comp_acc = (cm(x).argmax(1) == y).float().mean().item()
    assert float_acc > 0.9 and float_acc - comp_acc < 0.03


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"weight_clusters": 0}, "weight_clusters"), ({"bias_mode": "x"}, "bias_mode"),
     ({"acc_bits": 2}, "acc_bits"), ({"nonsense": 1}, "nonsense")],
)
def test_invalid_options(small_mlp, mlp_batches, kwargs, match):
    with pytest.raises(ComposeError, match=match):
        rapidnn.compose(small_mlp, mlp_batches, **kwargs)


def test_bad_calibration_data(small_mlp, mlp_batches):
    with pytest.raises(ComposeError, match="empty"):
        rapidnn.compose(small_mlp, [])
    with pytest.raises(ComposeError, match="NaN"):
        rapidnn.compose(small_mlp, [torch.full((4, 64), float("nan"))])
    with pytest.raises(ComposeError, match="tensors"):
        rapidnn.compose(small_mlp, [np.zeros((4, 64))])
    with pytest.raises(ComposeError, match="iterable"):
        rapidnn.compose(small_mlp, 5)


def test_bad_inputs_to_the_composed_model(small_mlp, mlp_batches):
    cm = rapidnn.compose(small_mlp, mlp_batches)
    with pytest.raises(ValueError, match="shape"):
        cm(torch.rand(2, 63))
    with pytest.raises(ValueError, match="NaN"):
        cm(torch.full((2, 64), float("nan")))


def test_calibration_accepts_labelled_batches(small_mlp, mlp_batches):
    labelled = [(x, torch.zeros(len(x), dtype=torch.long)) for x in mlp_batches]
    a = rapidnn.compose(small_mlp, labelled)
    b = rapidnn.compose(small_mlp, mlp_batches)
    assert torch.equal(a(mlp_batches[0]), b(mlp_batches[0]))


def test_standalone_activation_and_residual_add_compose():
    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(8, 8)
            self.b = nn.Linear(8, 8)
            self.out = nn.Linear(8, 3)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.out(torch.tanh(self.b(h) + h))

    torch.manual_seed(0)
    net = Res().eval()
    xs = [torch.randn(64, 8)]
    cm = rapidnn.compose(net, xs, 32, 32)
    kinds = [op.kind for op in cm.ops]
    assert "add" in kinds
    out = cm(xs[0])
    assert torch.corrcoef(torch.stack([out.flatten(), net(xs[0]).flatten()]))[0, 1] > 0.95


def test_composition_is_identical_across_processes():
    """String hashing differs between processes; nothing may depend on set/dict-hash order."""
    import os
    import subprocess
    import sys

    script = (
        "import hashlib, torch, rapidnn\n"
        "from rapidnn.workloads.models import mlp\n"
        "torch.manual_seed(0)\n"
        "m = mlp((64, 32, 16, 5)).eval()\n"
        "cal = [torch.rand(16, 64, generator=torch.Generator().manual_seed(i)) for i in (1, 2)]\n"
        "cm = rapidnn.compose(m, cal, 8, 8, calibration_values=100)\n"
        "h = hashlib.sha256()\n"
        "for k, v in sorted(cm.state_dict().items()):\n"
        "    h.update(v.numpy().tobytes())\n"
        "print(h.hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def _same(a, b, x) -> bool:
    """Two composed models with the same state and the same outputs on ``x``."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa) and \
        torch.equal(a(x), b(x))


def test_calibration_data_forms(small_mlp, mlp_batches):
    """A tensor (one batch), a list, a DataLoader, (x, y) pairs; a smaller last batch."""
    x = torch.cat(mlp_batches)
    ref = rapidnn.compose(small_mlp, [x])
    assert _same(rapidnn.compose(small_mlp, x), ref, x)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, torch.zeros(48)),
                                         batch_size=20)  # batches of 20, 20, 8
    split = [x[:20], x[20:40], x[40:]]
    assert _same(rapidnn.compose(small_mlp, loader), rapidnn.compose(small_mlp, split), x)
    assert _same(rapidnn.compose(small_mlp, [[b] for b in split]),
                 rapidnn.compose(small_mlp, split), x)
    ints = rapidnn.compose(small_mlp, [(x * 4).long()])
    assert _same(ints, rapidnn.compose(small_mlp, [(x * 4).long().float()]), x)


@pytest.mark.parametrize(
    ("data", "message"),
    [([torch.rand(0, 64)], "calibration: batch 0 (shape (0, 64), torch.float32) is an empty "
                           "batch"),
     ([torch.rand(8, 64), torch.rand(8, 64), torch.rand(8, 64), torch.rand(5, 63)],
      "calibration: batch 3 has shape (5, 63), the first had (8, 64)"),
     ([torch.rand(8, 64), torch.rand(8, 1, 64)], "batch 1 has shape (8, 1, 64)"),
     ([torch.rand(8, 64), torch.full((8, 64), float("inf"))],
      "batch 1 (shape (8, 64), torch.float32) contains NaN or infinite values"),
     ([torch.rand(64)], "batch 0 (shape (64,), torch.float32) has no batch dimension"),
     ([torch.rand(8, 64, dtype=torch.complex64)], "torch.complex64) is not real-valued"),
     ([torch.rand(8, 64, device="meta")], "is on the meta device"),
     ([()], "batch 0 is a tuple"),
     ([{"x": torch.rand(8, 64)}], "batch 0 is a dict; calibration batches must be tensors"),
     ([(np.zeros((8, 64)), np.zeros(8))], "batch 0 is a ndarray"),
     ("abc", "batch 0 is a str"),
     (None, "calibration_data must be a tensor or an iterable of batches, got NoneType")],
)
def test_bad_calibration_batches_are_named(small_mlp, data, message):
    with pytest.raises(ComposeError) as err:
        rapidnn.compose(small_mlp, data)
    assert message in str(err.value)


def test_non_finite_parameters_are_named_before_clustering(small_mlp, mlp_batches):
    with torch.no_grad():
        small_mlp[-1].bias[1] = float("nan")
    with pytest.raises(ValueError, match=r"^layer '5': bias contains NaN"):
        rapidnn.compose(small_mlp, mlp_batches)
    with torch.no_grad():
        small_mlp[-1].bias[1] = 0.0
        small_mlp[1].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"^layer '1': weight contains infinite"):
        rapidnn.compose(small_mlp, mlp_batches)


@pytest.mark.parametrize("layer", [nn.Linear(64, 5), nn.Conv2d(1, 2, 3)])
def test_a_bare_layer_composes_like_the_same_layer_in_a_sequential(layer, mlp_batches):
    torch.manual_seed(0)
    batches = mlp_batches if isinstance(layer, nn.Linear) else \
        [b.reshape(4, 1, 16, 16) for b in mlp_batches]
    bare = rapidnn.compose(layer, batches, 8, 8)
    assert _same(bare, rapidnn.compose(nn.Sequential(layer), batches, 8, 8), batches[0])


def test_a_model_without_weighted_layers_is_refused(mlp_batches):
    with pytest.raises(ComposeError, match="Sequential has no Linear or Conv2d layer"):
        rapidnn.compose(nn.Sequential(nn.ReLU(), nn.Flatten()), mlp_batches)
    with pytest.raises(ComposeError, match="ReLU has no Linear or Conv2d layer"):
        rapidnn.compose(nn.ReLU(), mlp_batches)


def test_a_model_that_is_no_module_or_raises_or_is_elsewhere(mlp_batches):
    class Raises(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(64, 2)

        def forward(self, x):
            return self.fc(x).reshape(7, -1)  # fails on the example batch

    with pytest.raises(ValueError, match=r"expects a torch\.nn\.Module, got function"):
        rapidnn.compose(lambda x: x, mlp_batches)
    with pytest.raises(ValueError, match="running Raises on the example input of shape"):
        rapidnn.compose(Raises(), mlp_batches)
    with pytest.raises(ValueError, match="on device meta"):
        rapidnn.compose(nn.Linear(64, 2).to("meta"), mlp_batches)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"weight_clusters": True}, "weight_clusters: expected an integer, not a bool"),
     ({"overrides": {"linear": {"input_clusters": False}}},
      "overrides.linear.input_clusters: expected an integer, not a bool"),
     ({"acc_bits": 2}, "acc_bits: Input should be greater than or equal to 8 (got 2)")],
)
def test_option_errors_name_the_field_on_their_first_line(small_mlp, mlp_batches, kwargs,
                                                          message):
    with pytest.raises(ComposeError) as err:
        rapidnn.compose(small_mlp, mlp_batches, **kwargs)
    first = str(err.value).splitlines()[0]
    assert first.startswith("invalid compose options: ") and message in first
