"""Capture: turn a torch.fx-traceable model into a graph of the operations RAPIDNN supports.

The captured graph is the composer's input. It is a flat list of :class:`CapturedNode` in
topological order, with BatchNorm folded into the preceding Linear/Conv layer, Dropout and
Identity removed, and every tensor shape (without the batch dimension) recorded from a
shape-propagation run on an example input. Anything else fails with
:class:`UnsupportedOperationError`, naming the node, its op and what is supported.

Layer names (:func:`readable_names`): a node made from a module call is named by the module's
path, as ``print(model)`` and ``model.named_modules()`` show it (``features.8``,
``layer1.0.conv1``; ``1`` for the second layer of an ``nn.Sequential``); a module called again
is ``<path>#2``, ``#3`` ... (as :func:`rapidnn.hardware.network.network_from_module` names
it). A function or method call keeps its torch.fx name (``add``, ``add_1``, ``flatten``,
``cat``), the graph input its argument's name (``x``), the output ``output``; the steps one
call becomes (a spatial mean is a reshape, a pool and a reshape) are ``<name>_<step>``.
Characters other than ASCII letters, digits and ``_`` in a module path become ``_``; a name
already taken gets ``_2``, ``_3`` ... Names are unique.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from rapidnn.composer.encoding import apply

# Ops of the captured graph ----------------------------------------------------------------
WEIGHTED_OPS = ("linear", "conv2d", "conv1d")
#: element-wise functions (rapidnn.composer.encoding.FUNCTIONS; "affine" is a per-channel
#: scale and shift: a BatchNorm that cannot be folded into a preceding layer)
ELEMENTWISE = ("relu", "sigmoid", "tanh", "hardtanh", "leaky_relu", "hardsigmoid", "hardswish",
               "silu", "gelu", "mish", "scale", "offset", "affine")
ACTIVATIONS = ELEMENTWISE  # kept for readers of the original name
POOLS = ("maxpool2d", "avgpool2d", "adaptive_avgpool2d", "adaptive_maxpool2d")
#: ops that only move codes (no arithmetic): layout changes and constant padding
LAYOUT_OPS = ("reshape", "permute", "slice", "concat", "pad")
SUPPORTED_DESCRIPTION = (
    "Linear, Conv2d (any groups: depthwise and grouped; zero padding), Conv1d, BatchNorm "
    "(folded into a preceding Linear/Conv, else a per-channel affine), ReLU, ReLU6, Hardtanh, "
    "LeakyReLU, Sigmoid, Tanh, Hardsigmoid, Hardswish, SiLU, GELU, Mish, multiplication or "
    "division by a constant, adding a constant, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and "
    "AdaptiveMaxPool2d (any size), mean over the spatial dimensions, Flatten/view/reshape/"
    "squeeze/unsqueeze, transpose/permute (batch dimension first), channel shuffle, torch.cat, "
    "chunk/split, basic indexing and slicing (with steps), F.pad (constant), Dropout, "
    "Identity, stochastic depth, residual add (+) and element-wise product (*) of two tensors"
)
OUT_OF_SCOPE = ("LayerNorm and attention (transformer blocks) are out of scope for now: "
                "rapidnn composes convolutional and fully connected networks")


class CaptureError(ValueError):
    """The model cannot be captured (tracing failed, or the graph has an unusable shape)."""


class UnsupportedOperationError(CaptureError):
    """A node of the traced graph is not one of the supported operations."""


@dataclass
class CapturedNode:
    """One operation of the captured graph.

    ``op`` is input, output, one of :data:`WEIGHTED_OPS`, :data:`ELEMENTWISE`, :data:`POOLS`,
    :data:`LAYOUT_OPS`, add or mul (``docs/operators.md``). ``params`` holds the static
    attributes (stride, padding, kernel, groups, function parameters, permutation, slices
    ...); ``weight``/``bias`` are the float parameters of weighted ops (BatchNorm already
    folded in) and the per-channel scale/shift of an affine node. ``shape`` is the output
    shape without the batch dimension.
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
    op = node.op
    if op == "linear":
        return F.linear(x, w, b)
    if op == "conv2d":
        return F.conv2d(x, w, b, p["stride"], p["padding"], p["dilation"], p.get("groups", 1))
    if op == "conv1d":
        return F.conv1d(x, w, b, p["stride"], p["padding"], p["dilation"], p.get("groups", 1))
    if op == "affine":
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return x * w.reshape(shape) + b.reshape(shape)
    if op in ELEMENTWISE:
        return apply(op, x, p)
    if op == "maxpool2d":
        return F.max_pool2d(x, p["kernel"], p["stride"], p["padding"], p["dilation"],
                            p["ceil_mode"])
    if op == "avgpool2d":
        return F.avg_pool2d(x, p["kernel"], p["stride"], p["padding"])
    if op == "adaptive_avgpool2d":
        return F.adaptive_avg_pool2d(x, p["output_size"])
    if op == "adaptive_maxpool2d":
        return F.adaptive_max_pool2d(x, p["output_size"])
    if op == "reshape":
        return x.reshape(x.shape[0], *node.shape)
    if op == "permute":
        return x.permute(0, *(d + 1 for d in p["dims"]))
    if op == "slice":
        return x[(slice(None), *(slice(*s) for s in p["slices"]))].reshape(x.shape[0],
                                                                              *node.shape)
    if op == "pad":
        return F.pad(x, list(p["pad"]), value=p["value"])
    if op == "concat":
        return torch.cat(args, p["dim"])
    if op == "add":
        return args[0] + args[1]
    if op == "mul":
        return args[0] * args[1]
    raise CaptureError(f"no float semantics for op {node.op!r}")


