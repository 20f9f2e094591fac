"""Merging reproduce runs (``rapidnn report``), on a trimmed copy of a real run's results
(two workloads and one shape network of the committed full run)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from rapidnn.cli.experiments import register
from rapidnn.experiments.merge import load_results, merge_results, write_results
from rapidnn.experiments.summary import geomeans

RESULTS = Path(__file__).parent / "data" / "results-two.json"
runner = CliRunner()


@pytest.fixture
def run() -> dict[str, Any]:
    return json.loads(RESULTS.read_text())


def _only(doc: dict[str, Any], names: list[str], shapes: bool, seconds: float
          ) -> dict[str, Any]:
    """A run of ``doc``'s workloads ``names`` only (as with ``reproduce --workload``)."""
    part = copy.deepcopy(doc)
    part["workloads"] = [e for e in part["workloads"] if e["name"] in names]
    part["shape_networks"] = part["shape_networks"] if shapes else []
    part["sweeps"]["points"] = {n: p for n, p in part["sweeps"]["points"].items() if n in names}
    part["geomean"], part["geomean_with_shapes"] = geomeans(part["workloads"],
                                                            part["shape_networks"])
    part["seconds"] = seconds
    return part


def test_one_complete_run_is_given_back_unchanged(run, tmp_path: Path) -> None:
    assert merge_results([run]) == run
    write_results(merge_results([run], [str(RESULTS)]), tmp_path / "o")
    assert json.loads((tmp_path / "o" / "results.json").read_text()) == run
    md = (tmp_path / "o" / "report.md").read_text()
    assert "Merged" not in md and f"Wall time: {run['seconds']:.0f} s" in md


def test_a_later_run_replaces_a_workload(run, tmp_path: Path) -> None:
    rerun = _only(run, ["isolet-mlp"], shapes=False, seconds=70.0)
    changed = rerun["workloads"][0]
    changed["float_accuracy"] += 0.01
    for ratios in changed["vs"].values():
        ratios["energy_efficiency"] *= 2
    merged = merge_results([run, rerun], ["first/results.json", "second/results.json"])

    assert [e["name"] for e in merged["workloads"]] == ["mnist-mlp", "isolet-mlp"]
    assert merged["workloads"][1] is changed and merged["workloads"][0] == run["workloads"][0]
    assert merged["shape_networks"] == run["shape_networks"]
    assert merged["sweeps"]["points"]["isolet-mlp"] is rerun["sweeps"]["points"]["isolet-mlp"]
    for base in ("isaac", "pipelayer", "gpu"):  # isolet's energy ratio doubled: sqrt(2) overall
        assert merged["geomean"][base]["energy_efficiency"] == pytest.approx(
            2 ** 0.5 * run["geomean"][base]["energy_efficiency"])
        assert merged["geomean"][base]["speedup"] == pytest.approx(
            run["geomean"][base]["speedup"])
    first, second = merged["parts"]
    assert first["source"] == "first/results.json" and not first["complete"]
    assert first["workloads"] == ["mnist-mlp"] and first["shape_networks"] == ["alexnet"]
    assert second == {"source": "second/results.json", "seconds": 70.0,
                      "machine": run["machine"], "workloads": ["isolet-mlp"],
                      "shape_networks": [], "complete": True}
    kept = run["workloads"][0]["seconds"] + run["shape_networks"][0]["seconds"]
    assert merged["seconds"] == pytest.approx(kept + 70.0)
    assert merged["machine"] == run["machine"]

    write_results(merged, tmp_path / "o")
    md = (tmp_path / "o" / "report.md").read_text()
    assert "Merged from 2 runs" in md and "second/results.json:" in md
    assert "only these rows are kept" in md
    assert load_results(tmp_path / "o") == json.loads(json.dumps(merged))


