"""ONNX import: an ``.onnx`` file -> a ``torch.nn.Module`` that
:func:`~rapidnn.composer.capture.capture` traces (``docs/onnx.md``).

:func:`load_onnx` reads the file with ``onnx`` (protobuf parsing: nothing in the file is executed
or unpickled), converts it with ``onnx2torch`` and *normalises* the converted module. Every
failure is one :class:`OnnxImportError` (a :class:`~rapidnn.composer.capture.CaptureError`)
naming the file and the problem.

Why a normalisation: onnx2torch builds a ``torch.fx.GraphModule`` of its own wrapper modules
(``OnnxReshape``, ``OnnxBinaryMathOperation``, ``OnnxShape`` ...) fed by the file's initializers
as buffers. Standard layers come out as standard ``torch.nn`` modules (Conv -> ``nn.Conv2d``,
Gemm -> ``nn.Linear``, BatchNormalization -> ``nn.BatchNorm2d``, Relu -> ``nn.ReLU`` ...), but the
rest is not what capture reads: constants are ``get_attr`` tensors, a reshape's target is a
tensor, and wrappers ask their inputs' dtype and shape (``x.is_floating_point()``,
``x.shape``), which plain tracing cannot answer. :func:`normalise` re-traces the module with a
``torch.fx`` tracer that

1. keeps standard ``torch.nn`` modules as leaves and traces *into* onnx2torch's wrappers, so
   they become the torch functions they call (``torch.add``, ``torch.reshape``, ``torch.mean``,
   ``torch.flatten`` ...);
2. folds every value that does not depend on the graph input: initializers are concrete
   tensors while tracing, so the ``Constant``/``Shape``/``Gather``/``Concat`` arithmetic of
   shapes and scalars is computed once, and a reshape's target becomes a tuple of ints;
   a one-element constant tensor given to a traced op becomes a Python number;
3. answers dtype and shape questions about traced tensors from an example value carried by
   every proxy (a batch of the file's input shape), with the *batch dimension symbolic*: it is
   reported as :data:`BATCH` and may only end up as the first entry of a reshape's target, which
   becomes ``x.size(0)``. A file exported with a fixed batch size N (``Reshape`` to ``(N, -1)``)
   is made batch-free the same way: a reshape target starting with N starts with ``x.size(0)``.

The normalised module is checked against onnx2torch's on a random example batch (same outputs)
before it is returned.

Before conversion the file's graph is adjusted where onnx2torch (1.5.15, whose converters stop
at opset 13-17 for most ops) would refuse a model it could convert: node names become safe
unique identifiers (onnx2torch writes them into Python source that torch.fx compiles), a
``Reshape`` with ``allowzero=1`` and a constant target without zeros drops the attribute (same
meaning), and a model of a newer opset than onnx2torch converts (``torch.onnx.export`` with the
default dynamo exporter writes opset 18+) is converted down with ``onnx.version_converter`` to
the newest opset at which every op has a converter.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

from rapidnn.composer.capture import CaptureError

#: The symbolic batch size: what the shape of a traced tensor reports as its first dimension
#: while the model is normalised (a prime far from common layer sizes).
BATCH = 9973
#: The ONNX element type of a float32 tensor (onnx.TensorProto.FLOAT).
_FLOAT = 1
_OPSET_FLOOR = 7  # the oldest opset tried when converting a model down for onnx2torch
_EXAMPLE = "rapidnn_example"  # node.meta key of the example value while tracing


class OnnxImportError(CaptureError):
    """An ONNX file cannot be imported: unreadable, not an ONNX model, more than one input or
    output, an op onnx2torch cannot convert, or a graph the normalisation cannot express."""


def is_onnx_path(obj: Any) -> bool:
    """Whether ``obj`` is a path (``str`` or ``os.PathLike``) whose name ends in ``.onnx``."""
    if not isinstance(obj, str | os.PathLike):
        return False
    name = os.fspath(obj)
    return isinstance(name, str) and name.lower().endswith(".onnx")


def load_onnx(path: str | os.PathLike[str]) -> nn.Module:
    """Read the ONNX model at ``path`` and return an eval-mode ``torch.nn.Module`` (a
    ``torch.fx.GraphModule``) of standard layers and torch functions, ready for
    :func:`rapidnn.compose` / :func:`~rapidnn.composer.capture.capture`.

    The model must take exactly one float32 input whose dimensions after the first (the batch)
    are fixed, and return one output. Raises :class:`OnnxImportError` otherwise, and for a
    missing, unreadable or invalid file or an op that cannot be converted.
    """
    if not is_onnx_path(path):
        raise OnnxImportError(f"{_shown(path)}: not an .onnx file (load_onnx reads ONNX models, "
                              f"named *.onnx)")
    shown = os.fspath(path)
    onnx, onnx2torch = _import_converter(shown)
    model = _read(onnx, shown)
    input_shape, batch = _check_graph(model, shown)
    _prepare(onnx, onnx2torch, model, shown)
    try:
        converted = onnx2torch.convert(model)
    except Exception as exc:
        raise OnnxImportError(f"{shown}: onnx2torch cannot convert the model: "
                              f"{_one_line(exc)}") from exc
    example = torch.rand((batch or 2, *input_shape), generator=torch.Generator().manual_seed(0))
    try:
        module = normalise(converted, example, fixed_batch=batch)
    except OnnxImportError as exc:
        raise OnnxImportError(f"{shown}: {exc}") from exc
    _check_same(converted, module, example, shown)
    return module.eval()


# Reading and checking the file ---------------------------------------------------------------
def _import_converter(shown: str) -> tuple[Any, Any]:
    """``onnx`` and ``onnx2torch``, or one error saying how to install them.

    onnx2torch imports torchvision (for its NMS and RoiAlign converters). torchvision's
    compiled ops are built against one torch build; beside another (this project's CPU
    torch 2.13.0 with PyPI's torchvision 0.28.0, built for the CUDA one) ``import torchvision``
    fails in its fake-kernel registrations with "operator torchvision::nms does not exist".
    Then, and only then, the two operator *schemas* it needs are defined (no kernels; see
    ``benchmarks/_torchvision_shim.py``) and the import is retried: the converters rapidnn
    uses never call torchvision, and its NMS/RoiAlign ops stay unusable as they were.
    """
    try:
        import onnx
        import onnx2torch
    except ImportError as exc:
        raise OnnxImportError(f"{shown}: ONNX import needs the packages onnx and onnx2torch "
                              f"(pip install 'rapidnn[onnx]'): {exc}") from exc
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise OnnxImportError(f"{shown}: importing onnx2torch failed: "
                                  f"{_one_line(exc)}") from exc
        _define_torchvision_schemas()
        try:
            import onnx2torch
        except Exception as again:
            raise OnnxImportError(f"{shown}: importing onnx2torch failed: "
                                  f"{_one_line(again)}") from again
    return onnx, onnx2torch


_TORCHVISION_LIBRARY: Any = None  # kept alive: dropping the library removes its schemas


def _define_torchvision_schemas() -> None:
    global _TORCHVISION_LIBRARY
    schema = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
    missing = [op for op in ("nms", "qnms") if not hasattr(torch.ops.torchvision, op)]
    if missing and _TORCHVISION_LIBRARY is None:
        _TORCHVISION_LIBRARY = torch.library.Library("torchvision", "FRAGMENT")
    for op in missing:
        _TORCHVISION_LIBRARY.define(op + schema)


def _read(onnx: Any, shown: str) -> Any:
    """The checked ``ModelProto`` of the file (external data, if any, read beside it)."""
    p = Path(shown)
    if not p.exists():
        raise OnnxImportError(f"{shown}: no such file")
    if p.is_dir():
        raise OnnxImportError(f"{shown}: is a folder, not an ONNX file")
    try:
        model = onnx.load(shown)
    except Exception as exc:
        raise OnnxImportError(f"{shown}: not a readable ONNX file ({_one_line(exc)})") from exc
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise OnnxImportError(f"{shown}: not a valid ONNX model: {_one_line(exc)}") from exc
    return model


def _check_graph(model: Any, shown: str) -> tuple[tuple[int, ...], int | None]:
    """One float32 input of fixed shape after the batch dimension, one output; returns that
    shape and the file's batch size (None where it is symbolic)."""
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        raise OnnxImportError(f"{shown}: the model takes {len(inputs)} inputs ({names}); "
                              f"rapidnn composes models with exactly one input")
    if len(graph.output) != 1:
        raise OnnxImportError(f"{shown}: the model has {len(graph.output)} outputs; rapidnn "
                              f"composes models with exactly one output")
    value = inputs[0]
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type" or value.type.tensor_type.elem_type != _FLOAT:
        what = "not a tensor" if kind != "tensor_type" else (
            f"of ONNX element type {value.type.tensor_type.elem_type}")
        raise OnnxImportError(f"{shown}: input {value.name!r} is {what}; rapidnn composes "
                              f"models with one float32 input")
    dims = value.type.tensor_type.shape.dim
    if len(dims) < 2:
        raise OnnxImportError(f"{shown}: input {value.name!r} has {len(dims)} dimensions; "
                              f"rapidnn needs a batch dimension first, then the features")
    rest = []
    for i, d in enumerate(dims[1:], 1):
        if d.WhichOneof("value") != "dim_value" or d.dim_value <= 0:
            raise OnnxImportError(f"{shown}: dimension {i} of input {value.name!r} is not "
                                  f"fixed ({d.dim_param or '?'}); only the batch dimension "
                                  f"(the first) may vary")
        rest.append(int(d.dim_value))
    first = dims[0]
    batch = int(first.dim_value) if first.WhichOneof("value") == "dim_value" and \
        first.dim_value > 0 else None
    return tuple(rest), batch


def _prepare(onnx: Any, onnx2torch: Any, model: Any, shown: str) -> None:
    """Adjust the graph (in place) where onnx2torch would refuse or misread it (module
    docstring): safe node names, ``Reshape``'s needless ``allowzero``, the opset."""
    used: set[str] = set()
    for node in model.graph.node:
        base = re.sub(r"[^0-9A-Za-z_]+", "_", node.name or node.op_type).strip("_")[:64]
        base = base if base and not base[0].isdigit() else f"node_{base}"
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        node.name = name
    _drop_needless_allowzero(onnx, model)
    opset = _default_opset(model)
    if opset is None:
        return
    missing = _unconvertible(onnx2torch, model, opset)
    if not missing:
        return
    for target in range(opset - 1, _OPSET_FLOOR - 1, -1):
        if not _unconvertible(onnx2torch, model, target):
            break
    else:
        raise OnnxImportError(f"{shown}: onnx2torch has no converter for "
                              f"{', '.join(missing)}")
    try:
        converted = onnx.version_converter.convert_version(model, target)
    except Exception as exc:
        raise OnnxImportError(f"{shown}: onnx2torch has no converter for {', '.join(missing)} "
                              f"and converting the model from opset {opset} to {target} "
                              f"failed: {_one_line(exc)}") from exc
    model.CopyFrom(converted)
    _drop_needless_allowzero(onnx, model)


def _default_opset(model: Any) -> int | None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return None


def _unconvertible(onnx2torch: Any, model: Any, opset: int) -> list[str]:
    """The ops of ``model`` (as 'Op (opset N)') that onnx2torch cannot convert at ``opset``."""
    from onnx2torch.node_converters import get_converter

    versions = {o.domain: int(o.version) for o in model.opset_import}
    out: list[str] = []
    for node in model.graph.node:
        domain = "" if node.domain == "ai.onnx" else node.domain
        version = opset if domain == "" else versions.get(node.domain, 1)
        try:
            get_converter(operation_type=node.op_type, version=version, domain=domain)
        except NotImplementedError:
            where = f"{node.domain}." if domain else ""
            text = f"{where}{node.op_type} (opset {version})"
            if text not in out:
                out.append(text)
    return out


def _drop_needless_allowzero(onnx: Any, model: Any) -> None:
    """``allowzero=1`` only changes what a 0 in the target shape means: without zeros it is
    the default reshape, which onnx2torch converts (it refuses the attribute)."""
    from onnx import numpy_helper

    consts = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                    consts[node.output[0]] = a.t
    for node in model.graph.node:
        allow = [a for a in node.attribute if a.name == "allowzero"]
        if node.op_type != "Reshape" or not allow or len(node.input) < 2 or \
                node.input[1] not in consts:
            continue
        try:
            target = numpy_helper.to_array(consts[node.input[1]])
        except Exception:
            continue
        if (target != 0).all():
            for a in allow:
                node.attribute.remove(a)


# Normalisation -------------------------------------------------------------------------------
class _Proxy(torch.fx.Proxy):
    """A proxy that answers shape, rank and dtype questions from its node's example value,
    with the batch dimension reported as :data:`BATCH` (module docstring, step 3)."""

    def __getattr__(self, k: str) -> Any:
        ex = self.node.meta.get(_EXAMPLE) if k != "node" else None
        if isinstance(ex, torch.Tensor):
            shape = _symbolic_shape(ex)
            static = {
                "shape": lambda: shape, "ndim": lambda: ex.dim(), "dtype": lambda: ex.dtype,
                "device": lambda: ex.device, "is_cuda": lambda: False,
                "size": lambda: (lambda dim=None: shape if dim is None else shape[dim]),
                "dim": lambda: (lambda: ex.dim()), "ndimension": lambda: (lambda: ex.dim()),
                "is_floating_point": lambda: (lambda: ex.is_floating_point()),
                "is_complex": lambda: (lambda: ex.is_complex()),
                "get_device": lambda: (lambda: -1),
            }
            if k in static:
                return static[k]()
        return super().__getattr__(k)

    def __len__(self) -> int:
        ex = self.node.meta.get(_EXAMPLE)
        if isinstance(ex, torch.Tensor) and ex.dim() > 0:
            return BATCH
        return super().__len__()


def _symbolic_shape(ex: torch.Tensor) -> torch.Size:
    return torch.Size([BATCH, *ex.shape[1:]]) if ex.dim() > 0 else ex.shape


def _has_proxy(tree: Any) -> bool:
    return any(isinstance(v, torch.fx.Proxy) for v in pytree.tree_leaves(tree))


def _uses_batch(value: Any) -> bool:
    """Whether an int (or a sequence of ints) is or holds a multiple of :data:`BATCH`."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value != 0 and value % BATCH == 0
    if isinstance(value, list | tuple):
        return any(_uses_batch(v) for v in value)
    return False


def _batch_used(where: str) -> OnnxImportError:
    return OnnxImportError(f"{where} uses the batch size beyond a reshape that keeps it first "
                           f"(rapidnn composes models whose batch dimension stays first and "
                           f"whole)")


_FACTORIES = {torch.ones, torch.zeros, torch.full, torch.empty, torch.rand, torch.randn,
              torch.randint}


class _NoBatchSizedTensors(TorchFunctionMode):
    """While tracing, a constant built from a traced tensor's shape would have :data:`BATCH`
    rows: refused (clearly, and before it takes memory)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _FACTORIES and not _has_proxy((args, kwargs)):
            size = args[0] if args else kwargs.get("size")
            if isinstance(size, int):
                size = args
            if _uses_batch(list(size) if isinstance(size, torch.Size) else size):
                raise _batch_used(f"a constant of shape {tuple(size)} ({func.__name__})")
        return func(*args, **kwargs)


class _Normaliser(torch.fx.Tracer):
    """The tracer of :func:`normalise`: standard torch.nn modules are leaves (fx's default),
    calls without traced arguments are evaluated, every proxy carries an example value."""

    def __init__(self, example: torch.Tensor) -> None:
        super().__init__()
        self.example = example
        self.where: list[str] = []

    def proxy(self, node: torch.fx.Node) -> torch.fx.Proxy:
        return _Proxy(node, self)

    def create_arg(self, a: Any) -> Any:
        # a one-element constant tensor (an ONNX scalar) is a Python number to capture
        if isinstance(a, torch.Tensor) and not isinstance(a, nn.Parameter) and \
                a.dim() <= 1 and a.numel() == 1 and not self._is_buffer(a):
            return a.item()
        return super().create_arg(a)

    def _is_buffer(self, a: torch.Tensor) -> bool:
        return any(a is b for b in self.root.buffers())

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None,
                     proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr,
                                     proxy_factory_fn)
        proxy.node.meta[_EXAMPLE] = self._evaluate(proxy.node)
        return proxy

    def _evaluate(self, node: torch.fx.Node) -> Any:
        """The node's value on the example batch (the symbolic batch size replaced by it)."""
        if node.op == "placeholder":
            return self.example
        batch = self.example.shape[0]

        def concrete(v: Any) -> Any:
            if isinstance(v, torch.fx.Node):
                return v.meta[_EXAMPLE]
            if isinstance(v, bool) or not isinstance(v, int):
                return v
            return v if v != BATCH else batch

        args = pytree.tree_map(concrete, torch.fx.node.map_arg(node.args, lambda n: n))
        kwargs = pytree.tree_map(concrete, torch.fx.node.map_arg(node.kwargs, lambda n: n))
        with torch.no_grad(), _untraced():
            if node.op == "get_attr":
                return _attr(self.root, node.target)
            if node.op == "call_function":
                return node.target(*args, **kwargs)
            if node.op == "call_method":
                return getattr(args[0], node.target)(*args[1:], **kwargs)
            if node.op == "call_module":
                return self.root.get_submodule(node.target)(*args, **kwargs)
        return None  # pragma: no cover - no other node kinds are proxied

    def call_module(self, m: nn.Module, forward, args, kwargs) -> Any:
        if not _has_proxy((args, kwargs)):  # a constant: evaluated now, never in the graph
            with torch.no_grad():
                return forward(*args, **kwargs)
        name = self.path_of_module(m)
        self.where.append(f"ONNX node {name!r} ({type(m).__name__})")
        try:
            return super().call_module(m, forward, args, kwargs)
        finally:
            self.where.pop()


