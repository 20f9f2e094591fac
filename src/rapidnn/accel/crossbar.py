"""The product-table crossbar of an RNA block (paper notes 5 step 3, 6.3 steps 1-2; decision H2).

A table ``T[g]`` of ``w x u`` B-bit products ``c^w_i * c^x_j`` is written once into NVM rows.
Multiplication is a **lookup**: the (weight code ``a``, input code ``b``) pair addresses one
entry (row = weight code, column group = input code). The neuron's weight codes are stored next
to the table (paper notes 6.3 step 1). A convolution's table and weight codes serve every output
position (the table is reused, not copied).

For a whole batch the lookups of one neuron are evaluated at once: :meth:`operand_rows` gives,
per synapse, the product row ``T[g(o), a[o,k], :]`` that its weight code selects; the input code
then selects one column. When the table is exactly the outer product of the stored weight and
input values (no ``table_bits`` truncation) a row is ``wv[a] * xv``, so the selection reduces to
the decoded input value (the rank-one form). The processing crossbar (``adder.py``) adds the
selected entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class Geometry:
    """Shape facts of a weighted layer: linear (K inputs) or conv2d (C x H x W -> O x Ho x Wo,
    ``groups`` of C/groups input channels each; a Conv1d runs as a conv2d of height 1)."""

    op: str
    out: int
    fan_in: int  # products per output value without padding (K, or C/groups*kh*kw)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    kernel: tuple[int, int] = (1, 1)
    groups: int = 1


class ProductTableCrossbar:
    """Product tables ``(G, w, u)`` of B-bit entries plus the weight codes of every neuron.

    ``lookup(o, a, b)`` is the element-wise read; the batch form is :meth:`operand_rows`.
    """

    def __init__(self, table: torch.Tensor, weight_codes: torch.Tensor, weight_values: torch.Tensor,
                 input_values: torch.Tensor, entry_bits: int, geometry: Geometry) -> None:
        self.table = table.to(torch.int64)
        self.codes = weight_codes.to(torch.int64)
        self.geometry = geometry
        self.entry_bits = int(entry_bits)
        groups, w, u = self.table.shape
        self.groups, self.w, self.u = int(groups), int(w), int(u)
        out = int(self.codes.shape[0])
        self.group_of = torch.arange(out, device=self.table.device) % self.groups
        wv = weight_values.to(torch.int64)
        xv = input_values.to(torch.int64)
        self.weight_values, self.input_values = wv, xv
        outer = wv[:, :, None] * xv[None, None, :]
        self.rank_one = bool(outer.shape == self.table.shape and torch.equal(outer, self.table))

    # element-wise read (reference semantics) ---------------------------------------------
    def lookup(self, neuron: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Entries ``T[g(neuron), a, b]`` (one read of B cells each)."""
        return self.table[self.group_of[neuron], a, b]

    # batch form ----------------------------------------------------------------------------
    def _group_index(self) -> torch.Tensor:
        shape = (-1,) + (1,) * (self.codes.dim() - 1)
        return self.group_of.reshape(shape).expand_as(self.codes)

    def operand_rows(self) -> torch.Tensor:
        """Per synapse the selected product row: ``(*weight_shape, u)`` int64."""
        return self.table[self._group_index(), self.codes]

    def synapse_weights(self) -> torch.Tensor:
        """Rank-one form only: per synapse the stored weight value ``wv[g(o), a[o, k]]``."""
        if not self.rank_one:
            raise ValueError("the table is not an outer product (table_bits truncation)")
        return self.weight_values[self._group_index(), self.codes]

    def peak_sum(self) -> int:
        """Largest possible |sum of one neuron's products| (bounds exact float evaluation)."""
        rows = self.operand_rows().abs().amax(-1)
        if rows.numel() == 0:
            return 0
        return int(rows.reshape(rows.shape[0], -1).sum(1).max())

    def rows_needed(self, cols: int, tables: int = 1) -> int:
        """Crossbar rows that ``tables`` tables of ``w*u`` B-bit entries occupy."""
        return math.ceil(tables * self.w * self.u * self.entry_bits / cols)
