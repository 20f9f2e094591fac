"""Block models in isolation, the search evaluation paths, mapping, trace plumbing, API."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import tree as explicit_tree
from sim_models import Residual, build, compose_options, inputs, networks
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from rapidnn.accel import (
    SimConfig,
    Simulator,
    Trace,
    approximation_sweep,
    merge_traces,
    simulate,
    simulate_dataset,
)
from rapidnn.accel import assoc_memory as am
from rapidnn.accel.adder import split_tree_additions, tree_additions, value_additions
from rapidnn.accel.crossbar import Geometry, ProductTableCrossbar
from rapidnn.workloads.models import mlp

# adder ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100, 784])
@pytest.mark.parametrize("rows", [1, 2, 7, 64, 1024])
def test_split_tree_matches_explicit_reduction(n, rows):
    adds: list[int] = []
    final = explicit_tree([16] * n, rows, adds)
    counts, width = split_tree_additions(n, 16, rows)
    want: dict[int, int] = {}
    for a in adds:
        want[a] = want.get(a, 0) + 1
    assert counts == want
    assert width == final
    assert sum(counts.values()) == n - 1  # n operands need n - 1 additions however split


def test_tree_additions_widths_and_bias():
    assert tree_additions(8, 10) == {10: 4, 11: 2, 12: 1}
    assert tree_additions(1, 10) == {}
    tree, bias = value_additions(4, 8, 1024, 32)
    assert tree == {8: 2, 9: 1} and bias == {32: 1}
    assert value_additions(0, 8, 1024, 32) == ({}, {})


def test_crossbar_lookup_and_operand_rows():
    torch.manual_seed(0)
    cm = build(mlp((6, 5, 3)), (6,), {"weight_clusters": 4, "input_clusters": 5,
                                      "per_channel": True, "table_bits": 9})
    layer = cm.ops[2]
    xb = ProductTableCrossbar(layer.table, layer.weight_codes, layer.weight_values,
                              layer.input_values, layer.spec["entry_bits"],
                              Geometry("linear", 5, 6))
    assert not xb.rank_one and xb.groups == 5
    a = layer.weight_codes.long()
    for o in range(5):
        for k in range(6):
            for b in range(5):
                want = int(layer.table[o, a[o, k], b])
                assert int(xb.lookup(torch.tensor(o), a[o, k], torch.tensor(b))) == want
    rows = xb.operand_rows()
    assert torch.equal(rows[2, 3], layer.table[2, a[2, 3]])
    assert xb.rows_needed(1024) == 1  # 4 x 5 entries of 16 bits
    plain = build(mlp((6, 5, 3)), (6,), {"weight_clusters": 4, "input_clusters": 5})
    lp = plain.ops[2]
    xr = ProductTableCrossbar(lp.table, lp.weight_codes, lp.weight_values, lp.input_values,
                              lp.spec["entry_bits"], Geometry("linear", 5, 6))
    assert xr.rank_one
    assert torch.equal(xr.synapse_weights(), lp.weight_values[0, lp.weight_codes.long()])


# associative memory ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.integers(-300, 300), min_size=0, max_size=20), st.integers(1, 3),
       st.sampled_from([(1 << 21, 1 << 18), (16, 64), (16, 16)]))
def test_steplut_counts_like_bucketize(keys, groups, caps):
    keys = sorted(keys)
    kt = torch.tensor(keys, dtype=torch.int64).reshape(1, -1).repeat(groups, 1)
    kt[1:] += torch.arange(1, groups).reshape(-1, 1) * 7  # different groups, still sorted
    lut = am.StepLUT.build(kt, -512, 511, *caps)
    q = torch.arange(-512, 512).reshape(1, -1).repeat(groups, 1)
    want = torch.searchsorted(kt, q, right=True)
    if lut is None:
        assert caps != (1 << 21, 1 << 18)
        return
    group = torch.arange(groups).reshape(-1, 1)
    assert torch.equal(lut.lookup(q, None, group), want)
    assert torch.equal(lut.lookup(q.float(), None, group), want)
    assert torch.equal(lut.lookup(q.to(torch.int32), None, group), want)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.lists(st.floats(-1e6, 1e6, width=32), max_size=16),
       st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), max_size=40))
def test_input_am_matches_bucketize(mids, xs):
    m = torch.tensor(sorted(mids), dtype=torch.float64)
    x = torch.tensor([*xs, 0.0, -0.0, *sorted(mids)], dtype=torch.float32)
    dev = am.InputAM(m, torch.arange(len(mids) + 1, dtype=torch.float32))
    want = torch.bucketize(x.double(), m, right=False)
    assert torch.equal(dev.search(x), want)
    assert torch.equal(dev.search(x.double()), want)
    assert torch.equal(dev.search_values(x), want.float())


def test_input_am_signed_zero_and_ties():
    x = torch.tensor([-3.5, -(2.0**-100), -0.0, 0.0, 2.0**-100, 0.25, 0.5, 0.75, 7.0])
    mids = torch.tensor([-(2.0**-100), 0.0, 0.5], dtype=torch.float64)
    dev = am.InputAM(mids)
    ref = torch.bucketize(x.double(), mids, right=False)  # ties take the lower code
    assert torch.equal(dev.search(x), ref)
    assert torch.equal(dev.search(x.double()), ref)
    neg_zero = am.InputAM(torch.tensor([-0.0, 1.0], dtype=torch.float64))
    assert torch.equal(neg_zero.search(torch.tensor([-0.0, 0.0, 0.5])), torch.tensor([0, 0, 1]))
    odd = am.InputAM(torch.tensor([0.1, 0.3], dtype=torch.float64))  # not float32 values
    xf = torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert torch.equal(odd.search(xf), torch.bucketize(xf.double(), odd.midpoints))
    assert odd._luts[torch.float32] is not None
    close = am.InputAM(torch.tensor([0.5, 0.5 + 2**-20], dtype=torch.float64))  # one bucket
    xc = torch.tensor([0.5, 0.5 + 2**-21, 0.6])
    assert torch.equal(close.search(xc), torch.bucketize(xc.double(), close.midpoints))
    assert close._luts[torch.float32] is None  # fell back to the sorted search


def test_threshold_am_word_width_rows_and_truncation():
    th = torch.tensor([[-1000, -5, 3, 20, 10**9]])  # always, finite..., never
    dev = am.ThresholdAM(th, vmin=-1000, vmax=500)
    assert dev.word_bits == 6  # |20| needs 5 bits + sign
    assert dev.rows == 6
    assert dev.stored.tolist() == [[-32, -5, 3, 20, 32]]
    v = torch.arange(-1000, 501)  # every reachable value
    assert torch.equal(dev.search(v), torch.bucketize(v, th[0], right=True))
    approx = am.ThresholdAM(th, vmin=-1000, vmax=500, approx_bits=3)  # buckets of 8
    assert approx.shift == 3
    q = torch.clamp(v, -32, 31) // 8
    want = (approx.stored[0] // 8 <= q.reshape(-1, 1)).sum(1)
    assert torch.equal(approx.search(v), want)
    assert bool((approx.search(v) >= dev.search(v)).all())
    same = am.ThresholdAM(th, vmin=-1000, vmax=500, approx_bits=64)
    assert same.exact and torch.equal(same.search(v), dev.search(v))


@pytest.mark.parametrize("caps", [(16, 1 << 10), (16, 16)])
def test_bucketed_and_sorted_search_paths_stay_exact(monkeypatch, caps):
    """Force the bucketed StepLUT and the sorted-search fallback on real networks."""
    monkeypatch.setattr(am, "DIRECT_MAX", caps[0])
    monkeypatch.setattr(am, "LUT_MAX", caps[1])
    torch.manual_seed(0)
    for opts in ({"weight_clusters": 6, "input_clusters": 9},
                 {"weight_clusters": 5, "input_clusters": 7, "bias_mode": "threshold",
                  "per_channel": True}):
        cm = build(Residual().eval(), (1, 6, 6), opts)
        x = inputs((1, 6, 6), 3)
        ref = cm.integer_forward(x)
        for approx in (None, 4):
            res = simulate(cm, x, SimConfig(record_accumulators=True, approx_bits=approx))
            if approx is None:
                assert torch.equal(res.outputs, ref.output)
                for k, v in ref.accumulators.items():
                    assert torch.equal(res.accumulators[k], v)
            with_codes = simulate(cm, x, SimConfig(record_codes=True, approx_bits=approx))
            assert torch.equal(with_codes.outputs, res.outputs)


@pytest.mark.parametrize("h,k,s,p,d,ceil", [(7, 2, 2, 1, 1, True), (6, 3, 2, 1, 2, True),
                                             (5, 2, 1, 0, 1, False), (9, 3, 3, 1, 1, True)])
def test_pool_output_size_matches_torch(h, k, s, p, d, ceil):
    out = torch.nn.functional.max_pool2d(torch.zeros(1, 1, h, h), k, s, p, d, ceil)
    assert am.pool_output_size(h, k, s, p, d, ceil) == out.shape[-1]
    pool = am.PoolingAM((k, k), (s, s), (p, p), (d, d), ceil)
    assert tuple(pool.rows_per_window(h, h).shape) == tuple(out.shape[-2:])


# simulator API, trace, mapping ------------------------------------------------------------------


def _mlp():
    torch.manual_seed(0)
    return build(mlp((12, 10, 4)), (12,), {"weight_clusters": 8, "input_clusters": 8})


def test_trace_fields_and_json_round_trip():
    cm = _mlp()
    res = simulate(cm, inputs((12,), 6))
    tr = res.trace
    assert tr is not None and tr.batch == 6
    kinds = [lt.kind for lt in tr.layers]
    assert kinds == ["encode_input", "linear", "linear"]
    fc1, fc2 = tr.layers[1], tr.layers[2]
    assert fc1.table_lookups == 12 * 10 and fc1.product_writes == 12 * 10
    assert sum(fc1.additions.values()) == 10 * 11 + 10  # tree + bias addend per neuron
    assert fc1.am_searches == 10 and fc1.am_rows == 8 and fc1.bits_moved_tile == 10 * 3
    assert fc2.am_searches == 0 and fc2.bits_moved_tile == 0
    assert fc1.nor_cycles == sum(13 * k * c for k, c in fc1.additions.items())
    back = Trace.from_json(tr.to_json())
    assert back.to_dict() == json.loads(tr.to_json())
    assert tr.config["simulated"] and tr.config["strategy"] == "tree"


def test_merge_traces_equals_one_big_batch():
    cm = _mlp()
    x = inputs((12,), 9)
    for strategy in ("tree", "counting"):
        cfg = SimConfig(strategy=strategy)
        whole = simulate(cm, x, cfg).trace
        parts = merge_traces([simulate(cm, x[:4], cfg).trace, simulate(cm, x[4:], cfg).trace])
        assert parts.batch == whole.batch == 9
        for a, b in zip(parts.layers, whole.layers, strict=True):
            assert a.table_lookups == pytest.approx(b.table_lookups)
            assert a.nor_cycles == pytest.approx(b.nor_cycles)
            assert a.additions == pytest.approx(b.additions)


def test_counting_lookups_are_nonzero_pair_counts():
    cm = _mlp()
    x = inputs((12,), 5)
    res = simulate(cm, x, SimConfig(strategy="counting", record_codes=True))
    layer = cm.ops[2]
    a = layer.weight_codes.long()  # (10, 12)
    b = res.codes[layer.inputs[0]]  # (5, 12)
    pairs = a.unsqueeze(0) * 64 + b.unsqueeze(1)  # (5, 10, 12)
    nnz = sum(len(set(pairs[i, o].tolist())) for i in range(5) for o in range(10))
    assert res.trace.layer(layer.name).table_lookups * 5 == pytest.approx(nnz)
    sampled = simulate(cm, x, SimConfig(strategy="counting", count_sample=5))
    assert sampled.trace.layer(layer.name).table_lookups * 5 == pytest.approx(nnz)


def test_block_mapping_splits_large_layers_and_checks_tables():
    cm = _mlp()
    sim = Simulator(cm, SimConfig(blocks={"proc_rows": 5, "proc_cols": 64}))
    m = sim.mapping()[cm.ops[2].name]
    assert m.row_blocks == 3 and m.rows_per_value == 12 and m.rows_per_block == 4
    assert m.blocks >= m.row_blocks
    with pytest.raises(ValueError, match="does not fit"):
        Simulator(cm, SimConfig(blocks={"table_rows": 1, "table_cols": 64}))


def test_approx_bits_by_layer_name_and_validation():
    cm = _mlp()
    name = cm.ops[2].name
    sim = Simulator(cm, SimConfig(approx_bits={name: 3}))
    enc = sim.encoders()[name]
    assert enc["searched_bits"] == 3 and enc["word_bits"] > 3
    with pytest.raises(ValueError, match="not encoded layers"):
        Simulator(cm, SimConfig(approx_bits={"nope": 3}))
    with pytest.raises(ValueError):
        SimConfig(approx_bits=0)
    with pytest.raises(ValueError, match="shape"):
        simulate(cm, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        simulate(cm, torch.full((2, 12), float("nan")))


def test_simulate_dataset_and_approximation_sweep():
    cm = _mlp()
    x = inputs((12,), 40)
    y = cm(x).argmax(1)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    out = simulate_dataset(cm, loader)
    assert out["images"] == 40 and out["accuracy"] == 1.0 and out["agreement"] == 1.0
    assert out["composed_accuracy"] == 1.0
    assert Trace.from_dict(out["trace"]).batch == 40
    assert out["totals"]["table_lookups"] > 0
    json.dumps(out)
    unlabeled = simulate_dataset(cm, [x[:10], x[10:]], compare=False)
    assert unlabeled["accuracy"] is None and unlabeled["agreement"] is None
    rows = approximation_sweep(cm, loader, bits=[8, 4, 2])
    assert [r["bits"] for r in rows] == [None, 8, 4, 2]
    assert rows[0]["agreement"] == 1.0
    bits = [r["am_row_bits"] for r in rows]
    assert bits[0] >= bits[1] >= bits[2] >= bits[3]


@settings(max_examples=5, deadline=None, derandomize=True)
@given(networks(), compose_options())
def test_simulated_trace_feeds_the_cost_model(netspec, opts):
    hardware = pytest.importorskip("rapidnn.hardware")
    net, shape, _ = netspec
    cm = build(net, shape, opts)
    for strategy in ("tree", "counting"):
        res = simulate(cm, inputs(shape, 2), SimConfig(strategy=strategy))
        est = hardware.estimate_network(res.trace, "rapidnn")
        _same_blocks(res, est)


def _same_blocks(res, est):
    """The cost model's dense copy of every layer has the simulator's blocks."""
    by_name = {lay.name: lay for lay in est.layers}
    for lt in res.trace.layers:
        assert res.mapping[lt.name].blocks == lt.blocks
        if lt.name in by_name and by_name[lt.name].mapping:
            assert by_name[lt.name].mapping["blocks"] == lt.blocks, lt.name


def test_residual_and_pooling_blocks_agree_with_the_cost_model():
    from rapidnn.hardware import estimate_network

    torch.manual_seed(0)
    cm = build(Residual().eval(), (1, 6, 6), {"weight_clusters": 6, "input_clusters": 9})
    res = simulate(cm, inputs((1, 6, 6), 4))
    kinds = {lt.kind for lt in res.trace.layers if lt.blocks}
    assert {"conv2d", "add"} <= kinds
    _same_blocks(res, estimate_network(res.trace, "rapidnn"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    torch.manual_seed(0)
    cm = build(Residual().eval(), (1, 6, 6), {"weight_clusters": 6, "input_clusters": 9})
    x = inputs((1, 6, 6), 8)
    cpu = simulate(cm, x, SimConfig(record_accumulators=True, record_codes=True))
    gpu = simulate(cm.to("cuda"), x.cuda(), SimConfig(record_accumulators=True,
                                                      record_codes=True))
    assert torch.equal(gpu.outputs.cpu(), cpu.outputs)
    for k, v in cpu.accumulators.items():
        assert torch.equal(gpu.accumulators[k].cpu(), v)
    assert gpu.trace.to_dict() == cpu.trace.to_dict()


def test_conv_net_trace_positions():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(2 * 3 * 3, 3)).eval()
    cm = build(net, (1, 6, 6), {"weight_clusters": 4, "input_clusters": 4})
    tr = simulate(cm, inputs((1, 6, 6), 2)).trace
    conv = tr.layers[1]
    assert conv.kind == "conv2d" and conv.positions == 36 and conv.neurons == 72
    assert conv.fan_in == 9
    # padding removes products at the border: 4 corners x 4 + 16 edges x 6 + 16 inner x 9
    assert conv.table_lookups == 2 * (4 * 4 + 16 * 6 + 16 * 9)
    pool = tr.layers[2]
    assert pool.kind == "maxpool" and pool.pool_searches == 18 and pool.fan_in == 4
