"""Device faults in the RNA blocks: stuck-at cells, transient flips, spare rows, table codes.

``SimConfig(faults=FaultConfig(...))`` programs a simulator whose stored state is corrupted the
way faulty cells corrupt it (``docs/faults.md``; every modelling choice below is ours: the
paper gives no fault analysis). Faults are sampled once per simulator from ``seed`` (stuck
cells) and per batch from ``seed`` and the batch's ordinal (transient flips): the same command
gives the same result. With every rate 0 the simulator is the fault-free one, untouched.

Block kinds and what their faulty cells do:

* **table** (product-table crossbar): each block holds its own copy of the tables its neurons
  use (``rapidnn.accel.mapping``); a stuck cell forces one bit of one B-bit entry of one copy
  (two's complement), and the neurons of that block read the corrupted entry. The weight codes
  (``ceil(log2 w)`` cells per synapse, one copy) are stored there too: a stuck code bit
  selects another table row (a code past the table's last row reads the last row).
* **processing** (processing crossbar): a neuron's slot row k holds its k-th product (B cells),
  a partial sum and an incoming operand (A cells each) and ``slot_scratch_bits`` NOR scratch
  cells. The products are added by a balanced binary tree whose level-l sum of rows
  (r, r + 2^(l-1)) is written into row r (the incoming operand first), then the bias into row
  0. A stuck product, sum or incoming cell forces that bit of every value written there (the
  word re-read as two's complement of the value's width: a level-l sum occupies the low B + l
  cells of the A-cell field, so a stuck cell above them is neither written nor read at that
  level; the bias addition is A bits wide); a stuck scratch cell corrupts every
  addition computed in its row: the sum is the stuck value in every bit (0, or -1 for
  stuck-at-1; pessimistic). A convolution's positions run on the same slots: the same cells
  corrupt every position. Values split over several blocks are modelled as one tree.
* **am** (encoder associative memories): a stuck cell forces one bit of a stored W-bit
  threshold word (row 0's sentinel included; disabled rows stay disabled). A shared threshold
  set has one copy per block, a per-channel set one per channel. The search returns the
  highest row whose stored word is <= the query, as the hardware does (corrupted rows need not
  be sorted any more); no matching row gives code 0. The **input AM** (the raw input's
  midpoints) stores each midpoint as an IEEE float32 word: a stuck cell forces one bit of it
  (a stuck exponent bit moves the boundary by orders of magnitude; a NaN never matches), one
  copy per block, the raw values split evenly over the copies in order.
* **transient**: ``read_flips`` flips each bit of each looked-up product with that
  probability (every read); ``search_flips`` each bit of each saturated query word written
  into an AM (every search).

Mitigations: ``spare_rows`` fault-free spare rows per block and memory (spares are cells too:
each is usable only if it has no stuck cell) replace, in row order, the rows that hold a known
stuck cell; ``table_protection="tmr"`` stores three copies of each table entry and reads their
bitwise majority, ``"parity"`` one parity cell per entry, whose mismatch drops the product (the
adder adds 0). Their costs are in :mod:`rapidnn.hardware.mitigation`.

Not modelled: the pooling AM (written with window codes at every inference, not stored
state), the code tables of unfused activations, the product table of an element-wise ``mul``
and the adder trees of pooling/add stages (they keep exact values); the counting strategy
(faults need ``strategy="tree"``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from rapidnn.accel.adder import ProcessingCrossbar, popcount
from rapidnn.accel.config import FaultConfig
from rapidnn.accel.crossbar import ProductTableCrossbar
from rapidnn.accel.rna import Env, InputStage, Stage, WeightedStage, code_bits


# bits and words -------------------------------------------------------------------------------
def sign_extend(v: torch.Tensor, bits: int) -> torch.Tensor:
    """The low ``bits`` bits of ``v`` read as a two's-complement number."""
    half = 1 << (bits - 1)
    return ((v & ((1 << bits) - 1)) ^ half) - half


