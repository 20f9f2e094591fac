"""The fault-curve experiment: the one-point rate, the result's shape, seeded repeatability."""

import json

import pytest
import torch
from torch import nn

import rapidnn
from rapidnn.experiments.faults import fault_curves, rate_for_one_point


def _points(*pairs):
    return [{"rate": r, "accuracy": a} for r, a in pairs]


def test_the_one_point_rate_is_interpolated_in_log_rate():
    pts = _points((0.0, 0.90), (1e-3, 0.90), (1e-1, 0.88))
    assert rate_for_one_point(pts, 0.90) == pytest.approx(1e-2)  # halfway in log10
    assert rate_for_one_point(_points((0.0, 0.9), (1e-2, 0.895)), 0.9) is None
    assert rate_for_one_point(_points((0.0, 0.9), (1e-4, 0.5)), 0.9) == 1e-4


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 3)).eval()
    x = torch.randn(60, 10)
    y = net(x).argmax(1)
    return rapidnn.compose(net, x, 8, 8), x, y


def test_curves_have_the_documented_shape_and_repeat(small):
    cm, x, y = small
    res = fault_curves(cm, x, y, rates=(0, 1e-2, 0.3), kinds=("table", "am"), trials=2)
    json.dumps(res)
    assert [c["block"] for c in res["curves"]] == ["table", "am"]
    for c in res["curves"]:
        assert [p["rate"] for p in c["points"]] == [0.0, 1e-2, 0.3]
        assert c["points"][0]["accuracy"] == res["clean_accuracy"]
        assert all(p["min"] <= p["accuracy"] <= p["max"] for p in c["points"])
    table = res["curves"][0]["points"]
    assert table[-1]["accuracy"] < res["clean_accuracy"]  # 30 % stuck cells hurt
    again = fault_curves(cm, x, y, rates=(0, 1e-2, 0.3), kinds=("table", "am"), trials=2)
    assert again["curves"] == res["curves"]


def test_bad_arguments_are_named(small):
    cm, x, y = small
    with pytest.raises(ValueError, match="unknown fault kinds"):
        fault_curves(cm, x, y, kinds=("tables",))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fault_curves(cm, x, y, rates=(2.0,))
