"""Small random networks and compose options for the simulator tests (hypothesis strategies)."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st
from torch import nn

import rapidnn
from rapidnn.composer.composed import ComposedModel

ACTS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _pool_out(size: int, k: int, s: int, p: int, ceil: bool) -> int:
    span = size + 2 * p - (k - 1) - 1
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


@st.composite
def networks(draw) -> tuple[nn.Module, tuple[int, ...], dict[str, Any]]:
    """A random Conv/Pool/Linear network, its input shape and a description."""
    torch.manual_seed(draw(st.integers(0, 10_000)))
    if draw(st.integers(0, 2)) == 0:  # MLP
        sizes = [draw(st.integers(2, 12)) for _ in range(draw(st.integers(2, 4)))]
        act = draw(st.sampled_from(sorted(ACTS)))
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(ACTS[act]())
        return nn.Sequential(*layers).eval(), (sizes[0],), {"kind": "mlp", "sizes": sizes}
    c = draw(st.integers(1, 2))
    h = draw(st.integers(4, 8))
    w = draw(st.integers(4, 8))
    out = draw(st.integers(1, 3))
    k = draw(st.integers(1, 3))
    s = draw(st.integers(1, 2))
    d = draw(st.integers(1, 2))
    p = draw(st.integers(0, 2))
    oh, ow = _conv_out(h, k, s, p, d), _conv_out(w, k, s, p, d)
    if oh < 1 or ow < 1:
        k, s, d, p = 1, 1, 1, 0
        oh, ow = h, w
    layers = [nn.Conv2d(c, out, k, stride=s, padding=p, dilation=d)]
    act = draw(st.sampled_from(["relu", "tanh", "sigmoid", "none"]))
    if act != "none":
        layers.append(ACTS[act]())
    pool = draw(st.sampled_from(["none", "max", "avg", "max", "avg"]))
    desc = {"kind": "cnn", "conv": (c, out, k, s, p, d), "act": act, "pool": pool}
    if pool != "none" and min(oh, ow) >= 2:
        pk = 2
        ps = draw(st.integers(1, 2))
        pp = draw(st.integers(0, 1))
        if pool == "max":
            ceil = draw(st.booleans())
            layers.append(nn.MaxPool2d(pk, ps, pp, ceil_mode=ceil))
            oh, ow = _pool_out(oh, pk, ps, pp, ceil), _pool_out(ow, pk, ps, pp, ceil)
            if act == "none" and draw(st.booleans()):
                layers.append(nn.ReLU())  # an activation after pooling: code-to-code table
        else:
            layers.append(nn.AvgPool2d(pk, ps, pp))
            oh, ow = _pool_out(oh, pk, ps, pp, False), _pool_out(ow, pk, ps, pp, False)
        desc["pool_params"] = (pk, ps, pp)
    layers += [nn.Flatten(), nn.Linear(out * oh * ow, draw(st.integers(2, 4)))]
    return nn.Sequential(*layers).eval(), (c, h, w), desc


@st.composite
def compose_options(draw) -> dict[str, Any]:
    """Codebook sizes, bit widths (truncated tables, saturating accumulators), bias, grouping."""
    wb = draw(st.integers(2, 10))
    ib = draw(st.integers(2, 10))
    opts: dict[str, Any] = {
        "weight_clusters": draw(st.integers(2, 64)),
        "input_clusters": draw(st.integers(2, 64)),
        "weight_bits": wb,
        "input_bits": ib,
        "acc_bits": draw(st.sampled_from([8, 9, 10, 11, 12, 32])),
        "table_bits": draw(st.one_of(st.none(), st.integers(2, wb + ib))),
        "bias_mode": draw(st.sampled_from(["addend", "threshold"])),
        "per_channel": draw(st.booleans()),
    }
    return opts


def build(net: nn.Module, shape: tuple[int, ...], opts: dict[str, Any], seed: int = 0,
          batches: int = 1) -> ComposedModel:
    gen = torch.Generator().manual_seed(seed)
    cal = [torch.randn(8, *shape, generator=gen) * 2 for _ in range(batches)]
    return rapidnn.compose(net, cal, calibration_values=4000, **opts)


def inputs(shape: tuple[int, ...], n: int = 3, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen) * 2


class Residual(nn.Module):
    """Conv -> ReLU -> Conv -> ReLU, residual add of both, pooled, classified."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1)
        self.c2 = nn.Conv2d(2, 2, 3, padding=1)
        self.fc = nn.Linear(2 * 3 * 3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.c1(x))
        b = torch.relu(self.c2(a))
        y = torch.nn.functional.avg_pool2d(a + b, 2)
        return self.fc(torch.flatten(y, 1))


class CodesOut(nn.Module):
    """Ends in a fused activation, so the network output is decoded from codes."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 2, 2)
        self.fc = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(torch.nn.functional.max_pool2d(self.c(x), 2))
        return torch.sigmoid(self.fc(torch.flatten(y, 1)))
