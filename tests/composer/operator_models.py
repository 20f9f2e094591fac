"""Small hand-written networks that hold every operator of the CNN zoo (issue 20).

Each factory returns ``(model in eval mode, input shape)``; BatchNorm statistics are made
non-trivial by a few seeded training-mode passes, so folding and per-channel affines matter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _settle(net: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(16, *shape))
    return net.eval()


class SqueezeExcite(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, 4, 1), nn.Conv2d(4, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class MobileBlock(nn.Module):
    """Inverted residual: ReLU6, depthwise conv, Hardswish, squeeze-and-excitation (mul),
    residual add, spatial mean."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8),
                                nn.Hardswish())
        self.se = SqueezeExcite(8)
        self.project = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.se(self.dw(x)))
        return self.fc(x.mean([2, 3]))


class ShuffleBlock(nn.Module):
    """chunk, grouped conv, cat, hand-written and module channel shuffle, adaptive max pool."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branch = nn.Sequential(nn.Conv2d(4, 4, 1, groups=2), nn.BatchNorm2d(4), nn.SiLU())
        self.shuffle = nn.ChannelShuffle(4)
        self.pool = nn.AdaptiveMaxPool2d((3, 3))
        self.fc = nn.Linear(8 * 9, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        a, b = x.chunk(2, dim=1)
        x = torch.cat((a, self.branch(b)), dim=1)
        n, c, h, w = x.size()
        x = x.view(n, 2, c // 2, h, w)
        x = torch.transpose(x, 1, 2).contiguous().view(n, -1, h, w)
        x = self.shuffle(x)
        return self.fc(torch.flatten(self.pool(x), 1))


class DenseBlock(nn.Module):
    """Concatenated features, a BatchNorm that cannot be folded (per-channel affine, folded
    with the ReLU after it into one table), GELU, non-uniform adaptive average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.norm = nn.BatchNorm2d(6)
        self.conv = nn.Conv2d(6, 4, 3, padding=1)
        self.norm2 = nn.BatchNorm2d(10)
        self.pool = nn.AdaptiveAvgPool2d(5)
        self.fc = nn.Linear(10 * 25, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.conv(F.relu(self.norm(x)))
        x = torch.cat([x, F.gelu(y)], 1)
        x = F.relu(self.norm2(x))
        return self.fc(self.pool(x).flatten(1))


class ShortcutBlock(nn.Module):
    """A CIFAR ResNet option-A shortcut (strided slice, zero channel padding), LeakyReLU,
    upsampling adaptive average pooling (2x2 -> 7x7, as VGG at 32 px)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8))
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.fc = nn.Linear(8 * 49, 5)

    def forward(self, x):
        x = F.relu(self.stem(x))
        short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2), "constant", 0)
        x = F.leaky_relu(self.down(x) + short, 0.1)
        x = F.max_pool2d(x, 2)
        return self.fc(self.pool(x).flatten(1))


class SignalNet(nn.Module):
    """Conv1d with BatchNorm1d, grouped Conv1d, a chain of element-wise functions folded into
    one table (GELU, Mish, scale, offset), Hardtanh, spatial mean of a 1-D signal."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 5, padding=2)
        self.bn = nn.BatchNorm1d(8)
        self.c2 = nn.Conv1d(8, 8, 3, groups=4, stride=2)
        self.act = nn.Hardtanh(-0.5, 1.5)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = F.silu(self.bn(self.c1(x)))
        x = F.mish(F.gelu(self.c2(x), approximate="tanh")) * 0.5 + 0.25
        x = self.act(x) / 2
        return self.fc(x.mean(-1))


class TailNet(nn.Module):
    """Element-wise functions after a Linear: Sigmoid-free MLP with LeakyReLU (negative
    slope: not monotonic), Hardsigmoid, Mish, and an output from codes."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(10, 12), nn.Linear(12, 12), nn.Linear(12, 6)

    def forward(self, x):
        x = F.leaky_relu(self.fc1(x), -0.2)
        x = F.hardsigmoid(self.fc2(x))
        return F.mish(self.fc3(x))


MODELS = {
    "mobile": (MobileBlock, (3, 8, 8)),
    "shuffle": (ShuffleBlock, (3, 7, 7)),
    "dense": (DenseBlock, (3, 8, 8)),
    "shortcut": (ShortcutBlock, (3, 8, 8)),
    "signal": (SignalNet, (3, 16)),
    "tail": (TailNet, (10,)),
}


def make(name: str, seed: int = 0) -> tuple[nn.Module, tuple[int, ...]]:
    cls, shape = MODELS[name]
    torch.manual_seed(seed)
    return _settle(cls(), shape), shape
