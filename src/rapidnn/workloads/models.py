"""Network definitions used by the demo, the tests and the workloads."""

from __future__ import annotations

import itertools

import torch
from torch import nn


def mlp(sizes: tuple[int, ...] = (784, 512, 512, 10), activation: type[nn.Module] = nn.ReLU,
        dropout: float = 0.0) -> nn.Sequential:
    """A multilayer perceptron ``sizes[0] - ... - sizes[-1]`` taking any input shape (flattened)."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class LeNet5(nn.Module):
    """LeNet-5-style CNN for 28x28 inputs with BatchNorm, max pooling and average pooling."""

    def __init__(self, in_channels: int = 1, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(6)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.bn2 = nn.BatchNorm2d(16)
        self.pool2 = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool2(torch.relu(self.bn2(self.conv2(x))))
        x = torch.flatten(x, 1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)
