"""CLI polish (issue 23): ``--version``, help with examples, the workloads and the ``--config``
keys, long paths on one line when the output is not a terminal, and the demo on the shipped
model writing ``mlp.rapidnn``."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

import rapidnn
from rapidnn.accel.config import SimConfig
from rapidnn.cli import app
from rapidnn.hardware import EstimateOptions
from rapidnn.workloads import WORKLOADS
from rapidnn.workloads.models import mlp

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"rapidnn {rapidnn.__version__}"


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def test_help_has_examples_workloads_and_config_keys():
    for command in ("sweep", "train", "reproduce"):
        text = _help(command)
        assert "Examples" in text and f"rapidnn {command}" in text
        assert all(name in text for name in WORKLOADS), command
    for command in ("estimate", "compare", "audit"):
        text = _help(command)
        assert "Examples" in text
        assert all(key in text for key in EstimateOptions.model_fields), command
        assert all(key in text for key in SimConfig.model_fields), command
    for command in (("demo",), ("simulate",), ("compose",), ("faults",), ("report",),
                    ("hardware", "show")):
        assert "Examples" in _help(*command), command
    assert "--model" in _help("simulate") and "--model" in _help("compare")


def test_a_long_path_prints_on_one_line(tmp_path):
    folder = tmp_path / ("a-rather-long-folder-name-" * 4) / ("and-another-one-" * 4)
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    composed = rapidnn.compose(mlp((784, 16, 10)).eval(), [torch.rand(8, 1, 28, 28)], 4, 4)
    composed.metadata["dataset"] = "mnist"
    path = str(folder / "model.rapidnn")
    assert len(path) > 160
    composed.save(path)
    result = runner.invoke(app, ["simulate", path, "--limit", "5"])
    assert result.exit_code == 0, result.output
    assert any(line.startswith(f"{path} on mnist test") for line in result.output.splitlines())
    result = runner.invoke(app, ["estimate", path])
    assert result.exit_code == 0
    assert any(line.startswith("energy ") and line.endswith("mm^2")
               for line in result.output.splitlines())


def test_demo_uses_the_shipped_model_and_writes_mlp_rapidnn(tmp_path, monkeypatch):
    monkeypatch.setenv("RAPIDNN_STORE", str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["demo", "--max-rounds", "0", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    key = WORKLOADS["mnist-mlp"].key()
    assert figures["shipped_model"].endswith(f"pretrained/{key}.safetensors")
    assert "imported the shipped model" in result.output  # no training
    assert figures["saved"] == str(tmp_path / "mlp.rapidnn")
    assert rapidnn.load(tmp_path / "mlp.rapidnn").metadata["workload"] == "mnist-mlp"
    assert figures["float_accuracy"] > 0.97
    # the figures as a column, whatever a label's length; "quality loss" throughout
    rows = {line.strip().split("  ")[0]: line for line in result.stderr.splitlines()
            if line.startswith("  ")}
    assert "composed, after 0 retraining rounds" in rows
    column = {rows["float accuracy (test)"].index(f"{figures['float_accuracy']:.4f}"),
              rows["composed, before retraining"].index(
                  f"{figures['composed_accuracy_before_retraining']:.4f}"),
              rows["composed, after 0 retraining rounds"].index(
                  f"{figures['composed_accuracy']:.4f}"),
              rows["wall time"].index(f"{figures['seconds']:.1f} s")}
    assert len(column) == 1, rows
    assert "(loss" not in result.stderr and "round(s)" not in result.stderr
    assert result.stderr.count("(quality loss") == 2


def test_import_shipped_only_the_current_key(tmp_path, monkeypatch):
    import shutil

    from rich.console import Console

    from rapidnn.experiments.demo import import_shipped
    from rapidnn.workloads import shipped_folders
    from rapidnn.workloads.store import entry_paths

    monkeypatch.setenv("RAPIDNN_STORE", str(tmp_path / "store"))
    wl = WORKLOADS["mnist-mlp"]
    shipped = next(f / f"{wl.key()}.safetensors" for f in shipped_folders()
                   if (f / f"{wl.key()}.safetensors").is_file())
    (tmp_path / "old").mkdir()
    shutil.copyfile(shipped, tmp_path / "old" / "mnist-mlp-000000000000.safetensors")
    out = Console(record=True, width=300)
    assert import_shipped(wl, [tmp_path / "old"], out) is None
    assert "is not shipped" in out.export_text() and not entry_paths(wl)[0].exists()
    (tmp_path / "new").mkdir()
    shutil.copyfile(shipped, tmp_path / "new" / shipped.name)
    assert import_shipped(wl, [tmp_path / "new"], out) == tmp_path / "new" / shipped.name
    assert entry_paths(wl)[0].is_file()
