"""Event accumulation: totals over a simulated batch, turned into per-inference LayerTraces."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rapidnn.accel.trace import LayerTrace, Trace

COUNTERS = ("table_lookups", "product_writes", "nor_cycles", "am_searches", "pool_searches",
            "bits_moved_block", "bits_moved_tile", "cells_written")


@dataclass
class Events:
    """Event totals of one layer over all simulated images (floats; see docs/simulator.md)."""

    table_lookups: float = 0.0
    product_writes: float = 0.0
    nor_cycles: float = 0.0
    am_searches: float = 0.0
    pool_searches: float = 0.0
    bits_moved_block: float = 0.0
    bits_moved_tile: float = 0.0
    cells_written: float = 0.0
    additions: dict[int, float] = field(default_factory=dict)

    def add(self, other: Events, scale: float = 1.0) -> None:
        for c in COUNTERS:
            setattr(self, c, getattr(self, c) + scale * getattr(other, c))
        for k, v in other.additions.items():
            self.additions[k] = self.additions.get(k, 0.0) + scale * v

    def scaled(self, scale: float) -> Events:
        out = Events()
        out.add(self, scale)
        return out

    def add_additions(self, widths: dict[int, float], scale: float = 1.0) -> None:
        for k, v in widths.items():
            if v:
                self.additions[k] = self.additions.get(k, 0.0) + scale * v


@dataclass
class LayerInfo:
    """Static facts of one trace layer (the LayerTrace fields that are not counters)."""

    name: str
    kind: str
    neurons: int = 0
    fan_in: int = 0
    positions: int = 1
    weight_clusters: int = 0
    input_clusters: int = 0
    entry_bits: int = 0
    tables: int = 0
    acc_bits: int = 0
    am_rows: int = 0
    am_bits: int = 0
    demand: dict[str, Any] = field(default_factory=dict)  # mapping.LayerDemand as a dict
    blocks: int = 0  # RNA blocks of one dense copy (mapping.map_layer)

    def trace(self, ev: Events, batch: int) -> LayerTrace:
        """Per-inference LayerTrace from totals over ``batch`` images."""
        n = max(1, batch)
        kw = {c: getattr(ev, c) / n for c in COUNTERS}
        return LayerTrace(
            name=self.name, kind=self.kind, neurons=self.neurons, fan_in=self.fan_in,
            positions=self.positions, weight_clusters=self.weight_clusters,
            input_clusters=self.input_clusters, entry_bits=self.entry_bits, tables=self.tables,
            acc_bits=self.acc_bits, am_rows=self.am_rows, am_bits=self.am_bits,
            demand=dict(self.demand), blocks=self.blocks,
            additions={k: v / n for k, v in sorted(ev.additions.items())}, **kw)


def merge_traces(traces: list[Trace]) -> Trace:
    """One Trace over the images of several (per-inference) traces of the same network."""
    if not traces:
        raise ValueError("no traces to merge")
    total = sum(t.batch for t in traces)
    first = traces[0]
    layers = []
    for i, lt in enumerate(first.layers):
        acc = Events()
        for t in traces:
            other = t.layers[i]
            if other.name != lt.name:
                raise ValueError("traces of different networks cannot be merged")
            ev = Events(**{c: getattr(other, c) for c in COUNTERS},
                        additions=dict(other.additions))
            acc.add(ev, t.batch)
        info = LayerInfo(lt.name, lt.kind, lt.neurons, lt.fan_in, lt.positions,
                         lt.weight_clusters, lt.input_clusters, lt.entry_bits, lt.tables,
                         lt.acc_bits, lt.am_rows, lt.am_bits, dict(lt.demand), lt.blocks)
        layers.append(info.trace(acc, total))
    return Trace(batch=total, layers=layers, config=dict(first.config))
