"""``reproduce`` end to end on a tiny configuration (one tiny workload, one shape network)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rapidnn.budget import QUICK
from rapidnn.experiments.reproduce import run_reproduce

TINY = QUICK.replace(name="tiny", test_images=200, val_images=52, train_batches=2,
                     sim_images=16, approx_images=16, max_rounds=1, sweep_values=(4, 8))


def test_reproduce_end_to_end(tiny, tmp_path: Path) -> None:
    out = tmp_path / "out"
    results = run_reproduce(TINY, out, shape_networks=["alexnet"], progress=False)
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["quick"] is True and on_disk["workloads"][0]["name"] == "isolet-mlp"
    assert results["seconds"] == on_disk["seconds"] > 0
    (entry,) = on_disk["workloads"]
    for key in ("name", "float_accuracy", "composed_accuracy", "quality_loss",
                "weight_clusters", "input_clusters", "vs", "memory", "seconds"):
        assert key in entry
    assert 0 <= entry["float_accuracy"] <= 1 and 0 <= entry["composed_accuracy"] <= 1
    assert entry["quality_loss"] == pytest.approx(entry["float_accuracy"]
                                                  - entry["composed_accuracy"])
    assert 0 <= entry["quality_loss_se"] < 0.5
    assert "±" in (out / "report.md").read_text()
    points = on_disk["sweeps"]["points"]["isolet-mlp"]
    assert sorted((p["weight_clusters"], p["input_clusters"]) for p in points) == [
        (4, 4), (4, 8), (8, 4), (8, 8)]
    best = entry["smallest_within_tolerance"]
    if best is None:  # the most accurate point of the sweep is evaluated
        assert entry["selection"].startswith("most accurate")
        chosen = min(points, key=lambda p: (p["quality_loss"], p["bits_per_neuron"]))
    else:
        assert entry["selection"].startswith("smallest")
        chosen = best
    assert (entry["weight_clusters"], entry["input_clusters"]) == (
        chosen["weight_clusters"], chosen["input_clusters"])
    assert entry["test_images"] == 200
    for base in ("isaac", "pipelayer", "gpu"):
        assert entry["vs"][base]["energy_efficiency"] > 0 and entry["vs"][base]["speedup"] > 0
        assert on_disk["geomean"][base]["energy_efficiency"] == pytest.approx(
            entry["vs"][base]["energy_efficiency"])
    assert entry["memory"]["bytes_per_neuron"] > 0 and entry["memory"]["layers"]
    assert entry["approximation"]["rows"][0]["bits"] is None
    assert entry["retrain"] is None or entry["retrain"]["rounds"] == 1
    assert set(on_disk["machine"]) >= {"platform", "cpu_count", "torch"}
    (shape,) = on_disk["shape_networks"]
    assert shape["name"] == "alexnet" and shape["accuracy"] is None

    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "QUICK MODE" in md and "QUICK MODE" in page
    assert "68.4x" in md and "not available offline" in md and "alexnet (shape only)" in md
    assert "smallest (w, u) within 0.3 points" in md
    drawn = ("absolute.png", "energy_breakdown.png", "accuracy_vs_wu.png", "pareto.png",
             "pareto_memory.png", "accuracy_vs_bits.png", "layers_isolet-mlp.png",
             "tornado_isolet-mlp.png", "faults.png")
    assert md.count("](plots/") == len(drawn)
    assert all((out / "plots" / p).is_file() for p in drawn)
    assert page.count('src="data:image/png;base64,iVBOR') == len(drawn)
    assert "by hardware component.action" in md  # the energy split of this run
    for heading in ("Under matched policies", "Mapping and row occupancy",
                    "Audit of the paper's ratios", "Device faults and endurance"):
        assert heading in md
    assert set(entry["policies"]) == {"as-published", "iso-area", "iso-power", "filled",
                                      "precision-matched"}
    assert entry["policies"]["as-published"]["isaac"]["speedup"] == pytest.approx(
        entry["vs"]["isaac"]["speedup"])
    agree = entry["blocks_agree"]
    assert agree["layers"] > 0 and agree["equal"] == agree["layers"]
    assert 0 < entry["occupancy"]["before"] <= entry["occupancy"]["after"] <= 1
    assert entry["audit"]["smallest_changes"]["isaac.speedup"]["paper"] == 48.1
    curves = {c["block"]: c for c in entry["faults"]["curves"]}
    assert set(curves) == {"table", "processing", "am"}
    assert [p["rate"] for p in curves["table"]["points"]] == [0.0, 1e-3, 1e-2]
    assert curves["processing"]["images"] == 8 and curves["table"]["images"] == 64
    life = entry["endurance"]
    assert 0 < life["lifetime_inferences"] <= life["with_wear_levelling"]["lifetime_inferences"]
    assert on_disk["audit_geomean"][0]["name"] == "default"
    assert set(on_disk["policy_geomean"]) == set(entry["policies"])
    assert set(shape["policies"]) == set(entry["policies"])
    assert 'src="plots/' not in page
    assert not list(out.rglob("*.tmp")) and not list(out.rglob(".rapidnn.lock"))

    # a second run reuses the store: the retrained model is not retrained again
    again = run_reproduce(TINY, out, shape_networks=[], progress=False)
    if entry["retrain"] is None:  # the search took the composed model as it is
        assert again["workloads"][0]["retrain"] is None
    else:
        assert again["workloads"][0]["retrain"]["cached"] is True
    assert again["workloads"][0]["composed_accuracy"] == entry["composed_accuracy"]