def force(v: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor, bits: int) -> torch.Tensor:
    """``v`` stored in a ``bits``-wide field whose cells in ``s0`` / ``s1`` are stuck at 0 / 1
    (bit masks); values of fields without a stuck cell are returned unchanged (even when they
    exceed the field: the fault-free simulator keeps full precision)."""
    stuck = (s0 | s1) != 0
    forced = sign_extend((v & ~s0) | s1, bits)
    return torch.where(stuck, forced, v)


def stuck_masks(words: tuple[int, ...], bits: int, rate: float, p1: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Stuck-at-0 and stuck-at-1 bit masks (int64, shape ``words``) of ``bits``-bit words whose
    cells are stuck independently with probability ``rate`` (a fraction ``p1`` at 1)."""
    n = math.prod(words)
    s0 = torch.zeros(n, dtype=torch.int64)
    s1 = torch.zeros(n, dtype=torch.int64)
    pos = _sample_cells(n * bits, rate, gen)
    if pos.numel():
        one = torch.rand(pos.numel(), generator=gen) < p1
        word, bit = pos // bits, pos % bits
        value = torch.ones_like(bit) << bit
        s1.index_put_((word[one],), value[one], accumulate=True)
        s0.index_put_((word[~one],), value[~one], accumulate=True)
    return s0.reshape(words), s1.reshape(words)


def _sample_cells(cells: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Distinct cell indices among ``cells``, each chosen with probability ``rate``."""
    if rate <= 0 or cells == 0:
        return torch.zeros(0, dtype=torch.int64)
    if rate >= 0.05:  # dense: one draw per cell
        return torch.nonzero(torch.rand(cells, generator=gen) < rate).flatten()
    count = int(torch.binomial(torch.tensor(float(cells)), torch.tensor(rate), generator=gen))
    return torch.unique(torch.randint(cells, (count,), generator=gen))


def flip_masks(shape: tuple[int, ...], bits: int, rate: float,
               gen: torch.Generator) -> torch.Tensor | None:
    """XOR masks of transient flips of each bit with probability ``rate`` (None: no flip)."""
    n = math.prod(shape)
    pos = _sample_cells(n * bits, rate, gen)
    if not pos.numel():
        return None
    out = torch.zeros(n, dtype=torch.int64)
    out.index_put_((pos // bits,), torch.ones_like(pos) << (pos % bits), accumulate=True)
    return out.reshape(shape)


def repair_rows(s0: torch.Tensor, s1: torch.Tensor, row: torch.Tensor, spares: int,
                row_cells: int, rate: float, gen: torch.Generator) -> None:
    """Spare-row repair, in place: ``s0``/``s1`` are ``(units, words)`` masks of the words of
    each unit (a block's memory), ``row`` the row of each word; in every unit the first rows
    holding a stuck cell, up to the unit's usable spares, become fault-free."""
    if spares <= 0 or s0.numel() == 0:
        return
    units = s0.shape[0]
    rows = int(row.max()) + 1
    bad_word = ((s0 | s1) != 0).to(torch.int64)
    bad = torch.zeros(units, rows, dtype=torch.int64).index_add_(1, row, bad_word) > 0
    healthy = (1.0 - rate) ** row_cells  # a spare row is usable only without a stuck cell
    usable = torch.binomial(torch.full((units,), float(spares)),
                            torch.full((units,), healthy), generator=gen)
    fixed = bad & (torch.cumsum(bad.to(torch.int64), 1) <= usable[:, None])
    fixed_word = fixed[:, row]
    s0[fixed_word] = 0
    s1[fixed_word] = 0


def _generator(seed: int, *salt: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + hash(salt)) % (2**63))


# the weighted layer ---------------------------------------------------------------------------
class _FaultyTables(ProductTableCrossbar):
    """A table crossbar whose operand rows come from per-synapse corrupted rows."""

    def __init__(self, base: ProductTableCrossbar, rows: torch.Tensor) -> None:
        self.__dict__.update(base.__dict__)
        self.rows = rows
        self.rank_one = False

    def operand_rows(self) -> torch.Tensor:
        return self.rows


class FaultyWeightedStage(Stage):
    """A weighted layer on faulty RNA blocks (module docstring): the corrupted operand rows of
    its synapses, and, with processing faults or read flips, the adder tree evaluated product
    by product."""

    def __init__(self, inner: WeightedStage, faults: FaultConfig, config, index: int) -> None:
        self.inner = inner
        self.name, self.src = inner.name, inner.src
        self.info, self.static, self.mapping = inner.info, inner.static, inner.mapping
        self.encoder = inner.encoder
        self.faults, self.config, self.index = faults, config, index
        self.batches = 0
        xb = inner.xbar
        self.B, self.A = xb.entry_bits, inner.acc_bits
        m = inner.mapping
        self.vpb = max(1, m.values_per_block)
        self.slots = max(1, m.values_per_row)
        self.rows_per_block = max(1, m.rows_per_block)
        self.p1 = faults.stuck_at_one
        self.read_rate = faults.rate("read_flips", self.name)
        self.proc = self._processing_masks()
        rows = self._operand_rows()
        inner.use_values = False
        inner.fold_offset = False
        inner.xbar = _FaultyTables(xb, rows)
        inner.adder = ProcessingCrossbar(inner.xbar, inner.adder.bias, self.A)
        self.explicit = self.proc is not None or self.read_rate > 0
        self.rows = rows

    def needs(self) -> dict[str, str]:
        return {self.src: "codes"}

    def produced(self) -> str | None:
        return self.inner.produced()

    def set_wants(self, codes: bool, vals: bool) -> None:
        self.inner.set_wants(codes, vals)

    # stored state ------------------------------------------------------------------------
    def _copy_of(self, k: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        """The block (value block x row block) whose table copy synapse k of neuron o reads."""
        return (o // self.vpb) * max(1, self.inner.mapping.row_blocks) + k // self.rows_per_block

    def _operand_rows(self) -> torch.Tensor:
        """Per synapse ``(O, K, u)``: the entries of its (corrupted) weight code's row in the
        corrupted table copy of its block, then its product-field stuck cells."""
        inner, f = self.inner, self.faults
        xb = inner.xbar
        codes = xb.codes.reshape(xb.codes.shape[0], -1)  # (O, K)
        out, fan = codes.shape
        rate = f.rate("table", self.name)
        gen = _generator(f.seed, self.index, 1)
        k = torch.arange(fan)[None, :].expand(out, fan)
        o = torch.arange(out)[:, None].expand(out, fan)
        group = xb.group_of[o]
        copy = self._copy_of(k, o) * xb.groups + group  # (block, table) pairs
        ids, which = torch.unique(copy.flatten(), return_inverse=True)
        tables = xb.table[ids % xb.groups]  # (copies, w, u)
        if rate > 0:
            tables = self._corrupt_tables(tables, rate, gen)
            cb = code_bits(xb.w)
            c0, c1 = stuck_masks((out, fan), cb, rate, self.p1, gen)
            self._repair_codes(c0, c1, cb, rate, gen)
            codes = ((codes & ~c0) | c1).clamp_(max=xb.w - 1)
        rows = tables[which.reshape(out, fan), codes]  # (O, K, u)
        if self.proc is not None:  # stuck cells of the product field of each slot row
            rows = force(rows, self.proc["prod0"][..., None], self.proc["prod1"][..., None],
                         self.B)
        return rows.reshape(*xb.codes.shape, xb.u)

    def _repair_codes(self, c0: torch.Tensor, c1: torch.Tensor, bits: int, rate: float,
                      gen: torch.Generator) -> None:
        """Spare rows for the weight codes: a block's codes fill table-crossbar rows of
        ``table_cols`` cells, neuron after neuron."""
        f = self.faults
        if not f.spare_rows:
            return
        out, fan = c0.shape
        blocks = math.ceil(out / self.vpb)
        pad = blocks * self.vpb - out
        m0 = F.pad(c0, (0, 0, 0, pad)).reshape(blocks, -1)
        m1 = F.pad(c1, (0, 0, 0, pad)).reshape(blocks, -1)
        cols = self.config.blocks.table_cols
        row = (torch.arange(m0.shape[1]) * bits) // cols
        repair_rows(m0, m1, row, f.spare_rows, cols, rate, gen)
        c0.copy_(m0.reshape(-1, fan)[:out])
        c1.copy_(m1.reshape(-1, fan)[:out])

    def _corrupt_tables(self, tables: torch.Tensor, rate: float,
                        gen: torch.Generator) -> torch.Tensor:
        f, b = self.faults, self.B
        cols = self.config.blocks.table_cols
        row = (torch.arange(tables[0].numel()) * b) // cols  # table-crossbar row of each entry
        copies = 3 if f.table_protection == "tmr" else 1
        bits = b + (f.table_protection == "parity")
        words = []
        for _ in range(copies):
            s0, s1 = stuck_masks((tables.shape[0], tables[0].numel()), bits, rate, self.p1, gen)
            repair_rows(s0, s1, row, f.spare_rows, cols, rate, gen)
            words.append((s0.reshape(tables.shape), s1.reshape(tables.shape)))
        mask = (1 << b) - 1
        if f.table_protection == "tmr":
            a, c, d = ((tables & ~s0) | s1 for s0, s1 in words)
            return sign_extend((a & c) | (a & d) | (c & d), b)
        s0, s1 = words[0]
        stored = (tables & ~s0) | s1
        out = torch.where(((s0 | s1) & mask) != 0, sign_extend(stored, b), tables)
        if f.table_protection == "parity":
            parity = popcount(tables & mask, b) & 1
            read = ((parity & ~(s0 >> b)) | (s1 >> b)) & 1
            detected = ((popcount(stored & mask, b) + read) & 1) != 0
            out = torch.where(detected, torch.zeros_like(out), out)
        return out

    def _processing_masks(self) -> dict[str, torch.Tensor] | None:
        """Stuck cells of the sum, incoming and scratch fields of every slot row ``(O, K)``,
        after spare-row repair (the product field is folded into the operand rows)."""
        f = self.faults
        rate = f.rate("processing", self.name)
        if rate <= 0:
            return None
        xb = self.inner.xbar
        out, fan = xb.codes.shape[0], int(xb.codes[0].numel())
        gen = _generator(f.seed, self.index, 3)
        a = self.A
        scratch = self.config.blocks.slot_scratch_bits
        p0, p1 = stuck_masks((out, fan), self.B, rate, self.p1, gen)
        sum0, sum1 = stuck_masks((out, fan), a, rate, self.p1, gen)
        in0, in1 = stuck_masks((out, fan), a, rate, self.p1, gen)
        sc0, sc1 = stuck_masks((out, fan), max(1, scratch), rate if scratch else 0.0,
                               self.p1, gen)
        if f.spare_rows:
            self._repair(fan, [p0, p1, sum0, sum1, in0, in1, sc0, sc1], rate, gen)
        scratch_value = torch.where(sc0 != 0, 0, torch.where(sc1 != 0, -1, 1))
        return {"prod0": p0, "prod1": p1, "sum0": sum0, "sum1": sum1, "in0": in0, "in1": in1,
                "scratch": scratch_value}

    def _repair(self, fan: int, masks: list[torch.Tensor], rate: float,
                gen: torch.Generator) -> None:
        """Spare rows of the processing crossbar: a physical row holds row k of the S slots
        of one slot group (``o // S``); rows with a stuck cell are repaired per block."""
        out = masks[0].shape[0]
        any_bad = torch.zeros(out, fan, dtype=torch.int64)
        for m in masks:
            any_bad |= m
        group = torch.arange(out) // self.slots
        groups = int(group.max()) + 1
        bad = torch.zeros(groups, fan, dtype=torch.int64).index_add_(
            0, group, (any_bad != 0).to(torch.int64))
        per_block = max(1, self.vpb // self.slots)
        blocks = math.ceil(groups / per_block)
        pad = blocks * per_block - groups
        unit = F.pad(bad, (0, 0, 0, pad)).reshape(blocks, per_block * fan)
        zeros = torch.zeros_like(unit)
        row = torch.arange(per_block * fan)
        repair_rows(unit, zeros, row, self.faults.spare_rows, self.config.blocks.proc_cols,
                    rate, gen)
        keep = unit.reshape(-1, fan)[:groups] != 0  # rows still bad after the repair
        fixed = (~keep)[group]
        for m in masks:
            m[fixed] = 0

    # execution ---------------------------------------------------------------------------
    def run(self, env: Env, x: torch.Tensor) -> None:
        if not self.explicit:
            self.inner.run(env, x)
            return None
        inner = self.inner
        b = inner._lift(env.codes[self.src])
        gen = _generator(self.faults.seed, self.index, 4, self.batches)
        self.batches += 1
        n = b.shape[0]
        per_image = max(1, self.rows[..., 0].numel() * inner.positions)
        chunk = max(1, (1 << 24) // per_image)
        acc = torch.cat([self._accumulate(b[i:i + chunk], gen) for i in range(0, n, chunk)])
        acc = inner._drop(acc)
        env.ints[self.name] = acc
        if inner.encoder is not None:
            inner.encoder.emit(env, acc)
        return None

    def _products(self, b: torch.Tensor) -> torch.Tensor:
        """Every looked-up product ``(n, O, P, K)`` (0 for zero padding)."""
        xb = self.inner.xbar
        g = xb.geometry
        out, u = xb.codes.shape[0], xb.u
        rows = self.rows.reshape(out, -1)  # (O, K*u)
        fan = rows.shape[1] // u
        n = b.shape[0]
        if g.op == "linear":
            idx = torch.arange(fan) * u + b  # (n, K)
            return rows[:, idx].permute(1, 0, 2).unsqueeze(2)
        unf = F.unfold((b + 1).to(torch.float32), g.kernel, g.dilation, g.padding, g.stride)
        unf = unf.to(torch.int64) - 1  # (n, C*kh*kw, P), -1 = padding
        p = unf.shape[-1]
        unf = unf.reshape(n, g.groups, fan, p)
        group = torch.arange(out) // (out // g.groups)
        sel = unf[:, group]  # (n, O, K, P)
        valid = sel >= 0
        idx = torch.arange(fan)[None, None, :, None] * u + sel.clamp(min=0)
        prod = torch.gather(rows[None].expand(n, -1, -1), 2, idx.reshape(n, out, fan * p))
        prod = prod.reshape(n, out, fan, p) * valid
        return prod.permute(0, 1, 3, 2)

    def _accumulate(self, b: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Saturated accumulators of a chunk, the adder tree run row by row with the stuck
        cells of each row (module docstring)."""
        inner = self.inner
        vals = self._products(b)
        if self.read_rate > 0:
            flips = flip_masks(tuple(vals.shape), self.B, self.read_rate, gen)
            if flips is not None:
                vals = sign_extend(vals ^ flips, self.B)
        fan = vals.shape[-1]
        rows = torch.arange(fan)
        pm = self.proc
        width = self.B  # operands of level l are B + l - 1 bits wide (docs/simulator.md 2.1)
        while vals.shape[-1] > 1:
            pairs = vals.shape[-1] // 2
            left, right = vals[..., 0:2 * pairs:2], vals[..., 1:2 * pairs:2]
            r = rows[0:2 * pairs:2]
            if pm is not None:
                w = min(width, self.A)
                right = force(right, _at(pm["in0"], r, w), _at(pm["in1"], r, w), w)
            s = left + right
            width += 1
            if pm is not None:
                s = self._write(s, r, min(width, self.A))
            if vals.shape[-1] % 2:
                vals, rows = torch.cat([s, vals[..., -1:]], -1), torch.cat([r, rows[-1:]])
            else:
                vals, rows = s, r
        total = vals[..., 0]  # (n, O, P)
        if inner.adder.bias is not None:
            total = total + inner.adder.bias[None, :, None]
            if pm is not None:  # one addition of max(tree width, A) bits, into row 0
                total = self._write(total[..., None], torch.zeros(1, dtype=torch.int64),
                                    self.A)[..., 0]
        total = total.clamp(inner.adder.lo, inner.adder.hi)
        g = inner.xbar.geometry
        if g.op == "linear":
            return total[..., 0]
        oh, ow = inner._out_hw(b)
        return total.reshape(total.shape[0], total.shape[1], oh, ow)

    def _write(self, s: torch.Tensor, r: torch.Tensor, width: int) -> torch.Tensor:
        """``width``-bit sums written into rows ``r``: the stuck cells of their sum field
        (the cells the addition writes), then their scratch cells."""
        pm = self.proc
        s = force(s, _at(pm["sum0"], r, width), _at(pm["sum1"], r, width), width)
        sc = _at(pm["scratch"], r)
        return torch.where(sc != 1, sc.expand_as(s), s)


def _at(mask: torch.Tensor, r: torch.Tensor, width: int | None = None) -> torch.Tensor:
    """Per-(neuron, row) masks ``(O, K)`` at rows ``r``, shaped to broadcast over (n, O, P, r);
    bit masks keep their low ``width`` bits (the cells a ``width``-bit value occupies)."""
    m = mask[:, r][None, :, None, :]
    return m if width is None else m & ((1 << width) - 1)


# the encoder AM ---------------------------------------------------------------------------
class FaultyAM:
    """An encoder AM with stuck cells in its stored words and flips in its queries."""

    def __init__(self, am, copies: int, copy_of: torch.Tensor, faults: FaultConfig,
                 rate: float, flip_rate: float, gen: torch.Generator, am_cols: int) -> None:
        self.base = am
        self.rows, self.word_bits, self.searched_bits = am.rows, am.word_bits, am.searched_bits
        self.groups, self.decode, self.offset_ok = am.groups, am.decode, False
        w = am.word_bits
        rows = torch.cat([torch.full((am.groups, 1), am.L, dtype=torch.int64), am.stored], 1)
        valid = torch.cat([torch.ones(am.groups, 1, dtype=torch.bool), am.valid], 1)
        if am.groups == 1:  # one copy of the shared set per block
            rows, valid = rows.expand(copies, -1).clone(), valid.expand(copies, -1)
        s0, s1 = stuck_masks(tuple(rows.shape), w, rate, faults.stuck_at_one, gen)
        s0[~valid] = 0  # a disabled row stays disabled
        s1[~valid] = 0
        repair_rows(s0, s1, torch.arange(rows.shape[1]), faults.spare_rows, am_cols, rate, gen)
        self.stored = force(rows, s0, s1, w) >> am.shift
        self.valid = valid
        self.copy_of = copy_of
        self.flip_rate, self.gen = flip_rate, gen

    def search(self, values: torch.Tensor) -> torch.Tensor:
        am = self.base
        q = values.to(torch.int64).clamp(am.L, am.H)
        if self.flip_rate > 0:
            flips = flip_masks(tuple(q.shape), am.word_bits, self.flip_rate, self.gen)
            if flips is not None:
                q = sign_extend(q ^ flips, am.word_bits)
        q = q >> am.shift
        ch = q.shape[1] if q.dim() > 1 else 1
        keys = self.stored[self.copy_of[:ch]]  # (C, rows)
        valid = self.valid[self.copy_of[:ch]]
        shape = (1, ch) + (1,) * (q.dim() - 2) + (self.rows,)
        keys, valid = keys.reshape(shape), valid.reshape(shape)
        index = torch.arange(self.rows).reshape((1,) * q.dim() + (self.rows,))
        out = []
        step = max(1, (1 << 24) // max(1, q[0].numel() * self.rows))
        for i in range(0, q.shape[0], step):
            match = valid & (keys <= q[i:i + step, ..., None])
            out.append((match * index).amax(-1))
        return torch.cat(out)

    def search_values(self, values: torch.Tensor) -> torch.Tensor:
        return self.decode[self.search(values)]


class FaultyInputAM:
    """The input AM with stuck cells in its float32 midpoint words and flips in its queries:
    ``code = max{k : k = 0 or stored_(k-1) < x}`` (the highest matching row; module docstring)."""

    WORD_BITS = 32

    def __init__(self, am, copies: int, faults: FaultConfig, rate: float, flip_rate: float,
                 gen: torch.Generator, am_cols: int) -> None:
        self.base, self.rows, self.decode = am, am.rows, am.decode
        words = am.midpoints.to(torch.float32).view(torch.int32).to(torch.int64)
        words = words.expand(copies, -1).clone()
        s0, s1 = stuck_masks(tuple(words.shape), self.WORD_BITS, rate, faults.stuck_at_one, gen)
        repair_rows(s0, s1, torch.arange(1, words.shape[1] + 1), faults.spare_rows, am_cols,
                    rate, gen)
        stored = force(words, s0, s1, self.WORD_BITS).to(torch.int32).view(torch.float32)
        self.stored = stored.to(torch.float64)  # (copies, rows - 1)
        self.copies, self.flip_rate, self.gen = copies, flip_rate, gen

    def search(self, x: torch.Tensor) -> torch.Tensor:
        q = x.to(torch.float32)
        if self.flip_rate > 0:
            flips = flip_masks(tuple(q.shape), self.WORD_BITS, self.flip_rate, self.gen)
            if flips is not None:
                bits = q.contiguous().view(torch.int32).to(torch.int64) ^ flips
                q = sign_extend(bits, self.WORD_BITS).to(torch.int32).view(torch.float32)
        flat = q.reshape(q.shape[0], -1).to(torch.float64)
        values = flat.shape[1]
        copy = torch.arange(values) * self.copies // max(1, values)
        keys = self.stored[copy]  # (values, rows - 1)
        index = torch.arange(1, self.rows)
        out = []
        step = max(1, (1 << 24) // max(1, values * self.rows))
        for i in range(0, flat.shape[0], step):
            match = keys[None] < flat[i:i + step, :, None]  # NaN never matches
            out.append((match * index).amax(-1))  # rows >= 2: u >= 2 clusters
        return torch.cat(out).reshape(q.shape)

    def search_values(self, x: torch.Tensor) -> torch.Tensor:
        if self.decode is None:
            raise ValueError("this AM was programmed without decode values")
        return self.decode[self.search(x)]


# programming ------------------------------------------------------------------------------
def inject(stages: list[Stage], config) -> list[Stage]:
    """The stages of a simulator programmed with ``config.faults`` (module docstring)."""
    faults: FaultConfig = config.faults
    out: list[Stage] = []
    for i, st in enumerate(stages):
        names = (st.name,)
        enc = getattr(st, "encoder", None)
        if isinstance(st, WeightedStage):
            hit = any(faults.rate(k, *names) > 0 for k in ("table", "processing", "read_flips"))
            if hit and config.strategy != "tree":
                raise ValueError("faults in tables and processing crossbars are simulated "
                                 "with strategy='tree' only")
            if hit:
                st = FaultyWeightedStage(st, faults, config, i)
        if isinstance(st, InputStage):
            rate = faults.rate("am", st.name)
            flips = faults.rate("search_flips", st.name)
            if rate > 0 or flips > 0:
                copies = max(1, st.mapping.am_blocks or st.mapping.blocks)
                st.am = FaultyInputAM(st.am, copies, faults, rate, flips,
                                      _generator(faults.seed, i, 6), config.blocks.am_bits)
        if enc is not None:
            rate = faults.rate("am", st.name, enc.name)
            flips = faults.rate("search_flips", st.name, enc.name)
            if rate > 0 or flips > 0:
                _fault_encoder(st, enc, faults, rate, flips, i, config)
        out.append(st)
    return out


def _fault_encoder(st: Any, enc: Any, faults: FaultConfig, rate: float, flips: float,
                   index: int, config) -> None:
    am = enc.am
    weighted = st.inner if isinstance(st, FaultyWeightedStage) else st
    if am.groups > 1:  # one threshold set per channel
        copy_of = torch.arange(am.groups)
    elif isinstance(weighted, WeightedStage):  # the shared set: one copy per block
        vpb = max(1, weighted.mapping.values_per_block)
        copy_of = torch.arange(weighted.out) // vpb
    else:  # pooling / add / mul encoders: one copy (not mapped per channel)
        copy_of = torch.zeros(1 << 16, dtype=torch.int64)
    copies = int(copy_of.max()) + 1
    gen = _generator(faults.seed, index, 5)
    enc.am = FaultyAM(am, copies, copy_of, faults, rate, flips, gen, config.blocks.am_bits)
    if hasattr(weighted, "fold_offset"):
        weighted.fold_offset = False
