"""Network shapes: what the baseline mappers (ISAAC, PipeLayer, GPU) need to know about a network.

A ``LayerShape`` describes one layer by the quantities every mapper uses (docs/hardware.md §2.4):

* ``fan_in`` – inputs summed per output value (K·K·C_in/groups for a convolution, the window for
  pooling);
* ``out_channels`` – output values per output position (out_features for a linear layer);
* ``positions`` – output positions (H_out·W_out for conv2d, L_out for conv1d, 1 for linear);
* ``input_values`` – values read per inference; ``weights`` – stored weights (no bias).

``macs = fan_in · out_channels · positions`` for weighted layers. A Trace layer
(``rapidnn.accel.trace.LayerTrace``: kind, neurons, fan_in, positions) maps to a LayerShape with
``out_channels = neurons / positions`` (``LayerShape.from_trace_layer``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from rapidnn.accel.trace import LayerTrace, Trace

Kind = Literal["linear", "conv1d", "conv2d", "pool", "activation", "other"]
WEIGHTED: frozenset[str] = frozenset({"linear", "conv1d", "conv2d"})

_TRACE_KINDS: dict[str, Kind] = {
    "linear": "linear",
    "output": "linear",
    "conv2d": "conv2d",
    "conv1d": "conv1d",
    "maxpool": "pool",
    "avgpool": "pool",
    "activation": "activation",
}


@dataclass(frozen=True)
class LayerShape:
    """Shape facts of one layer, per inference (batch 1)."""

    name: str
    kind: Kind
    fan_in: int = 0
    out_channels: int = 0
    positions: int = 1
    input_values: int = 0
    weights: int = 0
    in_channels: int | None = None
    kernel: tuple[int, ...] | None = None
    pool: Literal["max", "avg"] | None = None

    def __post_init__(self) -> None:
        for f in ("fan_in", "out_channels", "positions", "input_values", "weights"):
            if getattr(self, f) < 0:
                raise ValueError(f"{self.name}: {f} must be >= 0")
        if self.positions < 1:
            raise ValueError(f"{self.name}: positions must be >= 1")
        if self.weighted and (self.fan_in < 1 or self.out_channels < 1):
            raise ValueError(f"{self.name}: a {self.kind} layer needs fan_in and out_channels")

    @property
    def weighted(self) -> bool:
        return self.kind in WEIGHTED

    @property
    def macs(self) -> int:
        """Multiply-accumulates per inference (0 for unweighted layers)."""
        return self.fan_in * self.out_channels * self.positions if self.weighted else 0

    @property
    def output_values(self) -> int:
        return self.out_channels * self.positions

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernel"] = list(self.kernel) if self.kernel else None
        d["macs"] = self.macs
        d["output_values"] = self.output_values
        return d

    @classmethod
    def from_trace_layer(cls, lt: LayerTrace, input_values: int | None = None) -> LayerShape:
        """The shape of a simulated layer; ``input_values`` defaults to fan_in × positions."""
        kind = _TRACE_KINDS.get(lt.kind, "other")
        positions = max(1, int(lt.positions))
        out_ch = int(lt.neurons) // positions if lt.neurons else 0
        fan_in = int(lt.fan_in)
        if kind in WEIGHTED and (fan_in < 1 or out_ch < 1):
            kind = "other"
        weights = fan_in * out_ch if kind in WEIGHTED else 0
        if input_values is None:
            input_values = fan_in * positions if fan_in else int(lt.neurons)
        pool: Literal["max", "avg"] | None = None
        if lt.kind in ("maxpool", "avgpool"):
            pool = "max" if lt.kind == "maxpool" else "avg"
        return cls(name=lt.name, kind=kind, fan_in=fan_in, out_channels=out_ch,
                   positions=positions, input_values=int(input_values), weights=weights,
                   pool=pool)


@dataclass(frozen=True)
class NetworkShape:
    """A network as an ordered list of layer shapes."""

    name: str
    layers: list[LayerShape] = field(default_factory=list)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def weights(self) -> int:
        return sum(layer.weights for layer in self.layers)

    @property
    def weighted_layers(self) -> list[LayerShape]:
        return [layer for layer in self.layers if layer.weighted]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "macs": self.macs, "weights": self.weights,
                "layers": [layer.to_dict() for layer in self.layers]}

    @classmethod
    def from_trace(cls, trace: Trace, name: str = "trace") -> NetworkShape:
        """Shapes of a simulated network; a layer's inputs are the previous layer's outputs."""
        layers: list[LayerShape] = []
        prev_out: int | None = None
        for lt in trace.layers:
            shape = LayerShape.from_trace_layer(lt)
            if prev_out is not None and shape.kind != "other" and prev_out > 0:
                shape = LayerShape.from_trace_layer(lt, input_values=prev_out)
            layers.append(shape)
            if lt.neurons:
                prev_out = int(lt.neurons)
        return cls(name=str(trace.config.get("name", name)), layers=layers)


# ------------------------------------------------------------------ builders
def linear(name: str, in_features: int, out_features: int) -> LayerShape:
    return LayerShape(name, "linear", fan_in=in_features, out_channels=out_features,
                      input_values=in_features, weights=in_features * out_features,
                      in_channels=in_features)


def conv2d(name: str, in_channels: int, out_channels: int, kernel: int | tuple[int, int],
           in_hw: tuple[int, int], stride: int = 1, padding: int = 0,
           groups: int = 1) -> LayerShape:
    """A Conv2d layer on an ``in_hw`` feature map (square stride/padding)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    h = (in_hw[0] + 2 * padding - kh) // stride + 1
    w = (in_hw[1] + 2 * padding - kw) // stride + 1
    fan_in = in_channels // groups * kh * kw
    return LayerShape(name, "conv2d", fan_in=fan_in, out_channels=out_channels, positions=h * w,
                      input_values=in_channels * in_hw[0] * in_hw[1],
                      weights=out_channels * fan_in, in_channels=in_channels, kernel=(kh, kw))


