import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rapidnn
from rapidnn.composer.ops import WeightedLayer
from rapidnn.composer.retrain import ClusterAwareModel, accuracy, retrain


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


def test_cluster_aware_weights_are_the_composed_fixed_point_weights(task):
    """Fine-tuning sees the accelerator's weights: centroids rounded to the layer's format."""
    net, train, _ = task
    cm = rapidnn.compose(net, train, 8, 8, calibration_batches=5, weight_bits=4)
    qat = ClusterAwareModel(cm)
    for op in (op for op in cm.ops if isinstance(op, WeightedLayer)):
        scale = 2.0 ** op.spec["weight_exponent"]
        expected = op.weight_values.double()[0][op.weight_codes.long()] * scale
        got = qat.clustered_weight(op.name).double()
        assert torch.equal(got, expected), op.name
        assert not torch.equal(got, op.weight_centroids.double()[0][op.weight_codes.long()])


def test_retraining_recovers_accuracy_and_is_deterministic(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 2, 4, calibration_batches=5)
    r1 = retrain(cm, loader(*train.dataset.tensors), val, tolerance=0.0, max_rounds=3, lr=3e-3,
                 calibration=5, progress=False)
    assert [h.round for h in r1.history] == [0, 1, 2, 3]
    assert r1.rounds == 3 and r1.settings["loss"] == "distill"
    assert r1.best.composed_accuracy > r1.history[0].composed_accuracy
    assert accuracy(r1.composed, val) == r1.best.composed_accuracy
    torch.manual_seed(123)  # the global RNG must not matter
    fresh = loader(*train.dataset.tensors)
    r2 = retrain(cm, fresh, val, tolerance=0.0, max_rounds=3, lr=3e-3, calibration=5,
                 progress=False)
    assert [h.composed_accuracy for h in r1.history] == [h.composed_accuracy for h in r2.history]


def test_retraining_stops_once_within_tolerance(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 32, 32, calibration_batches=5)
    r = retrain(cm, train, val, tolerance=1.0, max_rounds=5, progress=False)
    assert len(r.history) == 1 and r.converged
    assert r.composed is cm


def test_retrain_rejects_bad_arguments(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 4, 4, calibration_batches=2)
    with pytest.raises(ValueError, match="tolerance"):
        retrain(cm, train, val, tolerance=-1)
    with pytest.raises(ValueError, match="min_rounds"):
        retrain(cm, train, val, max_rounds=1, min_rounds=2)
    with pytest.raises(ValueError, match="unknown retraining loss"):
        retrain(cm, train, val, loss="mse")
    with pytest.raises(ValueError, match="round_batches"):
        retrain(cm, train, val, round_batches=0)
    with pytest.raises(ValueError, match="labelled"):
        retrain(cm, train, [], progress=False)


def test_rounds_of_batches_continue_through_the_data(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 4, 4, calibration_batches=5)
    seen: list[int] = []

    class Counting:
        """20 batches per epoch; records which batch is served."""

        def __init__(self, base):
            self.base = base

        def __len__(self):
            return len(self.base)

        def __iter__(self):
            for i, item in enumerate(self.base):
                seen.append(i)
                yield item

    data = Counting(loader(*train.dataset.tensors))
    r = retrain(cm, data, val, tolerance=0.0, max_rounds=3, round_batches=15, calibration=5,
                progress=False)
    assert [h.batches for h in r.history] == [0, 15, 15, 15]
    # 5 calibration batches, then 45 training batches streamed over three epochs (20 each)
    assert seen[5:] == list(range(20)) + list(range(20)) + list(range(5))


def test_min_rounds_fine_tunes_even_within_tolerance(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 32, 32, calibration_batches=5)
    r = retrain(cm, train, val, tolerance=1.0, max_rounds=5, min_rounds=1, round_batches=5,
                progress=False)
    assert r.rounds == 1 and r.chosen == 1 and r.composed is not cm and r.converged


def test_label_loss_and_distillation_differ(task):
    net, train, val = task
    cm = rapidnn.compose(net, train, 2, 4, calibration_batches=5)
    kw = {"tolerance": 0.0, "max_rounds": 1, "round_batches": 10, "lr": 3e-3, "calibration": 5,
          "progress": False}
    ce = retrain(cm, train, val, loss="ce", **kw)
    kd = retrain(cm, train, val, loss="distill", **kw)
    assert ce.settings["loss"] == "ce" and "temperature" not in ce.settings
    assert kd.settings["temperature"] == 2.0
    assert ce.history[1].train_loss != kd.history[1].train_loss
