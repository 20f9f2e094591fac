"""The processing crossbar: in-memory addition with MAGIC NOR (paper notes 6.3 step 3; H3).

Looked-up products are written into rows of a processing crossbar and added there with
MAGIC-style NOR sequences (Kvatinsky et al. 2014; hardware-parameters.md 4.5). An N-bit
addition costs ``nor_cycles_per_bit * N + nor_cycles_fixed`` NOR cycles (default 13 N, FloatPIM,
hardware-parameters.md 4.3). Two strategies (paper notes 5 step 4):

* **adder tree**: the n products of one output value are reduced by a balanced binary tree.
  Level l adds pairs of (B + l)-bit operands (the exact width of a sum of 2**l B-bit values), an
  odd operand passes up unchanged. Sums are kept at full precision and saturated once to the
  accumulator width, which is exactly the composed integer semantics. A value with more products
  than a block has rows is split over ``ceil(n / R)`` blocks; each block reduces its part and
  the partial sums (width ``B + ceil(log2 R)``) are combined by a second tree.
* **counting**: every synapse increments the counter of its (weight code, input code) pair
  (c-bit additions, ``c = bit length of the fan-in``); each non-zero pair is looked up once and
  multiplied by its count with shift-and-add (``popcount(n_ij) - 1`` additions of B + c bits);
  the terms are added by the tree above (base width B + c).

The batch evaluation is exact integer arithmetic: sums of integer-valued float tensors are exact
while every partial sum stays below 2**24 (float32) or 2**53 (float64); larger bounds are split
into limbs. TF32 is disabled on CUDA (``ops.exact_float_math``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from rapidnn.accel.crossbar import Geometry, ProductTableCrossbar
from rapidnn.composer.ops import exact_float_math

FLOAT32_EXACT = 2**24
FLOAT64_EXACT = 2**53


# analytic addition counts ---------------------------------------------------------------------
def tree_additions(operands: int, width: int) -> dict[int, int]:
    """Additions of a balanced binary tree over ``operands`` values of ``width`` bits, by width.

    Level ``l`` performs ``floor(m_l / 2)`` additions of ``width + l``-bit operands.
    """
    out: dict[int, int] = {}
    m, level = operands, 0
    while m > 1:
        out[width + level] = out.get(width + level, 0) + m // 2
        m -= m // 2
        level += 1
    return out


def tree_depth(operands: int) -> int:
    """Levels of the tree over ``operands`` values (its result has ``width + depth`` bits)."""
    return max(0, math.ceil(math.log2(operands))) if operands > 1 else 0


def split_tree_additions(operands: int, width: int, rows: int) -> tuple[dict[int, int], int]:
    """Additions of ``operands`` values spread over blocks of ``rows`` rows, and the result width.

    Each block reduces its ``<= rows`` values by a tree; the ``ceil(operands / rows)`` partial sums
    (``width + ceil(log2 rows)`` bits when there are several) are added by a second tree.
    """
    if operands <= 0:
        return {}, 0
    if operands <= rows:
        return tree_additions(operands, width), width + tree_depth(operands)
    blocks, last = divmod(operands, rows)
    out: dict[int, int] = {}
    full = tree_additions(rows, width)
    for k, v in full.items():
        out[k] = out.get(k, 0) + v * blocks
    if last:
        for k, v in tree_additions(last, width).items():
            out[k] = out.get(k, 0) + v
        blocks += 1
    base = width + tree_depth(rows)
    for k, v in tree_additions(blocks, base).items():
        out[k] = out.get(k, 0) + v
    return out, base + tree_depth(blocks)


def value_additions(operands: int, width: int, rows: int, bias_bits: int | None
                    ) -> tuple[dict[int, int], dict[int, int]]:
    """(moved additions, bias additions) of one output value: its tree, then the bias addend.

    The bias (``bias_bits`` wide, None = no bias addend) is added to the tree's result with one
    addition of ``max(result width, bias_bits)`` bits; it needs no operand move (it is stored in
    the neuron's slot).
    """
    tree, final = split_tree_additions(operands, width, rows)
    bias: dict[int, int] = {}
    if bias_bits is not None and operands > 0:
        bias[max(final, bias_bits)] = 1
    return tree, bias


def counter_bits(fan_in: int) -> int:
    """Width of a pair counter that can count to ``fan_in``."""
    return max(1, int(fan_in).bit_length())


def signed_bits(peak: int) -> int:
    """Two's-complement width holding every integer of magnitude <= ``peak``."""
    return int(peak).bit_length() + 1


# exact batch arithmetic ---------------------------------------------------------------------
def exact_dtype(bound: int) -> torch.dtype | None:
    """The float dtype in which sums bounded by ``bound`` are exact (None: neither)."""
    if bound < FLOAT32_EXACT:
        return torch.float32
    if bound < FLOAT64_EXACT:
        return torch.float64
    return None


def _exact_apply(x: torch.Tensor, x_peak: int, m: torch.Tensor, m_peak: int,
                 apply: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``apply(x, m)`` (a bilinear sum) exactly, for integer-valued ``x`` and int64 ``m``.

    ``m_peak`` bounds ``sum |m|`` over one output's terms, ``x_peak`` bounds ``|x|``.
    """
    dt = exact_dtype(m_peak * x_peak)
    if dt is not None:
        with exact_float_math():
            return apply(x.to(dt), m.to(dt)).to(torch.int64)
    # limbs: m = hi * 2**s + lo with 0 <= lo < 2**s, each part evaluated exactly
    terms = max(1, m[0].numel())
    s = max(1, (FLOAT64_EXACT // (terms * max(1, x_peak))).bit_length() - 1)
    lo = m & ((1 << s) - 1)
    hi = m >> s
    lo_peak = terms * ((1 << s) - 1)
    hi_peak = (m_peak >> s) + terms
    return (_exact_apply(x, x_peak, hi, hi_peak, apply) << s) + _exact_apply(
        x, x_peak, lo, lo_peak, apply)


def _onehot(codes: torch.Tensor, classes: int) -> torch.Tensor:
    return F.one_hot(codes, classes).to(torch.float32)


class ProcessingCrossbar:
    """Batch evaluation of the additions of one weighted layer (exact integers)."""

    def __init__(self, xbar: ProductTableCrossbar, bias: torch.Tensor | None, acc_bits: int):
        self.xbar = xbar
        self.geometry: Geometry = xbar.geometry
        self.bias = None if bias is None else bias.to(torch.int64)
        self.acc_bits = int(acc_bits)
        self.lo, self.hi = -(2 ** (acc_bits - 1)), 2 ** (acc_bits - 1) - 1
        self._dense: tuple[torch.Tensor, torch.Tensor, int, int, torch.dtype | None] | None = None
        self._fused: dict[int, tuple[torch.dtype | None, torch.Tensor, torch.Tensor | None,
                                     bool]] = {}

    def _apply(self, x: torch.Tensor, m: torch.Tensor, bias: torch.Tensor | None = None
               ) -> torch.Tensor:
        g = self.geometry
        if g.op == "linear":
            return F.linear(x, m, bias)
        return F.conv2d(x, m, bias, g.stride, g.padding, g.dilation, g.groups)

    def _program(self) -> tuple[torch.Tensor, torch.Tensor, int, int, torch.dtype | None]:
        """Operand matrix, input decode table, bounds and exact dtype (built once)."""
        if self._dense is None:
            xb = self.xbar
            if xb.rank_one:
                m = xb.synapse_weights()
                decode = xb.input_values
                x_peak = int(decode.abs().max()) if decode.numel() else 0
                m_peak = int(m.abs().reshape(m.shape[0], -1).sum(1).max()) if m.numel() else 0
            else:
                rows = xb.operand_rows()  # (O, K, u) or (O, C, kh, kw, u)
                if self.geometry.op == "linear":
                    m = rows.reshape(rows.shape[0], -1)
                else:
                    o, c, kh, kw, u = rows.shape
                    m = rows.permute(0, 1, 4, 2, 3).reshape(o, c * u, kh, kw)
                decode = torch.empty(0, dtype=torch.int64, device=m.device)
                x_peak = 1
                m_peak = xb.peak_sum()
            dt = exact_dtype(m_peak * x_peak)
            if dt is not None:  # keep the float copies the evaluation reads
                m, decode = m.to(dt).contiguous(), decode.to(dt)
            self._dense = (m, decode, x_peak, m_peak, dt)
        return self._dense

    def sum_products(self, b: torch.Tensor) -> torch.Tensor:
        """Adder-tree sums ``sum_k T[g(o), a[o,k], b[k]]`` for input codes ``b`` (no bias)."""
        m, decode, x_peak, m_peak, dt = self._program()
        if self.xbar.rank_one:
            x = torch.take(decode, b)  # the selected column's input value
        else:
            u = self.xbar.u
            x = F.one_hot(b, u)
            x = x.reshape(x.shape[0], -1) if self.geometry.op == "linear" else (
                x.permute(0, 1, 4, 2, 3).reshape(x.shape[0], -1, *x.shape[2:4]))
        if dt is not None:
            with exact_float_math():
                return self._apply(x.to(dt), m).to(torch.int64)
        return _exact_apply(x, x_peak, m, m_peak, self._apply)

    @property
    def value_path(self) -> bool:
        """Whether the sums can be formed from decoded input values (rank-one, exact float)."""
        return self.xbar.rank_one and self._program()[4] is not None

    def accumulate_values(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """Saturated accumulators from decoded input values ``x`` (rank-one tables only).

        Returns exact integers in a float dtype when bias and sums fit it (the bias added by
        the same evaluation), else int64. ``offset`` != 0 returns ``sum + bias + offset``
        **unsaturated** (the caller saturates to a narrower range; used by the encoder AM,
        whose word range lies inside the accumulator's), or None when that is not exact in a
        float dtype.
        """
        prog = self._fused.get(offset)
        if prog is None:
            m, _, x_peak, m_peak, dt = self._program()
            bias_peak = int(self.bias.abs().max()) if self.bias is not None and \
                self.bias.numel() else 0
            total = m_peak * x_peak + bias_peak + abs(offset)
            wide = exact_dtype(total) if dt is not None else None
            mm = m.to(wide).contiguous() if wide is not None else m
            bb = None
            if wide is not None and (self.bias is not None or offset):
                b = self.bias if self.bias is not None else torch.zeros(
                    mm.shape[0], dtype=torch.int64, device=mm.device)
                bb = (b + offset).to(wide)
            clamp = offset == 0 and (total > self.hi or -total < self.lo)
            prog = self._fused[offset] = (wide, mm, bb, clamp)
        wide, mm, bb, clamp = prog
        if wide is None:
            if offset:
                return None
            return self.saturate(self.sum_products_values(x))
        if mm.is_cuda:
            with exact_float_math():
                acc = self._apply(x.to(wide), mm, bb)
        else:  # TF32 concerns CUDA only
            acc = self._apply(x.to(wide), mm, bb)
        return acc.clamp_(self.lo, self.hi) if clamp else acc

    def sum_products_values(self, x: torch.Tensor) -> torch.Tensor:
        """Sums (no bias) from decoded input values, exact in int64 (any bound)."""
        m, _, x_peak, m_peak, _ = self._program()
        return _exact_apply(x.to(torch.int64), x_peak, m.to(torch.int64) if
                            m.is_floating_point() else m, m_peak, self._apply)

    def pair_counts(self, b: torch.Tensor) -> torch.Tensor:
        """Counts ``n[n, o, p, i, j]`` of synapses with weight code i and input code j (float32)."""
        xb, g = self.xbar, self.geometry
        w, u = xb.w, xb.u
        n = b.shape[0]
        if g.op == "linear":
            a = _onehot(xb.codes, w)  # (O, K, w)
            k = a.shape[1]
            bt = _onehot(b, u).permute(0, 2, 1).reshape(n * u, k)
            with exact_float_math():
                c = bt @ a.permute(1, 0, 2).reshape(k, -1)  # (n*u, O*w)
            return c.reshape(n, u, -1, 1, w).permute(0, 2, 3, 4, 1)
        a = _onehot(xb.codes, w)  # (O, C, kh, kw, w)
        o, ch, kh, kw, _ = a.shape
        weight = a.permute(0, 4, 1, 2, 3).reshape(o * w, ch, kh, kw).repeat(u, 1, 1, 1)
        # input channels u-major, then the layer's groups: u * groups convolution groups
        x = _onehot(b, u).permute(0, 4, 1, 2, 3).reshape(n, u * ch * g.groups, *b.shape[2:])
        with exact_float_math():
            c = F.conv2d(x, weight, None, g.stride, g.padding, g.dilation, groups=u * g.groups)
        p = c.shape[-2] * c.shape[-1]
        return c.reshape(n, u, o, w, p).permute(0, 2, 4, 3, 1)

    def sum_counts(self, counts: torch.Tensor) -> torch.Tensor:
        """Counting-form sums ``sum_ij n_ij * T[g(o)][i][j]`` -> ``(n, O, P)`` int64."""
        xb = self.xbar
        t = xb.table[xb.group_of]  # (O, w, u)
        bound = xb.peak_sum()
        if bound < FLOAT64_EXACT:
            dt = torch.float32 if bound < FLOAT32_EXACT else torch.float64
            with exact_float_math():
                return torch.einsum("nopij,oij->nop", counts.to(dt), t.to(dt)).to(torch.int64)
        return (counts.to(torch.int64) * t[None, :, None]).sum((-2, -1))

    def saturate(self, sums: torch.Tensor) -> torch.Tensor:
        """Add the bias addend (if any) and saturate to the accumulator width."""
        if self.bias is not None:
            shape = (1, -1) + (1,) * (sums.dim() - 2)
            sums = sums + self.bias.reshape(shape)
        return sums.clamp_(self.lo, self.hi)


def popcount(t: torch.Tensor, bits: int) -> torch.Tensor:
    """Number of set bits of non-negative integers below ``2**bits``."""
    t = t.to(torch.int64)
    out = torch.zeros_like(t)
    for i in range(bits):
        out += (t >> i) & 1
    return out


def window_sums(values: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                padding: tuple[int, int]) -> torch.Tensor:
    """Integer sums of every pooling window (zero padding), by in-memory addition (exact int64)."""
    v = F.pad(values, (padding[1], padding[1], padding[0], padding[0]))
    win = v.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
    return win.sum((-2, -1))
