"""The composed operations: the integer semantics of the RAPIDNN accelerator.

Values between operations are either **codes** (int64 indices into a sorted codebook) or
**integers** with a known real scale (accumulators, pooled sums, residual sums). Every op
is an ``nn.Module`` whose tensors are buffers, so ``.to(device)`` moves it and save/load is a
plain tensor dictionary plus a JSON ``spec``. The formulas are in ``docs/formulas.md``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

FLOAT32_EXACT = 2**24  # integers below this magnitude (and sums of them) are exact in float32


@contextlib.contextmanager
def exact_float_math():
    """Disable TF32 so that float matmul/conv of integer-valued tensors stays exact on CUDA."""
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


class SpecModule(nn.Module):
    """A module made of JSON ``spec`` data and tensor buffers: exactly what a file stores."""

    def __init__(self, spec: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.spec = dict(spec)
        for key, t in tensors.items():
            self.register_buffer(key, t)


class ComposedOp(SpecModule):
    """Base class of the composed operations; ``run`` reads and writes the value env."""

    kind: ClassVar[str] = ""

    def __init__(self, spec: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        super().__init__(spec, tensors)
        self._derived: dict[str, Any] = {}

    def _apply(self, fn, recurse=True):
        self._derived.clear()  # device/dtype moves invalidate tensors derived from the buffers
        return super()._apply(fn, recurse)

    def derived(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()``, computed once from the buffers and kept until they move."""
        if key not in self._derived:
            self._derived[key] = build()
        return self._derived[key]

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def inputs(self) -> list[str]:
        return list(self.spec["inputs"])

    def run(self, codes: dict[str, torch.Tensor], ints: dict[str, torch.Tensor],
            x: torch.Tensor) -> None:
        raise NotImplementedError


class InputEncode(ComposedOp):
    """Raw input -> codes of the first codebook (nearest centroid, ties to the lower code)."""

    kind = "input_encode"

    def run(self, codes, ints, x):
        codes[self.name] = torch.bucketize(x.to(torch.float64), self.midpoints, right=False)


def unfold_codes(t: torch.Tensor) -> torch.Tensor:
    """``(N, C, *spatial, u)`` -> ``(N, C*u, *spatial)``: a one-hot code (or a table row) per
    channel becomes ``u`` channels, so a convolution of one-hot codes with table rows is the
    lookup-and-add sum (channel-major, so ``groups`` still split whole channels)."""
    t = t.movedim(-1, 2)
    return t.reshape(t.shape[0], -1, *t.shape[3:])


class WeightedLayer(ComposedOp):
    """Linear, Conv2d or Conv1d as product-table lookups and additions (paper notes 5, steps
    3-4; a grouped or depthwise convolution adds over its group's channels only).

    ``acc[o] = sat( sum_k T[g(o), a[o,k], b[k]] + bias[o] )`` with ``a`` the weight codes,
    ``b`` the input codes, ``g(o)`` the table of neuron ``o`` (one table per layer, or per
    output channel) and ``sat`` saturation to ``acc_bits``. Convolutions reuse the table at
    every output position; zero padding contributes no product. Evaluated exactly as a float
    matmul/conv of integer-valued tensors (float32 when every partial sum stays below 2**24,
    else float64), which equals the lookup-and-add definition bit for bit.
    """

    kind = "weighted"

    @property
    def rank_one(self) -> bool:
        """True when the table is exactly outer(weight values, input values) (no truncation)."""
        return int(self.spec["table_shift"]) == 0

    def table_of_neuron(self) -> torch.Tensor:
        """Index of the product table each output neuron uses."""
        out = self.weight_codes.shape[0]
        return torch.arange(out, device=self.table.device) % self.table.shape[0]

    def dense(self) -> tuple[torch.Tensor, torch.dtype]:
        """The integer weight matrix the layer is equivalent to, and an exact float dtype."""
        return self.derived("dense", self._build_dense)

    def _build_dense(self) -> tuple[torch.Tensor, torch.dtype]:
        g = self.table_of_neuron()
        codes = self.weight_codes.long()
        gi = g.reshape((-1,) + (1,) * (codes.dim() - 1)).expand_as(codes)
        if self.rank_one:
            mat = self.weight_values[gi, codes]  # same shape as the weight
            peak = mat.abs().reshape(mat.shape[0], -1).sum(1) * self.input_values.abs().max()
        else:
            mat = self.table[gi, codes]  # (*weight_shape, u)
            peak = mat.abs().amax(-1).reshape(mat.shape[0], -1).sum(1)
            if self.spec["op"] == "linear":
                mat = mat.reshape(mat.shape[0], -1)  # (O, K*u), k-major
            else:  # (O, C/g, *kernel, u) -> (O, C/g*u, *kernel)
                mat = unfold_codes(mat)
        bound = int(peak.max()) + int(self.bias.abs().max()) if peak.numel() else 0
        dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
        return mat.to(dtype), dtype

    def accumulate(self, b: torch.Tensor) -> torch.Tensor:
        """Integer accumulators for input codes ``b``."""
        mat, dtype = self.dense()
        if self.rank_one:
            x = self.input_values.to(dtype)[b]
        else:
            u = self.table.shape[-1]
            x = F.one_hot(b, u).to(dtype)
            x = x.reshape(x.shape[0], -1) if self.spec["op"] == "linear" else unfold_codes(x)
        # the bias and the saturation are applied in the exact float dtype too (the bound of
        # dense() covers the bias; lo/hi are exact whenever saturation can bind), so the
        # accumulator is converted to int64 once
        bias = self.bias.to(dtype) if self.spec["bias_in_accumulator"] else None
        with exact_float_math():
            s = self.spec
            if s["op"] == "linear":
                acc = F.linear(x, mat, bias)
            else:
                conv = F.conv2d if s["op"] == "conv2d" else F.conv1d
                acc = conv(x, mat, bias, s["stride"], s["padding"], s["dilation"],
                           s.get("groups", 1))
        lo, hi = accumulator_range(self.spec["acc_bits"])
        return acc.clamp_(lo, hi).to(torch.int64)

    def run(self, codes, ints, x):
        ints[self.name] = self.accumulate(codes[self.inputs[0]])