def test_parts_of_disjoint_runs_give_the_whole_run_back(run) -> None:
    a = _only(run, ["mnist-mlp"], shapes=True, seconds=100.0)
    b = _only(run, ["isolet-mlp"], shapes=False, seconds=50.0)
    merged = merge_results([a, b])
    assert merged["workloads"] == run["workloads"]
    for key in ("geomean", "geomean_with_shapes"):
        for base, ratios in run[key].items():
            assert merged[key][base] == pytest.approx(ratios)
    assert merged["seconds"] == 150.0 and all(p["complete"] for p in merged["parts"])
    # merging a merged document again keeps its runs (flattened), not one opaque part
    again = merge_results([merged, _only(run, ["isolet-mlp"], shapes=False, seconds=9.0)])
    assert [p["source"] for p in again["parts"]] == ["part 1", "part 2"]
    assert [p["workloads"] for p in again["parts"]] == [["mnist-mlp"], ["isolet-mlp"]]
    assert again["seconds"] == 109.0


def test_runs_on_different_machines_name_each(run, tmp_path: Path) -> None:
    other = _only(run, ["isolet-mlp"], shapes=False, seconds=5.0)
    other["machine"] = {**run["machine"], "cpu_count": 64}
    merged = merge_results([run, other])
    assert merged["machine"] is None
    write_results(merged, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "64 CPU(s)" in md and f"{run['machine']['cpu_count']} CPU(s)" in md


@pytest.mark.parametrize("field", ["quick", "budget", "tolerance", "values", "mode"])
def test_runs_with_different_settings_are_refused(run, field: str) -> None:
    other = copy.deepcopy(run)
    if field in ("values", "mode"):
        other["sweeps"][field] = [4] if field == "values" else "all"
    elif field == "budget":
        other["budget"] = {**run["budget"], "test_images": 10}
    else:
        other[field] = not run[field] if field == "quick" else 0.01
    with pytest.raises(ValueError, match=f"b.json: its (sweep )?{field} differs"):
        merge_results([run, other], ["a.json", "b.json"])


def test_bad_results_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such results file"):
        load_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON results file"):
        load_results(bad)
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a rapidnn reproduce results file"):
        load_results(bad)
    with pytest.raises(ValueError, match="nothing to merge"):
        merge_results([])


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    register(app)
    return app


def test_report_command(run, tmp_path: Path) -> None:
    rerun = tmp_path / "rerun"
    write_results(_only(run, ["isolet-mlp"], shapes=False, seconds=3.0), rerun)
    result = runner.invoke(_app(), ["report", str(RESULTS), str(rerun), "--out",
                                    str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert [p["source"] for p in printed["parts"]] == [str(RESULTS), str(rerun)]
    assert json.loads((tmp_path / "o" / "results.json").read_text()) == printed
    assert (tmp_path / "o" / "report.html").is_file()


@pytest.mark.parametrize("content", [None, "{oops", '{"format": "x"}'])
def test_report_command_user_errors(content: str | None, tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(_app(), ["report", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert result.output.strip().startswith("error:")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["workloads"][0]["memory"].pop("neurons"),
     "field workloads.0.memory.neurons: missing"),
    (lambda d: d["workloads"][1].update(name=3), "field workloads.1.name: input should be a "
                                                 "valid string"),
    (lambda d: d.update(workloads={"a": 1}), "field workloads: input should be a valid list"),
    (lambda d: d["sweeps"]["points"]["mnist-mlp"][0].update(energy_j="1"),
     "field sweeps.points.mnist-mlp.0.energy_j: input should be a valid number"),
    (lambda d: d.pop("budget"), "field budget: missing"),
])
def test_an_incomplete_results_file_is_one_clear_error(run, tmp_path: Path, edit,
                                                       message: str) -> None:
    edit(run)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(run))
    with pytest.raises(ValueError, match=f"^{path}: {message}"):
        load_results(path)
    result = runner.invoke(_app(), ["report", str(path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.output.startswith(f"error: {path}: {message}")
    assert not (tmp_path / "o").exists()


def test_report_into_a_folder_in_use_fails_at_once(run, tmp_path: Path) -> None:
    from rapidnn._files import locked

    out = tmp_path / "o"
    with locked(out):
        result = runner.invoke(_app(), ["report", str(RESULTS), "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert result.output.strip() == (f"error: {out} is in use by another rapidnn run (pid "
                                         f"{os.getpid()}); wait for it or choose another --out")
        assert [p.name for p in out.iterdir()] == [".rapidnn.lock"]