# Tracing ----------------------------------------------------------------------------------
def _pair(v: Any) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _single(v: Any) -> tuple[int]:
    return (int(v),) if isinstance(v, int) else (int(v[0]),)


# element-wise functions: (op, params) from a module, or from a call's arguments
_MODULE_FUNCTIONS: dict[type, Callable[[nn.Module], tuple[str, dict[str, Any]]]] = {
    nn.ReLU: lambda m: ("relu", {}),
    nn.Sigmoid: lambda m: ("sigmoid", {}),
    nn.Tanh: lambda m: ("tanh", {}),
    nn.ReLU6: lambda m: ("hardtanh", {"min_val": 0.0, "max_val": 6.0}),
    nn.Hardtanh: lambda m: ("hardtanh", {"min_val": float(m.min_val),
                                         "max_val": float(m.max_val)}),
    nn.LeakyReLU: lambda m: ("leaky_relu", {"negative_slope": float(m.negative_slope)}),
    nn.Hardsigmoid: lambda m: ("hardsigmoid", {}),
    nn.Hardswish: lambda m: ("hardswish", {}),
    nn.SiLU: lambda m: ("silu", {}),
    nn.GELU: lambda m: ("gelu", {"approximate": str(m.approximate)}),
    nn.Mish: lambda m: ("mish", {}),
}
_PLAIN_FUNCTIONS = {
    torch.relu: "relu", F.relu: "relu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", F.tanh: "tanh", F.hardsigmoid: "hardsigmoid",
    F.hardswish: "hardswish", F.silu: "silu", F.mish: "mish",
}
_METHOD_FUNCTIONS = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh", "relu_": "relu"}
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
             nn.FeatureAlphaDropout, nn.Identity)
_DROPOUT_FUNCTIONS = (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout,
                      F.feature_alpha_dropout)
_RESHAPE_FUNCTIONS = (torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze)
_RESHAPE_METHODS = ("view", "reshape", "flatten", "squeeze", "unsqueeze", "view_as",
                    "reshape_as")
_ADD_FUNCTIONS = (operator.add, torch.add, operator.iadd)
_SUB_FUNCTIONS = (operator.sub, torch.sub, operator.isub)
_MUL_FUNCTIONS = (operator.mul, torch.mul, operator.imul)
_DIV_FUNCTIONS = (operator.truediv, torch.div, operator.itruediv)
_CAT_FUNCTIONS = (torch.cat, torch.concat, torch.concatenate)
_PERMUTE_FUNCTIONS = (torch.permute, torch.transpose, torch.swapaxes, torch.swapdims)
_OUT_OF_SCOPE_MODULES = (nn.LayerNorm, nn.GroupNorm, nn.MultiheadAttention,
                         nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
                         nn.TransformerEncoder, nn.TransformerDecoder, nn.Transformer)
_OUT_OF_SCOPE_FUNCTIONS = (F.layer_norm, F.group_norm, F.scaled_dot_product_attention,
                           F.multi_head_attention_forward, torch.matmul, torch.bmm,
                           operator.matmul, torch.softmax, F.softmax)
_STATIC_ARITHMETIC = (operator.floordiv, operator.mul, operator.add, operator.sub,
                      operator.truediv, operator.mod, operator.neg, operator.eq, operator.ne,
                      operator.lt, operator.le, operator.gt, operator.ge, operator.not_,
                      operator.and_, operator.or_)


def _unsupported(node: torch.fx.Node, why: str = "") -> UnsupportedOperationError:
    reason = f" ({why})" if why else ""
    return UnsupportedOperationError(
        f"node {node.name!r} ({node.op} {_describe_target(node)}) is not supported{reason}. "
        f"Supported: {SUPPORTED_DESCRIPTION}."
    )


def _out_of_scope(node: torch.fx.Node, what: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"node {node.name!r} ({node.op} {what}) is not supported: {OUT_OF_SCOPE}. "
        f"Supported: {SUPPORTED_DESCRIPTION}."
    )


def _describe_target(node: torch.fx.Node) -> str:
    t = node.target
    return getattr(t, "__name__", str(t))


