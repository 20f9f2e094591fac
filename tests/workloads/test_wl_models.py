"""Every workload network and every ImageNet-shape network captures; the workloads compose."""

from __future__ import annotations

import pytest
import torch

import rapidnn
from rapidnn.workloads import SHAPE_NETWORKS, WORKLOADS, Recipe
from rapidnn.workloads.checkpoint import TrainingState
from rapidnn.workloads.fit import fit
from rapidnn.workloads.splits import augment_crop_flip
from rapidnn.workloads.training import train


def _weighted(graph) -> list[str]:
    return [n.op for n in graph.weighted()]


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_workload_model_captures_and_composes(name: str) -> None:
    wl = WORKLOADS[name]
    model = wl.build(seed=0).eval()
    x = wl.example_input(4)
    graph = rapidnn.capture(model, x)
    assert graph.input.shape == wl.input_shape
    assert graph.output.shape == (wl.classes,)
    composed = rapidnn.compose(model, [x], 16, 16)
    out = composed(x)
    assert out.shape == (4, wl.classes)


def test_resnet20_structure() -> None:
    graph = rapidnn.capture(WORKLOADS["cifar10-resnet20"].build(), torch.rand(2, 3, 32, 32))
    ops = [n.op for n in graph]
    # 19 3x3 convs + 2 downsampling 1x1 convs + the classifier; 9 residual adds
    assert _weighted(graph).count("conv2d") == 21 and _weighted(graph).count("linear") == 1
    assert ops.count("add") == 9
    shortcut = [n for n in graph if n.op == "conv2d" and n.params["kernel"] == (1, 1)]
    assert [n.params["stride"] for n in shortcut] == [(2, 2), (2, 2)]
    assert all("folded_batchnorm" in n.params for n in graph.weighted() if n.op == "conv2d")


@pytest.mark.parametrize(("name", "weighted"), [("alexnet", 8), ("vgg16", 16), ("resnet18", 21)])
def test_shape_network_captures(name: str, weighted: int) -> None:
    net = SHAPE_NETWORKS[name]
    with torch.no_grad():
        graph = rapidnn.capture(net.build(seed=0), net.example_input(1))
    assert graph.input.shape == (3, 224, 224)
    assert graph.output.shape == (1000,)
    assert len(graph.weighted()) == weighted


def test_fit_adam_matches_training_train() -> None:
    """The workloads' loop reproduces rapidnn.workloads.training.train (the demo's model)
    exactly."""
    g = torch.Generator().manual_seed(3)
    batches = [(torch.rand(16, 10, generator=g), torch.randint(0, 3, (16,), generator=g))
               for _ in range(4)]
    recipe = Recipe(model="m", dataset="mnist", epochs=2, lr=1e-2, batch=16, val=0, seed=5)
    models = []
    for trainer in ("fit", "train"):
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(10, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
        if trainer == "fit":
            hist = fit(m, batches, recipe)
        else:
            hist2 = train(m, batches, 2, lr=1e-2, seed=5)
        models.append(m)
    assert hist == hist2
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.equal(a, b)


def test_fit_sgd_learns_and_stops_early() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 4, generator=g)
    y = (x[:, 0] > 0.5).long()
    recipe = Recipe(model="m", dataset="mnist", epochs=30, lr=0.5, batch=16, val=0,
                    optimizer="sgd", nesterov=True, weight_decay=1e-4)
    torch.manual_seed(0)
    m = torch.nn.Linear(4, 2)
    hist = fit(m, [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)], recipe)
    assert hist[-1] < hist[0]
    steps = []
    fit(m, [(x, y)] * 4, recipe, on_batch=lambda e, i, loss: steps.append(i), max_steps=6)
    assert len(steps) == 6


def test_fit_bf16_is_mixed_precision() -> None:
    """precision="bf16": the forward pass runs in bfloat16 (the losses differ from float32's),
    the weights stay float32 and the model still learns."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 4, generator=g)
    y = (x[:, 0] > 0.5).long()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    recipe = Recipe(model="m", dataset="mnist", epochs=30, lr=0.5, batch=16, val=0,
                    optimizer="sgd", nesterov=True)
    hists, models = [], []
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        m = torch.nn.Linear(4, 2)
        hists.append(fit(m, batches, recipe.replace(precision=precision)))
        models.append(m)
    torch.manual_seed(0)
    again = torch.nn.Linear(4, 2)
    assert fit(again, batches, recipe.replace(precision="bf16")) == hists[1]  # repeatable
    assert torch.equal(again.weight, models[1].weight)
    assert hists[1] != hists[0] and hists[1][-1] < hists[1][0]
    assert hists[1][-1] == pytest.approx(hists[0][-1], rel=0.1)
    assert all(p.dtype == torch.float32 for p in models[1].parameters())


def test_augment_crop_flip() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    a = augment_crop_flip(x, torch.Generator().manual_seed(0))
    b = augment_crop_flip(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    same = augment_crop_flip(x, torch.Generator().manual_seed(0), pad=0)
    for i in range(2):  # with no padding only the flip remains
        assert torch.equal(same[i], x[i]) or torch.equal(same[i], x[i].flip(2))
    # every output pixel is either zero padding or a pixel of the same image and channel
    for i in range(2):
        for c in range(3):
            vals = set(a[i, c].flatten().tolist()) - {0.0}
            assert vals <= set(x[i, c].flatten().tolist())


def test_fit_swa_returns_the_mean_of_the_epochs_weights_with_fresh_batchnorm() -> None:
    """schedule="swa": constant learning rate, the model ends as the mean of the weights after
    every epoch, and BatchNorm's statistics are those of the averaged model on the batches."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 4, generator=g)
    y = (x[:, 0] > 0.5).long()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    recipe = Recipe(model="m", dataset="mnist", epochs=3, lr=0.1, batch=16, val=0,
                    optimizer="sgd", schedule="swa")
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                            torch.nn.Linear(8, 2))
    epochs: list[TrainingState] = []
    fit(m, batches, recipe, on_epoch=epochs.append)
    assert [s.scheduler["_last_lr"] for s in epochs] == [[0.1]] * 3  # constant
    for name, p in m.named_parameters():
        mean = torch.stack([s.model[name] for s in epochs]).mean(0)
        assert torch.allclose(p, mean, atol=1e-6), name
    assert not torch.allclose(m[0].weight, epochs[-1].model["0.weight"])  # not the last epoch's
    with torch.no_grad():
        hidden = [m[0](xb) for xb, _ in batches]
    expected = torch.stack([h.mean(0) for h in hidden]).mean(0)  # equal-weight batch means
    assert torch.allclose(m[1].running_mean, expected, atol=1e-6)
    assert not m.training
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        recipe.replace(schedule="step")
