"""Exporting and importing trained float models: round trip, stale and corrupt files, CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner

import rapidnn.workloads as workloads
import rapidnn.workloads.store as store
from rapidnn.cli.experiments import register
from rapidnn.workloads import WORKLOADS, WorkloadError
from rapidnn.workloads.transfer import export_trained, import_trained, list_trained


def _fail(*args, **kwargs):
    raise AssertionError("must not train: the imported model should have been used")


@pytest.fixture
def exported(tiny, tmp_path: Path) -> Path:
    """The tiny workload trained in store ``a`` and exported to folder ``pretrained``."""
    store.get_trained(tiny, progress=False, root=tmp_path / "a")
    out = tmp_path / "pretrained"
    (result,) = export_trained([tiny.name], out, root=tmp_path / "a")
    assert result.status == "exported" and result.key == tiny.key()
    assert sorted(p.name for p in out.iterdir()) == [f"{tiny.key()}.json",
                                                      f"{tiny.key()}.safetensors"]
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in out.iterdir())  # to be shared
    return out


def test_round_trip_is_used_without_training(tiny, exported: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    (result,) = import_trained([str(exported)], root=tmp_path / "b")
    assert result.status == "imported" and result.workload == tiny.name
    monkeypatch.setattr(store, "train_workload", _fail)
    original, info_a = store.get_trained(tiny, progress=False, root=tmp_path / "a")
    model, info = store.get_trained(tiny, progress=False, root=tmp_path / "b")
    for a, b in zip(original.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert info["test_accuracy"] == info_a["test_accuracy"]
    assert info["imported_from"].endswith(f"{tiny.key()}.safetensors")
    (row,) = list_trained(tmp_path / "b")
    assert row["current"] and row["workload"] == tiny.name and row["key"] == tiny.key()


def test_present_entry_is_kept_unless_overwrite(tiny, exported: Path, tmp_path: Path) -> None:
    (first,) = import_trained([str(exported / f"{tiny.key()}.safetensors")], root=tmp_path / "a")
    assert first.status == "present"
    (again,) = import_trained([str(exported)], root=tmp_path / "a", overwrite=True)
    assert again.status == "imported"


def test_stale_file_is_not_imported(tiny, exported: Path, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    changed = dataclasses.replace(tiny, recipe=tiny.recipe.replace(epochs=2))
    monkeypatch.setattr(workloads, "WORKLOADS", {**WORKLOADS, tiny.name: changed})
    (result,) = import_trained([str(exported)], root=tmp_path / "b")
    assert result.status == "stale" and result.key == tiny.key() != changed.key()
    assert not (tmp_path / "b").exists()
    (row,) = list_trained(tmp_path / "a")
    assert not row["current"] and row["workload"] == tiny.name


def test_a_bad_file_imports_nothing(tiny, exported: Path, tmp_path: Path) -> None:
    bad = exported / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(WorkloadError, match=r"bad\.safetensors is not a readable"):
        import_trained([str(exported)], root=tmp_path / "b")
    assert not (tmp_path / "b").exists()  # the good file was not imported either
    save_file({"w": torch.zeros(2)}, str(bad))
    with pytest.raises(WorkloadError, match="not a rapidnn float model"):
        import_trained([str(bad)], root=tmp_path / "b")
    info = {"key": tiny.key(), "workload": tiny.name}
    save_file({"0.weight": torch.zeros(3, 3)}, str(bad), metadata={"info": json.dumps(info)})
    with pytest.raises(WorkloadError, match="does not fit the isolet-mlp network"):
        import_trained([str(bad)], root=tmp_path / "b")
    with pytest.raises(FileNotFoundError):
        import_trained([str(tmp_path / "missing")], root=tmp_path / "b")


def test_export_of_an_untrained_workload_writes_nothing(tiny, tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="isolet-mlp is not in the store"):
        export_trained([tiny.name], tmp_path / "out", root=tmp_path / "empty")
    assert not (tmp_path / "out").exists()


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False)
    register(app)
    return app


def test_store_commands(tiny, exported: Path, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("RAPIDNN_STORE", str(tmp_path / "c"))
    result = runner.invoke(_app(), ["store", "import", str(exported), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["status"] == "imported"
    listed = runner.invoke(_app(), ["store", "list", "--json"])
    assert [e["key"] for e in json.loads(listed.stdout)["entries"]] == [tiny.key()]
    shown = runner.invoke(_app(), ["store", "list"])
    assert shown.exit_code == 0 and tiny.name in shown.stdout
    out = tmp_path / "again"
    exported_again = runner.invoke(_app(), ["store", "export", tiny.name, "--out", str(out)])
    assert exported_again.exit_code == 0 and "exported: isolet-mlp" in exported_again.stdout
    bad = runner.invoke(_app(), ["store", "import", str(tmp_path / "missing")])
    assert bad.exit_code == 2
    assert bad.output.strip().startswith("error: no such file or folder")


def test_a_warm_start_base_is_imported_as_current(tiny, exported: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The model a warm-start recipe continues is a current entry: importing it lets the
    second cycle run without training the base again."""
    stage = dataclasses.replace(tiny, recipe=tiny.recipe.replace(lr=1e-4,
                                                                 warm_start=tiny.recipe))
    monkeypatch.setattr(workloads, "WORKLOADS", {**WORKLOADS, stage.name: stage})
    (result,) = import_trained([str(exported)], root=tmp_path / "b")
    assert result.status == "imported" and result.key == tiny.key() != stage.key()
    (row,) = list_trained(tmp_path / "b")
    assert row["current"]
    trained = []
    real = store.train_workload
    monkeypatch.setattr(store, "train_workload",
                        lambda wl, *a, **k: trained.append(wl.key()) or real(wl, *a, **k))
    _, info = store.get_trained(stage, progress=False, root=tmp_path / "b")
    assert trained == [stage.key()] and info["warm_start"]["key"] == tiny.key()


def test_a_mistyped_entry_is_listed_as_unreadable_not_a_crash(tiny, tmp_path: Path) -> None:
    store.get_trained(tiny, progress=False, root=tmp_path / "a")
    sidecar = next((tmp_path / "a").rglob(f"{tiny.key()}.json"))
    info = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**info, "test_accuracy": "high"}))
    (row,) = list_trained(tmp_path / "a")
    assert "field 'test_accuracy' must be a number in [0, 1], got 'high'" in row["problem"]
    assert row["test_accuracy"] is None and row["key"] == tiny.key()
