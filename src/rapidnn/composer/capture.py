"""Capture: turn a torch.fx-traceable model into a graph of the operations RAPIDNN supports.

The captured graph is the composer's input. It is a flat list of :class:`CapturedNode` in
topological order, with BatchNorm folded into the preceding Linear/Conv layer, Dropout and
Identity removed, and every tensor shape (without the batch dimension) recorded from a
shape-propagation run on an example input. Anything else fails with
:class:`UnsupportedOperationError`, naming the node, its op and what is supported.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

# Ops of the captured graph ----------------------------------------------------------------
WEIGHTED_OPS = ("linear", "conv2d")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
POOLS = ("maxpool2d", "avgpool2d")
SUPPORTED_DESCRIPTION = (
    "Linear, Conv2d (groups=1, zero padding), BatchNorm1d/2d after a Linear/Conv, ReLU, Sigmoid, "
    "Tanh, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d (input size a multiple of the output size), "
    "Flatten/view/reshape, Dropout, Identity, residual add (+)"
)


class CaptureError(ValueError):
    """The model cannot be captured (tracing failed, or the graph has an unusable shape)."""


class UnsupportedOperationError(CaptureError):
    """A node of the traced graph is not one of the supported operations."""


@dataclass
class CapturedNode:
    """One operation of the captured graph.

    ``op`` is one of: input, linear, conv2d, relu, sigmoid, tanh, maxpool2d, avgpool2d,
    reshape, add, output. ``params`` holds the static attributes (stride, padding, kernel,
    target shape ...); ``weight``/``bias`` are the float parameters of weighted ops (BatchNorm
    already folded in). ``shape`` is the output shape without the batch dimension.
    """

    name: str
    op: str
    inputs: list[str]
    shape: tuple[int, ...]
    params: dict[str, Any] = field(default_factory=dict)
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    source: str = ""  # the original fx target, for messages

    @property
    def is_weighted(self) -> bool:
        return self.op in WEIGHTED_OPS


@dataclass
class CapturedGraph:
    """A topologically ordered list of supported operations with one input and one output."""

    nodes: list[CapturedNode]

    def __post_init__(self) -> None:
        self._by_name = {n.name: n for n in self.nodes}

    def __getitem__(self, name: str) -> CapturedNode:
        return self._by_name[name]

    def __iter__(self):
        return iter(self.nodes)

    @property
    def input(self) -> CapturedNode:
        return self.nodes[0]

    @property
    def output(self) -> CapturedNode:
        return self.nodes[-1]

    def users(self, name: str) -> list[CapturedNode]:
        return [n for n in self.nodes if name in n.inputs]

    def weighted(self) -> list[CapturedNode]:
        return [n for n in self.nodes if n.is_weighted]

    def forward(
        self, x: torch.Tensor, record: Callable[[str, torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Float reference execution. ``record(name, value)`` may observe or replace each value."""
        env: dict[str, torch.Tensor] = {}
        for node in self.nodes:
            if node.op == "input":
                val = x
            elif node.op == "output":
                return env[node.inputs[0]]
            else:
                val = float_op(node, [env[i] for i in node.inputs])
            env[node.name] = record(node.name, val) if record is not None else val
        raise CaptureError("captured graph has no output node")


def float_op(node: CapturedNode, args: list[torch.Tensor], weight: torch.Tensor | None = None,
             bias: torch.Tensor | None = None) -> torch.Tensor:
    """Evaluate one captured op in floating point (weight/bias may be substituted)."""
    w = node.weight if weight is None else weight
    b = node.bias if bias is None else bias
    x = args[0]
    p = node.params
    if node.op == "linear":
        return F.linear(x, w, b)
    if node.op == "conv2d":
        return F.conv2d(x, w, b, p["stride"], p["padding"], p["dilation"])
    if node.op == "relu":
        return torch.relu(x)
    if node.op == "sigmoid":
        return torch.sigmoid(x)
    if node.op == "tanh":
        return torch.tanh(x)
    if node.op == "maxpool2d":
        return F.max_pool2d(x, p["kernel"], p["stride"], p["padding"], p["dilation"],
                            p["ceil_mode"])
    if node.op == "avgpool2d":
        return F.avg_pool2d(x, p["kernel"], p["stride"], p["padding"])
    if node.op == "reshape":
        return x.reshape(x.shape[0], *node.shape)
    if node.op == "add":
        return args[0] + args[1]
    raise CaptureError(f"no float semantics for op {node.op!r}")


