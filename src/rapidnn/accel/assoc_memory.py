"""Associative memories (AM/CAM) of an RNA block: encoding, input encoding, pooling (H4, H5).

**Encoder AM** (paper notes 5 step 5, 6.3 step 4). The fused activation + encoding of an output
value ``v`` is ``code = #{k : v >= theta_k}`` for the sorted integer thresholds ``theta_1..u-1``
of the next codebook
(``rapidnn.composer.encoding``). The AM of a neuron group holds ``u`` rows: row 0
stores the smallest word (it always matches) and row ``k`` stores ``theta_k``. A search returns
the **largest row whose stored word is <= the query** (a one-sided nearest-distance search: of
the rows not above the query, the nearest one; with equal words the highest row wins), and that
row index is the code.

**Word width W** (chosen when the AM is programmed). The producer's values lie in a known range
``[vmin, vmax]`` (the accumulator range for weighted layers, the reachable sums for pooling and
residual adds). A threshold ``<= vmin`` always matches: its row stores the word minimum
``L = -2**(W-1)``. A threshold ``> vmax`` never matches: its row is disabled (valid bit off).
The remaining ("finite") thresholds set the width: ``W = 1 + max bit length of |theta|`` over
them (at least 2), so that every finite threshold lies in ``[L + 1, H]`` with
``H = 2**(W-1) - 1``. The query is the value **saturated to [L, H]** when it is written to the
AM. This is exact: a finite threshold compares the same against ``v`` and ``clamp(v, L, H)``,
always-rows match every query, disabled rows none.

**Approximate search** with ``k < W`` bits compares only the top ``k`` bits of the W-bit
two's-complement words: with ``s = W - k`` both the query and the stored words are floored to
multiples of ``2**s`` (arithmetic shift right by ``s``) and a row matches when
``floor(theta / 2**s) <= floor(clamp(v) / 2**s)``. A value just below a threshold, in the same
``2**s`` bucket, therefore takes the higher code; codes stay monotone in ``v``; ``k >= W`` is
exact. Only the searched ``k`` bits of the query travel to the AM.

**Input AM**: the raw network input is encoded by its own AM of ``u`` rows holding the ``u - 1``
midpoints of the first codebook; a row matches when its midpoint is strictly below the input
(ties take the lower code, like the composer). Always exact.

**Pooling AM**: max pooling on codes (sorted codebooks, paper notes 5 step 6): the codes of a
window are written into AM rows and one "largest stored code" search returns the window's max.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DIRECT_MAX = 1 << 21  # largest query range evaluated by a direct table (entries)
LUT_MAX = 1 << 18  # buckets of a StepLUT


def _gather(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table[idx]`` for any index shape (a flat index_select, the fastest gather on CPU)."""
    return torch.index_select(table, 0, idx.reshape(-1)).view(idx.shape)


def narrow(values: torch.Tensor) -> torch.Tensor:
    """``values`` in the narrowest dtype that holds them exactly (small tables stay in cache;
    the reader converts to its float dtype)."""
    if values.numel() == 0 or not bool((values == values.round()).all()):
        return values.contiguous()
    lo, hi = int(values.min()), int(values.max())
    for dt in (torch.uint8, torch.int8, torch.int16, torch.int32):
        info = torch.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return values.to(dt).contiguous()
    return values.contiguous()