def _meta_shape(node: torch.fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(int(s) for s in meta.shape) if hasattr(meta, "shape") else None


def _shape(node: torch.fx.Node) -> tuple[int, ...]:
    full = _meta_shape(node)
    if full is None:
        raise CaptureError(f"node {node.name!r} has no tensor shape after shape propagation")
    return full[1:]


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
    # layer of a Sequential it is captured like the same layer in a network (layer "0")
    root = nn.Sequential(model) if torch.fx.Tracer().is_leaf_module(model, "") else model
    root.eval()
    try:
        gm = torch.fx.symbolic_trace(root)
    except Exception as exc:  # torch.fx raises many types; report them as one clear error
        raise CaptureError(f"torch.fx could not trace {kind}: {exc}") from exc
    finally:
        model.train(was_training)
    try:
        # ShapeProp prints the traceback of a failing node itself: kept off the user's terminal
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            ShapeProp(gm).propagate(example_input.detach().float().cpu())
    except Exception as exc:  # the example input does not fit the model
        cause = exc.__cause__ or exc
        raise CaptureError(f"running {kind} on the example input of shape "
                           f"{tuple(example_input.shape)} failed: {cause}") from exc
    graph = _Converter(gm).run()
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
    for node in graph:
        for tensor, what in ((node.weight, "weight"), (node.bias, "bias")):
            if tensor is None or bool(torch.isfinite(tensor).all()):
                continue
            kind = "NaN" if bool(tensor.isnan().any()) else "infinite values"
            bn = node.params.get("folded_batchnorm")
            folded = f" after folding BatchNorm {bn!r}" if bn is not None else ""
            node_name = f" (node {node.name!r})" if node.name != node.source else ""
            raise CaptureError(f"layer {node.source!r}{node_name}: {what} contains {kind}{folded}")


class _Converter:
    """One pass over the fx graph, emitting captured nodes (some fx nodes become several:
    a spatial mean is a reshape, an average pool and a reshape; channel shuffle is reshape,
    permute, reshape)."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        self.gm = gm
        self.modules = dict(gm.named_modules())
        self.nodes: list[CapturedNode] = []
        self.by_name: dict[str, CapturedNode] = {}
        self.alias: dict[str, str] = {}  # fx node name -> captured node name (removed ops)
        self.static: dict[str, Any] = {}  # fx node name -> a value known from the shapes
        self.parts: dict[str, list[tuple[int, int]]] = {}  # chunk/split -> (start, stop) in dim
        self.part_dim: dict[str, int] = {}
        self.used_names = {n.name for n in gm.graph.nodes}
        self.steps: dict[str, tuple[str, str]] = {}  # fresh name -> (fx node name, step)

    # helpers -----------------------------------------------------------------------------
    def src(self, arg: Any, node: torch.fx.Node) -> str:
        if not isinstance(arg, torch.fx.Node):
            raise _unsupported(node, "expected a tensor argument")
        name = self.alias.get(arg.name, arg.name)
        if name not in self.by_name:
            raise _unsupported(node, f"its input {arg.name!r} is not a supported tensor")
        return name

    def emit(self, cn: CapturedNode) -> CapturedNode:
        self.nodes.append(cn)
        self.by_name[cn.name] = cn
        return cn

    def fresh(self, base: str, suffix: str) -> str:
        name = f"{base}_{suffix}"
        while name in self.used_names:
            name += "_"
        self.used_names.add(name)
        self.steps[name] = (base, suffix)
        return name

    def value(self, arg: Any, node: torch.fx.Node) -> Any:
        """A constant argument (size-derived values resolved); a tensor is an error."""
        if isinstance(arg, torch.fx.Node):
            if arg.name not in self.static:
                raise _unsupported(node, f"argument {arg.name!r} must be a constant")
            return self.static[arg.name]
        if isinstance(arg, list | tuple):
            return type(arg)(self.value(a, node) for a in arg)
        if isinstance(arg, slice):
            return slice(self.value(arg.start, node), self.value(arg.stop, node),
                         self.value(arg.step, node))
        return arg

    def shape_of(self, name: str) -> tuple[int, ...]:
        return self.by_name[name].shape

    def simple(self, node: torch.fx.Node, op: str, params: dict[str, Any] | None = None,
               inputs: list[str] | None = None, source: str = "") -> CapturedNode:
        return self.emit(CapturedNode(node.name, op, inputs or [self.src(node.args[0], node)],
                                      _shape(node), params=params or {}, source=source))

    # driver ------------------------------------------------------------------------------
    def run(self) -> CapturedGraph:
        inputs = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise CaptureError(f"the model must take exactly one tensor input, it takes "
                               f"{len(inputs)}")
        for node in self.gm.graph.nodes:
            kind = node.op
            if kind == "placeholder":
                self.emit(CapturedNode(node.name, "input", [], _shape(node), source="input"))
            elif kind == "output":
                out = node.args[0]
                if not isinstance(out, torch.fx.Node) or _meta_shape(out) is None:
                    raise CaptureError("the model must return exactly one tensor")
                name = self.src(out, node)
                self.emit(CapturedNode("output", "output", [name], self.shape_of(name),
                                       source="output"))
            elif kind == "call_module":
                self.module(node, self.modules[node.target])
            elif kind == "call_function":
                self.function(node)
            elif kind == "call_method":
                self.method(node)
            elif kind == "get_attr":
                if any(u.target in _OUT_OF_SCOPE_FUNCTIONS for u in node.users):
                    raise _out_of_scope(node, f"parameter {node.target} of a normalisation or "
                                              f"attention layer")
                raise _unsupported(node, "parameters used outside a supported layer")
            else:  # pragma: no cover - fx has no other node kinds
                raise _unsupported(node)
        paths = {n.name: str(n.target) for n in self.gm.graph.nodes if n.op == "call_module"}
        names = readable_names([n.name for n in self.nodes], paths, self.steps)
        return CapturedGraph([dataclasses.replace(n, name=names[n.name],
                                                  inputs=[names[i] for i in n.inputs])
                              for n in self.nodes])

    # modules -----------------------------------------------------------------------------
    def module(self, node: torch.fx.Node, mod: nn.Module) -> None:
        name, target = node.name, str(node.target)
        if isinstance(mod, _DROPOUTS):
            self.alias[name] = self.src(node.args[0], node)
        elif isinstance(mod, nn.Linear):
            self.emit(CapturedNode(name, "linear", [self.src(node.args[0], node)], _shape(node),
                                   weight=_param(mod.weight), bias=_param(mod.bias),
                                   source=target))
        elif isinstance(mod, nn.Conv2d | nn.Conv1d):
            self.conv(node, mod, target)
        elif isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            self.batchnorm(node, mod)
        elif type(mod) in _MODULE_FUNCTIONS:
            op, params = _MODULE_FUNCTIONS[type(mod)](mod)
            self.simple(node, op, params, source=target)
        elif isinstance(mod, nn.MaxPool2d):
            if mod.return_indices:
                raise _unsupported(node, "return_indices=True")
            self.emit(self.maxpool(node, mod.kernel_size, mod.stride, mod.padding,
                                   mod.dilation, mod.ceil_mode, target))
        elif isinstance(mod, nn.AvgPool2d):
            self.emit(self.avgpool(node, mod.kernel_size, mod.stride, mod.padding,
                                   mod.ceil_mode, mod.count_include_pad, mod.divisor_override,
                                   target))
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            self.adaptive(node, "avg", target)
        elif isinstance(mod, nn.AdaptiveMaxPool2d):
            if mod.return_indices:
                raise _unsupported(node, "return_indices=True")
            self.adaptive(node, "max", target)
        elif isinstance(mod, nn.Flatten | nn.Unflatten):
            self.reshape(node, target)
        elif isinstance(mod, nn.ZeroPad2d | nn.ConstantPad1d | nn.ConstantPad2d):
            self.pad(node, list(mod.padding), float(getattr(mod, "value", 0.0)), target)
        elif isinstance(mod, nn.ChannelShuffle):
            self.channel_shuffle(node, int(mod.groups), target)
        elif isinstance(mod, _OUT_OF_SCOPE_MODULES):
            raise _out_of_scope(node, f"{type(mod).__name__} at '{target}'")
        else:
            raise UnsupportedOperationError(
                f"node {name!r} (call_module {type(mod).__name__} at '{target}') is not "
                f"supported. Supported: {SUPPORTED_DESCRIPTION}."
            )

    def conv(self, node: torch.fx.Node, mod: nn.Conv1d | nn.Conv2d, target: str) -> None:
        if mod.padding_mode != "zeros":
            raise _unsupported(node, f"padding_mode={mod.padding_mode!r}; only 'zeros'")
        if isinstance(mod.padding, str):
            raise _unsupported(node, f"padding={mod.padding!r}; give the padding as integers")
        two = isinstance(mod, nn.Conv2d)
        conv = _pair if two else _single
        params: dict[str, Any] = {"stride": conv(mod.stride), "padding": conv(mod.padding),
                                  "dilation": conv(mod.dilation), "kernel": conv(mod.kernel_size)}
        if mod.groups != 1:
            params["groups"] = int(mod.groups)
        self.emit(CapturedNode(node.name, "conv2d" if two else "conv1d",
                               [self.src(node.args[0], node)], _shape(node), params=params,
                               weight=_param(mod.weight), bias=_param(mod.bias), source=target))

    def batchnorm(self, node: torch.fx.Node, bn: nn.Module) -> None:
        """Folded into the preceding Linear/Conv when it is that layer's only user; otherwise
        a per-channel affine (an element-wise function with one table per channel)."""
        if bn.running_mean is None or bn.running_var is None:
            raise _unsupported(node, "BatchNorm without running statistics cannot be folded")
        scale = (bn.weight.detach() if bn.affine else 1.0) / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias.detach() if bn.affine else torch.zeros_like(bn.running_mean)
        inp = self.src(node.args[0], node)
        prev = self.by_name[inp]
        if prev.is_weighted and "folded_batchnorm" not in prev.params and \
                len(node.args[0].users) == 1:
            _fold_batchnorm(prev, scale, shift, bn, str(node.target))
            self.alias[node.name] = prev.name
            return
        self.emit(CapturedNode(node.name, "affine", [inp], _shape(node),
                               weight=scale.float().clone(),
                               bias=(shift - bn.running_mean * scale).float().clone(),
                               source=str(node.target)))

    def maxpool(self, node, kernel, stride, padding, dilation, ceil_mode, source) -> CapturedNode:
        stride = kernel if stride is None or stride == [] else stride
        return CapturedNode(node.name, "maxpool2d", [self.src(node.args[0], node)], _shape(node),
                            params={"kernel": _pair(kernel), "stride": _pair(stride),
                                    "padding": _pair(padding), "dilation": _pair(dilation),
                                    "ceil_mode": bool(ceil_mode)}, source=source)

    def avgpool(self, node, kernel, stride, padding, ceil_mode, count_include_pad,
                divisor_override, source) -> CapturedNode:
        stride = kernel if stride is None or stride == [] else stride
        kernel, stride, padding = _pair(kernel), _pair(stride), _pair(padding)
        if divisor_override is not None:
            raise _unsupported(node, "divisor_override is not supported")
        if padding != (0, 0) and not count_include_pad:
            raise _unsupported(node, "padding with count_include_pad=False gives uneven "
                                     "windows")
        inp = self.src(node.args[0], node)
        in_shape = self.shape_of(inp)
        if ceil_mode:
            for i in (0, 1):
                span = in_shape[1 + i] + 2 * padding[i] - kernel[i]
                if span % stride[i] != 0:
                    raise _unsupported(node, "ceil_mode=True with partial windows")
        return CapturedNode(node.name, "avgpool2d", [inp], _shape(node),
                            params={"kernel": kernel, "stride": stride, "padding": padding},
                            source=source)

    def adaptive(self, node: torch.fx.Node, kind: str, source: str) -> None:
        """Uniform windows (input a multiple of the output) are ordinary pools; any other
        ratio (including an output larger than the input) is an adaptive pool."""
        inp = self.src(node.args[0], node)
        in_shape, shape = self.shape_of(inp), _shape(node)
        if len(in_shape) != 3:
            raise _unsupported(node, "adaptive pooling needs a (C, H, W) input")
        in_hw, out_hw = in_shape[1:], shape[1:]
        if all(i % o == 0 for i, o in zip(in_hw, out_hw, strict=True)):
            k = tuple(i // o for i, o in zip(in_hw, out_hw, strict=True))
            if kind == "avg":
                params = {"kernel": k, "stride": k, "padding": (0, 0)}
            else:
                params = {"kernel": k, "stride": k, "padding": (0, 0), "dilation": (1, 1),
                          "ceil_mode": False}
            self.emit(CapturedNode(node.name, f"{kind}pool2d", [inp], shape, params=params,
                                   source=source))
        else:
            self.emit(CapturedNode(node.name, f"adaptive_{kind}pool2d", [inp], shape,
                                   params={"output_size": tuple(out_hw)}, source=source))

    def reshape(self, node: torch.fx.Node, source: str) -> None:
        full_in = _meta_shape(node.args[0]) if isinstance(node.args[0], torch.fx.Node) else None
        full_out = _meta_shape(node)
        if full_in is not None and full_out is not None and full_in[0] != full_out[0]:
            raise _unsupported(node, "reshapes must keep the batch dimension")
        self.simple(node, "reshape", source=source)

    def pad(self, node: torch.fx.Node, pad: list[int], value: float, source: str) -> None:
        pad = [int(p) for p in pad]
        inp = self.src(node.args[0], node)
        if len(pad) % 2 or len(pad) // 2 > len(self.shape_of(inp)):
            raise _unsupported(node, "padding may not change the batch dimension")
        if any(p < 0 for p in pad):
            raise _unsupported(node, "negative padding (cropping): use slicing")
        if not math.isfinite(value):
            raise _unsupported(node, f"padding value {value}")
        self.simple(node, "pad", {"pad": tuple(pad), "value": float(value)}, [inp], source)

    def channel_shuffle(self, node: torch.fx.Node, groups: int, source: str) -> None:
        inp = self.src(node.args[0], node)
        c, *rest = self.shape_of(inp)
        a = self.fresh(node.name, "groups")
        b = self.fresh(node.name, "swap")
        self.emit(CapturedNode(a, "reshape", [inp], (groups, c // groups, *rest), source=source))
        dims = (1, 0, *range(2, len(rest) + 2))
        self.emit(CapturedNode(b, "permute", [a], (c // groups, groups, *rest),
                               params={"dims": dims}, source=source))
        self.emit(CapturedNode(node.name, "reshape", [b], _shape(node), source=source))

    # functions and methods -------------------------------------------------------------
    def function(self, node: torch.fx.Node) -> None:
        fn, name = node.target, node.name
        if fn is operator.getitem:
            self.getitem(node)
            return
        if fn is getattr:
            base = node.args[0]
            if node.args[1] == "shape" and isinstance(base, torch.fx.Node):
                self.static[name] = _meta_shape(base)
                return
            raise _unsupported(node, f"attribute {node.args[1]!r}")
        if fn in _STATIC_ARITHMETIC and _meta_shape(node) is None:
            self.static[name] = fn(*(self.value(a, node) for a in node.args))
            return
        if fn is torch._assert and _meta_shape(node) is None:
            if not self.value(node.args[0], node):  # a shape check torch.fx kept: true here
                raise _unsupported(node, "an assertion on the shapes fails")
            return
        if getattr(fn, "__name__", "") == "stochastic_depth" and \
                str(getattr(fn, "__module__", "")).startswith("torchvision"):
            if self.value(_arg(node, 3, "training", True), node):  # pragma: no cover - eval
                raise _unsupported(node, "stochastic depth in training mode")
            self.alias[name] = self.src(node.args[0], node)  # identity at inference
            return
        source = getattr(fn, "__name__", str(fn))
        if fn in _PLAIN_FUNCTIONS:
            self.simple(node, _PLAIN_FUNCTIONS[fn], source=source)
        elif fn in (F.relu6, F.hardtanh):
            lo, hi = (0.0, 6.0) if fn is F.relu6 else (
                float(self.value(_arg(node, 1, "min_val", -1.0), node)),
                float(self.value(_arg(node, 2, "max_val", 1.0), node)))
            self.simple(node, "hardtanh", {"min_val": lo, "max_val": hi}, source=source)
        elif fn is F.leaky_relu:
            slope = float(self.value(_arg(node, 1, "negative_slope", 0.01), node))
            self.simple(node, "leaky_relu", {"negative_slope": slope}, source=source)
        elif fn is F.gelu:
            self.simple(node, "gelu", {"approximate": str(node.kwargs.get("approximate",
                                                                          "none"))},
                        source=source)
        elif fn in _DROPOUT_FUNCTIONS:
            self.alias[name] = self.src(node.args[0], node)
        elif fn in _RESHAPE_FUNCTIONS:
            self.reshape(node, source)
        elif fn is F.max_pool2d:
            if _arg(node, 6, "return_indices", False):
                raise _unsupported(node, "return_indices=True")
            self.emit(self.maxpool(node, _arg(node, 1, "kernel_size", None),
                                   _arg(node, 2, "stride", None), _arg(node, 3, "padding", 0),
                                   _arg(node, 4, "dilation", 1), _arg(node, 5, "ceil_mode", False),
                                   source))
        elif fn is F.avg_pool2d:
            self.emit(self.avgpool(node, _arg(node, 1, "kernel_size", None),
                                   _arg(node, 2, "stride", None), _arg(node, 3, "padding", 0),
                                   _arg(node, 4, "ceil_mode", False),
                                   _arg(node, 5, "count_include_pad", True),
                                   _arg(node, 6, "divisor_override", None), source))
        elif fn is F.adaptive_avg_pool2d:
            self.adaptive(node, "avg", source)
        elif fn is F.adaptive_max_pool2d:
            if _arg(node, 2, "return_indices", False):
                raise _unsupported(node, "return_indices=True")
            self.adaptive(node, "max", source)
        elif fn in _ADD_FUNCTIONS or fn in _SUB_FUNCTIONS:
            self.add(node, fn in _SUB_FUNCTIONS, source)
        elif fn in _MUL_FUNCTIONS or fn in _DIV_FUNCTIONS:
            self.mul(node, fn in _DIV_FUNCTIONS, source)
        elif fn in _CAT_FUNCTIONS:
            self.concat(node, source)
        elif fn in (torch.chunk, torch.split, torch.tensor_split):
            self.split(node, source)
        elif fn is torch.narrow:
            self.narrow(node, source)
        elif fn in _PERMUTE_FUNCTIONS:
            self.permute(node, source)
        elif fn is torch.mean:
            self.mean(node, source)
        elif fn is F.pad:
            mode = _arg(node, 2, "mode", "constant")
            if mode != "constant":
                raise _unsupported(node, f"mode={mode!r}; only constant padding")
            value = _arg(node, 3, "value", None)
            self.pad(node, self.value(_arg(node, 1, "pad", None), node),
                     0.0 if value is None else float(self.value(value, node)), source)
        elif fn is F.batch_norm:
            raise _unsupported(node, "functional batch_norm: use an nn.BatchNorm module")
        elif fn in _OUT_OF_SCOPE_FUNCTIONS:
            raise _out_of_scope(node, source)
        else:
            raise _unsupported(node)

    def method(self, node: torch.fx.Node) -> None:
        method = node.target
        if method == "size":
            full = _meta_shape(node.args[0])
            dim = _arg(node, 1, "dim", None)
            self.static[node.name] = full if dim is None else full[int(self.value(dim, node))]
            return
        if method in ("dim", "numel"):
            full = _meta_shape(node.args[0])
            self.static[node.name] = len(full) if method == "dim" else math.prod(full)
            return
        source = str(method)
        if method in _METHOD_FUNCTIONS:
            self.simple(node, _METHOD_FUNCTIONS[method], source=source)
        elif method in ("contiguous", "clone", "detach"):
            self.alias[node.name] = self.src(node.args[0], node)
        elif method in _RESHAPE_METHODS:
            self.reshape(node, source)
        elif method in ("add", "add_", "sub", "sub_"):
            self.add(node, method.startswith("sub"), source)
        elif method in ("mul", "mul_", "div", "div_"):
            self.mul(node, method.startswith("div"), source)
        elif method in ("chunk", "split", "tensor_split"):
            self.split(node, source)
        elif method == "narrow":
            self.narrow(node, source)
        elif method in ("permute", "transpose", "swapaxes", "swapdims"):
            self.permute(node, source)
        elif method == "mean":
            self.mean(node, source)
        elif method in ("softmax", "matmul", "bmm"):
            raise _out_of_scope(node, source)
        else:
            raise _unsupported(node)

    def add(self, node: torch.fx.Node, subtract: bool, source: str) -> None:
        a = node.args[0]
        b = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        if len(node.args) > 2 or "alpha" in node.kwargs:
            raise _unsupported(node, "add with alpha")
        tensors = [isinstance(v, torch.fx.Node) and v.name not in self.static for v in (a, b)]
        if all(tensors):
            if subtract:
                raise _unsupported(node, "the difference of two tensors")
            sa, sb = self.src(a, node), self.src(b, node)
            if self.shape_of(sa) != self.shape_of(sb):
                raise _unsupported(node, "residual add of tensors with different shapes "
                                         "(broadcasting)")
            self.emit(CapturedNode(node.name, "add", [sa, sb], _shape(node), source=source))
            return
        if not any(tensors):
            raise _unsupported(node, "expected a tensor argument")
        t, c = (a, b) if tensors[0] else (b, a)
        value = _number(self.value(c, node), node)
        if subtract and not tensors[0]:  # c - x
            raise _unsupported(node, "a constant minus a tensor")
        self.emit(CapturedNode(node.name, "offset", [self.src(t, node)], _shape(node),
                               params={"value": -value if subtract else value},
                               source=source))

    def mul(self, node: torch.fx.Node, divide: bool, source: str) -> None:
        a = node.args[0]
        b = node.args[1] if len(node.args) > 1 else node.kwargs.get("other")
        if "rounding_mode" in node.kwargs or len(node.args) > 2:
            raise _unsupported(node, "division with a rounding mode")
        tensors = [isinstance(v, torch.fx.Node) and v.name not in self.static for v in (a, b)]
        if all(tensors):
            if divide:
                raise _unsupported(node, "the quotient of two tensors")
            sa, sb = self.src(a, node), self.src(b, node)
            shape = _shape(node)
            for s in (sa, sb):
                have = self.shape_of(s)
                if len(have) != len(shape) or any(h not in (1, o) for h, o in
                                                  zip(have, shape, strict=True)):
                    raise _unsupported(node, f"product of shapes {self.shape_of(sa)} and "
                                             f"{self.shape_of(sb)}: both operands need the "
                                             f"same dimensions (size-1 dimensions broadcast)")
            self.emit(CapturedNode(node.name, "mul", [sa, sb], shape, source=source))
            return
        if not any(tensors):
            raise _unsupported(node, "expected a tensor argument")
        t, c = (a, b) if tensors[0] else (b, a)
        factor = _number(self.value(c, node), node)
        if divide:
            if not tensors[0]:
                raise _unsupported(node, "a constant divided by a tensor")
            if factor == 0:
                raise _unsupported(node, "division by zero")
            factor = 1.0 / factor
        self.emit(CapturedNode(node.name, "scale", [self.src(t, node)], _shape(node),
                               params={"factor": factor}, source=source))

    def concat(self, node: torch.fx.Node, source: str) -> None:
        tensors = node.args[0] if node.args else node.kwargs.get("tensors")
        if not isinstance(tensors, list | tuple) or not tensors:
            raise _unsupported(node, "cat needs a list of tensors")
        names = [self.src(t, node) for t in tensors]
        ndim = len(_shape(node)) + 1
        dim = int(self.value(_arg(node, 1, "dim", 0), node))
        dim = dim + ndim if dim < 0 else dim
        if dim == 0:
            raise _unsupported(node, "concatenation along the batch dimension")
        if len(names) == 1:
            self.alias[node.name] = names[0]
            return
        self.emit(CapturedNode(node.name, "concat", names, _shape(node), params={"dim": dim},
                               source=source))

    def split(self, node: torch.fx.Node, source: str) -> None:
        """chunk/split give a tuple: each part taken from it (``getitem``) is a slice."""
        metas = node.meta.get("tensor_meta")
        if not isinstance(metas, list | tuple) or hasattr(metas, "shape"):
            raise _unsupported(node, "expected a tuple of tensors")
        self.src(node.args[0], node)
        full = _meta_shape(node.args[0])
        dim = int(self.value(_arg(node, 2, "dim", 0), node))
        dim = dim + len(full) if dim < 0 else dim
        if dim == 0:
            raise _unsupported(node, "splitting the batch dimension")
        bounds, start = [], 0
        for m in metas:
            size = int(m.shape[dim])
            bounds.append((start, start + size))
            start += size
        self.parts[node.name] = bounds
        self.part_dim[node.name] = dim

    def narrow(self, node: torch.fx.Node, source: str) -> None:
        full = _meta_shape(node.args[0])
        dim = int(self.value(_arg(node, 1, "dim", None), node))
        dim = dim + len(full) if dim < 0 else dim
        start = int(self.value(_arg(node, 2, "start", None), node))
        start = start + full[dim] if start < 0 else start
        length = int(self.value(_arg(node, 3, "length", None), node))
        self.slice(node, [slice(None)] * dim + [slice(start, start + length, 1)], source)

    def getitem(self, node: torch.fx.Node) -> None:
        base, index = node.args
        if isinstance(base, torch.fx.Node) and base.name in self.static:
            self.static[node.name] = self.static[base.name][self.value(index, node)]
            return
        if isinstance(base, torch.fx.Node) and base.name in self.parts:
            start, stop = self.parts[base.name][int(index)]
            dim = self.part_dim[base.name]
            self.slice(node, [slice(None)] * dim + [slice(start, stop, 1)], "getitem",
                       src=base.args[0])
            return
        if not isinstance(base, torch.fx.Node) or _meta_shape(base) is None:
            raise _unsupported(node, "indexing something that is not a tensor")
        index = self.value(index, node)
        index = index if isinstance(index, tuple) else (index,)
        self.slice(node, list(index), "getitem")

    def slice(self, node: torch.fx.Node, index: list[Any], source: str,
              src: torch.fx.Node | None = None) -> None:
        """Basic indexing (ints, slices with steps, None, ...) that keeps the batch whole."""
        base = src if src is not None else node.args[0]
        inp = self.src(base, node)
        full = (0, *self.shape_of(inp))
        if sum(i is Ellipsis for i in index) > 1:
            raise _unsupported(node, "more than one Ellipsis")
        if Ellipsis in index:
            at = index.index(Ellipsis)
            real = sum(i is not None for i in index) - 1
            index = index[:at] + [slice(None)] * (len(full) - real) + index[at + 1:]
        dims = [i for i in index if i is not None]
        if len(dims) > len(full):
            raise _unsupported(node, "too many indices")
        dims += [slice(None)] * (len(full) - len(dims))
        for i in dims:
            if not isinstance(i, int | slice) or isinstance(i, bool):
                raise _unsupported(node, "indexing with a tensor or a list (only integers, "
                                         "slices, None and ... are supported)")
        if dims[0] != slice(None):
            raise _unsupported(node, "indexing the batch dimension")
        slices = []
        for size, i in zip(full[1:], dims[1:], strict=True):
            if isinstance(i, int):
                j = i + size if i < 0 else i
                if not 0 <= j < size:
                    raise _unsupported(node, f"index {i} out of range")
                slices.append((j, j + 1, 1))
            else:
                start, stop, step = i.indices(size)
                if step < 1:
                    raise _unsupported(node, "a negative step")
                slices.append((start, max(start, stop), step))
        if all(s == (0, n, 1) for s, n in zip(slices, full[1:], strict=True)) and \
                _shape(node) == full[1:]:
            self.alias[node.name] = inp
            return
        self.emit(CapturedNode(node.name, "slice", [inp], _shape(node),
                               params={"slices": tuple(slices)}, source=source))

    def permute(self, node: torch.fx.Node, source: str) -> None:
        inp = self.src(node.args[0], node)
        ndim = len(self.shape_of(inp)) + 1
        fn = node.target
        if fn in ("transpose", "swapaxes", "swapdims", torch.transpose, torch.swapaxes,
                  torch.swapdims):
            d0 = int(self.value(node.args[1], node))
            d1 = int(self.value(node.args[2], node))
            order = list(range(ndim))
            a, b = d0 % ndim, d1 % ndim
            order[a], order[b] = order[b], order[a]
        else:
            rest = node.args[1:] if len(node.args) > 1 else (node.kwargs.get("dims"),)
            if len(rest) == 1 and isinstance(rest[0], list | tuple):
                rest = rest[0]
            order = [int(self.value(d, node)) % ndim for d in rest]
        if order[0] != 0:
            raise _unsupported(node, "the batch dimension must stay first")
        if order == list(range(ndim)):
            self.alias[node.name] = inp
            return
        self.emit(CapturedNode(node.name, "permute", [inp], _shape(node),
                               params={"dims": tuple(d - 1 for d in order[1:])}, source=source))

    def mean(self, node: torch.fx.Node, source: str) -> None:
        """The mean over every dimension after the channel dimension: one average-pool window
        over all positions (reshaped to (C, positions, 1)), then the output's shape."""
        inp = self.src(node.args[0], node)
        in_shape = self.shape_of(inp)
        ndim = len(in_shape) + 1
        dims = self.value(_arg(node, 1, "dim", None), node)
        dims = tuple(range(ndim)) if dims is None else (
            (dims,) if isinstance(dims, int) else tuple(dims))
        dims = tuple(sorted(d % ndim for d in dims))
        if ndim < 3 or dims != tuple(range(2, ndim)) or node.kwargs.get("dtype") is not None:
            raise _unsupported(node, "mean over the dimensions after the channel dimension "
                                     "only")
        c, positions = in_shape[0], math.prod(in_shape[1:])
        flat = self.fresh(node.name, "positions")
        pooled = self.fresh(node.name, "pool")
        self.emit(CapturedNode(flat, "reshape", [inp], (c, positions, 1), source=source))
        self.emit(CapturedNode(pooled, "avgpool2d", [flat], (c, 1, 1),
                               params={"kernel": (positions, 1), "stride": (positions, 1),
                                       "padding": (0, 0)}, source=source))
        self.emit(CapturedNode(node.name, "reshape", [pooled], _shape(node), source=source))


def readable_names(nodes: list[str], paths: dict[str, str],
                   steps: dict[str, tuple[str, str]]) -> dict[str, str]:
    """Captured node (torch.fx) name -> the name users see (module docstring).

    ``paths``: the module path of each node made from a module call; ``steps``: the node and
    the step each extra node of a call comes from. Module calls are named first, so a
    function's torch.fx name never takes a module's path.
    """
    out: dict[str, str] = {}
    used: set[str] = set()

    def take(name: str, sep: str) -> str:
        k, unique = 1, name
        while unique in used:
            k += 1
            unique = f"{name}{sep}{k}"
        used.add(unique)
        return unique

    for n in nodes:
        if n in paths:
            out[n] = take(".".join(_NOT_NAME.sub("_", part) for part in paths[n].split(".")),
                          "#")
    for n in nodes:
        if n not in out and n not in steps:
            out[n] = take(n, "_")
    for n in nodes:
        if n in steps:
            base, step = steps[n]
            out[n] = take(f"{out.get(base, base)}_{step}", "_")
    return out


_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")


def _param(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().clone().float()


def _number(v: Any, node: torch.fx.Node) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise _unsupported(node, "only a finite number (not a tensor) as the constant")
    return float(v)


def _fold_batchnorm(prev: CapturedNode, scale: torch.Tensor, shift: torch.Tensor,
                    bn: nn.Module, target: str) -> None:
    """Fold y = gamma (x - mean) / sqrt(var + eps) + beta into the preceding layer."""
    w = prev.weight
    shape = (-1,) + (1,) * (w.dim() - 1)
    prev.weight = (w * scale.reshape(shape)).contiguous()
    b = prev.bias if prev.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
    prev.bias = (b - bn.running_mean) * scale + shift
    prev.params["folded_batchnorm"] = target


def _arg(node: torch.fx.Node, index: int, key: str, default: Any) -> Any:
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(key, default)