def _untraced() -> Any:
    """A context in which modules run as plain modules while a trace is in progress (fx
    patches ``nn.Module.__call__`` and ``__getattr__`` while tracing; computing an example value
    must not record nodes)."""
    from torch.fx._symbolic_trace import _maybe_revert_all_patches

    return _maybe_revert_all_patches()


def _attr(root: nn.Module, target: str) -> Any:
    obj: Any = root
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def normalise(converted: nn.Module, example: torch.Tensor,
              fixed_batch: int | None = None) -> torch.fx.GraphModule:
    """Re-trace onnx2torch's module into standard modules and torch functions (module
    docstring). ``example`` is a batch of the model's input; ``fixed_batch`` the batch size
    written in the file (its reshapes' targets starting with it start with ``x.size(0)``)."""
    tracer = _Normaliser(example)
    try:
        with _NoBatchSizedTensors():
            graph = tracer.trace(converted)
    except OnnxImportError as exc:
        where = f"{tracer.where[-1]}: " if tracer.where else ""
        raise OnnxImportError(f"{where}{exc}") from exc
    except Exception as exc:
        where = f" at {tracer.where[-1]}" if tracer.where else ""
        raise OnnxImportError(f"the converted model cannot be normalised{where}: "
                              f"{_one_line(exc)}") from exc
    for node in graph.nodes:
        node.meta.pop(_EXAMPLE, None)
    _free_batch(graph, fixed_batch)
    module = torch.fx.GraphModule(tracer.root, graph, class_name="OnnxModel")
    module.graph.eliminate_dead_code()
    module.graph.lint()
    module.recompile()
    return module


