"""Comparison policies and accounting variants."""

from __future__ import annotations

import pytest

from rapidnn.hardware import EstimateOptions, NetworkShape, estimate_network, load_hardware
from rapidnn.hardware import accounting as A
from rapidnn.hardware import policies as P


@pytest.fixture(scope="module")
def net(mnist_trace):
    return mnist_trace, NetworkShape.from_trace(mnist_trace, name="mnist")


def _run(policy, net, options=None):
    trace, shape = net
    return P.evaluate(policy, trace, shape, estimate_network, options=options,
                      rapidnn_spec=load_hardware("rapidnn"))


def test_as_published_equals_plain_estimates(net):
    trace, shape = net
    res = _run("as-published", net)
    mine = estimate_network(trace, "rapidnn")
    for b in P.BASELINES:
        other = estimate_network(shape, b)
        assert res[b].ratios["energy_efficiency"] == pytest.approx(other.energy_j / mine.energy_j)
        assert res[b].ratios["speedup"] == pytest.approx(mine.throughput_ips
                                                         / other.throughput_ips)


def test_iso_area_gives_rapidnn_the_baselines_silicon(net):
    res = _run("iso-area", net)
    for b in ("isaac", "pipelayer"):
        m = res[b]
        assert m.rapidnn.area_mm2 == pytest.approx(m.baseline.area_mm2, rel=1e-3)
    assert "no modelled area" in res["gpu"].notes[0]


def test_iso_power_gives_rapidnn_the_baselines_power_budget(net):
    from rapidnn.hardware import rapidnn as R

    res = _run("iso-power", net)
    per_block = R.chip_figures(R.RapidnnHardware.from_spec(load_hardware("rapidnn"))).power_w / 8192
    for name, rated in (("isaac", 65.808), ("gpu", 180.0)):
        m = res[name]
        assert m.rapidnn.units_available * per_block == pytest.approx(rated, rel=1e-3)
        assert "budget" in m.notes[0]
    pipe = res["pipelayer"]
    assert "events at peak" in pipe.notes[0]


def test_filled_replicates_every_design(net):
    filled, published = _run("filled", net), _run("as-published", net)
    for b in ("isaac", "pipelayer"):
        assert filled[b].baseline.units_used >= published[b].baseline.units_used
    assert filled["isaac"].rapidnn.throughput_ips > published["isaac"].rapidnn.throughput_ips


def test_precision_matched_runs_baselines_at_the_codes(net):
    trace, _ = net
    assert P.operand_bits(trace) == (4, 4)
    assert P.precision_overrides(trace)["isaac.input_bits"] == 4
    assert P.precision_overrides(trace)["pipelayer.activation_bits"] == 4
    matched, published = _run("precision-matched", net), _run("as-published", net)
    assert matched["isaac"].baseline.throughput_ips == pytest.approx(
        4 * published["isaac"].baseline.throughput_ips)
    with pytest.raises(ValueError, match="unknown comparison policy"):
        _run("iso-cost", net)


def test_all_policies_in_one_call(net):
    trace, shape = net
    res = P.evaluate_all(trace, shape, estimate_network, rapidnn_spec=load_hardware("rapidnn"))
    table = P.ratios_table(res)
    assert set(table) == set(P.POLICIES)
    assert {"energy_efficiency", "speedup", "rapidnn", "baseline"} <= set(table["filled"]["gpu"])


def test_accounting_variants_change_what_they_say(mnist_trace):
    spec = load_hardware("rapidnn")
    _, per_block = A.combine(["nor-per-block"], spec)
    assert per_block["rapidnn.rna_block.energy.nor_cycle"] == pytest.approx(22.115 / 1024)
    assert "rapidnn.rna_block.energy.write_bit" not in per_block  # a row write stays per row
    _, sense = A.combine(["read-sense-amp"], spec)
    assert sense["rapidnn.rna_block.energy.read_bit"] == pytest.approx(3.45 + 125.6)
    _, cam = A.combine(["search-published-cam"], spec)
    assert cam["rapidnn.rna_block.energy.search_row_bit"] == pytest.approx(2.89)
    opts, _ = A.combine(["ungated", "entry-exact", "published-efficiency"], spec)
    assert opts == {"gating": "ungated", "entry_width": "exact",
                    "baseline_energy": "published_efficiency"}
    with pytest.raises(ValueError, match="disagree"):
        A.combine(["leakage", "ungated"], spec)
    with pytest.raises(ValueError, match="unknown accounting variant"):
        A.combine(["free-lunch"], spec)
    for v in A.VARIANTS.values():
        assert v.source and v.tag in ("published", "published-secondary", "derived", "assumed")
        assert v.plausibility.startswith(("plausible", "implausible", "optimistic"))


def test_ungated_and_leaky_isaac(mnist_trace):
    shape = NetworkShape.from_trace(mnist_trace)
    gated = estimate_network(shape, "isaac")
    ungated = estimate_network(shape, "isaac", EstimateOptions(gating="ungated"))
    leaky = estimate_network(shape, "isaac", EstimateOptions(gating="leakage"))
    assert ungated.energy_j == pytest.approx(65.808 / ungated.throughput_ips, rel=1e-3)
    share = leaky.units_used / leaky.units_available  # only the crossbars in use leak
    assert leaky.energy_j == pytest.approx(gated.energy_j + 0.078 * 65.808 * share
                                           / leaky.throughput_ips, rel=1e-3)
    pipe = estimate_network(shape, "pipelayer", EstimateOptions(gating="ungated"))
    assert any("no chip power" in n for n in pipe.notes)
