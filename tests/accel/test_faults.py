"""Device faults (issue 21): rate 0 is the fault-free simulator, a stuck cell changes exactly the
values it should (checked by hand on tiny layers), the same seed gives the same result, and
the mitigations recover what they should."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError
from torch import nn

import rapidnn
from rapidnn.accel.config import FaultConfig, SimConfig
from rapidnn.accel.faults import (
    FaultyAM,
    FaultyInputAM,
    FaultyWeightedStage,
    flip_masks,
    force,
    sign_extend,
    stuck_masks,
)
from rapidnn.accel.simulator import Simulator


def _mlp(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 6), nn.ReLU(),
                        nn.Linear(6, 4)).eval()
    return net, torch.randn(64, 12)


def _cnn(seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(4 * 3 * 3, 3)).eval()
    return net, torch.randn(32, 2, 6, 6)


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def model(request):
    net, x = (_mlp if request.param == "mlp" else _cnn)()
    return rapidnn.compose(net, x, 8, 8), x


def _outputs(cm, x, **faults) -> torch.Tensor:
    return Simulator(cm, SimConfig(faults=FaultConfig(**faults))).run(x).outputs


def test_bits_are_forced_and_read_as_twos_complement():
    v = torch.tensor([5, -3, 100, -100])
    assert sign_extend(torch.tensor([7, 8, 15]), 4).tolist() == [7, -8, -1]
    s1 = torch.tensor([8, 0, 0, 0])  # the sign bit of a 4-bit field stuck at 1
    s0 = torch.tensor([0, 2, 0, 0])  # bit 1 stuck at 0
    out = force(v, s0, s1, 4)
    assert out.tolist() == [-3, -3, 100, -100]  # 0101 -> 1101; 1101 has bit 1 clear already
    out = force(torch.tensor([-3]), torch.tensor([4]), torch.tensor([0]), 4)
    assert out.tolist() == [-7]  # 1101 -> 1001
    gen = torch.Generator().manual_seed(0)
    s0, s1 = stuck_masks((1000,), 8, 0.05, 0.5, gen)
    stuck = sum(bin(int(a) | int(b)).count("1") for a, b in zip(s0, s1, strict=True))
    assert 300 < stuck < 500  # 8000 cells at 5 %
    assert not (s0 & s1).any()
    assert flip_masks((10,), 8, 0.0, gen) is None


def test_rate_zero_is_the_fault_free_simulator(model):
    cm, x = model
    clean = Simulator(cm, SimConfig()).run(x).outputs
    for faults in [FaultConfig(), FaultConfig(spare_rows=8, table_protection="tmr"),
                   FaultConfig(layers={"0": {"table": 0.0}})]:
        sim = Simulator(cm, SimConfig(faults=faults))
        assert not any(isinstance(s, FaultyWeightedStage) for s in sim.stages)
        assert torch.equal(sim.run(x).outputs, clean)


def test_the_faulty_adder_tree_without_stuck_cells_is_exact(model):
    """The product-by-product path (used for processing faults) equals integer_forward when
    every mask is cleared."""
    cm, x = model
    sim = Simulator(cm, SimConfig(record_accumulators=True,
                                  faults=FaultConfig(processing=1e-3)))
    faulty = [s for s in sim.stages if isinstance(s, FaultyWeightedStage)]
    assert faulty and all(s.explicit for s in faulty)
    for st in faulty:
        for key, mask in st.proc.items():
            mask.fill_(1 if key == "scratch" else 0)
        st.rows = st.inner.xbar.rows = st.inner.xbar.table[
            st.inner.xbar._group_index(), st.inner.xbar.codes]
    res = sim.run(x)
    ref = cm.integer_forward(x)
    assert torch.equal(res.outputs, ref.output)
    for k, v in ref.accumulators.items():
        assert torch.equal(res.accumulators[k].to(torch.int64), v.to(torch.int64)), k


def test_a_stuck_sum_cell_changes_exactly_the_sums_written_through_it():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 2)).eval()
    x = torch.randn(16, 4)
    cm = rapidnn.compose(net, x, 4, 4)
    sim = Simulator(cm, SimConfig(record_accumulators=True,
                                  faults=FaultConfig(processing=1e-3)))
    st = next(s for s in sim.stages if isinstance(s, FaultyWeightedStage))
    for key, mask in st.proc.items():
        mask.fill_(1 if key == "scratch" else 0)
    xb = st.inner.xbar
    clean_rows = xb.table[xb._group_index(), xb.codes]  # (2, 4, u)
    st.rows = xb.rows = clean_rows
    bit = 1 << 10
    st.proc["sum1"][0, 0] = bit  # neuron 0, row 0: partial-sum bit 10 stuck at 1
    res = sim.run(x)
    b = Simulator(cm, SimConfig(record_codes=True)).run(x).codes[st.src]
    products = [[int(clean_rows[o, k, b[n, k]]) for k in range(4)] for n in range(16)
                for o in (0,)]
    bias = st.inner.adder.bias
    a, b_bits = st.A, st.B

    def stuck(v: int, width: int) -> int:  # bit 10 of a width-bit word forced to 1
        if bit >= 1 << width:  # the cell lies above the value: not written, not read
            return v
        w = (v & ((1 << width) - 1)) | bit
        return w - (1 << width) if w >= 1 << (width - 1) else w

    for n in range(16):
        p = products[n]
        row0 = stuck(p[0] + p[1], b_bits + 1)  # level 1: rows (0, 1) into row 0
        row2 = p[2] + p[3]  # rows (2, 3) into row 2 (no stuck cell)
        total = stuck(row0 + row2, b_bits + 2)  # level 2 into row 0 again
        if bias is not None:
            total = stuck(total + int(bias[0]), a)  # the bias addition, A bits, into row 0
        total = max(st.inner.adder.lo, min(st.inner.adder.hi, total))
        assert int(res.accumulators[st.name][n, 0]) == total
    ref = cm.integer_forward(x).accumulators[st.name]
    assert torch.equal(res.accumulators[st.name][:, 1].to(torch.int64), ref[:, 1])  # neuron 1


def test_a_stuck_threshold_bit_moves_exactly_the_codes_between_old_and_new_word():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    x = torch.randn(200, 6)
    cm = rapidnn.compose(net, x, 8, 8)
    sim = Simulator(cm, SimConfig(record_codes=True, record_accumulators=True,
                                  faults=FaultConfig(am=1e-9)))
    st = next(s for s in sim.stages if getattr(s, "encoder", None) is not None)
    am: FaultyAM = st.encoder.am
    base = am.base
    row = 3
    old = int(am.stored[0, row])
    new = old - (1 << (base.word_bits - 2))  # a high bit of row 3's word lost
    am.stored[0, row] = new
    res = sim.run(x)
    acc = res.accumulators[st.name].to(torch.int64).clamp(base.L, base.H)
    clean = Simulator(cm, SimConfig(record_codes=True)).run(x).codes[st.encoder.name]
    got = res.codes[st.encoder.name]
    # the highest row whose word <= the query: row 3 now matches every query >= new
    rows = torch.cat([torch.full((1,), base.L), base.stored[0]])
    rows[row] = new
    match = (rows[None, None, :] <= acc[..., None]) & torch.cat(
        [torch.ones(1, dtype=torch.bool), base.valid[0]])
    expect = (match * torch.arange(len(rows))).amax(-1)
    assert torch.equal(got, expect)
    changed = got != clean
    assert changed.any()
    assert ((acc[changed] >= new) & (acc[changed] < old)).all()


def test_a_stuck_midpoint_bit_of_the_input_am_moves_exactly_the_codes_it_should():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    x = torch.randn(300, 6)
    cm = rapidnn.compose(net, x, 8, 8)
    sim = Simulator(cm, SimConfig(record_codes=True, faults=FaultConfig(am=1e-12)))
    st = sim.stages[0]
    am: FaultyInputAM = st.am
    clean = Simulator(cm, SimConfig(record_codes=True)).run(x).codes[st.name]
    assert torch.equal(sim.run(x).codes[st.name], clean)  # no cell stuck: the same codes
    row = 4
    old = float(am.stored[0, row])
    word = torch.tensor([old], dtype=torch.float32).view(torch.int32)
    word |= 1 << 30  # the exponent's top bit stuck at 1: the midpoint grows by 2^128
    new = float(word.view(torch.float32))
    am.stored[:, row] = new
    got = sim.run(x).codes[st.name]
    mids = am.base.midpoints.clone()
    mids[row] = new  # code = the highest k with k = 0 or stored_(k-1) < x
    expect = ((mids[None, None, :] < x[..., None].double()) * torch.arange(1, len(mids) + 1)
              ).amax(-1)
    assert torch.equal(got, expect)
    changed = got != clean
    assert changed.any() and (x[changed] > old).all()  # only values past the old boundary


def test_same_seed_same_result_other_seed_other_faults(model):
    cm, x = model
    for kind, rate in [("table", 0.05), ("processing", 1e-3), ("am", 0.05),
                       ("read_flips", 0.01), ("search_flips", 0.05)]:
        a = _outputs(cm, x, **{kind: rate}, seed=1)
        b = _outputs(cm, x, **{kind: rate}, seed=1)
        assert torch.equal(a, b), kind
        c = rapidnn.simulate(cm, x, SimConfig(faults=FaultConfig(**{kind: rate}, seed=1)))
        d = rapidnn.simulate(cm, x, SimConfig(faults=FaultConfig(**{kind: rate}, seed=1)))
        assert torch.equal(c.outputs, d.outputs), kind  # simulate() repeats transient faults
        others = [_outputs(cm, x, **{kind: rate}, seed=s) for s in (2, 3, 4)]
        assert any(not torch.equal(a, o) for o in others), kind


def test_faults_degrade_the_outputs(model):
    cm, x = model
    clean = Simulator(cm, SimConfig()).run(x).outputs
    for kind in ("table", "processing", "am"):
        assert not torch.equal(_outputs(cm, x, **{kind: 0.2}), clean), kind


def test_spare_rows_repair_sparse_stuck_cells(model):
    cm, x = model
    clean = Simulator(cm, SimConfig()).run(x).outputs
    broken = _outputs(cm, x, table=2e-3, am=2e-3, seed=5)
    repaired = _outputs(cm, x, table=2e-3, am=2e-3, seed=5, spare_rows=64)
    assert not torch.equal(broken, clean)
    assert torch.equal(repaired, clean)


def test_tmr_masks_single_copy_faults_better_than_none(model):
    cm, x = model
    clean = Simulator(cm, SimConfig()).run(x).outputs.argmax(1)

    def agree(**kw) -> float:
        return sum(float((_outputs(cm, x, table=0.02, seed=s, **kw).argmax(1) == clean)
                         .float().mean()) for s in range(4))

    assert agree(table_protection="tmr") > agree()
    assert agree(table_protection="parity") >= agree() - 0.05


def test_per_layer_rates_fault_only_that_layer():
    net, x = _mlp()
    cm = rapidnn.compose(net, x, 8, 8)
    first = cm.layer_names()[0]
    sim = Simulator(cm, SimConfig(faults=FaultConfig(layers={first: {"table": 0.3}})))
    faulty = [s.name for s in sim.stages if isinstance(s, FaultyWeightedStage)]
    assert faulty == [first]


def test_bad_fault_options_are_named():
    with pytest.raises(ValidationError, match="table_protection"):
        FaultConfig(table_protection="ecc")
    with pytest.raises(ValidationError, match="unknown rate 'tables'"):
        FaultConfig(layers={"fc1": {"tables": 0.1}})
    with pytest.raises(ValidationError):
        FaultConfig(table=1.5)
    net, x = _mlp()
    cm = rapidnn.compose(net, x, 8, 8)
    with pytest.raises(ValueError, match="strategy='tree'"):
        Simulator(cm, SimConfig(strategy="counting", faults=FaultConfig(table=0.1)))