_RESHAPE_METHODS = ("reshape", "view")


def _free_batch(graph: torch.fx.Graph, fixed_batch: int | None) -> None:
    """The first entry of every reshape target that is the symbolic (or the file's fixed)
    batch size becomes ``x.size(0)``; any other use of the symbolic batch is an error."""
    for node in list(graph.nodes):
        is_function = node.op == "call_function" and node.target is torch.reshape
        is_method = node.op == "call_method" and node.target in _RESHAPE_METHODS
        if (is_function or is_method) and len(node.args) >= 2:
            rest = node.args[1:]
            packed = len(rest) == 1 and isinstance(rest[0], list | tuple)
            dims = list(rest[0] if packed else rest)
            if dims and isinstance(dims[0], int) and not isinstance(dims[0], bool) and (
                    dims[0] == BATCH or (fixed_batch is not None and dims[0] == fixed_batch)):
                with graph.inserting_before(node):
                    dims[0] = graph.call_method("size", (node.args[0], 0))
                new = (tuple(dims),) if packed or is_function else tuple(dims)
                node.args = (node.args[0], *new)
        for arg in pytree.tree_leaves((node.args, node.kwargs)):
            if _uses_batch(arg):
                raise _batch_used(f"node {node.name!r} ({node.op} "
                                  f"{getattr(node.target, '__name__', node.target)})")


