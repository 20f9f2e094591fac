import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rapidnn
from rapidnn.retrain import ClusterAwareModel, accuracy, retrain


@pytest.fixture(scope="module")
def task():
    torch.manual_seed(0)
    x = torch.randn(3000, 16)
    w = torch.randn(16, 4)
    y = (x @ w).argmax(1)
    net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    net.eval()
    val = DataLoader(TensorDataset(x[2000:], y[2000:]), batch_size=500)
    return net, loader(x[:2000], y[:2000]), val


def loader(x, y):
    """A shuffling loader whose order depends only on its own seed."""
    return DataLoader(TensorDataset(x, y), batch_size=100, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def test_cluster_aware_model_matches_composed_model(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 4, 4, calibration_batches=5)
    qat = ClusterAwareModel(cm)
    x = next(iter(val))[0]
    agree = (qat(x).argmax(1) == cm(x).argmax(1)).float().mean()
    assert agree > 0.97


def test_retraining_recovers_accuracy_and_is_deterministic(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 2, 4, calibration_batches=5)
    r1 = retrain(cm, loader(*train.dataset.tensors), val, tolerance=0.0, max_epochs=3, lr=3e-3,
                 calibration=5, progress=False)
    assert [h.epoch for h in r1.history] == [0, 1, 2, 3]
    assert r1.best.composed_accuracy > r1.history[0].composed_accuracy
    assert accuracy(r1.composed, val) == r1.best.composed_accuracy
    torch.manual_seed(123)  # the global RNG must not matter
    fresh = loader(*train.dataset.tensors)
    r2 = retrain(cm, fresh, val, tolerance=0.0, max_epochs=3, lr=3e-3, calibration=5,
                 progress=False)
    assert [h.composed_accuracy for h in r1.history] == [h.composed_accuracy for h in r2.history]


def test_retraining_stops_once_within_tolerance(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 32, 32, calibration_batches=5)
    r = retrain(cm, train, val, tolerance=1.0, max_epochs=5, progress=False)
    assert len(r.history) == 1 and r.converged
    assert r.composed is cm


def test_retrain_rejects_bad_arguments(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 4, 4, calibration_batches=2)
    with pytest.raises(ValueError, match="tolerance"):
        retrain(cm, train, val, tolerance=-1)
    with pytest.raises(ValueError, match="labelled"):
        retrain(cm, train, [], progress=False)
