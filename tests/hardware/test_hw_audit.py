"""The audit of the paper's ratios: scenarios, sweep, tornado, smallest changes."""

from __future__ import annotations

import math

import pytest

from rapidnn.hardware import NetworkShape, estimate_network
from rapidnn.hardware import audit as AU

KEYS = ["rapidnn.rna_block.energy.nor_cycle", "rapidnn.rna_block.latency.nor_cycle",
        "isaac.crossbar_cycle_ns", "isaac.adc.energy.convert"]


@pytest.fixture(scope="module")
def result(mnist_trace):
    shape = NetworkShape.from_trace(mnist_trace, name="mnist")
    return AU.audit(mnist_trace, shape, estimate_network, sweep_keys=KEYS,
                    factors=(1e-3, 0.1, 1.0, 10.0, 1e3))


def test_scenarios_cover_policies_variants_and_structure(result):
    names = {s["name"] for s in result["scenarios"]}
    assert {"default", "policy:iso-area", "policy:iso-power", "policy:filled",
            "policy:precision-matched", "variant:nor-per-block", "variant:ungated",
            "structure:column-parallel", "favourable-vs-isaac:as-published",
            "unfavourable-vs-gpu:filled"} <= names
    by = {s["name"]: s for s in result["scenarios"]}
    for b in ("isaac", "pipelayer", "gpu"):  # favourable for the baseline it is chosen for
        assert (by[f"favourable-vs-{b}:as-published"][b]["energy_efficiency"]
                >= by["default"][b]["energy_efficiency"] * (1 - 1e-9))
    for s in result["scenarios"]:
        for b in ("isaac", "pipelayer", "gpu"):
            assert s[b]["energy_efficiency"] > 0 and s[b]["speedup"] > 0
    assert result["paper"]["pipelayer"] == {"energy_efficiency": 49.5, "speedup": 10.9}


def test_sweep_moves_the_ratios_the_right_way(result):
    rows = {r["parameter"]: r for r in result["sweep"]}
    nor = [p["isaac"]["energy_efficiency"] for p in rows[KEYS[0]]["points"]]
    assert nor == sorted(nor, reverse=True)  # cheaper NOR: better RAPIDNN efficiency
    cyc = [p["isaac"]["speedup"] for p in rows["isaac.crossbar_cycle_ns"]["points"]]
    assert cyc == sorted(cyc)  # a slower ISAAC: better RAPIDNN speedup
    assert cyc[-1] / cyc[2] == pytest.approx(1000, rel=1e-6)
    assert "structure.column-parallel" in rows and "accounting.ungated" in rows


def test_tornado_is_sorted_by_swing(result):
    t = result["tornado"]["isaac.speedup"]
    assert [r["swing"] for r in t] == sorted((r["swing"] for r in t), reverse=True)
    assert all(r["low"] <= r["high"] for r in t)


def test_smallest_changes_reach_the_paper(result, mnist_trace):
    shape = NetworkShape.from_trace(mnist_trace, name="mnist")
    for key, row in result["smallest_changes"].items():
        best = row["smallest"]
        if best is None:
            continue
        assert best["ratio"] >= row["paper"] * 0.95, key
        for c in best["changes"]:
            assert isinstance(c["plausible"], bool) and c["plausibility"]
    for row in result["smallest_rapidnn_changes"].values():  # RAPIDNN's own changes only
        for c in (row["smallest"] or {"changes": []})["changes"]:
            assert not c["change"].startswith(("isaac.", "pipelayer.", "gpu.", "policy.",
                                               "accounting.published-efficiency",
                                               "accounting.leakage", "accounting.ungated"))
    speed = result["smallest_changes"]["isaac.speedup"]["smallest"]
    assert speed is not None
    # check one answer by evaluating it from scratch
    aud = AU.Auditor(mnist_trace, shape, estimate_network)
    numbers = [c for c in speed["changes"] if "factor" in c]
    if len(numbers) == len(speed["changes"]):
        sc = AU.Scenario("check", "", overrides=tuple((c["change"], c["value"])
                                                      for c in numbers))
        assert aud.ratios(sc)["isaac"]["speedup"] == pytest.approx(speed["ratio"], rel=1e-6)


def test_crossing_interpolates_in_log_space():
    pts = [{"factor": f, "isaac": {"speedup": 2.0 * f}} for f in (0.1, 1.0, 10.0)]
    assert AU._crossing(pts, "isaac", "speedup", 4.0) == pytest.approx(2.0)
    assert AU._crossing(pts, "isaac", "speedup", 1000.0) is None


def test_tornado_plot_is_written_atomically(result, tmp_path):
    from rapidnn.report.plots import tornado_plot

    path = tornado_plot(result, tmp_path / "t.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["t.png"]
    assert math.isfinite(result["smallest_changes"]["isaac.energy_efficiency"]["default"])


def test_swept_keys_take_aliases_and_refuse_what_is_not_swept(mnist_trace):
    shape = NetworkShape.from_trace(mnist_trace, name="mnist")
    r = AU.audit(mnist_trace, shape, estimate_network, factors=(0.1, 1.0),
                 sweep_keys=["rapidnn.nor_cycle_ns"])  # the alias with_overrides takes
    swept = [row["parameter"] for row in r["sweep"] if not row["parameter"].startswith(
        ("structure.", "accounting.", "policy."))]
    assert swept == ["rapidnn.rna_block.latency.nor_cycle"]
    for bad, says in [("rapidnn.bogus", "unknown parameter key"),
                      ("bogus", "starts with one of"),
                      ("rapidnn.rna_block.area", "not swept")]:
        with pytest.raises(AU.HardwareConfigError, match=says):
            AU.audit(mnist_trace, shape, estimate_network, sweep_keys=[bad], factors=(1.0,))
