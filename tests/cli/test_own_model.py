"""The user's own model and data from the CLI (issue 23): ``sweep``, ``simulate``, ``compare``
and ``estimate`` with ``--model`` (a module:factory with .safetensors weights, a .py file, an
ONNX file) on ``--data``/``--test`` (.npz files or image folders), and the user's mistakes."""

from __future__ import annotations

import json
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from rapidnn.cli import app

runner = CliRunner()

MODULE = "own_tinynet"
NET = textwrap.dedent('''
    from torch import nn


    def make_net():
        return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


    def make_conv():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 8 * 8, 2))


    def broken():
        raise RuntimeError("no network today")


    NOT_A_FACTORY = 3
''')


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A user's model module, its trained weights and .npz data (three Gaussian classes)."""
    root = tmp_path_factory.mktemp("own")
    (root / f"{MODULE}.py").write_text(NET)
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 2

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        return (centers[y] + rng.normal(size=(n, 8))).astype(np.float32), y

    (x, y), (xt, yt) = sample(600), sample(200)
    np.savez(root / "train.npz", x=x, y=y)
    np.savez(root / "test.npz", x=xt, y=yt)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    save_file(net.state_dict(), str(root / "net.safetensors"))
    save_file({"0.weight": torch.zeros(16, 9)}, str(root / "wrong.safetensors"))
    return {"root": root, "module": root / f"{MODULE}.py", "train": root / "train.npz",
            "test": root / "test.npz", "weights": root / "net.safetensors",
            "wrong": root / "wrong.safetensors"}


@pytest.fixture
def on_path(files, monkeypatch):
    monkeypatch.syspath_prepend(str(files["root"]))
    return files


def _own(files: dict[str, Path], spec: str = f"{MODULE}:make_net") -> list[str]:
    return ["--model", spec, "--weights", str(files["weights"]), "--data", str(files["train"]),
            "--test", str(files["test"])]


