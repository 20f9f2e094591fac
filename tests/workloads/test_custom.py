"""A user's model and data as a workload (rapidnn.workloads.custom): content-hashed key, seeded
splits, never trained, picklable for the executors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import rapidnn.workloads.store as store
from rapidnn.workloads.custom import (
    CustomWorkloadError,
    custom_workload,
    install_float_model,
)

NET = """
from torch import nn


def make():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
"""


@pytest.fixture
def user(tmp_path):
    (tmp_path / "net.py").write_text(NET)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 4)).astype(np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=(x[:, 0] > 0).astype(np.int64))
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    return tmp_path


def _wl(user, **kw):
    return custom_workload(f"{user / 'net.py'}:make", user / "data.npz",
                           weights=user / "w.safetensors", **kw)


def test_key_hashes_model_and_data(user):
    a, b = _wl(user), _wl(user)
    assert a.key() == b.key() == a.key("quick") and a.key().startswith("net-make-")
    assert (a.input_shape, a.classes) == ((4,), 2)
    state = {k: v + 1 for k, v in torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).state_dict().items()}
    save_file(state, str(user / "w.safetensors"))
    assert _wl(user).key() != a.key()
    assert _wl(user, seed=1).key() != _wl(user).key()


def test_splits_are_seeded_and_held_out(user):
    wl = _wl(user)
    one, two = wl.splits(), wl.splits()
    assert one.sizes() == {"train": 70, "val": 10, "test": 20}
    assert torch.equal(one.test.tensors[0], two.test.tensors[0])
    seen = torch.cat([one.train.tensors[0], one.val.tensors[0], one.test.tensors[0]])
    assert len(torch.unique(seen, dim=0)) == 100  # every example in exactly one part
    np.savez(user / "test.npz", x=np.zeros((7, 4), np.float32), y=np.zeros(7, np.int64))
    assert _wl(user, test=user / "test.npz").splits().sizes() == {"train": 90, "val": 10,
                                                                   "test": 7}


def test_installed_never_trained_and_picklable(user, tmp_path, monkeypatch):
    wl = _wl(user)
    info = install_float_model(wl, tmp_path / "store")
    assert info["train_seconds"] is None and 0 <= info["test_accuracy"] <= 1

    def no_training(*args, **kwargs):
        raise AssertionError("a user model is never trained")

    monkeypatch.setattr(store, "train_workload", no_training)
    model, again = store.get_trained(pickle.loads(pickle.dumps(wl)), "quick", False,
                                     root=tmp_path / "store")
    assert again["key"] == wl.key() and again["test_accuracy"] == info["test_accuracy"]
    assert all(torch.equal(v, wl.build().state_dict()[k]) for k, v in model.state_dict().items())
    assert install_float_model(wl, tmp_path / "store")["path"] == info["path"]


def test_a_factory_returning_a_trained_model(user):
    wl = custom_workload(f"{user / 'net.py'}:make", user / "data.npz")
    assert wl.weights is None and isinstance(wl.build(), torch.nn.Module)


def test_onnx_with_weights_and_bad_specs(user):
    with pytest.raises(CustomWorkloadError, match="holds its weights"):
        custom_workload("net.onnx", user / "data.npz", weights=user / "w.safetensors")
    with pytest.raises(CustomWorkloadError, match=r"expected package\.module:factory"):
        custom_workload("net", user / "data.npz")
    with pytest.raises(CustomWorkloadError, match=r"importing .* failed: SyntaxError"):
        (user / "bad.py").write_text("def make(:\n")
        custom_workload(f"{user / 'bad.py'}:make", user / "data.npz")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript ONNX exporter
def test_an_onnx_file_is_converted_once_and_each_call_gets_its_own_copy(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("onnx2torch") is None:  # the optional extra rapidnn[onnx]
        pytest.skip("onnx2torch is not installed")
    import rapidnn.composer.onnx_import as onnx_import
    from rapidnn.workloads.custom import load_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3)).eval()
    path = tmp_path / "net.onnx"
    torch.onnx.export(net, (torch.rand(2, 8),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}})
    calls = []
    real = onnx_import.load_onnx
    monkeypatch.setattr(onnx_import, "load_onnx", lambda p: calls.append(p) or real(p))
    a, b = load_model(str(path)), load_model(str(path))
    assert len(calls) == 1 and a is not b
    x = torch.rand(5, 8)
    assert torch.allclose(a(x), net(x), atol=1e-6) and torch.equal(a(x), b(x))
    with torch.no_grad():
        next(a.parameters()).add_(1.0)  # a copy changed in place leaves the next call alone
    assert torch.equal(load_model(str(path))(x), b(x))
