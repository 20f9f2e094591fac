"""ONNX import (issue 20, deliver 3): files made here with ``torch.onnx.export`` come back as
modules computing what the exported network computes, compose and simulate bit-exactly; bad
files fail with one :class:`OnnxImportError` naming the file."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import rapidnn
from rapidnn.accel.config import SimConfig
from rapidnn.cli import app
from rapidnn.composer.capture import UnsupportedOperationError
from rapidnn.composer.compose import ComposeError
from rapidnn.composer.onnx_import import OnnxImportError, load_onnx

if importlib.util.find_spec("onnx2torch") is None:  # the optional extra rapidnn[onnx]
    pytest.skip("onnx2torch is not installed", allow_module_level=True)
onnx = pytest.importorskip("onnx")

SHAPE = (3, 16, 16)


class Block(nn.Module):
    """Conv-BN-ReLU6, a depthwise separable block with Hardswish and squeeze-and-excitation
    (global pool, Sigmoid, element-wise product), a residual add, a concatenation, SiLU, pools
    and a flattening reshape written as ``view(x.size(0), -1)``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.se1, self.se2 = nn.Linear(8, 4), nn.Linear(4, 8)
        self.mix = nn.Conv2d(16, 8, 1)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn(self.stem(x)))
        y = F.hardswish(self.pw(self.dw(x)))
        w = torch.sigmoid(self.se2(F.relu(self.se1(F.adaptive_avg_pool2d(y, 1).flatten(1)))))
        y = y * w[:, :, None, None]
        x = torch.cat([x + y, F.max_pool2d(y, 1)], 1)
        x = F.adaptive_avg_pool2d(F.avg_pool2d(F.silu(self.mix(x)), 2), 4)
        return self.fc(x.view(x.size(0), -1))


def export(model: nn.Module, path, shape=SHAPE, dynamic: bool = True, **kw) -> None:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model.eval(), (torch.rand(2, *shape),), str(path), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}} if dynamic else None,
                          **kw)


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    m = Block().eval()
    with torch.no_grad():  # a trained-looking BatchNorm, folded by the exporter
        m.bn.running_mean.uniform_(-0.5, 0.5)
        m.bn.running_var.uniform_(0.5, 2.0)
    return m


@pytest.fixture(scope="module", params=["dynamic-batch", "fixed-batch"])
def onnx_file(request, net, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "block.onnx"
    export(net, path, dynamic=request.param == "dynamic-batch")
    return path


def test_imported_module_computes_the_exported_network(net, onnx_file):
    module = load_onnx(onnx_file)
    x = torch.rand(5, *SHAPE)  # a batch size the file was not exported with
    with torch.no_grad():
        assert torch.allclose(module(x), net(x), atol=1e-5)


def test_onnx_file_composes_like_the_torch_model_and_simulates_bit_exactly(net, onnx_file):
    torch.manual_seed(1)
    calib, x = torch.rand(48, *SHAPE), torch.rand(6, *SHAPE)
    from_file = rapidnn.compose(onnx_file, calib, 16, 16)
    from_torch = rapidnn.compose(net, calib, 16, 16)
    assert len(from_file.layer_names()) == len(from_torch.layer_names()) == 7
    # the exporter folds BatchNorm itself: the two compositions agree to clustering noise
    ref = net(x)
    for cm in (from_file, from_torch):
        assert (cm(x) - ref).abs().max() / ref.abs().max() < 0.35
    res = rapidnn.simulate(from_file, x, SimConfig())
    assert torch.equal(res.outputs, from_file.integer_forward(x).output)


def test_a_newer_opset_is_converted_down_for_onnx2torch(net, tmp_path):
    path = tmp_path / "old.onnx"
    export(net, path)
    newer = onnx.version_converter.convert_version(onnx.load(str(path)), 21)
    onnx.save(newer, str(tmp_path / "new.onnx"))
    x = torch.rand(3, *SHAPE)
    with torch.no_grad():
        assert torch.allclose(load_onnx(tmp_path / "new.onnx")(x), net(x), atol=1e-5)


class _Two(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x, y):
        return self.fc(x) + y


def test_bad_files_fail_with_one_error_naming_the_file(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(b"\x00not onnx" * 16)
    (tmp_path / "folder.onnx").mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Two().eval(), (torch.rand(2, 8), torch.rand(2, 8)),
                          str(tmp_path / "two.onnx"), dynamo=False)
    for name, reason in [("junk.onnx", "not a readable ONNX file"), ("missing.onnx",
                         "no such file"), ("folder.onnx", "is a folder"),
                         ("two.onnx", "takes 2 inputs")]:
        with pytest.raises(OnnxImportError, match=reason) as err:
            rapidnn.compose(tmp_path / name, torch.rand(4, 8))
        assert str(tmp_path / name) in str(err.value)
    with pytest.raises(ComposeError, match=r"must be an \.onnx file"):
        rapidnn.compose(tmp_path / "model.pt", torch.rand(4, 8))


class _Norm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.norm = nn.Linear(8, 8), nn.LayerNorm(8)

    def forward(self, x):
        return self.norm(self.fc(x))


def test_an_unsupported_layer_is_named_as_for_a_torch_model(tmp_path):
    export(_Norm(), tmp_path / "ln.onnx", shape=(8,), opset_version=17)
    with pytest.raises(UnsupportedOperationError, match=r"LayerNorm.*out of scope"):
        rapidnn.compose(tmp_path / "ln.onnx", torch.rand(4, 8))


def test_cli_composes_an_onnx_file_with_npz_calibration(net, onnx_file, tmp_path):
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(0).random((40, *SHAPE), "f4"))
    out = tmp_path / "block.rapidnn"
    runner = CliRunner()
    res = runner.invoke(app, ["compose", str(onnx_file), "--calibration",
                              str(tmp_path / "calib.npz"), "-w", "8", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "7 weighted layers" in res.output
    back = rapidnn.load(out)
    assert back.metadata["onnx"] == "block.onnx"
    assert back.config.weight_clusters == 8
    np.savez(tmp_path / "wrong.npz", x=np.zeros((4, 8), "f4"))
    res = runner.invoke(app, ["compose", str(onnx_file), "--calibration",
                              str(tmp_path / "wrong.npz"), "--out", str(tmp_path / "w.rapidnn")])
    assert res.exit_code == 2
    assert "example input of shape (4, 8)" in res.output
    assert not (tmp_path / "w.rapidnn").exists()


def test_without_the_extra_the_message_says_how_to_install_it(monkeypatch, onnx_file):
    monkeypatch.setitem(__import__("sys").modules, "onnx2torch", None)
    with pytest.raises(OnnxImportError, match=r"pip install 'rapidnn\[onnx\]'"):
        load_onnx(onnx_file)