def test_sweep_simulate_compare_of_a_user_model(on_path, tmp_path):
    out = tmp_path / "sweep"
    t0 = time.perf_counter()
    result = runner.invoke(app, ["sweep", *_own(on_path), "--weight-clusters", "4,16",
                                 "--input-clusters", "4,16", "--quick", "--out", str(out),
                                 "--json"])
    seconds = time.perf_counter() - t0
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["complete"] and len(doc["points"]) == 4 and doc["float_accuracy"] > 0.9
    assert doc["options"]["workload"] == f"{MODULE}-make_net" and doc["test_images"] == 200
    assert {p["weight_clusters"] for p in doc["points"]} == {4, 16}
    assert (out / "sweep.json").is_file() and (out / "pareto.png").is_file()
    assert doc["float_model"].startswith(str(out / "store"))
    assert seconds < 120
    again = runner.invoke(app, ["sweep", *_own(on_path), "--weight-clusters", "4,16",
                                "--input-clusters", "4,16", "--quick", "--out", str(out)])
    assert again.exit_code == 0 and "4 point(s) already" in again.output

    result = runner.invoke(app, ["simulate", *_own(on_path), "-w", "16", "-u", "16", "--json"])
    assert result.exit_code == 0, result.output
    sim = json.loads(result.stdout)
    assert sim["images"] == 200 and sim["agreement"] == 1.0 and sim["accuracy"] > 0.9
    best = next(p for p in doc["points"] if p["weight_clusters"] == p["input_clusters"] == 16)
    assert sim["accuracy"] == pytest.approx(best["composed_accuracy"])

    # a composed model of the sweep names its test file: simulate runs it there by default
    stored = sorted((out / "store" / "composed").glob("*-w4-u16-*.rapidnn"))
    result = runner.invoke(app, ["simulate", str(stored[0]), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"] == str(on_path["test"])

    result = runner.invoke(app, ["compare", *_own(on_path)[:6], "--json"])
    assert result.exit_code == 0, result.output
    cmp = json.loads(result.stdout)
    assert cmp["network"] == f"{MODULE}-make_net" and "iso-area" in cmp["policies"]
    result = runner.invoke(app, ["estimate", *_own(on_path)[:6], "--hardware", "isaac"])
    assert result.exit_code == 0 and "J/inference" in result.output


def test_a_python_file_an_onnx_file_and_an_image_folder(files, tmp_path):
    from PIL import Image

    spec = f"{files['module']}:make_net"
    result = runner.invoke(app, ["simulate", *_own(files, spec), "--limit", "50", "--json"])
    assert result.exit_code == 0, result.output
    by_file = json.loads(result.stdout)
    assert by_file["images"] == 50

    from safetensors.torch import load_file

    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    net.load_state_dict(load_file(str(files["weights"])))
    onnx = tmp_path / "net.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(net.eval(), (torch.rand(2, 8),), str(onnx), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})
    result = runner.invoke(app, ["simulate", "--model", str(onnx), "--data", str(files["train"]),
                                 "--test", str(files["test"]), "--limit", "50", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == by_file["accuracy"]

    images = tmp_path / "images"
    rng = np.random.default_rng(1)
    for k, name in enumerate(("dark", "light")):
        (images / name).mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 100, (8, 8)) + 150 * k
            Image.fromarray(pixels.astype(np.uint8)).save(images / name / f"{i}.png")
    result = runner.invoke(app, ["simulate", "--model", f"{files['module']}:make_conv",
                                 "--data", str(images), "-w", "8", "-u", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"] == 5  # 20% of 24 held out as the test set


def _case(files: dict[str, Path], tmp_path: Path, name: str) -> list[str]:
    """The command line of one user mistake (files made here)."""
    train, weights = str(files["train"]), str(files["weights"])
    mod = str(files["module"])
    if name == "nan input":
        x = np.zeros((20, 8), np.float32)
        x[3, 2] = np.nan
        np.savez(tmp_path / "nan.npz", x=x, y=np.zeros(20, np.int64))
        return ["--model", f"{mod}:make_net", "--data", str(tmp_path / "nan.npz")]
    if name == "npz without y":
        np.savez(tmp_path / "noy.npz", x=np.zeros((20, 8), np.float32))
        return ["--model", f"{mod}:make_net", "--data", str(tmp_path / "noy.npz")]
    if name == "npz without x":
        np.savez(tmp_path / "nox.npz", a=np.zeros((20, 8)), b=np.zeros(20))
        return ["--model", f"{mod}:make_net", "--data", str(tmp_path / "nox.npz")]
    if name == "empty image folder":
        (tmp_path / "empty").mkdir(exist_ok=True)
        return ["--model", f"{mod}:make_conv", "--data", str(tmp_path / "empty")]
    if name == "class without images":
        (tmp_path / "imgs" / "cat").mkdir(parents=True, exist_ok=True)
        return ["--model", f"{mod}:make_conv", "--data", str(tmp_path / "imgs")]
    if name == "pickled weights":
        (tmp_path / "net.pt").write_bytes(b"\x80\x04K\x03.")
        return ["--model", f"{mod}:make_net", "--weights", str(tmp_path / "net.pt"),
                "--data", train]
    return {
        "bad module": ["--model", "no_such_pkg.nets:make_net", "--data", train],
        "bad python file": ["--model", str(tmp_path / "nets.py") + ":make_net", "--data", train],
        "missing factory": ["--model", f"{mod}:make_nett", "--data", train],
        "not callable": ["--model", f"{mod}:NOT_A_FACTORY", "--data", train],
        "factory fails": ["--model", f"{mod}:broken", "--data", train],
        "no factory named": ["--model", MODULE, "--data", train],
        "weights not matching": ["--model", f"{mod}:make_net", "--weights",
                                 str(files["wrong"]), "--data", train],
        "data not fitting": ["--model", f"{mod}:make_conv", "--data", train],
        "labels beyond the outputs": ["--model", f"{mod}:make_net", "--weights", weights,
                                      "--data", train, "--test", str(_labels(tmp_path))],
        "onnx with weights": ["--model", str(tmp_path / "n.onnx"), "--weights", weights,
                              "--data", train],
        "model without data": ["--model", f"{mod}:make_net"],
        "data without model": ["--data", train],
        "missing data file": ["--model", f"{mod}:make_net", "--data", str(tmp_path / "x.npz")],
        "data of another kind": ["--model", f"{mod}:make_net", "--data", str(files["module"])],
    }[name]


def _labels(tmp_path: Path) -> Path:
    path = tmp_path / "labels.npz"
    np.savez(path, x=np.zeros((10, 8), np.float32), y=np.full(10, 7))
    return path


CASES = {
    "bad module": "no module named 'no_such_pkg'",
    "bad python file": "no such Python file",
    "missing factory": "has no 'make_nett' (names: broken, make_conv, make_net)",
    "not callable": "NOT_A_FACTORY is not callable",
    "factory fails": "broken() failed: RuntimeError: no network today",
    "no factory named": "expected package.module:factory",
    "weights not matching": "do not fit make_net()'s network: missing",
    "pickled weights": "never unpickles",
    "data not fitting": "fails on inputs of shape (8,)",
    "labels beyond the outputs": "3 outputs, but the data has label 7",
    "onnx with weights": "an ONNX file holds its weights",
    "model without data": "pass its data with --data",
    "data without model": "--data go with --model",
    "nan input": "NaN",
    "npz without y": "no labels",
    "npz without x": "no array named 'x'",
    "empty image folder": "no class sub-folders",
    "class without images": "no images",
    "missing data file": "no such file",
    "data of another kind": "expected a .npz file",
}


@pytest.mark.parametrize("name", CASES)
def test_user_mistakes_are_one_error_line(files, tmp_path, name):
    for command in (["simulate"], ["sweep", "--out", str(tmp_path / "sweep")]):
        result = runner.invoke(app, [*command, *_case(files, tmp_path, name)])
        assert result.exit_code == 2, (command, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.output
        assert CASES[name] in lines[0], lines[0]
    assert not (tmp_path / "sweep" / "sweep.json").exists()


def test_a_workload_or_a_model_not_both(files):
    result = runner.invoke(app, ["sweep", "mnist-mlp", *_own(files, f"{files['module']}:"
                                                                     "make_net")])
    assert result.exit_code == 2 and "not both" in result.output
    result = runner.invoke(app, ["sweep"])
    assert result.exit_code == 2 and "or --model" in result.output
    result = runner.invoke(app, ["simulate", "m.rapidnn", *_own(files)])
    assert result.exit_code == 2 and "not both" in result.output