def accumulator_range(bits: int) -> tuple[int, int]:
    """Two's-complement range of a ``bits``-wide accumulator."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


class Encode(ComposedOp):
    """Fused activation + encoding: ``code = #{k : value >= theta_k}`` (paper notes 5, step 5).

    ``thresholds`` has one row for the whole layer or one row per output channel (bias folded
    into the thresholds); it is the associative memory's content.
    """

    kind = "encode"

    def run(self, codes, ints, x):
        codes[self.name] = self.encode(ints[self.inputs[0]])

    def encode(self, value: torch.Tensor) -> torch.Tensor:
        th = self.thresholds
        if th.shape[0] == 1:
            return torch.bucketize(value.contiguous(), th[0], right=True)
        moved = value.movedim(1, 0)
        flat = moved.reshape(moved.shape[0], -1).contiguous()
        out = torch.searchsorted(th, flat, right=True)
        return out.reshape(moved.shape).movedim(0, 1)


class MaxPoolCodes(ComposedOp):
    """Max pooling on codes: with sorted codebooks the largest code is the code of the max."""

    kind = "maxpool"

    def run(self, codes, ints, x):
        s = self.spec
        c = codes[self.inputs[0]]
        # codes are small integers: exact in float32 (max pooling has no float arithmetic)
        out = F.max_pool2d(c.to(torch.float32), s["kernel"], s["stride"], s["padding"],
                           s["dilation"], s["ceil_mode"])
        codes[self.name] = out.to(torch.int64)


class AvgPoolSum(ComposedOp):
    """Average pooling, part 1: decode the codes and add each window (value = sum * scale)."""

    kind = "avgpool_sum"

    def run(self, codes, ints, x):
        s = self.spec
        v = self.input_values.to(torch.float64)[codes[self.inputs[0]]]
        total = F.avg_pool2d(v, s["kernel"], s["stride"], s["padding"], count_include_pad=True,
                             divisor_override=1)
        ints[self.name] = total.to(torch.int64)


class AddAligned(ComposedOp):
    """Residual add: decode both code tensors to a common fixed point and add the integers."""

    kind = "add"

    def aligned_values(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Both codebooks' integer values already shifted to the common fixed point."""
        return self.derived("aligned", lambda: (self.a_values << int(self.spec["a_shift"]),
                                                self.b_values << int(self.spec["b_shift"])))

    def run(self, codes, ints, x):
        a, b = self.aligned_values()
        ints[self.name] = a[codes[self.inputs[0]]] + b[codes[self.inputs[1]]]


class CodeActivation(ComposedOp):
    """An element-wise function applied to codes (not fused with a sum; a chain of them is one
    table): one table lookup per value, one table per channel when the chain holds a
    per-channel affine."""

    kind = "code_activation"

    def run(self, codes, ints, x):
        c = codes[self.inputs[0]]
        if self.table.dim() == 1:
            codes[self.name] = self.table[c]
        else:  # one table per channel (a per-channel affine in the chain)
            ch = torch.arange(c.shape[1], device=c.device).reshape(1, -1, *(1,) * (c.dim() - 2))
            codes[self.name] = self.table[ch, c]


class MulTable(ComposedOp):
    """Element-wise product of two code tensors: one lookup in the table of their codebooks'
    products ``T[i, j] = a_i * b_j`` (fixed point, value ``T * 2**(ea + eb)``); size-1
    dimensions broadcast (a squeeze-and-excitation scale)."""

    kind = "mul"

    def run(self, codes, ints, x):
        ints[self.name] = self.table[codes[self.inputs[0]], codes[self.inputs[1]]]


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling windows ``[floor(i*size/out), ceil((i+1)*size/out))``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


