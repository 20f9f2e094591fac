import torch
from torch.utils.data import TensorDataset

from rapidnn.experiments.common import subset


def test_subset_spreads_over_a_class_sorted_set():
    labels = torch.arange(10).repeat_interleave(100)  # sorted by class, like CIFAR-10's test set
    data = TensorDataset(torch.zeros(1000, 1), labels)
    part = subset(data, 50)
    got = torch.stack([part[i][1] for i in range(len(part))])
    assert len(part) == 50 and torch.bincount(got).tolist() == [5] * 10
    assert subset(data, None) is data and subset(data, 5000) is data
