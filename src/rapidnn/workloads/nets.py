"""Network definitions of the workloads and the ImageNet-shape networks.

Every network here is built only from operations :func:`rapidnn.capture` supports
(Linear, Conv2d with groups=1, BatchNorm right after a Linear/Conv, ReLU, MaxPool2d,
AdaptiveAvgPool2d with an output size dividing the input, flatten, Dropout, residual add), so
each one composes. The MNIST MLP and LeNet-5 live in :mod:`rapidnn.workloads.models`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rapidnn.workloads.models import mlp

__all__ = [
    "VGG",
    "VGG_16",
    "VGG_CIFAR",
    "BasicBlock",
    "HarCNN",
    "ResNet",
    "alexnet",
    "cifar_vgg",
    "har_mlp",
    "resnet18",
    "resnet20",
    "vgg16",
]


def _conv_bn_relu(cin: int, cout: int, kernel: int | tuple[int, int] = 3,
                  padding: int | tuple[int, int] = 1, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


# CIFAR-10 -----------------------------------------------------------------------------------
#: VGG-style configuration for 32x32 inputs: channel counts, "M" = 2x2 max pooling.
VGG_CIFAR: tuple[int | str, ...] = (32, 32, "M", 64, 64, "M", 128, 128, "M", 256, "M")


class VGG(nn.Module):
    """VGG-style CNN: (Conv3x3 + BN + ReLU) blocks, 2x2 max pools, global average pool, Linear."""

    def __init__(self, config: Sequence[int | str] = VGG_CIFAR, in_channels: int = 3,
                 classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for v in config:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += _conv_bn_relu(c, int(v))
                c = int(v)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def cifar_vgg(classes: int = 10) -> VGG:
    """The ``cifar10-vgg`` network: 7 conv layers (32-32-M-64-64-M-128-128-M-256-M), global
    average pooling and one Linear layer; 0.59 M weights, 43 MMAC per 32x32 image (the cost of
    ResNet-20, so both CIFAR-10 recipes train on two CPU cores in about an hour)."""
    return VGG(VGG_CIFAR, 3, classes)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 Conv+BN, shortcut (identity, or 1x1 Conv+BN when the shape
    changes — "option B" of He et al. 2016), residual add, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet of basic blocks: a stem, ``len(widths)`` stages of ``blocks`` blocks each (the first
    block of every stage but the first halves the resolution), global average pool, Linear."""

    def __init__(self, widths: Sequence[int], blocks: Sequence[int], stem: nn.Module,
                 stem_channels: int, classes: int) -> None:
        super().__init__()
        self.stem = stem
        stages: list[nn.Module] = []
        c = stem_channels
        for i, (w, n) in enumerate(zip(widths, blocks, strict=True)):
            layer = []
            for j in range(n):
                layer.append(BasicBlock(c, w, 2 if (j == 0 and i > 0) else 1))
                c = w
            stages.append(nn.Sequential(*layer))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.stages(self.stem(x)))
        return self.fc(torch.flatten(x, 1))


def resnet20(classes: int = 10) -> ResNet:
    """ResNet-20 for CIFAR (He et al. 2016, section 4.2): 3x3 conv (16) + 3 stages x 3 basic
    blocks (16/32/64 channels), 1x1 Conv+BN downsampling shortcuts; 0.27 M weights,
    41 MMAC per 32x32 image."""
    stem = nn.Sequential(*_conv_bn_relu(3, 16))
    return ResNet((16, 32, 64), (3, 3, 3), stem, 16, classes)


# HAR ----------------------------------------------------------------------------------------
def har_mlp(hidden: Sequence[int] = (512, 256), classes: int = 6) -> nn.Sequential:
    """MLP on a flattened (6,1,128) window: 768-512-256-6, ReLU."""
    return mlp((6 * 128, *hidden, classes))


class HarCNN(nn.Module):
    """Temporal CNN on (6,1,128) windows written with Conv2d (kernel 1xK), since the composer
    does not capture Conv1d: three Conv+BN+ReLU blocks with 1x2 max pooling, global average
    pooling, Linear; 76 k weights, 3.2 MMAC per window."""

    def __init__(self, widths: Sequence[int] = (32, 64, 96), kernel: int = 9,
                 classes: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 6
        for w in widths:
            layers += _conv_bn_relu(c, w, (1, kernel), (0, kernel // 2))
            layers.append(nn.MaxPool2d((1, 2)))
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


# ImageNet shapes (no data; for the hardware comparison) ----------------------------------------
def alexnet(classes: int = 1000) -> nn.Sequential:
    """AlexNet for 224x224 inputs, single-tower variant (Krizhevsky 2014 / torchvision:
    64-192-384-256-256 channels, no grouped convolutions), 61 M weights, 0.71 GMAC."""
    return nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Dropout(0.5),
        nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True),
        nn.Linear(4096, classes),
    )


#: VGG-16 configuration (Simonyan & Zisserman 2015, configuration D).
VGG_16: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(classes: int = 1000) -> nn.Sequential:
    """VGG-16 (configuration D, no BatchNorm) for 224x224 inputs: 13 conv + 3 FC layers,
    138 M weights, 15.5 GMAC."""
    layers: list[nn.Module] = []
    c = 3
    for v in VGG_16:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.ReLU(inplace=True)]
            c = int(v)
    layers += [nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
               nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
               nn.Linear(4096, classes)]
    return nn.Sequential(*layers)


def resnet18(classes: int = 1000) -> ResNet:
    """ResNet-18 for 224x224 inputs: 7x7/2 stem + 3x3/2 max pool, 4 stages x 2 basic blocks
    (64/128/256/512), 1x1 Conv+BN downsampling shortcuts; 11.7 M weights, 1.8 GMAC."""
    stem = nn.Sequential(*_conv_bn_relu(3, 64, 7, 3, stride=2), nn.MaxPool2d(3, 2, padding=1))
    return ResNet((64, 128, 256, 512), (2, 2, 2, 2), stem, 64, classes)
