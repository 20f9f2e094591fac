"""simulate() reuses one Simulator per (composed model, config), and notices model changes."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest
import torch
from sim_models import Residual, build, inputs
from torch import nn

from rapidnn.accel import SimConfig, Simulator, simulate
from rapidnn.accel import simulator as simmod
from rapidnn.composer.ops import WeightedLayer


def _mlp():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    return build(net, (6,), {"weight_clusters": 6, "input_clusters": 6})


@pytest.fixture(autouse=True)
def _empty_cache():
    simmod.clear_simulate_cache()
    yield
    simmod.clear_simulate_cache()


@pytest.fixture
def builds(monkeypatch):
    """Count the Simulators constructed (simulate() builds through the module's name)."""
    made: list[Simulator] = []

    class Counting(Simulator):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(simmod, "Simulator", Counting)
    return made


def assert_same_result(a, b) -> None:
    assert torch.equal(a.outputs, b.outputs)
    for got, want in ((a.codes, b.codes), (a.accumulators, b.accumulators)):
        assert (got is None) == (want is None)
        if want is not None:
            assert set(got) == set(want)
            for k, v in want.items():
                assert torch.equal(got[k], v), k
    assert (a.trace is None) == (b.trace is None)
    if b.trace is not None:
        assert a.trace.to_dict() == b.trace.to_dict()
    assert {k: m.to_dict() for k, m in a.mapping.items()} == \
        {k: m.to_dict() for k, m in b.mapping.items()}


CONFIGS = [SimConfig(), SimConfig(strategy="counting", record_codes=True),
           SimConfig(record_accumulators=True, record_codes=True, approx_bits=3),
           SimConfig(record_trace=False)]


@pytest.mark.parametrize("config", CONFIGS)
def test_cached_calls_equal_a_fresh_simulator(config):
    torch.manual_seed(0)
    for cm, shape in ((_mlp(), (6,)),
                      (build(Residual().eval(), (1, 6, 6),
                             {"weight_clusters": 4, "input_clusters": 5}), (1, 6, 6))):
        for seed in range(3):  # the first call builds, the others reuse
            x = inputs(shape, 4, seed)
            assert_same_result(simulate(cm, x, config), Simulator(cm, config).run(x))
        if config.approx_bits is None:  # exact mode: the ComposedModel's output
            assert torch.equal(simulate(cm, x, config).outputs, cm(x))


def test_second_call_reuses_the_simulator(builds):
    cm = _mlp()
    x = inputs((6,), 4)
    first = simulate(cm, x)
    assert len(builds) == 1
    second = simulate(cm, x)
    simulate(cm, x, SimConfig())  # an equal config (another object) is the same key
    simulate(cm, inputs((6,), 7, seed=3))  # another batch size too
    assert len(builds) == 1
    assert_same_result(second, first)


def test_another_config_builds_another_simulator(builds):
    cm = _mlp()
    x = inputs((6,), 4)
    simulate(cm, x, SimConfig())
    simulate(cm, x, SimConfig(strategy="counting"))
    assert len(builds) == 2
    assert builds[0].config.strategy == "tree" and builds[1].config.strategy == "counting"
    for _ in range(2):  # both stay cached
        simulate(cm, x, SimConfig())
        simulate(cm, x, SimConfig(strategy="counting"))
    assert len(builds) == 2
    other = _mlp()  # another model object (equal content): its own simulator
    simulate(other, x)
    assert len(builds) == 3


def test_cache_is_bounded_per_model(builds):
    cm = _mlp()
    x = inputs((6,), 2)
    n = simmod.SIMULATORS_PER_MODEL
    for k in range(n + 1):
        simulate(cm, x, SimConfig(nor_cycles_fixed=float(k)))
    assert len(builds) == n + 1
    assert len(simmod._cache[cm].sims) == n
    simulate(cm, x, SimConfig(nor_cycles_fixed=float(n)))  # the newest: kept
    assert len(builds) == n + 1
    simulate(cm, x, SimConfig(nor_cycles_fixed=0.0))  # the oldest: dropped, rebuilt
    assert len(builds) == n + 2


def _last_layer(cm) -> WeightedLayer:
    return [op for op in cm.ops if isinstance(op, WeightedLayer)][-1]


def test_in_place_change_invalidates(builds):
    cm = _mlp()
    x = inputs((6,), 5)
    before = simulate(cm, x, SimConfig(record_accumulators=True))
    op = _last_layer(cm)
    w = int(op.table.shape[1])
    with torch.no_grad():  # new weight codes, written into the same tensor (as a retrain
        op.weight_codes.copy_((w - 1) - op.weight_codes)  # step or load_state_dict does)
    after = simulate(cm, x, SimConfig(record_accumulators=True))
    assert len(builds) == 2
    fresh = Simulator(cm, SimConfig(record_accumulators=True)).run(x)
    assert_same_result(after, fresh)
    assert not torch.equal(after.outputs, before.outputs)
    simulate(cm, x, SimConfig(record_accumulators=True))
    assert len(builds) == 2  # unchanged since: reused


@pytest.mark.parametrize("change", ["setitem", "codebook", "replace", "load_state_dict",
                                    "spec", "module"])
def test_every_kind_of_change_invalidates(builds, change):
    cm, donor = _mlp(), _mlp()
    x = inputs((6,), 5)
    simulate(cm, x)
    op = _last_layer(cm)
    if change == "setitem":
        op.bias[0] = op.bias[0] + 1000
    elif change == "codebook":
        cb = next(iter(cm.codebooks.values()))
        with torch.no_grad():
            cb.values.mul_(1)  # same values, but written: rebuilt all the same
    elif change == "replace":
        op.table = op.table.clone()
    elif change == "load_state_dict":
        cm.load_state_dict(donor.state_dict())
    elif change == "spec":
        op.spec["acc_bits"] = int(op.spec["acc_bits"]) + 1
    else:
        cm.ops[-1] = donor.ops[-1]
    res = simulate(cm, x)
    assert len(builds) == 2
    assert torch.equal(res.outputs, Simulator(cm).run(x).outputs)


def test_untracked_writes_need_clear_simulate_cache(builds):
    cm = _mlp()
    x = inputs((6,), 5)
    before = simulate(cm, x).outputs
    op = _last_layer(cm)
    w = int(op.table.shape[1])
    op.weight_codes.data.copy_((w - 1) - op.weight_codes)  # .data: no version bump
    assert torch.equal(simulate(cm, x).outputs, before)  # documented: not seen
    simmod.clear_simulate_cache(cm)
    after = simulate(cm, x).outputs
    assert len(builds) == 2
    assert not torch.equal(after, before)
    assert torch.equal(after, Simulator(cm).run(x).outputs)


def test_inference_mode_tensors_are_not_cached(builds):
    cm = _mlp()
    with torch.inference_mode():
        for m in cm.modules():
            for k, t in list(m._buffers.items()):
                if t is not None:
                    m._buffers[k] = t.clone()
    x = inputs((6,), 3)
    a, b = simulate(cm, x), simulate(cm, x)
    assert len(builds) == 2
    assert torch.equal(a.outputs, b.outputs)
    assert cm not in simmod._cache


def test_deleted_model_frees_its_entry():
    cm = _mlp()
    res = simulate(cm, inputs((6,), 3))
    simulate(cm, inputs((6,), 3), SimConfig(strategy="counting"))
    ref = weakref.ref(cm)
    assert len(simmod._cache) == 1
    del cm
    gc.collect()
    assert ref() is None  # the cache and the result did not keep it alive
    assert len(simmod._cache) == 0
    assert res.outputs.shape == (3, 3)


def test_concurrent_calls_agree():
    cm = _mlp()
    xs = [inputs((6,), 8, seed) for seed in range(4)]
    want = [Simulator(cm, SimConfig(record_codes=True)).run(x) for x in xs]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(5):
                assert_same_result(simulate(cm, xs[i], SimConfig(record_codes=True)), want[i])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(simmod._cache[cm].sims) == 1
