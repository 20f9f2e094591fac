"""The six evaluation workloads, their seeded training recipes and the ImageNet-shape networks.

A :class:`Workload` bundles a network factory, a dataset, a seeded training :class:`Recipe`
(plus a reduced "quick" recipe, :attr:`rapidnn.budget.Budget.recipes`), the train/validation/test
split and the paper-facing description. :data:`WORKLOADS` is the registry, :func:`get_workload`
looks a name up (an unknown name raises :class:`WorkloadError` listing the valid ones).
:mod:`rapidnn.workloads.store` caches the trained float models and composed models.

:data:`SHAPE_NETWORKS` holds AlexNet, VGG-16 and ResNet-18 at 224x224: network shapes only (no
data; ImageNet is not available offline), for the hardware comparison.

:func:`pretrained` loads a workload's trained float model shipped in the repository's
``pretrained/`` folder, without training and without the store.

Example::

    from rapidnn.workloads import get_workload, pretrained
    from rapidnn.workloads.store import get_trained
    model = pretrained("mnist-mlp")          # the shipped float model, ready
    wl = get_workload("fashion-lenet5")
    model, info = get_trained(wl)            # trains (seeded) or loads the cached float model
    splits = wl.splits()                     # Splits(train, val, test) tensors and loaders
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from rapidnn.budget import RecipeSet, recipe_set
from rapidnn.workloads import nets
from rapidnn.workloads.models import LeNet5, mlp
from rapidnn.workloads.recipe import Recipe, WorkloadError
from rapidnn.workloads.splits import Splits, load_splits
from rapidnn.workloads.training import recipe_key

__all__ = [
    "SHAPE_NETWORKS",
    "WORKLOADS",
    "Recipe",
    "ShapeNetwork",
    "Splits",
    "Workload",
    "WorkloadError",
    "get_shape_network",
    "get_workload",
    "pretrained",
    "shipped_file",
    "shipped_folders",
]


@dataclass(frozen=True)
class Workload:
    """One evaluation application: network, dataset, recipes and description.

    ``retrain_lr``: Adam learning rate of retraining (:func:`rapidnn.retrain`), chosen
    per network on validation data (decision F7, ``docs/decisions.md``).
    """

    name: str
    title: str
    description: str
    dataset: str
    input_shape: tuple[int, ...]
    classes: int
    factory: Callable[[], nn.Module]
    recipe: Recipe
    quick_recipe: Recipe
    target_accuracy: float | None = None
    retrain_lr: float = 1e-4

    def recipe_for(self, recipes: RecipeSet = "full") -> Recipe:
        """The recipe of the ``recipes`` set (:attr:`rapidnn.budget.Budget.recipes`)."""
        return self.quick_recipe if recipe_set(recipes) == "quick" else self.recipe

    def key(self, recipes: RecipeSet = "full") -> str:
        """Cache key: ``<name>[-quick]-<hash of the recipe>``."""
        name = f"{self.name}-quick" if recipe_set(recipes) == "quick" else self.name
        return recipe_key(name, self.recipe_for(recipes).key_dict())

    def warm_start_base(self, recipes: RecipeSet = "full") -> Workload | None:
        """This workload with its recipe's ``warm_start`` recipe as its recipe (whose store
        entry is the model a warm start continues), or None without a warm start."""
        base = self.recipe_for(recipes).warm_start
        return None if base is None else dataclasses.replace(self, recipe=base,
                                                             quick_recipe=base)

    def build(self, seed: int | None = None) -> nn.Module:
        """A fresh (untrained) network; with ``seed``, its initialisation is seeded."""
        if seed is not None:
            torch.manual_seed(seed)
        return self.factory()

    def splits(self, recipes: RecipeSet = "full") -> Splits:
        """Train / validation / test split of the recipe (loads the dataset)."""
        return load_splits(self.recipe_for(recipes))

    def example_input(self, batch: int = 2, seed: int = 0) -> torch.Tensor:
        """A random input batch of the right shape (no data needed)."""
        return torch.rand(batch, *self.input_shape, generator=torch.Generator().manual_seed(seed))


@dataclass(frozen=True)
class ShapeNetwork:
    """A network used only for its shape (hardware comparison); there is no data for it."""

    name: str
    description: str
    factory: Callable[[], nn.Module]
    input_shape: tuple[int, ...] = (3, 224, 224)

    def build(self, seed: int | None = None) -> nn.Module:
        if seed is not None:
            torch.manual_seed(seed)
        return self.factory()

    def example_input(self, batch: int = 1, seed: int = 0) -> torch.Tensor:
        return torch.rand(batch, *self.input_shape, generator=torch.Generator().manual_seed(seed))


def _sgd_cifar(model: str, epochs: int, lr: float) -> Recipe:
    return Recipe(model=model, dataset="cifar10", epochs=epochs, lr=lr, batch=128, val=5000,
                  optimizer="sgd", momentum=0.9, nesterov=True, weight_decay=5e-4,
                  augment="crop4-flip", normalize="channel")


_MNIST = Recipe(model="mlp-784-512-512-10-relu", dataset="mnist", epochs=8, lr=1e-3, batch=128,
                val=10_000)
_FASHION = Recipe(model="lenet5-bn", dataset="fashion_mnist", epochs=8, lr=2e-3, batch=128,
                  val=10_000)
_ISOLET = Recipe(model="mlp-617-512-256-26-relu-dropout0.5", dataset="isolet", epochs=60,
                 lr=1e-3, batch=32, val=3, val_unit="speaker", weight_decay=1e-4)
_HAR = Recipe(model="harcnn-32-64-96-k9", dataset="har", epochs=30, lr=2e-3, batch=64, val=3,
              val_unit="subject", weight_decay=1e-4, normalize="channel")
_VGG = _sgd_cifar("vgg7-bn-gap-32-256", 30, 0.05)
_RESNET_COSINE = _sgd_cifar("resnet20-b", 100, 0.1).replace(precision="bf16")
#: 20 epochs of weight averaging at SWA's published rate for residual networks on CIFAR (0.05).
_RESNET = _RESNET_COSINE.replace(epochs=20, lr=0.05, schedule="swa", warm_start=_RESNET_COSINE)
_CIFAR_QUICK = {"epochs": 2, "train_subset": 10_000}

WORKLOADS: Mapping[str, Workload] = MappingProxyType({
    "mnist-mlp": Workload(
        name="mnist-mlp",
        title="MNIST handwritten digits, MLP 784-512-512-10",
        description="Multilayer perceptron 784-512-512-10 (ReLU) on 28x28 MNIST digits; the "
                    "fully-connected application class of the paper.",
        dataset="mnist", input_shape=(1, 28, 28), classes=10,
        factory=lambda: mlp((784, 512, 512, 10)),
        recipe=_MNIST, quick_recipe=_MNIST.replace(epochs=2), target_accuracy=0.98),
    "fashion-lenet5": Workload(
        name="fashion-lenet5",
        title="Fashion-MNIST clothing images, LeNet-5 (BatchNorm)",
        description="LeNet-5-style CNN (2 conv + BN, max and average pooling, 3 FC layers) on "
                    "28x28 Fashion-MNIST images; a small CNN application.",
        dataset="fashion_mnist", input_shape=(1, 28, 28), classes=10,
        factory=LeNet5, recipe=_FASHION, quick_recipe=_FASHION.replace(epochs=2),
        target_accuracy=0.89),
    "isolet-mlp": Workload(
        name="isolet-mlp",
        title="ISOLET spoken letters, MLP 617-512-256-26",
        description="Multilayer perceptron 617-512-256-26 (ReLU, dropout in training) on the "
                    "617 ISOLET speech features; trained on speaker group isolet1 only (1,560 "
                    "rows; 3 of its 30 speakers, 10%, held out for validation), tested on the "
                    "official test set isolet5 (speakers disjoint).",
        dataset="isolet", input_shape=(617,), classes=26,
        factory=lambda: mlp((617, 512, 256, 26), dropout=0.5),
        recipe=_ISOLET, quick_recipe=_ISOLET.replace(epochs=15), target_accuracy=None),
    "har-cnn": Workload(
        name="har-cnn",
        title="Human activity recognition (UCI-HAR-like windows), temporal CNN",
        description="Temporal CNN (three 1x9 Conv2d+BN+ReLU blocks with 1x2 max pooling, "
                    "global average pooling, Linear) on 128-sample windows of the 6 raw "
                    "accelerometer/gyroscope channels (input 6x1x128), 6 activities, official "
                    "UCI-HAR subject split; 3 training subjects held out for validation.",
        dataset="har", input_shape=(6, 1, 128), classes=6,
        factory=nets.HarCNN, recipe=_HAR, quick_recipe=_HAR.replace(epochs=5),
        target_accuracy=None),
    "cifar10-vgg": Workload(
        name="cifar10-vgg",
        title="CIFAR-10 images, VGG-style CNN (7 conv + BN)",
        description="VGG-style CNN: 7 Conv3x3+BN+ReLU layers (32-32-M-64-64-M-128-128-M-"
                    "256-M), global average pooling, Linear, on 32x32 CIFAR-10 (JPEG copy); "
                    "a deep plain CNN application.",
        dataset="cifar10", input_shape=(3, 32, 32), classes=10,
        factory=nets.cifar_vgg, recipe=_VGG, quick_recipe=_VGG.replace(**_CIFAR_QUICK),
        target_accuracy=0.85),
    "cifar10-resnet20": Workload(
        name="cifar10-resnet20",
        title="CIFAR-10 images, ResNet-20 (1x1 conv shortcuts)",
        description="ResNet-20 (He et al. 2016: 3 stages x 3 basic blocks, 16/32/64 channels) "
                    "with 1x1 Conv+BN downsampling shortcuts, residual add then ReLU, on 32x32 "
                    "CIFAR-10 (JPEG copy); a residual-network application.",
        dataset="cifar10", input_shape=(3, 32, 32), classes=10,
        factory=nets.resnet20, recipe=_RESNET,
        quick_recipe=_RESNET_COSINE.replace(**_CIFAR_QUICK),
        target_accuracy=0.88, retrain_lr=1e-5),
})

SHAPE_NETWORKS: Mapping[str, ShapeNetwork] = MappingProxyType({
    "alexnet": ShapeNetwork("alexnet", "AlexNet (single-tower, 224x224, 1000 classes)",
                            nets.alexnet),
    "vgg16": ShapeNetwork("vgg16", "VGG-16 (configuration D, 224x224, 1000 classes)",
                          nets.vgg16),
    "resnet18": ShapeNetwork("resnet18", "ResNet-18 with 1x1 conv shortcuts (224x224, 1000 "
                             "classes)", nets.resnet18),
})


def _lookup(registry: Mapping[str, Any], name: str, what: str) -> Any:
    if isinstance(name, str) and name in registry:
        return registry[name]
    raise WorkloadError(f"unknown {what} {name!r}; valid names: {', '.join(registry)}")


def get_workload(name: str | Workload) -> Workload:
    """The workload called ``name`` (a :class:`Workload` is returned unchanged)."""
    if isinstance(name, Workload):
        return name
    return _lookup(WORKLOADS, name, "workload")


def get_shape_network(name: str) -> ShapeNetwork:
    """The ImageNet-shape network called ``name`` (alexnet, vgg16, resnet18)."""
    return _lookup(SHAPE_NETWORKS, name, "shape network")


def shipped_folders() -> list[Path]:
    """Where shipped float models are looked for: ``pretrained/`` in the working folder, then
    the one of the source checkout this package runs from."""
    checkout = Path(__file__).resolve().parents[3] / "pretrained"
    return list(dict.fromkeys([Path("pretrained").resolve(), checkout]))


def shipped_file(workload: Workload, folders: Sequence[str | os.PathLike[str]] | None = None
                 ) -> tuple[Path | None, list[Path]]:
    """``workload``'s shipped float model, ``<key>.safetensors`` (:meth:`Workload.key`, the
    current full recipe's: a file of another recipe is never used), in the first of ``folders``
    (default :func:`shipped_folders`) that holds it (None: in none), and the folders searched."""
    searched = [Path(f) for f in folders] if folders is not None else shipped_folders()
    name = f"{workload.key()}.safetensors"
    return next((f / name for f in searched if (f / name).is_file()), None), searched


def pretrained(workload: str | Workload,
               folders: Sequence[str | os.PathLike[str]] | None = None) -> nn.Module:
    """The shipped trained float model of ``workload`` (e.g. ``"mnist-mlp"``) in eval mode:
    ``<key>.safetensors`` (:meth:`Workload.key`, the current full recipe's: a file of another
    recipe is never used) from the first of ``folders`` (default :func:`shipped_folders`) that
    holds it. Nothing is trained, nothing is written (``rapidnn store import pretrained/``
    copies the files into the model store instead)."""
    wl = get_workload(workload)
    path, searched = shipped_file(wl, folders)
    if path is None:
        raise WorkloadError(f"no shipped {wl.name} model {wl.key()}.safetensors in "
                            f"{', '.join(map(str, searched))}: train it with rapidnn train "
                            f"{wl.name}")
    model = wl.build()
    try:
        model.load_state_dict(load_file(path))
    except (SafetensorError, OSError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise WorkloadError(f"{path} is not a {wl.name} model: {first}") from None
    return model.eval()