class AdaptiveAvgPoolSum(ComposedOp):
    """Adaptive average pooling with windows of different sizes: per window, the sum of the
    decoded values times ``L / area`` (``L`` = ``spec["multiple"]``, the least common multiple
    of the window areas), so one integer scale ``input scale / L`` holds for every output."""

    kind = "adaptive_avgpool_sum"

    def programmed(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Window matrices ``(oh, H)``, ``(ow, W)`` and the per-output factors ``L / area``."""
        return self.derived("windows", self._windows)

    def _windows(self):
        oh, ow = self.spec["output_size"]
        h, w = self.spec["input_size"]
        dev = self.input_values.device
        mats = []
        for size, out in ((h, oh), (w, ow)):
            m = torch.zeros(out, size, dtype=torch.float64, device=dev)
            for i, (a, b) in enumerate(adaptive_windows(size, out)):
                m[i, a:b] = 1
            mats.append(m)
        area = mats[0].sum(1)[:, None] * mats[1].sum(1)[None, :]
        return mats[0], mats[1], float(self.spec["multiple"]) / area

    def run(self, codes, ints, x):
        ph, pw, factor = self.programmed()
        v = self.input_values.to(torch.float64)[codes[self.inputs[0]]]
        total = torch.einsum("nchw,ih,jw->ncij", v, ph, pw) * factor  # exact: below 2**53
        ints[self.name] = total.round().to(torch.int64)


class AdaptiveMaxPoolCodes(ComposedOp):
    """Adaptive max pooling on codes (the largest code of each window, any size ratio)."""

    kind = "adaptive_maxpool"

    def run(self, codes, ints, x):
        c = codes[self.inputs[0]]
        out = F.adaptive_max_pool2d(c.to(torch.float32), self.spec["output_size"])
        codes[self.name] = out.to(torch.int64)


class ConcatCodes(ComposedOp):
    """torch.cat of code tensors of one shared codebook (no hardware work: a layout)."""

    kind = "concat"

    def run(self, codes, ints, x):
        codes[self.name] = torch.cat([codes[i] for i in self.inputs], int(self.spec["dim"]))


class SliceCodes(ComposedOp):
    """Basic indexing / slicing (with steps), chunk and split on codes (a layout)."""

    kind = "slice"

    def run(self, codes, ints, x):
        c = codes[self.inputs[0]]
        index = (slice(None), *(slice(*s) for s in self.spec["slices"]))
        codes[self.name] = c[index].reshape(c.shape[0], *self.spec["shape"])


class PermuteCodes(ComposedOp):
    """transpose / permute of the dimensions after the batch (a layout)."""

    kind = "permute"

    def run(self, codes, ints, x):
        c = codes[self.inputs[0]]
        codes[self.name] = c.permute(0, *(int(d) + 1 for d in self.spec["dims"]))


class PadCodes(ComposedOp):
    """Constant padding: new positions hold ``spec["code"]``, the code of the padding value."""

    kind = "pad"

    def run(self, codes, ints, x):
        codes[self.name] = F.pad(codes[self.inputs[0]], list(self.spec["pad"]),
                                 value=int(self.spec["code"]))


class Reshape(ComposedOp):
    """Flatten/view on codes (no hardware work: only the layout changes)."""

    kind = "reshape"

    def run(self, codes, ints, x):
        c = codes[self.inputs[0]]
        codes[self.name] = c.reshape(c.shape[0], *self.spec["shape"])


class Output(ComposedOp):
    """Real-valued network output: dequantized integers (logits) or decoded codes."""

    kind = "output"

    def run(self, codes, ints, x):
        raise RuntimeError("Output is evaluated by ComposedModel.integer_forward")

    def value(self, codes, ints) -> torch.Tensor:
        scale = float(self.spec["scale"])
        src = self.inputs[0]
        if self.spec["from"] == "integers":
            return (ints[src].to(torch.float64) * scale).to(torch.float32)
        return (self.values[codes[src]].to(torch.float64) * scale).to(torch.float32)


OP_TYPES: dict[str, type[ComposedOp]] = {
    cls.kind: cls
    for cls in (InputEncode, WeightedLayer, Encode, MaxPoolCodes, AvgPoolSum, AddAligned,
                CodeActivation, Reshape, Output, MulTable, AdaptiveAvgPoolSum,
                AdaptiveMaxPoolCodes, ConcatCodes, SliceCodes, PermuteCodes, PadCodes)
}


class Codebook(SpecModule):
    """An input codebook (one per code tensor): sorted float centroids and their fixed point.

    ``levels_<b>`` buffers hold the coarser codebooks of a tree codebook (2**b entries).
    """

    @property
    def size(self) -> int:
        return int(self.centroids.numel())

    @property
    def scale(self) -> float:
        return math.ldexp(1.0, int(self.spec["exponent"]))

    def quantized(self) -> torch.Tensor:
        """The centroids the accelerator actually stores (``values * 2**exponent``)."""
        return self.values.to(torch.float64) * self.scale
