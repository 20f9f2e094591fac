"""``sweep``: points, resumability, option changes, Pareto front, smallest (w, u)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rapidnn.experiments.sweep as sweep
from rapidnn.budget import QUICK
from rapidnn.experiments.common import parse_int_list
from rapidnn.selection import search_order

TINY = QUICK.replace(name="tiny", test_images=200, val_images=52, train_batches=2,
                     sim_images=16, approx_images=16, max_rounds=1, sweep_values=(4, 8))


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch):
    calls: list[tuple[int, int]] = []
    real = sweep.evaluate_point

    def counting(wl, w, u, *args, **kwargs):
        calls.append((w, u))
        return real(wl, w, u, *args, **kwargs)

    monkeypatch.setattr(sweep, "evaluate_point", counting)
    return calls


def _run(out: Path, **kw):
    args = {"out": out, "budget": TINY, "progress": False}
    return sweep.run_sweep("isolet-mlp", kw.pop("ws", [4, 8]), kw.pop("us", [4]),
                           **{**args, **kw})


def test_sweep_points_files_and_resume(tiny, counter, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    doc = _run(out)
    assert counter == [(4, 4), (8, 4)]
    on_disk = json.loads((out / "sweep.json").read_text())
    assert on_disk["complete"] and len(on_disk["points"]) == 2
    for p in on_disk["points"]:
        assert p["energy_j"] > 0 and p["bytes_per_neuron"] > 0
        assert p["quality_loss"] == pytest.approx(doc["float_accuracy"]
                                                  - p["composed_accuracy"])
        assert p["quality_loss"] == pytest.approx(
            (p["float_only"] - p["composed_only"]) / on_disk["test_images"])
        assert p["quality_loss_se"] >= 0
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert "w" in (out / "sweep.txt").read_text()
    assert any(p["pareto"] for p in on_disk["points"])

    counter.clear()
    again = _run(out)
    assert counter == []  # every point was already done
    assert again["points"] == doc["points"]

    with pytest.raises(sweep.SweepOptionsError, match="--restart"):
        _run(out, us=[4, 8])
    _run(out, us=[4, 8], restart=True)
    assert counter == [(4, 4), (4, 8), (8, 4), (8, 8)]


def test_interrupted_sweep_resumes(tiny, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "sw"
    real = sweep.evaluate_point
    calls: list[tuple[int, int]] = []

    def flaky(wl, w, u, *args, **kwargs):
        calls.append((w, u))
        if w == 8:
            raise KeyboardInterrupt
        return real(wl, w, u, *args, **kwargs)

    monkeypatch.setattr(sweep, "evaluate_point", flaky)
    with pytest.raises(KeyboardInterrupt):
        _run(out)
    partial = json.loads((out / "sweep.json").read_text())
    assert not partial["complete"] and [p["weight_clusters"] for p in partial["points"]] == [4]
    monkeypatch.setattr(sweep, "evaluate_point", real)
    calls.clear()
    monkeypatch.setattr(sweep, "evaluate_point",
                        lambda wl, w, u, *a, **k: (calls.append((w, u)), real(wl, w, u, *a,
                                                                               **k))[1])
    doc = _run(out)
    assert calls == [(8, 4)] and doc["complete"] and len(doc["points"]) == 2


def test_sweep_with_retraining(tiny, tmp_path: Path) -> None:
    doc = _run(tmp_path / "sw", ws=[4], mode="all", max_rounds=1, plot=False)
    (p,) = doc["points"]
    assert p["retrain_rounds"] == 1 and "accuracy_before_retraining" in p and p["retrained"]
    assert doc["options"]["max_rounds"] == 1
    assert doc["options"]["retrain_version"] == sweep.RETRAIN_VERSION
    with pytest.raises(ValueError, match="unknown sweep mode"):
        _run(tmp_path / "other", mode="some")


def _fake_point(losses: dict[tuple[int, int], float], retrained_losses: dict):
    """An evaluate_point stand-in: memory grows with w and u; loss from the tables."""
    calls: list[tuple[int, int, bool]] = []

    def point(wl, w, u, splits, budget, reference, *, retrain, **kw):
        calls.append((w, u, retrain))
        float_acc = int((reference[0] == reference[1]).sum()) / len(reference[1])
        loss = retrained_losses[(w, u)] if retrain else losses[(w, u)]
        return {"weight_clusters": w, "input_clusters": u, "float_accuracy": float_acc,
                "composed_accuracy": float_acc - loss, "quality_loss": loss,
                "accuracy_before_retraining": float_acc - losses[(w, u)],
                "bits_per_neuron": 10 * w + u, "bytes_per_neuron": (10 * w + u) / 8,
                "energy_j": 1e-6 * (w + u), "retrained": retrain,
                **({"retrain_rounds": 1} if retrain else {})}

    return point, calls


def test_search_retrains_in_ascending_memory_until_within(tiny, tmp_path, monkeypatch) -> None:
    # memory order (10 w + u): (4,4) (4,8) (4,16) (8,4) (8,8) (8,16) (16,4) ...
    before = {(4, 4): 0.1, (4, 8): 0.1, (4, 16): 0.1, (8, 4): 0.015, (8, 8): 0.014,
              (8, 16): 0.010, (16, 4): 0.002, (16, 8): 0.002, (16, 16): 0.001}
    after = {k: v / 4 for k, v in before.items()}  # (8, 16) is the first within 0.003
    point, calls = _fake_point(before, after)
    monkeypatch.setattr(sweep, "evaluate_point", point)
    args = {"ws": [4, 8, 16], "us": [4, 8, 16], "mode": "search", "plot": False,
            "retrain_limit": 0.02}
    doc = _run(tmp_path / "sw", **args)
    assert [c for c in calls if c[2]] == [(8, 4, True), (8, 8, True), (8, 16, True)]
    best = doc["smallest_within_tolerance"]
    assert (best["weight_clusters"], best["input_clusters"]) == (8, 16) and best["retrained"]
    status = {(p["weight_clusters"], p["input_clusters"]): p["search"] for p in doc["points"]}
    assert all(status[(4, u)].startswith("not retrained (loss 10.00 points") for u in (4, 8, 16))
    assert status[(8, 4)] == status[(8, 8)] == status[(8, 16)] == "retrained"
    assert all(status[(16, u)].startswith("not needed") for u in (4, 8, 16))
    calls.clear()  # a rerun resumes: nothing is evaluated again
    assert _run(tmp_path / "sw", **args)["smallest_within_tolerance"] == best
    assert calls == []


def test_search_reports_most_accurate_when_nothing_is_within(tiny, tmp_path,
                                                             monkeypatch) -> None:
    losses = {(4, 4): 0.05, (8, 4): 0.01}
    point, calls = _fake_point(losses, {(4, 4): 0.04, (8, 4): 0.008})
    monkeypatch.setattr(sweep, "evaluate_point", point)
    doc = _run(tmp_path / "sw", mode="search", plot=False)
    assert calls == [(4, 4, False), (8, 4, False), (8, 4, True)]
    assert doc["smallest_within_tolerance"] is None
    assert (doc["most_accurate"]["weight_clusters"], doc["most_accurate"]["quality_loss"]) \
        == (8, 0.008)


def test_search_on_a_real_workload(tiny, tmp_path: Path) -> None:
    doc = _run(tmp_path / "sw", ws=[4, 8], us=[4, 8], mode="search", retrain_limit=1.0,
               max_rounds=1, plot=False)
    first = search_order(doc["points"])[0]
    assert first["search"] == "retrained" and first["retrained"]
    best = doc["smallest_within_tolerance"]
    if best is not None:  # every point smaller than the answer was retrained and failed
        for p in search_order(doc["points"]):
            if p is best or p == best:
                break
            assert p["retrained"] and p["quality_loss"] > 0.003


def test_parse_int_list() -> None:
    assert parse_int_list("16, 4,8,4", "--w") == [4, 8, 16]
    for bad, msg in (("4,x", "'x' is not an integer"), ("", "comma-separated"),
                     ("1,4", "out of range")):
        with pytest.raises(ValueError, match=msg):
            parse_int_list(bad, "--w")


def test_search_takes_a_point_within_tolerance_before_retraining_as_it_is(
        tiny, tmp_path, monkeypatch) -> None:
    losses = {(4, 4): 0.01, (8, 4): 0.002}
    point, calls = _fake_point(losses, {(4, 4): 0.008, (8, 4): 0.0})
    monkeypatch.setattr(sweep, "evaluate_point", point)
    doc = _run(tmp_path / "sw", mode="search", plot=False)
    assert calls == [(4, 4, False), (8, 4, False), (4, 4, True)]
    best = doc["smallest_within_tolerance"]
    assert (best["weight_clusters"], best["retrained"]) == (8, False)
    assert best["search"] == "within tolerance before retraining"


def test_other_retraining_options_keep_the_composed_points(tiny, tmp_path, monkeypatch) -> None:
    losses = {(4, 4): 0.01, (8, 4): 0.01}
    point, calls = _fake_point(losses, {(4, 4): 0.008, (8, 4): 0.002})
    monkeypatch.setattr(sweep, "evaluate_point", point)
    _run(tmp_path / "sw", mode="search", plot=False)
    assert calls == [(4, 4, False), (8, 4, False), (4, 4, True), (8, 4, True)]
    calls.clear()
    doc = _run(tmp_path / "sw", mode="search", plot=False, retrain_limit=0.005)
    # both retrained points are measured again as composed; the new limit skips both
    assert calls == [(4, 4, False), (8, 4, False)]
    assert doc["smallest_within_tolerance"] is None
    assert all(p["search"].startswith("not retrained") for p in doc["points"])
    _run(tmp_path / "sw", mode="search", plot=False)
    calls.clear()
    monkeypatch.setattr(sweep, "RETRAIN_VERSION", sweep.RETRAIN_VERSION + 1)
    _run(tmp_path / "sw", mode="search", plot=False)
    # a new retraining method: its points are retrained again, the composed ones are kept
    assert calls == [(4, 4, False), (8, 4, False), (4, 4, True), (8, 4, True)]
    with pytest.raises(sweep.SweepOptionsError, match="weight_clusters"):
        _run(tmp_path / "sw", ws=[4, 16], mode="search", plot=False)


def _sweep_file(**changes) -> str:
    point = {"weight_clusters": 4, "input_clusters": 4, "float_accuracy": 0.9,
             "composed_accuracy": 0.89, "quality_loss": 0.01, "bits_per_neuron": 44,
             "bytes_per_neuron": 5.5, "energy_j": 1e-6}
    doc = {"format": sweep.FORMAT, "options": {}, "points": [point]}
    for key, value in changes.items():
        if key == "point":
            point.update(value)
        elif value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc)


@pytest.mark.parametrize(("content", "message"), [
    ("{oops", "not a readable JSON sweep file"),
    ("[1, 2]", "not a rapidnn sweep file \\(format 'list'"),
    ('{"format": "rapidnn-sweep-v0"}', "not a rapidnn sweep file \\(format 'rapidnn-sweep-v0'"),
    (_sweep_file(options=None), "field options: missing"),
    (_sweep_file(points="all"), "field points: input should be a valid list"),
    (_sweep_file(point={"weight_clusters": "4"}),
     "field points.0.weight_clusters: input should be a valid integer"),
    (_sweep_file(point={"retrained": 1}), "field points.0.retrained: input should be a valid "
                                          "boolean"),
])
def test_a_hand_edited_sweep_file_is_one_clear_error(tiny, tmp_path: Path, content: str,
                                                     message: str) -> None:
    out = tmp_path / "sw"
    out.mkdir()
    (out / "sweep.json").write_text(content)
    with pytest.raises(sweep.SweepFileError, match=f"^{out / 'sweep.json'}: {message}") as err:
        _run(out)
    assert str(err.value).endswith("--restart to discard it") and "\n" not in str(err.value)
    assert (out / "sweep.json").read_text() == content  # not overwritten


def test_a_second_sweep_into_a_folder_in_use_fails_at_once(tiny, counter, tmp_path) -> None:
    from rapidnn._files import FolderInUseError, locked

    out = tmp_path / "sw"
    with locked(out), pytest.raises(FolderInUseError, match=f"{out} is in use .* --out$"):
        _run(out, ws=[16])
    assert counter == []
    doc = _run(out)  # free again
    assert len(doc["points"]) == 2 and not (out / ".rapidnn.lock").exists()


def test_a_second_reproduce_into_a_folder_in_use_fails_at_once(tiny, tmp_path) -> None:
    from rapidnn._files import FolderInUseError, locked
    from rapidnn.experiments.reproduce import run_reproduce

    out = tmp_path / "out"
    with locked(out), pytest.raises(FolderInUseError, match="in use by another rapidnn run"):
        run_reproduce(TINY, out, shape_networks=[], progress=False)
    assert not out.exists()
