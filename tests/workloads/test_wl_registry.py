"""The workload registry: names, recipes, cache keys and the unknown-name error."""

from __future__ import annotations

import pytest

from rapidnn.workloads import (
    SHAPE_NETWORKS,
    WORKLOADS,
    Recipe,
    Workload,
    WorkloadError,
    get_shape_network,
    get_workload,
)
from rapidnn.workloads.training import recipe_key

NAMES = ["mnist-mlp", "fashion-lenet5", "isolet-mlp", "har-cnn", "cifar10-vgg",
         "cifar10-resnet20"]


def test_six_workloads() -> None:
    assert list(WORKLOADS) == NAMES
    for name, wl in WORKLOADS.items():
        assert wl.name == name
        assert wl.title and len(wl.description) > 40
        assert wl.recipe.dataset == wl.dataset
        q = wl.quick_recipe
        assert q.epochs < wl.recipe.epochs or (q.train_subset or 10**9) < 10**9
        assert wl.key() != wl.key("quick")
        assert wl.key().startswith(f"{name}-") and wl.key("quick").startswith(f"{name}-quick-")


def test_key_dict_omits_defaults_only() -> None:
    r = Recipe(model="m", dataset="isolet", epochs=1, lr=0.1, batch=8, val=1)
    assert set(r.key_dict()) == set(Recipe.BASE_FIELDS)
    r2 = r.replace(weight_decay=1e-4, augment="crop4-flip")
    assert r2.key_dict()["weight_decay"] == 1e-4 and r2.key_dict()["augment"] == "crop4-flip"
    assert recipe_key("x", r.key_dict()) != recipe_key("x", r2.key_dict())


def test_precision_is_keyed_and_checked() -> None:
    r = Recipe(model="m", dataset="isolet", epochs=1, lr=0.1, batch=8, val=1)
    assert "precision" not in r.key_dict()
    assert r.replace(precision="bf16").key_dict()["precision"] == "bf16"
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        r.replace(precision="fp16")


def test_unknown_workload_lists_valid_names() -> None:
    with pytest.raises(WorkloadError) as exc:
        get_workload("mnist-cnn")
    assert isinstance(exc.value, ValueError)
    msg = str(exc.value)
    assert "'mnist-cnn'" in msg
    for name in NAMES:
        assert name in msg


def test_get_workload_accepts_a_workload() -> None:
    wl = WORKLOADS["isolet-mlp"]
    assert get_workload(wl) is wl
    assert isinstance(get_workload("isolet-mlp"), Workload)


def test_shape_networks() -> None:
    assert list(SHAPE_NETWORKS) == ["alexnet", "vgg16", "resnet18"]
    with pytest.raises(WorkloadError, match="valid names: alexnet, vgg16, resnet18"):
        get_shape_network("resnet50")


def test_warm_start_is_keyed_and_keeps_the_split() -> None:
    base = Recipe(model="m", dataset="mnist", epochs=4, lr=0.1, batch=32, val=10)
    stage = base.replace(epochs=2, lr=0.01, warm_start=base)
    assert stage.key_dict()["warm_start"] == base.key_dict()
    assert "warm_start" not in base.key_dict()
    with pytest.raises(ValueError, match="split"):
        base.replace(warm_start=base.replace(val=20))
