"""Simulator configuration: strategy, approximate search, RNA block sizes, NOR costs, recording.

Every default is our reconstruction (``docs/simulator.md``, decisions H1-H5; paper notes
section 9.2): RAPIDNN's block sizes and cycle counts are unknown, so the defaults follow the same
group's FloatPIM (1K x 1K blocks, 13 NOR cycles per added bit; hardware-parameters.md 4.3) and
DUAL (nearest-value CAM search; 4.4).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class BlockSizes(BaseModel):
    """Sizes of one RNA block (decision H1) and of a tile.

    - ``table_rows`` x ``table_cols``: the product-table crossbar (one table entry of B bits per
      ``B`` cells of a row; a table of w x u entries needs ``ceil(w*u*B / table_cols)`` rows).
    - ``proc_rows`` x ``proc_cols``: the processing crossbar where products are written and
      added with MAGIC NOR (one product per row per neuron slot; a neuron with more products than
      ``proc_rows`` is split over several blocks and the partial sums are combined).
    - ``am_rows`` x ``am_bits``: the associative memory holding encoder thresholds (u rows per
      neuron; larger sets or wider words are searched in segments).
    - ``blocks_per_tile``: RNA blocks per tile (layers are mapped onto whole tiles).
    - ``slot_scratch_bits``: extra cells per neuron slot for NOR intermediates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    table_rows: int = Field(default=64, ge=1)
    table_cols: int = Field(default=1024, ge=1)
    proc_rows: int = Field(default=1024, ge=1)
    proc_cols: int = Field(default=1024, ge=8)
    am_rows: int = Field(default=1024, ge=2)
    am_bits: int = Field(default=64, ge=1)
    blocks_per_tile: int = Field(default=256, ge=1)
    slot_scratch_bits: int = Field(default=5, ge=0)


#: The block kinds a fault rate applies to (rapidnn.accel.faults).
FAULT_BLOCKS = ("table", "processing", "am")
Rate = float


class FaultConfig(BaseModel):
    """Fault rates (probability per cell, or per bit per access for the transient ones), their
    per-layer overrides, the mitigations and the seed (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    table: Rate = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    processing: Rate = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    am: Rate = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    read_flips: Rate = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    search_flips: Rate = Field(default=0.0, ge=0, le=1, allow_inf_nan=False)
    stuck_at_one: float = Field(default=0.5, ge=0, le=1, allow_inf_nan=False)
    layers: dict[str, dict[str, Rate]] = Field(default_factory=dict)
    spare_rows: int = Field(default=0, ge=0)
    table_protection: str = "none"
    seed: int = Field(default=0, ge=0, lt=2**63)

    @model_validator(mode="after")
    def _check(self) -> FaultConfig:
        if self.table_protection not in ("none", "parity", "tmr"):
            raise ValueError(f"table_protection must be 'none', 'parity' or 'tmr', not "
                             f"{self.table_protection!r}")
        kinds = (*FAULT_BLOCKS, "read_flips", "search_flips")
        for layer, rates in self.layers.items():
            for k, v in rates.items():
                if k not in kinds:
                    raise ValueError(f"faults.layers[{layer!r}]: unknown rate {k!r}; known: "
                                     f"{', '.join(kinds)}")
                if not 0 <= v <= 1:
                    raise ValueError(f"faults.layers[{layer!r}][{k!r}] = {v} is not in [0, 1]")
        return self

    def rate(self, kind: str, *names: str) -> float:
        """The rate of ``kind`` for the layer known by any of ``names``."""
        for n in names:
            if kind in self.layers.get(n, {}):
                return float(self.layers[n][kind])
        return float(getattr(self, kind))

    @property
    def active(self) -> bool:
        kinds = (*FAULT_BLOCKS, "read_flips", "search_flips")
        return any(getattr(self, k) > 0 for k in kinds) or any(
            v > 0 for rates in self.layers.values() for v in rates.values())


class SimConfig(BaseModel):
    """Options of :func:`rapidnn.accel.simulate`.

    - ``strategy``: ``"tree"`` (look up every product, add them in a binary adder tree) or
      ``"counting"`` (count each (weight code, input code) pair, look up each non-zero pair once,
      multiply by the count with shift-and-add, add the terms in a tree) (decision H2/H3).
    - ``approx_bits``: ``None`` = exact search; an int = bits compared by every encoder AM; a dict
      maps a layer name (the producing layer, e.g. ``"fc1"``, or the encoder's name) to bits
      (decision H5). A value >= the AM word width W of a layer is exact.
    - ``blocks``: RNA block and tile sizes (:class:`BlockSizes`).
    - ``nor_cycles_per_bit`` / ``nor_cycles_fixed``: an N-bit in-memory addition costs
      ``per_bit * N + fixed`` MAGIC NOR cycles (FloatPIM 13 N, hardware-parameters.md 4.3;
      Talati et al. 18 N + 1 with one-cell initialisation, 4.5).
    - ``input_word_bits``: width of one raw network input as searched by the input AM (None: the
      input tensor's dtype width).
    - ``record_codes`` / ``record_accumulators`` / ``record_trace``: what :class:`SimResult`
      keeps.
    - ``count_sample``: counting strategy only; ``None`` computes the pair counts of every image
      exactly (and derives the accumulators from them), an int computes them on the first
      ``count_sample`` images of each batch and scales the event counts (accumulators then come
      from the adder-tree path, which is equal).
    - ``max_chunk_elements``: memory bound for the one-hot count tensors of the counting strategy.
    - ``faults``: device faults and their mitigations (:class:`FaultConfig`,
      :mod:`rapidnn.accel.faults`); None (or every rate 0) simulates fault-free blocks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    strategy: Literal["tree", "counting"] = "tree"
    approx_bits: int | dict[str, int] | None = None
    blocks: BlockSizes = Field(default_factory=BlockSizes)
    nor_cycles_per_bit: float = Field(default=13.0, ge=0, allow_inf_nan=False)
    nor_cycles_fixed: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    input_word_bits: int | None = Field(default=None, ge=1, le=64)
    record_codes: bool = False
    record_accumulators: bool = False
    record_trace: bool = True
    count_sample: int | None = Field(default=None, ge=1)
    max_chunk_elements: int = Field(default=1 << 25, ge=1 << 10)
    faults: FaultConfig | None = None

    @field_validator("approx_bits")
    @classmethod
    def _check_bits(cls, v: Any) -> Any:
        values = v.values() if isinstance(v, dict) else [] if v is None else [v]
        bad = [b for b in values if b < 1]
        if bad:
            raise ValueError(f"approx_bits must be >= 1, got {bad}")
        return v

    def bits_for(self, *names: str) -> int | None:
        """Searched bits for the encoder known by any of ``names`` (None = exact)."""
        if self.approx_bits is None or isinstance(self.approx_bits, int):
            return self.approx_bits
        for n in names:
            if n in self.approx_bits:
                return self.approx_bits[n]
        return None

    def nor_cycles(self, width: int) -> float:
        """MAGIC NOR cycles of one ``width``-bit addition."""
        return self.nor_cycles_per_bit * width + self.nor_cycles_fixed
