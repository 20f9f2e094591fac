"""Network shapes from builders, torch modules and traces."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.hardware.network import LayerShape, NetworkShape, conv2d, mlp, network_from_module


def test_mlp_builder():
    net = mlp([784, 512, 512, 10])
    assert [lay.kind for lay in net.layers] == ["linear", "activation", "linear",
                                                "activation", "linear"]
    assert net.macs == 784 * 512 + 512 * 512 + 512 * 10 == net.weights


def test_conv_builder():
    c = conv2d("c", 64, 128, 3, (32, 32), padding=1)
    assert (c.fan_in, c.out_channels, c.positions) == (576, 128, 1024)
    assert c.macs == 576 * 128 * 1024 and c.weights == 576 * 128


def test_network_from_module():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(8 * 4 * 4, 10))
    net = network_from_module(model, torch.zeros(5, 3, 8, 8), name="tiny")
    kinds = [(lay.name, lay.kind) for lay in net.layers]
    assert kinds == [("0", "conv2d"), ("1", "activation"), ("2", "pool"), ("4", "linear")]
    conv, _, pool, fc = net.layers
    assert (conv.fan_in, conv.out_channels, conv.positions, conv.weights) == (27, 8, 64, 216)
    assert (pool.fan_in, pool.out_channels, pool.positions, pool.kernel) == (4, 8, 16, (2, 2))
    assert (fc.fan_in, fc.out_channels, fc.positions) == (128, 10, 1)
    assert net.macs == 27 * 8 * 64 + 128 * 10


def test_module_called_twice_and_conv1d():
    lin = nn.Linear(4, 4)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    names = [lay.name for lay in network_from_module(model, torch.zeros(2, 4)).layers]
    assert names == ["0", "1", "0#2"]
    net = network_from_module(nn.Conv1d(2, 3, 5), torch.zeros(1, 2, 20))
    assert net.layers[0].kind == "conv1d" and net.layers[0].positions == 16


def test_from_trace():
    tr = Trace(batch=1, layers=[
        LayerTrace("enc", "encode_input", neurons=784, am_searches=784.0),
        LayerTrace("c1", "conv2d", neurons=8 * 100, fan_in=27, positions=100),
        LayerTrace("p1", "maxpool", neurons=8 * 25, fan_in=4, positions=25),
        LayerTrace("fc", "linear", neurons=10, fan_in=200)])
    net = NetworkShape.from_trace(tr)
    enc, c1, p1, fc = net.layers
    assert enc.kind == "other" and c1.kind == "conv2d" and p1.kind == "pool"
    assert (c1.out_channels, c1.positions, c1.macs) == (8, 100, 27 * 800)
    assert c1.input_values == 784 and fc.input_values == 200
    assert LayerShape.from_trace_layer(tr.layers[3]).weights == 2000


def test_invalid_shape():
    with pytest.raises(ValueError):
        LayerShape("x", "linear", fan_in=0, out_channels=3)
