"""The Trace: what every memory block of the RNA accelerator did, per layer and per inference.

The simulator fills it while it executes a ComposedModel; the cost model (``rapidnn.hardware``)
turns it into energy and latency. All counts are **per inference** (totals over the simulated
batch divided by ``batch``), so a Trace of one image and of 10,000 images compare directly.
The structure is plain data (ints, floats, strings, dicts) and round-trips through JSON.

Event definitions (see ``docs/simulator.md``; the block models are our reconstruction, paper
notes section 6.3):

* ``table_lookups``: reads of one B-bit entry of a product-table crossbar, addressed by
  (weight code, input code). One per synapse in the adder-tree strategy; one per non-zero
  (weight code, input code) pair count in the counting strategy.
* ``product_writes``: B-bit words written into rows of the processing crossbar before addition.
* ``additions``: in-memory additions by operand width, ``{bits: count}``.
* ``nor_cycles``: MAGIC NOR cycles spent by those additions (each addition of N bits costs
  ``nor_cycles_per_bit * N + nor_cycles_fixed`` cycles; the parameters live in the config).
* ``am_searches`` / ``am_rows`` / ``am_bits``: associative-memory searches, and per search the
  number of stored rows compared and the bits compared per row.
* ``pool_searches``: searches of the pooling AM (one per pooled output value).
* ``bits_moved_block`` / ``bits_moved_tile``: bits sent between RNA blocks in one tile, and
  between tiles (layer to layer).
* ``cells_written``: NVM cells written (endurance): products, partial sums, codes.

Mapping facts (format 2): ``demand`` is what the layer asks of the RNA blocks
(``rapidnn.accel.mapping.LayerDemand``) and ``blocks`` the blocks of one dense copy on the
simulated block sizes; the cost model maps the same demand with the same function.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

TRACE_FORMAT = 2

_COUNTERS = (
    "table_lookups",
    "product_writes",
    "nor_cycles",
    "am_searches",
    "pool_searches",
    "bits_moved_block",
    "bits_moved_tile",
    "cells_written",
)


@dataclass
class LayerTrace:
    """Events of one composed layer, per inference, plus the shape facts the cost model needs."""

    name: str
    kind: str  # encode_input | linear | conv2d | activation | maxpool | avgpool | add | output
    neurons: int = 0  # output values produced per inference
    fan_in: int = 0  # products summed per output value (weighted layers)
    positions: int = 1  # output positions sharing one table (convolutions)
    weight_clusters: int = 0
    input_clusters: int = 0
    entry_bits: int = 0  # bits per product-table entry
    tables: int = 0  # distinct product tables (1, or one per output channel)
    acc_bits: int = 0
    table_lookups: float = 0.0
    product_writes: float = 0.0
    additions: dict[int, float] = field(default_factory=dict)
    nor_cycles: float = 0.0
    am_searches: float = 0.0
    am_rows: int = 0
    am_bits: int = 0
    pool_searches: float = 0.0
    bits_moved_block: float = 0.0
    bits_moved_tile: float = 0.0
    cells_written: float = 0.0
    demand: dict[str, Any] = field(default_factory=dict)  # rapidnn.accel.mapping.LayerDemand
    blocks: int = 0  # RNA blocks of one dense copy (rapidnn.accel.mapping.map_layer)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["additions"] = {str(k): v for k, v in sorted(self.additions.items())}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LayerTrace:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"trace layer has unknown keys: {sorted(unknown)}")
        d = dict(d)
        d["demand"] = dict(d.get("demand", {}))
        d["additions"] = {int(k): float(v) for k, v in d.get("additions", {}).items()}
        return cls(**d)


@dataclass
class Trace:
    """Per-layer event counts of one simulated execution (per inference)."""

    batch: int
    layers: list[LayerTrace] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)

    def layer(self, name: str) -> LayerTrace:
        for lt in self.layers:
            if lt.name == name:
                return lt
        raise KeyError(f"no layer named {name!r} in the trace")

    def totals(self) -> dict[str, float]:
        """Sum of every counter over the layers (per inference)."""
        out = {c: float(sum(getattr(lt, c) for lt in self.layers)) for c in _COUNTERS}
        out["additions"] = float(sum(sum(lt.additions.values()) for lt in self.layers))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": TRACE_FORMAT,
            "batch": self.batch,
            "config": self.config,
            "layers": [lt.to_dict() for lt in self.layers],
            "totals": self.totals(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        if d.get("format") != TRACE_FORMAT:
            found = d.get("format")
            raise ValueError(f"unsupported trace format {found!r}; expected {TRACE_FORMAT}")
        return cls(
            batch=int(d["batch"]),
            layers=[LayerTrace.from_dict(x) for x in d["layers"]],
            config=dict(d.get("config", {})),
        )

    @classmethod
    def from_json(cls, text: str) -> Trace:
        return cls.from_dict(json.loads(text))
