import math

import pytest
import torch

import rapidnn
from rapidnn.accel.simulator import example_inputs, model_trace
from rapidnn.hardware import NetworkShape, mlp
from rapidnn.hardware.costs import compare, estimate


@pytest.fixture
def composed(small_mlp, mlp_batches):
    return rapidnn.compose(small_mlp, mlp_batches, 16, 16)


def test_example_inputs_are_codebook_values(composed):
    x = example_inputs(composed, batch=4)
    assert x.shape == (4, 64)
    values = composed.codebooks[composed.source.input.name].quantized().float()
    assert torch.isin(x, values).all()


def test_estimate_composed_model_on_every_architecture(composed):
    trace = model_trace(composed)
    for hw in ("rapidnn", "isaac", "pipelayer", "gpu"):
        est = estimate(composed, hw, trace=trace)
        assert est.energy_j > 0 and est.throughput_ips > 0 and est.latency_s > 0


def test_estimate_shapes_and_modules(small_mlp):
    est = estimate(mlp([64, 32, 16, 5]), "isaac")
    assert est.energy_j > 0
    est2 = estimate(small_mlp, "gpu", inputs=torch.rand(2, 64))
    assert est2.energy_j > 0
    with pytest.raises(ValueError, match="inputs"):
        estimate(small_mlp, "gpu")


def test_compare_ratios_are_consistent(composed):
    c = compare(composed, name="tiny")
    d = c.to_dict()
    assert set(d["baselines"]) == {"isaac", "pipelayer", "gpu"}
    for name, row in d["baselines"].items():
        assert math.isclose(row["energy_efficiency"],
                            c.baselines[name].energy_j / c.rapidnn.energy_j)
        assert math.isclose(row["speedup"],
                            c.rapidnn.throughput_ips / c.baselines[name].throughput_ips)
    assert set(d["policies"]) == {"as-published", "iso-area", "iso-power", "filled",
                                  "precision-matched"}
    published = d["policies"]["as-published"]
    for name, row in d["baselines"].items():
        assert published[name]["energy_efficiency"] == pytest.approx(row["energy_efficiency"])
        assert published[name]["speedup"] == pytest.approx(row["speedup"])
    mine = d["rapidnn"]
    assert 0 < mine["before"]["row_occupancy"] <= mine["row_occupancy"] <= 1
    assert mine["throughput_ips"] >= mine["before"]["throughput_ips"]
    assert isinstance(NetworkShape.from_trace(c.trace), NetworkShape)


def test_compare_layers_carry_the_simulators_blocks(composed):
    trace = model_trace(composed)
    layers = compare(composed, trace=trace, name="tiny").to_dict()["rapidnn"]["layers"]
    sim = {lt.name: lt.blocks for lt in trace.layers if lt.blocks}
    assert sim and {lay["name"]: lay["blocks"] for lay in layers if lay["name"] in sim} == sim


def test_audit_of_a_composed_model(composed):
    from rapidnn.hardware.costs import audit

    a = audit(composed, name="tiny", sweep_keys=["rapidnn.rna_block.energy.nor_cycle"],
              factors=(0.01, 1.0, 100.0))
    assert a["paper"]["isaac"] == {"energy_efficiency": 68.4, "speedup": 48.1}
    names = [s["name"] for s in a["scenarios"]]
    assert "default" in names and "policy:filled" in names
    assert {"isaac", "pipelayer", "gpu"} <= set(a["scenarios"][0])
    assert set(a["smallest_changes"]) == {f"{b}.{m}" for b in ("isaac", "pipelayer", "gpu")
                                          for m in ("energy_efficiency", "speedup")}


def test_the_energy_splits_by_component_and_by_action_add_up(composed):
    for hw in ("rapidnn", "isaac", "pipelayer", "gpu"):
        est = estimate(composed, hw)
        comp, act = est.breakdown(), est.breakdown("action")
        assert sum(act.values()) == pytest.approx(est.energy_j, rel=1e-9), hw
        assert sum(comp.values()) == pytest.approx(est.energy_j, rel=1e-9), hw
        for c, joules in comp.items():  # every component is the sum of its actions
            parts = [v for k, v in act.items() if k == c or k.startswith(c + ".")]
            assert sum(parts) == pytest.approx(joules, rel=1e-9), (hw, c)
    rapid = estimate(composed, "rapidnn").breakdown("action")
    assert len([k for k in rapid if k.startswith("rna_block.")]) > 1  # the RNA block's work split
