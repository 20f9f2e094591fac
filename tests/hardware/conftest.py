"""Shared fixtures for the hardware cost-model tests."""

from __future__ import annotations

import pytest

from rapidnn.accel.trace import LayerTrace, Trace
from rapidnn.hardware import isaac, load_hardware, pipelayer, rapidnn
from rapidnn.hardware.rapidnn import tree_additions


def _fc(name: str, fan_in: int, out: int, *, w: int = 16, u: int = 16, b: int = 8,
        a: int = 16, search: bool = True) -> LayerTrace:
    """A hand-made adder-tree trace layer (13 NOR cycles per bit, FloatPIM)."""
    adds = {k: float(c * out) for k, c in tree_additions(fan_in, b, a).items()}
    return LayerTrace(
        name=name, kind="linear", neurons=out, fan_in=fan_in, positions=1, weight_clusters=w,
        input_clusters=u, entry_bits=b, tables=1, acc_bits=a,
        table_lookups=float(fan_in * out), product_writes=float(fan_in * out), additions=adds,
        nor_cycles=sum(13.0 * k * c for k, c in adds.items()),
        am_searches=float(out) if search else 0.0, am_rows=u if search else 0,
        am_bits=a if search else 0,
        bits_moved_block=sum(k * c for k, c in adds.items()),
        bits_moved_tile=float(out * 4) if search else 0.0)


@pytest.fixture(scope="session")
def mnist_trace() -> Trace:
    """MNIST MLP 784-512-512-10, w = u = 16, 8-bit entries, 16-bit sums (hand-built)."""
    return Trace(batch=1, layers=[_fc("fc1", 784, 512), _fc("fc2", 512, 512),
                                  _fc("fc3", 512, 10, search=False)],
                 config={"name": "mnist-mlp"})


@pytest.fixture(scope="session")
def fc_layer():
    return _fc


@pytest.fixture(scope="session")
def isaac_spec():
    return load_hardware("isaac")


@pytest.fixture(scope="session")
def rapidnn_spec():
    return load_hardware("rapidnn")


@pytest.fixture(scope="session")
def pipelayer_spec():
    return load_hardware("pipelayer")


@pytest.fixture(scope="session")
def isaac_hw(isaac_spec):
    return isaac.IsaacHardware.from_spec(isaac_spec)


@pytest.fixture(scope="session")
def rapidnn_hw(rapidnn_spec):
    return rapidnn.RapidnnHardware.from_spec(rapidnn_spec)


@pytest.fixture(scope="session")
def pipelayer_hw(pipelayer_spec):
    return pipelayer.PipeLayerHardware.from_spec(pipelayer_spec)
