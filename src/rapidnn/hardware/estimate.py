"""Result types shared by the mappers: per-layer and whole-network estimates, chip figures, and
run options."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from rapidnn.hardware.pipeline import LatencyMode, Policy

#: an override's value: a number (not a string or a bool), finite and >= 0; the pydantic error
#: is located at ``overrides.<key>``
OverrideValue = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]


class EstimateOptions(BaseModel):
    """How a network is evaluated (not hardware numbers; those live in the HardwareSpec).

    * ``replication``: pipeline balancing policy (``pipeline.replicate``);
    * ``latency_mode``: "sequential" or "overlap" (``pipeline.latency``);
    * ``chips``: chips to use (None: the fewest that hold one copy of every layer);
    * ``overrides``: parameter overrides applied to the spec (``HardwareSpec.with_overrides``):
      finite numbers >= 0 (no number of a description is negative), each checked against the
      kind of the number it replaces when applied;
    * ``baseline_energy``: "events" (component × action counts, default) or
      "published_efficiency" (ops / published GOPS/W; ISAAC and PipeLayer only);
    * ``batch``: GPU batch size (None: the preset's ``batch`` parameter);
    * ``mapping``: RAPIDNN layouts, "search" (the mapper, ``rapidnn.hardware.mapper``) or
      "dense" (every value slot of a row filled, copies by ``replication`` only);
    * ``objective``: what the mapper minimises, "latency" (the pipeline period), "energy"
      (per inference, static power of powered tiles included) or "edp" (their product);
    * ``gating``: static power (docs/hardware.md §8): "gated" (idle components draw nothing, the
      ISAAC/Accelergy convention), "leakage" (idle CMOS periphery leaks: ISAAC/PipeLayer a
      fraction of rated power, RAPIDNN the controllers of the tiles in use) or "ungated"
      (ISAAC's own fixed-power model: the chip draws its rated power all the time; RAPIDNN's
      controllers leak on every tile);
    * ``entry_width``: RAPIDNN product-table entries read/written at the composed width B
      ("fixed") or at the smallest width holding the table's products ("exact");
    * ``block_budget``: RAPIDNN blocks available (None: the chips' blocks), for matched-area and
      matched-power comparisons (``rapidnn.hardware.policies``).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    replication: Policy = "balanced"
    latency_mode: LatencyMode = "sequential"
    chips: int | None = Field(default=None, ge=1)
    overrides: dict[str, OverrideValue] = Field(default_factory=dict)
    baseline_energy: Literal["events", "published_efficiency"] = "events"
    batch: int | None = Field(default=None, ge=1)
    mapping: Literal["search", "dense"] = "search"
    objective: Literal["latency", "energy", "edp"] = "edp"
    gating: Literal["gated", "leakage", "ungated"] = "gated"
    entry_width: Literal["fixed", "exact"] = "fixed"
    block_budget: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    @classmethod
    def coerce(cls, config: EstimateOptions | Mapping[str, Any] | None) -> EstimateOptions:
        """Options from an ``EstimateOptions``, a dict of its fields, or None (the defaults)."""
        if isinstance(config, EstimateOptions):
            return config
        return cls.model_validate(dict(config or {}))


def _num(x: float | None) -> float | None:
    if x is None:
        return None
    return x if math.isfinite(x) else None


@dataclass
class LayerEstimate:
    """Cost of one layer per inference."""

    name: str
    kind: str
    energy_j: float
    stage_time_s: float  # time per inference of this pipeline stage (after replication)
    units: int = 0  # arrays / blocks per copy
    replicas: int = 1
    breakdown: dict[str, float] = field(default_factory=dict)  # J per component
    mapping: dict[str, Any] = field(default_factory=dict)  # RAPIDNN: layout, rows, blocks
    actions: dict[str, float] = field(default_factory=dict)  # J per "component.action"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "energy_j": self.energy_j,
                "stage_time_s": self.stage_time_s, "units": self.units,
                "replicas": self.replicas, "breakdown": dict(self.breakdown),
                **({"mapping": dict(self.mapping)} if self.mapping else {})}


@dataclass
class Estimate:
    """Energy, latency, throughput, area and power of one network on one architecture."""

    hardware: str
    model: str
    network: str
    layers: list[LayerEstimate]
    energy_j: float  # per inference, dynamic + static
    static_energy_j: float
    latency_s: float
    throughput_ips: float
    area_mm2: float | None
    chips: int = 1
    units_used: int = 0
    units_available: float = 0.0
    notes: list[str] = field(default_factory=list)
    row_occupancy: float | None = None  # RAPIDNN: fraction of all chip rows busy on average

    @property
    def power_w(self) -> float:
        """Average power while streaming: energy per inference × inferences per second."""
        return self.energy_j * self.throughput_ips

    @property
    def dynamic_energy_j(self) -> float:
        return self.energy_j - self.static_energy_j

    def breakdown(self, by: Literal["component", "action"] = "component") -> dict[str, float]:
        """Energy per inference (J) summed over layers, split by component or by
        ``"component.action"``, with the static energy as ``"static"``."""
        out: dict[str, float] = {}
        for layer in self.layers:
            for k, v in (layer.breakdown if by == "component" else layer.actions).items():
                out[k] = out.get(k, 0.0) + v
        if self.static_energy_j:
            out["static"] = self.static_energy_j
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "hardware": self.hardware,
            "model": self.model,
            "network": self.network,
            "energy_j": self.energy_j,
            "static_energy_j": self.static_energy_j,
            "latency_s": self.latency_s,
            "throughput_ips": _num(self.throughput_ips),
            "area_mm2": self.area_mm2,
            "power_w": _num(self.power_w),
            "chips": self.chips,
            "units_used": self.units_used,
            "units_available": self.units_available,
            "utilisation": (self.units_used / self.units_available
                            if self.units_available else None),
            "breakdown": self.breakdown(),
            "breakdown_by_action": self.breakdown("action"),
            "row_occupancy": self.row_occupancy,
            "layers": [layer.to_dict() for layer in self.layers],
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class ChipFigures:
    """One chip's peak throughput (ops/s, 2 per MAC), its power and where that comes from
    (``power_basis``: "component table", "events at peak" or "board power") and its area (None:
    not modelled), as an architecture computes them for ``chip_summary``."""

    peak_ops_per_s: float
    power_w: float
    power_basis: str
    area_mm2: float | None