def _check_same(converted: nn.Module, module: nn.Module, example: torch.Tensor,
                shown: str) -> None:
    """The normalised module computes what onnx2torch's does (on the example batch)."""
    want = _run(converted, example, "converted", shown)
    got = _run(module, example, "normalised", shown)
    if not (isinstance(want, torch.Tensor) and isinstance(got, torch.Tensor)):
        raise OnnxImportError(f"{shown}: the model must return exactly one tensor")
    scale = 1.0 + float(want.detach().abs().max()) if want.numel() else 1.0
    if want.shape != got.shape or not torch.allclose(want, got, rtol=1e-4, atol=1e-5 * scale):
        diff = float((want - got).abs().max()) if want.shape == got.shape else math.inf
        raise OnnxImportError(f"{shown}: normalising the converted model changed its outputs "
                              f"(largest difference {diff:.3g}); this is a rapidnn bug: please "
                              f"report it with the file")


def _run(model: nn.Module, example: torch.Tensor, which: str, shown: str) -> Any:
    """``model(example)``, or one error naming the ``which`` model and the input shape."""
    try:
        with torch.no_grad():
            return model(example)
    except Exception as exc:
        raise OnnxImportError(f"{shown}: the {which} model does not run on an input of shape "
                              f"{tuple(example.shape)}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines) if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _shown(obj: Any) -> str:
    if isinstance(obj, str | os.PathLike):
        return str(os.fspath(obj))
    return f"a {type(obj).__name__}"