def pool2d(name: str, channels: int, window: int, in_hw: tuple[int, int],
           stride: int | None = None, op: Literal["max", "avg"] = "max") -> LayerShape:
    s = stride or window
    h = (in_hw[0] - window) // s + 1
    w = (in_hw[1] - window) // s + 1
    return LayerShape(name, "pool", fan_in=window * window, out_channels=channels,
                      positions=h * w, input_values=channels * in_hw[0] * in_hw[1],
                      in_channels=channels, kernel=(window, window), pool=op)


def activation(name: str, values: int) -> LayerShape:
    return LayerShape(name, "activation", fan_in=1, out_channels=values, positions=1,
                      input_values=values)


def mlp(sizes: Sequence[int], name: str | None = None, activations: bool = True) -> NetworkShape:
    """A multi-layer perceptron, e.g. ``mlp([784, 512, 512, 10])``."""
    layers: list[LayerShape] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(linear(f"fc{i + 1}", a, b))
        if activations and i < len(sizes) - 2:
            layers.append(activation(f"act{i + 1}", b))
    return NetworkShape(name or "mlp-" + "-".join(str(s) for s in sizes), layers)


# ------------------------------------------------------------ torch modules
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Tanh, nn.GELU, nn.LeakyReLU, nn.ELU,
                nn.Hardtanh, nn.SiLU)
_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d,
          nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)


def _shape_of(mod: nn.Module, name: str, x: torch.Tensor, y: torch.Tensor) -> LayerShape:
    batch = x.shape[0] if x.dim() > 1 else 1
    out_per = y.numel() // batch
    in_per = x.numel() // batch
    if isinstance(mod, nn.Linear):
        positions = out_per // mod.out_features
        return LayerShape(name, "linear", fan_in=mod.in_features, out_channels=mod.out_features,
                          positions=max(1, positions), input_values=in_per,
                          weights=mod.in_features * mod.out_features,
                          in_channels=mod.in_features)
    if isinstance(mod, nn.Conv1d | nn.Conv2d):
        k = tuple(int(v) for v in mod.kernel_size)
        fan_in = mod.in_channels // mod.groups * math.prod(k)
        positions = out_per // mod.out_channels
        return LayerShape(name, "conv2d" if isinstance(mod, nn.Conv2d) else "conv1d",
                          fan_in=fan_in, out_channels=mod.out_channels, positions=positions,
                          input_values=in_per, weights=mod.out_channels * fan_in,
                          in_channels=mod.in_channels, kernel=k)
    if isinstance(mod, _POOLS):
        channels = x.shape[1] if x.dim() > 2 else 1
        positions = max(1, out_per // channels)
        window = max(1, round(in_per / out_per))
        ks = getattr(mod, "kernel_size", None)
        kernel: tuple[int, ...] | None = None
        if isinstance(ks, int):
            kernel = (ks, ks) if "2d" in type(mod).__name__ else (ks,)
        elif isinstance(ks, tuple):
            kernel = tuple(int(k) for k in ks)
        if kernel:
            window = math.prod(kernel)
        op: Literal["max", "avg"] = "max" if "Max" in type(mod).__name__ else "avg"
        return LayerShape(name, "pool", fan_in=window, out_channels=channels,
                          positions=positions, input_values=in_per, in_channels=channels,
                          kernel=kernel, pool=op)
    return LayerShape(name, "activation", fan_in=1, out_channels=out_per, positions=1,
                      input_values=in_per)


def network_from_module(model: nn.Module, example_input: torch.Tensor,
                        name: str | None = None) -> NetworkShape:
    """Walk ``model`` on ``example_input`` with forward hooks and record layer shapes.

    Hooks are placed on Linear, Conv1d/Conv2d, pooling and activation modules; functional calls
    (``F.relu``, ``torch.flatten``) are not seen. A module called twice gives two layers
    (``name#2``). Counts are per inference: divided by ``example_input.shape[0]``.
    """
    records: list[LayerShape] = []
    calls: dict[str, int] = {}
    handles = []

    def hook(mod_name: str):
        def fn(mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            x = inputs[0]
            calls[mod_name] = calls.get(mod_name, 0) + 1
            label = mod_name if calls[mod_name] == 1 else f"{mod_name}#{calls[mod_name]}"
            records.append(_shape_of(mod, label, x, output))

        return fn

    for mod_name, mod in model.named_modules():
        if isinstance(mod, (nn.Linear, nn.Conv1d, nn.Conv2d, *_POOLS, *_ACTIVATIONS)):
            handles.append(mod.register_forward_hook(hook(mod_name or type(mod).__name__)))
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
    return NetworkShape(name or type(model).__name__, records)
