"""Shared fixtures: small models and calibration batches (seeded)."""

from __future__ import annotations

import pytest
import torch

from rapidnn.workloads.models import LeNet5, mlp


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Tests never write into the user's cache (datasets are cached per test session)."""
    if "RAPIDNN_CACHE" not in __import__("os").environ:
        monkeypatch.setenv("RAPIDNN_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def one_thread():
    """torch on one CPU thread for the test (float rounding then matches across machines)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


@pytest.fixture
def small_mlp():
    torch.manual_seed(0)
    return mlp((64, 32, 16, 5)).eval()


@pytest.fixture
def mlp_batches():
    g = torch.Generator().manual_seed(1)
    return [torch.rand(16, 64, generator=g) for _ in range(3)]


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    return randomize_batchnorm(LeNet5())


@pytest.fixture
def image_batches():
    g = torch.Generator().manual_seed(2)
    return [torch.rand(8, 1, 28, 28, generator=g) for _ in range(2)]
