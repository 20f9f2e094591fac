"""A new user's review of the CLI: help that warns of the slow options, output read as words
(one trial, quality loss, the Pareto axes, GOPS/s, a lifetime in time), errors that say what is
wrong first (not a .rapidnn file; a .rapidnn file and --model together)."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import rapidnn
from rapidnn.cli import app
from rapidnn.workloads.models import mlp

runner = CliRunner()


def _help(*command: str) -> str:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # help text re-wrapped on one line


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    cm = rapidnn.compose(mlp((784, 16, 10)).eval(), [torch.rand(8, 1, 28, 28)], 4, 4)
    cm.metadata["dataset"] = "mnist"
    path = tmp_path_factory.mktemp("review") / "m.rapidnn"
    cm.save(path)
    return path


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A user's factory (no weights file) and .npz data of 8 features."""
    root = tmp_path_factory.mktemp("own-review")
    (root / "tinynet.py").write_text(textwrap.dedent("""
        from torch import nn


        def make_net():
            return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    """))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    x = (rng.normal(size=(3, 8))[y] * 2 + rng.normal(size=(200, 8))).astype(np.float32)
    np.savez(root / "train.npz", x=x, y=y)
    return root


def test_help_warns_of_slow_options():
    text = _help("simulate")
    assert "--strategy counting --approx-bits 4 --limit 500 --json" in text
    assert "much slower" in text and "counts per bit" in text
    text = _help("faults")
    assert "--limit 200 --trials 1" in text and "product by product" in text
    assert "until one is within 0.3 points" in _help("sweep")


def test_faults_table_and_lifetime(model_file):
    result = runner.invoke(app, ["faults", str(model_file), "--limit", "20", "--trials", "1",
                                 "--rates", "0,1e-2", "--blocks", "table"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "rate losing 1 point" in out and "-1 point at" not in out
    assert "(20 images, 1 trial;" in out and "1 trials" not in out
    lifetime = next(line for line in out.splitlines() if line.startswith("lifetime"))
    assert "inferences (" in lifetime and "at the design's throughput) without" in lifetime
    assert "note:" not in result.stderr  # no processing faults: no note


def test_faults_note_when_processing_faults_are_many(model_file, monkeypatch):
    import rapidnn.experiments.faults as faults

    def stop(*args, **kwargs):
        raise ValueError("stopped here")

    monkeypatch.setattr(faults, "fault_curves", stop)
    result = runner.invoke(app, ["faults", str(model_file), "--limit", "300", "--trials", "2"])
    assert result.exit_code == 2
    assert result.stderr.startswith("note: processing-crossbar faults are simulated product "
                                    "by product (300 images x 2 trials per rate)")
    assert "--limit 200 --trials 1" in result.stderr.splitlines()[0]
    result = runner.invoke(app, ["faults", str(model_file), "--limit", "200", "--trials", "1"])
    assert result.exit_code == 2 and "note:" not in result.stderr


def test_audit_says_none_within_the_sweep_once(model_file):
    result = runner.invoke(app, ["audit", str(model_file), "--quick"])
    assert result.exit_code == 0, result.output
    assert "none within the sweep (none within the sweep)" not in result.stdout
    for line in result.stdout.splitlines():
        assert line.count("within the sweep") <= 1, line


def test_hardware_show_labels_throughput_per_second():
    result = runner.invoke(app, ["hardware", "show", "isaac"])
    assert result.exit_code == 0
    assert "peak_gops (GOPS/s)" in result.stdout and "(GOPS)" not in result.stdout


def test_a_json_file_is_not_a_rapidnn_file(tmp_path):
    sidecar = tmp_path / "some.json"
    sidecar.write_text('{"model": "mlp.rapidnn"}\n')
    result = runner.invoke(app, ["simulate", str(sidecar)])
    assert result.exit_code == 2
    assert f"{sidecar}: not a .rapidnn file (its suffix is .json" in result.stderr
    assert "truncated or corrupt" not in result.stderr and "header too large" not in result.stderr
    junk = tmp_path / "junk.rapidnn"
    junk.write_bytes(b"junk")
    assert "truncated or corrupt" in runner.invoke(app, ["simulate", str(junk)]).stderr


def test_a_rapidnn_file_and_model_together_is_said_first(model_file, own):
    result = runner.invoke(app, ["simulate", str(model_file), "--model",
                                 f"{own / 'tinynet.py'}:make_net"])
    assert result.exit_code == 2
    assert "not both" in result.stderr and "--data" not in result.stderr.split("(")[0]
    result = runner.invoke(app, ["sweep", "mnist-mlp", "--model", f"{own / 'tinynet.py'}:make_net"])
    assert result.exit_code == 2 and "not both" in result.stderr


def test_model_without_weights_notes_it_and_names_the_held_out_test(own):
    spec = f"{own / 'tinynet.py'}:make_net"
    result = runner.invoke(app, ["simulate", "--model", spec, "--data", str(own / "train.npz"),
                                 "--limit", "20"])
    assert result.exit_code == 0, result.output
    assert f"note: no --weights: using the weights {spec} returns as they are" in result.stderr
    header = result.stdout.splitlines()[0]
    assert f"test: 20% of {own / 'train.npz'} held out (20 examples)" in header
    assert "images" not in header and "(20% held out) test" not in header
    result = runner.invoke(app, ["simulate", "--model", spec, "--data", str(own / "train.npz"),
                                 "--limit", "5", "--json"])
    assert result.exit_code == 0 and "no --weights" in result.stderr
    assert result.stdout.lstrip().startswith("{")


def test_image_folder_shape_error_names_the_folder_once(model_file, tmp_path):
    from PIL import Image

    folder = tmp_path / "img" / "test"
    for name in ("a", "b"):
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name / "0.png")
    result = runner.invoke(app, ["simulate", str(model_file), "--dataset", str(folder)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {folder}: inputs of shape"), result.stderr
    assert "test test" not in result.stderr


def test_sweep_table_names_the_pareto_axes(monkeypatch, tmp_path):
    import rapidnn.experiments.sweep as sweep

    point = {"weight_clusters": 4, "input_clusters": 4, "accuracy_before_retraining": 0.9,
             "composed_accuracy": 0.91, "quality_loss": 0.01, "bytes_per_neuron": 10.0,
             "energy_j": 1e-9, "retrain_rounds": 0, "pareto": True}
    doc = {"points": [point], "float_accuracy": 0.92, "smallest_within_tolerance": None}
    monkeypatch.setattr(sweep, "run_sweep", lambda *a, **k: doc)
    result = runner.invoke(app, ["sweep", "mnist-mlp", "--weight-clusters", "4",
                                 "--input-clusters", "4", "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "Pareto (energy, loss)" in result.stdout