# Tracing ----------------------------------------------------------------------------------
def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


_FUNCTION_ACTIVATIONS = {
    torch.relu: "relu", F.relu: "relu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", F.tanh: "tanh",
}
_MODULE_ACTIVATIONS = {nn.ReLU: "relu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
_METHOD_ACTIVATIONS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_RESHAPE_FUNCTIONS = (torch.flatten, torch.reshape)
_RESHAPE_METHODS = ("view", "reshape", "flatten", "contiguous")
_ADD_FUNCTIONS = (operator.add, torch.add, operator.iadd)


def _unsupported(node: torch.fx.Node, why: str = "") -> UnsupportedOperationError:
    reason = f" ({why})" if why else ""
    return UnsupportedOperationError(
        f"node {node.name!r} ({node.op} {_describe_target(node)}) is not supported{reason}. "
        f"Supported: {SUPPORTED_DESCRIPTION}."
    )


def _describe_target(node: torch.fx.Node) -> str:
    t = node.target
    return getattr(t, "__name__", str(t))


def _shape(node: torch.fx.Node) -> tuple[int, ...]:
    meta = node.meta.get("tensor_meta")
    if meta is None or not hasattr(meta, "shape"):
        raise CaptureError(f"node {node.name!r} has no tensor shape after shape propagation")
    return tuple(int(s) for s in meta.shape[1:])


def capture(model: nn.Module, example_input: torch.Tensor) -> CapturedGraph:
    """Trace ``model`` with torch.fx and convert it into a :class:`CapturedGraph`.

    ``example_input`` is a batch (batch dimension first) used to record shapes; BatchNorm is
    folded with the running statistics, so the model is captured in eval semantics.
    """
    if not isinstance(model, nn.Module):
        raise CaptureError(f"capture expects a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise CaptureError("capture needs an example input batch: a tensor with a batch dimension")
    _check_device(model)
    kind = type(model).__name__
    was_training = model.training
    # torch.fx traces into a bare leaf (nn.Linear: F.linear on its own weight); as the only
    # layer of a Sequential it is captured like the same layer in a network (node "_0")
    root = nn.Sequential(model) if torch.fx.Tracer().is_leaf_module(model, "") else model
    root.eval()
    try:
        gm = torch.fx.symbolic_trace(root)
    except Exception as exc:  # torch.fx raises many types; report them as one clear error
        raise CaptureError(f"torch.fx could not trace {kind}: {exc}") from exc
    finally:
        model.train(was_training)
    try:
        with torch.no_grad():
            ShapeProp(gm).propagate(example_input.detach().float().cpu())
    except Exception as exc:  # the example input does not fit the model
        cause = exc.__cause__ or exc
        raise CaptureError(f"running {kind} on the example input of shape "
                           f"{tuple(example_input.shape)} failed: {cause}") from exc
    graph = _convert(gm)
    _check_finite(graph)
    return graph


def _check_device(model: nn.Module) -> None:
    """Capture runs the model on the CPU: a model elsewhere fails with a clear message."""
    for name, t in (*model.named_parameters(), *model.named_buffers()):
        if t.device.type != "cpu":
            raise CaptureError(f"the model is on device {t.device} ({name!r}): capture runs it "
                               f"on the CPU; compose model.cpu() (the composed model can be "
                               f"moved with .to(device) afterwards)")


def _check_finite(graph: CapturedGraph) -> None:
    """Every weight and bias finite (after BatchNorm folding): a NaN bias would silently pin
    one output to the accumulator's minimum, a NaN weight break k-means far from its cause."""
    for node in graph.weighted():
        for tensor, what in ((node.weight, "weight"), (node.bias, "bias")):
            if tensor is None or bool(torch.isfinite(tensor).all()):
                continue
            kind = "NaN" if bool(tensor.isnan().any()) else "infinite values"
            bn = node.params.get("folded_batchnorm")
            folded = f" after folding BatchNorm {bn!r}" if bn is not None else ""
            node_name = f" (node {node.name!r})" if node.name != node.source else ""
            raise CaptureError(f"layer {node.source!r}{node_name}: {what} contains {kind}{folded}")


def _convert(gm: torch.fx.GraphModule) -> CapturedGraph:
    modules = dict(gm.named_modules())
    nodes: list[CapturedNode] = []
    alias: dict[str, str] = {}  # fx node name -> captured node name (for removed ops)
    by_name: dict[str, CapturedNode] = {}

    def src(arg: Any, node: torch.fx.Node) -> str:
        if not isinstance(arg, torch.fx.Node):
            raise _unsupported(node, "expected a tensor argument")
        name = alias.get(arg.name, arg.name)
        if name not in by_name:
            raise _unsupported(node, f"its input {arg.name!r} is not a supported tensor")
        return name

    def emit(cn: CapturedNode) -> None:
        nodes.append(cn)
        by_name[cn.name] = cn

    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise CaptureError(f"the model must take exactly one tensor input, it takes {len(inputs)}")

    for node in gm.graph.nodes:
        kind = node.op
        if kind == "placeholder":
            emit(CapturedNode(node.name, "input", [], _shape(node), source="input"))
        elif kind == "output":
            out = node.args[0]
            if not isinstance(out, torch.fx.Node):
                raise CaptureError("the model must return exactly one tensor")
            emit(CapturedNode("output", "output", [src(out, node)], by_name[src(out, node)].shape,
                              source="output"))
        elif kind == "call_module":
            _convert_module(node, modules[node.target], emit, alias, by_name, src)
        elif kind == "call_function":
            _convert_function(node, emit, alias, by_name, src)
        elif kind == "call_method":
            _convert_method(node, emit, alias, by_name, src)
        elif kind == "get_attr":
            raise _unsupported(node, "parameters used outside a supported layer")
        else:  # pragma: no cover - fx has no other node kinds
            raise _unsupported(node)
    graph = CapturedGraph(nodes)
    _check_sizes_only_used_for_reshape(gm)
    return graph


def _check_sizes_only_used_for_reshape(gm: torch.fx.GraphModule) -> None:
    for node in gm.graph.nodes:
        if node.op == "call_method" and node.target == "size":
            for user in node.users:
                if not (user.op == "call_method" and user.target in ("view", "reshape")) and not (
                    user.op == "call_function" and user.target in (operator.getitem, torch.reshape)
                ):
                    raise _unsupported(user, "sizes may only be used to reshape")


def _fold_batchnorm(prev: CapturedNode, bn: nn.Module, node: torch.fx.Node) -> None:
    """Fold y = gamma (x - mean) / sqrt(var + eps) + beta into the preceding layer."""
    if bn.running_mean is None or bn.running_var is None:
        raise _unsupported(node, "BatchNorm without running statistics cannot be folded")
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps) if bn.affine else (
        1.0 / torch.sqrt(bn.running_var + bn.eps))
    shift = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
    w = prev.weight
    shape = (-1,) + (1,) * (w.dim() - 1)
    prev.weight = (w * scale.reshape(shape)).contiguous()
    b = prev.bias if prev.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
    prev.bias = (b - bn.running_mean) * scale + shift
    prev.params["folded_batchnorm"] = node.target


def _convert_module(node, mod, emit, alias, by_name, src) -> None:
    name = node.name
    shape = _shape(node)
    target = str(node.target)
    if isinstance(mod, _DROPOUTS):
        alias[name] = src(node.args[0], node)
    elif isinstance(mod, nn.Linear):
        emit(CapturedNode(name, "linear", [src(node.args[0], node)], shape,
                          weight=mod.weight.detach().clone().float(),
                          bias=None if mod.bias is None else mod.bias.detach().clone().float(),
                          source=target))
    elif isinstance(mod, nn.Conv2d):
        if mod.groups != 1:
            raise _unsupported(node, f"groups={mod.groups}; only groups=1 is supported")
        if mod.padding_mode != "zeros":
            raise _unsupported(node, f"padding_mode={mod.padding_mode!r}; only 'zeros'")
        if isinstance(mod.padding, str):
            raise _unsupported(node, f"padding={mod.padding!r}; give the padding as integers")
        emit(CapturedNode(name, "conv2d", [src(node.args[0], node)], shape,
                          params={"stride": _pair(mod.stride), "padding": _pair(mod.padding),
                                  "dilation": _pair(mod.dilation),
                                  "kernel": _pair(mod.kernel_size)},
                          weight=mod.weight.detach().clone().float(),
                          bias=None if mod.bias is None else mod.bias.detach().clone().float(),
                          source=target))
    elif isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
        prev = by_name.get(src(node.args[0], node))
        if prev is None or not prev.is_weighted or "folded_batchnorm" in prev.params:
            raise _unsupported(node, "BatchNorm must directly follow a Linear or Conv2d layer")
        if len(node.args[0].users) != 1:
            raise _unsupported(node, "the layer before BatchNorm has other users; cannot fold")
        _fold_batchnorm(prev, mod, node)
        alias[name] = prev.name
    elif type(mod) in _MODULE_ACTIVATIONS:
        emit(CapturedNode(name, _MODULE_ACTIVATIONS[type(mod)], [src(node.args[0], node)], shape,
                          source=target))
    elif isinstance(mod, nn.MaxPool2d):
        if mod.return_indices:
            raise _unsupported(node, "return_indices=True")
        emit(_maxpool(node, src, shape, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                      mod.ceil_mode, target))
    elif isinstance(mod, nn.AvgPool2d):
        emit(_avgpool(node, src, by_name, shape, mod.kernel_size, mod.stride, mod.padding,
                      mod.ceil_mode, mod.count_include_pad, mod.divisor_override, target))
    elif isinstance(mod, nn.AdaptiveAvgPool2d):
        emit(_adaptive_avgpool(node, src, by_name, shape, target))
    elif isinstance(mod, nn.Flatten):
        emit(CapturedNode(name, "reshape", [src(node.args[0], node)], shape, source=target))
    else:
        raise UnsupportedOperationError(
            f"node {name!r} (call_module {type(mod).__name__} at '{target}') is not supported. "
            f"Supported: {SUPPORTED_DESCRIPTION}."
        )


def _maxpool(node, src, shape, kernel, stride, padding, dilation, ceil_mode, source):
    stride = kernel if stride is None or stride == [] else stride
    return CapturedNode(node.name, "maxpool2d", [src(node.args[0], node)], shape,
                        params={"kernel": _pair(kernel), "stride": _pair(stride),
                                "padding": _pair(padding), "dilation": _pair(dilation),
                                "ceil_mode": bool(ceil_mode)}, source=source)


def _avgpool(node, src, by_name, shape, kernel, stride, padding, ceil_mode, count_include_pad,
             divisor_override, source):
    stride = kernel if stride is None or stride == [] else stride
    kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    if divisor_override is not None:
        raise _unsupported(node, "divisor_override is not supported")
    if padding != (0, 0) and not count_include_pad:
        raise _unsupported(node, "padding with count_include_pad=False gives uneven windows")
    in_shape = by_name[src(node.args[0], node)].shape
    if ceil_mode:
        for i in (0, 1):
            span = in_shape[1 + i] + 2 * padding[i] - kernel[i]
            if span % stride[i] != 0:
                raise _unsupported(node, "ceil_mode=True with partial windows")
    return CapturedNode(node.name, "avgpool2d", [src(node.args[0], node)], shape,
                        params={"kernel": kernel, "stride": stride, "padding": padding},
                        source=source)


def _adaptive_avgpool(node, src, by_name, shape, source):
    inp = src(node.args[0], node)
    in_hw = by_name[inp].shape[1:]
    out_hw = shape[1:]
    if any(i % o for i, o in zip(in_hw, out_hw, strict=True)):
        raise _unsupported(node, f"input size {in_hw} is not a multiple of output size {out_hw}")
    k = tuple(i // o for i, o in zip(in_hw, out_hw, strict=True))
    return CapturedNode(node.name, "avgpool2d", [inp], shape,
                        params={"kernel": k, "stride": k, "padding": (0, 0)}, source=source)


def _arg(node: torch.fx.Node, index: int, key: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(key, default)


def _convert_function(node, emit, alias, by_name, src) -> None:
    fn = node.target
    name = node.name
    if fn is operator.getitem:
        base = node.args[0]
        if isinstance(base, torch.fx.Node) and base.op == "call_method" and base.target == "size":
            return  # a size component, only used to reshape
        raise _unsupported(node, "indexing a tensor")
    shape = _shape(node)
    source = getattr(fn, "__name__", str(fn))
    if fn in _FUNCTION_ACTIVATIONS:
        emit(CapturedNode(name, _FUNCTION_ACTIVATIONS[fn], [src(node.args[0], node)], shape,
                          source=source))
    elif fn in (F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout):
        alias[name] = src(node.args[0], node)
    elif fn in _RESHAPE_FUNCTIONS:
        _emit_reshape(node, emit, src, shape, source)
    elif fn is F.max_pool2d:
        k = _arg(node, 1, "kernel_size", None)
        emit(_maxpool(node, src, shape, k, _arg(node, 2, "stride", None),
                      _arg(node, 3, "padding", 0), _arg(node, 4, "dilation", 1),
                      _arg(node, 5, "ceil_mode", False), source))
    elif fn is F.avg_pool2d:
        k = _arg(node, 1, "kernel_size", None)
        emit(_avgpool(node, src, by_name, shape, k, _arg(node, 2, "stride", None),
                      _arg(node, 3, "padding", 0), _arg(node, 4, "ceil_mode", False),
                      _arg(node, 5, "count_include_pad", True),
                      _arg(node, 6, "divisor_override", None), source))
    elif fn is F.adaptive_avg_pool2d:
        emit(_adaptive_avgpool(node, src, by_name, shape, source))
    elif fn in _ADD_FUNCTIONS:
        _emit_add(node, emit, src, by_name, shape, source)
    else:
        raise _unsupported(node)


def _convert_method(node, emit, alias, by_name, src) -> None:
    method = node.target
    if method == "size":
        return
    shape = _shape(node)
    if method in _METHOD_ACTIVATIONS:
        emit(CapturedNode(node.name, _METHOD_ACTIVATIONS[method], [src(node.args[0], node)],
                          shape, source=method))
    elif method in _RESHAPE_METHODS:
        if method == "contiguous":
            alias[node.name] = src(node.args[0], node)
        else:
            _emit_reshape(node, emit, src, shape, method)
    elif method == "add":
        _emit_add(node, emit, src, by_name, shape, method)
    else:
        raise _unsupported(node)


def _emit_reshape(node, emit, src, shape, source) -> None:
    meta = node.args[0].meta.get("tensor_meta") if isinstance(node.args[0], torch.fx.Node) else None
    out_meta = node.meta.get("tensor_meta")
    if meta is not None and out_meta is not None and meta.shape[0] != out_meta.shape[0]:
        raise _unsupported(node, "reshapes must keep the batch dimension")
    emit(CapturedNode(node.name, "reshape", [src(node.args[0], node)], shape, source=source))


def _emit_add(node, emit, src, by_name, shape, source) -> None:
    a, b = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
    if not (isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node)):
        raise _unsupported(node, "only the sum of two tensors (a residual add) is supported")
    if len(node.args) > 2 or "alpha" in node.kwargs:
        raise _unsupported(node, "add with alpha")
    sa, sb = src(a, node), src(b, node)
    if by_name[sa].shape != by_name[sb].shape:
        raise _unsupported(node, "residual add of tensors with different shapes (broadcasting)")
    emit(CapturedNode(node.name, "add", [sa, sb], shape, source=source))
