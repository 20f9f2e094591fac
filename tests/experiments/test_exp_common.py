import dataclasses

import torch
from torch.utils.data import TensorDataset

from rapidnn.budget import QUICK
from rapidnn.composer.retrain import VERSION
from rapidnn.experiments.common import retrained, subset


def test_subset_spreads_over_a_class_sorted_set():
    labels = torch.arange(10).repeat_interleave(100)  # sorted by class, like CIFAR-10's test set
    data = TensorDataset(torch.zeros(1000, 1), labels)
    part = subset(data, 50)
    got = torch.stack([part[i][1] for i in range(len(part))])
    assert len(part) == 50 and torch.bincount(got).tolist() == [5] * 10
    assert subset(data, None) is data and subset(data, 5000) is data


def test_retrained_uses_and_keys_the_workloads_learning_rate(tiny) -> None:
    budget = QUICK.replace(val_images=52, train_batches=2, max_rounds=1)
    splits = tiny.splits("quick")
    _, _, info = retrained(tiny, 4, 4, splits, budget, progress=False)
    assert info["retrain"]["settings"]["lr"] == tiny.retrain_lr
    assert info["retrain"]["settings"]["version"] == VERSION and not info["cached"]
    slower = dataclasses.replace(tiny, retrain_lr=tiny.retrain_lr / 10)
    _, _, other = retrained(slower, 4, 4, splits, budget, progress=False)
    assert not other["cached"] and other["path"] != info["path"]
    assert other["retrain"]["settings"]["lr"] == slower.retrain_lr
    _, _, again = retrained(tiny, 4, 4, splits, budget, progress=False)
    assert again["cached"] and again["path"] == info["path"]