class StepLUT:
    """Batch evaluation of a one-sided search: ``#{keys <= q}`` for integer queries in [lo, hi].

    The AM compares a query with every stored row at once; evaluating that for millions of
    queries by binary search is slow on CPUs, so the count is read from a bucketed table
    instead, which is exact by construction: the query range is cut into buckets of ``2**sh``
    values; ``base[b]`` counts the keys <= the bucket's first value, and the keys inside the
    bucket must all be one value ``t[b]`` (``m[b]`` of them), so
    ``count = base[b] + m[b] * (q >= t[b])``, read as ``table[2 b + (q >= t[b])]``.
    :meth:`build` returns None when some bucket holds two different keys (the caller then
    falls back to a sorted search). With ``sh = 0`` and one bucket per value the table is
    **direct**: ``count = table[q - lo]`` (one read).
    """

    def __init__(self, table: torch.Tensor, t: torch.Tensor | None, sh: int, first: int,
                 per_group: int) -> None:
        self.table, self.t, self.sh, self.first = table, t, sh, first
        self.per_group = per_group
        self.direct = t is None
        self._t32: torch.Tensor | None = None

    @classmethod
    def build(cls, keys: torch.Tensor, lo: int, hi: int, direct_max: int | None = None,
              lut_max: int | None = None) -> StepLUT | None:
        """``keys``: (G, m) sorted int64 per group; queries lie in ``[lo, hi]``."""
        direct_max = DIRECT_MAX if direct_max is None else direct_max
        lut_max = LUT_MAX if lut_max is None else lut_max
        groups = int(keys.shape[0])
        keys = keys.contiguous()
        dev = keys.device
        span = hi - lo + 1
        if groups * span <= direct_max:  # histogram of the keys, accumulated
            hist = torch.zeros(groups, span + 1, dtype=torch.int64, device=dev)
            pos = (keys - lo).clamp(0, span)  # keys below lo count for every query
            hist.scatter_add_(1, pos, torch.ones_like(pos))
            table = hist[:, :span].cumsum(1)
            return cls(table.reshape(-1), None, 0, lo, span)
        # the coarsest buckets that hold at most one distinct key each (small tables stay in
        # cache), but never more than ``lut_max`` buckets in all
        cap = max(16, lut_max // max(1, groups))
        sh_min = 0
        while (hi >> sh_min) - (lo >> sh_min) + 1 > cap:
            sh_min += 1
        sh = max(sh_min, (hi - lo).bit_length() - 4)
        while sh >= sh_min:
            lut = cls._buckets(keys, lo, hi, sh)
            if lut is not None:
                return lut
            sh -= 1
        return None

    @classmethod
    def _buckets(cls, keys: torch.Tensor, lo: int, hi: int, sh: int) -> StepLUT | None:
        groups, dev = int(keys.shape[0]), keys.device
        first = lo >> sh
        nb = (hi >> sh) - first + 1
        starts = ((first + torch.arange(nb, device=dev, dtype=torch.int64)) << sh)
        starts = starts.expand(groups, nb).contiguous()
        ends = starts + ((1 << sh) - 1)
        base = torch.searchsorted(keys, starts, right=True)
        upto = torch.searchsorted(keys, ends, right=True)
        inside = upto - base
        m = int(keys.shape[1])
        if m == 0:
            t = ends + 1
        else:
            lo_key = keys.gather(1, base.clamp(max=m - 1))
            hi_key = keys.gather(1, (upto - 1).clamp(min=0, max=m - 1))
            if bool(((inside > 1) & (lo_key != hi_key)).any()):
                return None
            t = torch.where(inside > 0, lo_key, ends + 1)
        table = torch.stack([base, base + inside], -1).reshape(-1)
        return cls(table, t.reshape(-1), sh, first, nb)

    def index(self, q: torch.Tensor, group: torch.Tensor | None = None,
              scratch: bool = False) -> torch.Tensor:
        """Table index of every integer query (integer tensors, or exact-integer floats).

        ``scratch``: ``q`` may be overwritten (saves a copy on the direct path).
        """
        if q.is_floating_point():
            if self.sh:
                b = torch.floor(q * (2.0**-self.sh))
            else:
                b = q if scratch and self.direct else q.clone()
            idx = b.sub_(self.first).to(torch.int32)
        else:
            idx = q >> self.sh if self.sh else (q if scratch and self.direct else q.clone())
            idx -= self.first
        if group is not None:
            idx = idx + (group * self.per_group).to(idx.dtype)
        if not self.direct:
            t = self.t32 if self.t32 is not None and not q.is_floating_point() \
                and q.dtype == torch.int32 else self.t
            ge = q >= _gather(t, idx)
            idx = torch.add(ge, idx, alpha=2)  # slot 2 b + (q >= t[b])
        return idx

    @property
    def t32(self) -> torch.Tensor | None:
        """The bucket keys as int32 (clamped: a bucket without keys inside ignores its key)."""
        if self.t is None:
            return None
        if self._t32 is None:
            self._t32 = self.t.clamp(-(2**31), 2**31 - 1).to(torch.int32)
        return self._t32

    def lookup(self, q: torch.Tensor, table: torch.Tensor | None = None,
               group: torch.Tensor | None = None, scratch: bool = False) -> torch.Tensor:
        """``#{keys <= q}`` (or ``table`` read at that count's slot: e.g. decoded values)."""
        return _gather(self.table if table is None else table, self.index(q, group, scratch))


class ThresholdAM:
    """Encoder AM programmed with thresholds ``(G, u-1)`` (G = 1 shared, or one per channel).

    ``decode`` (optional) holds the next codebook's values: :meth:`search_values` then returns
    the decoded value of the found code (the search fused with the next crossbar's column
    selection; used when no one needs the codes themselves).
    """

    def __init__(self, thresholds: torch.Tensor, vmin: int, vmax: int,
                 approx_bits: int | None = None, decode: torch.Tensor | None = None) -> None:
        th = thresholds.to(torch.int64)
        if th.dim() != 2:
            raise ValueError("thresholds must be (groups, u-1)")
        self.groups, m = int(th.shape[0]), int(th.shape[1])
        self.rows = m + 1  # row 0 is the always-matching sentinel
        always = th <= vmin
        never = th > vmax
        finite = th[~(always | never)]
        peak = int(finite.abs().max()) if finite.numel() else 0
        self.word_bits = max(2, 1 + peak.bit_length())  # W
        self.L = -(2 ** (self.word_bits - 1))
        self.H = 2 ** (self.word_bits - 1) - 1
        stored = th.clone()
        stored[always] = self.L
        stored[never] = self.H + 1  # disabled row: above every saturated query
        self.stored = stored
        self.valid = ~never
        self.searched_bits = self.word_bits if approx_bits is None else min(
            int(approx_bits), self.word_bits)  # k
        self.shift = self.word_bits - self.searched_bits
        self.keys = (stored >> self.shift).contiguous()
        # evaluation range of the (shifted) query: the count is constant below the smallest
        # finite key and from the largest one on, so queries are clamped to [qlo, qhi] (a
        # smaller table; the same codes as clamping to the word [L, H])
        fk = self.keys[~(always | never)]
        lo_s, hi_s = self.L >> self.shift, self.H >> self.shift
        if fk.numel():
            self.qlo, self.qhi = max(lo_s, int(fk.min()) - 1), min(hi_s, int(fk.max()))
        else:
            self.qlo = self.qhi = lo_s
        self.vlo = self.qlo << self.shift  # value bounds of the clamp before the shift
        self.vhi = (self.qhi << self.shift) + (1 << self.shift) - 1
        self.lut = StepLUT.build(self.keys, self.qlo, self.qhi)
        self.decode = decode
        self._values: torch.Tensor | None = None
        # float queries are exact integers below 2**24: usable directly when W <= 24
        self.float_ok = self.word_bits <= 24

    @property
    def exact(self) -> bool:
        return self.shift == 0

    def query(self, values: torch.Tensor) -> torch.Tensor:
        """The searched part of the saturated query word (top k of W bits)."""
        if values.is_floating_point():
            if not self.float_ok:
                values = values.to(torch.int64)
            else:
                q = values.clamp(self.vlo, self.vhi)
                return torch.floor(q * (2.0**-self.shift)) if self.shift else q
        return values.clamp(self.vlo, self.vhi) >> self.shift

    def _group(self, q: torch.Tensor) -> torch.Tensor | None:
        if self.groups == 1:
            return None
        shape = (1, -1) + (1,) * (q.dim() - 2)
        return torch.arange(self.groups, device=q.device).reshape(shape)

    def search(self, values: torch.Tensor) -> torch.Tensor:
        """Codes of ``values`` (int64, channel dim 1 when thresholds are per channel)."""
        q = self.query(values)  # a fresh tensor
        if self.lut is not None:
            return self.lut.lookup(q, None, self._group(q), scratch=True)
        q = q.to(torch.int64).contiguous()
        if self.groups == 1:
            return torch.bucketize(q, self.keys[0], right=True)
        moved = q.movedim(1, 0)
        flat = moved.reshape(moved.shape[0], -1).contiguous()
        out = torch.searchsorted(self.keys, flat, right=True)
        return out.reshape(moved.shape).movedim(0, 1)

    def search_values(self, values: torch.Tensor) -> torch.Tensor:
        """``decode[code]`` of ``values`` (needs ``decode``)."""
        if self.decode is None:
            raise ValueError("this AM was programmed without decode values")
        if self.lut is None:
            return _gather(self.decode, self.search(values))
        q = self.query(values)  # a fresh tensor
        if self._values is None:
            self._values = narrow(self.decode[self.lut.table])
        return self.lut.lookup(q, self._values, self._group(q), scratch=True)

    @property
    def offset_ok(self) -> bool:
        """Whether :meth:`lookup_offset` applies (a direct table over float-exact words)."""
        return self.lut is not None and self.lut.direct and self.float_ok

    def value_table(self) -> torch.Tensor:
        if self.decode is None:
            raise ValueError("this AM was programmed without decode values")
        if self._values is None:
            self._values = narrow(self.decode[self.lut.table])
        return self._values

    def lookup_offset(self, shifted: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
        """Search of ``values`` given as ``shifted = values - vlo`` (exact floats, overwritten).

        Saturating is ``clamp(shifted, 0, vhi - vlo)``; the top-k truncation is a floor division
        by ``2**s`` (vlo is a multiple of ``2**s``); the result indexes the direct table.
        """
        q = shifted.clamp_(0, self.vhi - self.vlo)
        if self.shift:
            q = q.mul_(2.0**-self.shift).floor_()
        idx = q.to(torch.int32)
        group = self._group(idx)
        if group is not None:
            idx += (group * self.lut.per_group).to(torch.int32)
        return _gather(table, idx)


_INT_OF = {torch.float32: torch.int32, torch.float64: torch.int64}
_FINITE_BITS = {torch.float32: 0x7F7FFFFF, torch.float64: 0x7FEFFFFFFFFFFFFF}


class FloatBucketLUT:
    """Batch evaluation of the input AM, ``#{midpoints m : m < x}``, for float inputs.

    The raw bit pattern of ``x`` (as a signed integer) is cut into buckets of ``2**sh``
    patterns; each bucket is an interval of float values (decreasing in the pattern for
    negative floats). ``base[b]`` counts the midpoints below the interval and the midpoints
    inside it must all be one value ``t[b]``; then ``count = base[b] + inside[b] * (x > t[b])``
    with an ordinary float comparison (so -0.0 and +0.0 behave as floats do).
    """

    def __init__(self, table: torch.Tensor, t: torch.Tensor, sh: int, first: int) -> None:
        self.table, self.t, self.sh, self.first = table, t, sh, first

    @classmethod
    def build(cls, mids: torch.Tensor, dtype: torch.dtype, lut_max: int | None = None
              ) -> FloatBucketLUT | None:
        lut_max = LUT_MAX if lut_max is None else lut_max
        bits = torch.iinfo(_INT_OF[dtype]).bits
        sh_min = max(0, bits - max(4, (lut_max - 1).bit_length()))
        for sh in range(max(sh_min, bits - 10), sh_min - 1, -1):  # coarsest that works
            lut = cls._buckets(mids, dtype, sh)
            if lut is not None:
                return lut
        return None

    @classmethod
    def _buckets(cls, mids: torch.Tensor, dtype: torch.dtype, sh: int) -> FloatBucketLUT | None:
        idt = _INT_OF[dtype]
        bits = torch.iinfo(idt).bits
        first = -(2 ** (bits - 1)) >> sh
        nb = ((2 ** (bits - 1) - 1) >> sh) - first + 1
        starts = (first + torch.arange(nb, dtype=torch.int64)) << sh
        ends = starts + ((1 << sh) - 1)
        fin = _FINITE_BITS[dtype]
        neg = starts < 0

        def as_float(b: torch.Tensor) -> torch.Tensor:
            """The float whose bit pattern is the signed integer ``b`` (finite range only)."""
            negative = b < 0
            mag = (b & (2 ** (bits - 1) - 1)).clamp(max=fin)  # drop the sign bit
            v = mag.to(idt).view(dtype).to(torch.float64)
            return torch.where(negative, -v, v)

        a, z = as_float(starts), as_float(ends)
        lo = torch.where(neg, z, a)
        hi = torch.where(neg, a, z)
        m = mids.to(torch.float64).cpu().contiguous()  # built on the CPU, then moved
        base = torch.searchsorted(m, lo, right=False)  # #{m < lo}
        upto = torch.searchsorted(m, hi, right=False)  # #{m < hi}
        inside = upto - base
        n = int(m.numel())
        if n:
            t_lo = m[base.clamp(max=n - 1)]
            t_hi = m[(upto - 1).clamp(min=0, max=n - 1)]
            if bool(((inside > 1) & (t_lo != t_hi)).any()):
                return None
            t = torch.where(inside > 0, t_lo, hi)
        else:
            t = hi
        t = t + 0.0  # no -0.0 (equal as floats; keeps the sign trick of lookup exact)
        t = t.to(dtype) if torch.equal(t.to(dtype).to(torch.float64), t) else t
        table = torch.stack([base, base + inside], -1).reshape(-1)
        return cls(table.to(mids.device), t.to(mids.device), sh, first)

    def lookup(self, x: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        idt = _INT_OF[x.dtype]
        idx = x.view(idt) >> self.sh
        idx -= self.first
        t = _gather(self.t, idx)
        if t.dtype == x.dtype:
            # x > t  <=>  t - x < 0 (exact sign; t holds no -0.0): the sign bit, as 0 / -1
            neg = (t - x).view(idt) >> (torch.iinfo(idt).bits - 1)
            slot = idx.mul_(2).sub_(neg)
        else:
            slot = torch.add(x > t, idx, alpha=2)
        return _gather(self.table if table is None else table, slot)


class InputAM:
    """AM of the raw input: ``code = #{k : midpoint_k < x}`` (u rows, row 0 always matches)."""

    def __init__(self, midpoints: torch.Tensor, decode: torch.Tensor | None = None) -> None:
        self.midpoints = midpoints.to(torch.float64)
        self.rows = int(self.midpoints.numel()) + 1
        self.decode = decode
        self._luts: dict[torch.dtype, FloatBucketLUT | None] = {}
        self._values: dict[torch.dtype, torch.Tensor] = {}

    def _lut(self, x: torch.Tensor) -> FloatBucketLUT | None:
        if x.dtype not in _INT_OF:
            return None
        if x.dtype not in self._luts:
            self._luts[x.dtype] = FloatBucketLUT.build(self.midpoints, x.dtype)
        return self._luts[x.dtype]

    def search(self, x: torch.Tensor) -> torch.Tensor:
        lut = self._lut(x)
        if lut is not None:
            return lut.lookup(x.contiguous())
        return torch.bucketize(x.to(torch.float64), self.midpoints, right=False)

    def search_values(self, x: torch.Tensor) -> torch.Tensor:
        """``decode[code]`` of the raw inputs (needs ``decode``)."""
        if self.decode is None:
            raise ValueError("this AM was programmed without decode values")
        lut = self._lut(x)
        if lut is None:
            return _gather(self.decode, self.search(x))
        if x.dtype not in self._values:
            self._values[x.dtype] = narrow(self.decode[lut.table])
        return lut.lookup(x.contiguous(), self._values[x.dtype])


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                     ceil_mode: bool) -> int:
    """Output length of a pooling window sweep (PyTorch's rule, incl. ``ceil_mode``)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def windows(t: torch.Tensor, kernel, stride, padding, dilation, ceil_mode: bool,
            fill: int) -> torch.Tensor:
    """All pooling windows of ``t`` (N, C, H, W) -> (N, C, Ho, Wo, kh, kw); pads hold ``fill``."""
    h, w = t.shape[-2:]
    oh = pool_output_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    ow = pool_output_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    eh = dilation[0] * (kernel[0] - 1) + 1
    ew = dilation[1] * (kernel[1] - 1) + 1
    need_h = (oh - 1) * stride[0] + eh
    need_w = (ow - 1) * stride[1] + ew
    extra_h = max(0, need_h - (h + 2 * padding[0]))
    extra_w = max(0, need_w - (w + 2 * padding[1]))
    p = F.pad(t, (padding[1], padding[1] + extra_w, padding[0], padding[0] + extra_h),
              value=fill)
    win = p.unfold(2, eh, stride[0]).unfold(3, ew, stride[1])[:, :, :oh, :ow]
    return win[..., :: dilation[0], :: dilation[1]]


class PoolingAM:
    """Max pooling of codes by a "largest stored code" search over each window's rows.

    The batch evaluation is a max over each window of small integers held exactly in float32
    (padding never wins). Because sorted codebooks decode monotonically, the same search
    applied to decoded values gives the decoded max (used on the fused value path).
    """

    def __init__(self, kernel, stride, padding, dilation, ceil_mode: bool) -> None:
        self.kernel, self.stride = tuple(kernel), tuple(stride)
        self.padding, self.dilation = tuple(padding), tuple(dilation)
        self.ceil_mode = bool(ceil_mode)

    def _pool(self, t: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(t, self.kernel, self.stride, self.padding, self.dilation,
                            self.ceil_mode)

    def search(self, codes: torch.Tensor) -> torch.Tensor:
        return self._pool(codes.to(torch.float32)).to(torch.int64)

    def search_values(self, values: torch.Tensor) -> torch.Tensor:
        return self._pool(values if values.is_floating_point() else values.to(torch.float32))

    def rows_per_window(self, h: int, w: int) -> torch.Tensor:
        """Codes (non-padding rows) in every window, ``(Ho, Wo)``."""
        ones = torch.ones(1, 1, h, w, dtype=torch.int64)
        win = windows(ones, self.kernel, self.stride, self.padding, self.dilation,
                      self.ceil_mode, fill=0)
        return win.sum((-2, -1))[0, 0]
