"""Component library: every number with its unit, source and provenance tag (Accelergy style).

A hardware description (``HardwareSpec``) is a set of named scalar ``parameters`` (organisation,
cycle counts, efficiencies) and named ``components``. A component has an energy and a latency per
action, an area, a leakage (static) power and, where the source gives one, the peak (table)
power of the unit. Each number is a ``Param`` carrying ``value``, ``unit``, ``source`` (a citation
string) and ``tag`` (published | published-secondary | derived | assumed; see
``/work/shared/reference/hardware-parameters.md`` section 1 and ``docs/hardware.md``).

Components are counted through a ``hierarchy`` of levels (e.g. crossbar -> IMA -> tile -> chip):
``count`` instances of a component sit in each instance of its ``level``, and the hierarchy gives
how many instances of a level a chip holds.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Tag = Literal["published", "published-secondary", "derived", "assumed"]
TAGS: tuple[str, ...] = ("published", "published-secondary", "derived", "assumed")

# unit -> (dimension, factor to SI)
UNITS: dict[str, tuple[str, float]] = {
    "1": ("1", 1.0),
    "bit": ("1", 1.0),
    "byte": ("1", 1.0),
    "fJ": ("J", 1e-15),
    "pJ": ("J", 1e-12),
    "nJ": ("J", 1e-9),
    "uJ": ("J", 1e-6),
    "J": ("J", 1.0),
    "ps": ("s", 1e-12),
    "ns": ("s", 1e-9),
    "us": ("s", 1e-6),
    "ms": ("s", 1e-3),
    "s": ("s", 1.0),
    "uW": ("W", 1e-6),
    "mW": ("W", 1e-3),
    "W": ("W", 1.0),
    "um2": ("m2", 1e-12),
    "mm2": ("m2", 1e-6),
    "Hz": ("Hz", 1.0),
    "MHz": ("Hz", 1e6),
    "GHz": ("Hz", 1e9),
    "B/s": ("B/s", 1.0),
    "GB/s": ("B/s", 1e9),
    "FLOP/s": ("FLOP/s", 1.0),
    "GFLOP/s": ("FLOP/s", 1e9),
    "TFLOP/s": ("FLOP/s", 1e12),
    "GOPS/mm2": ("OPS/m2", 1e15),
    "GOPS/W": ("OPS/W", 1e9),
}


class Param(BaseModel):
    """One number: value in ``unit``, with a citation (``source``) and a provenance ``tag``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    value: int | float
    unit: str
    source: str = Field(min_length=1)
    tag: Tag

    @field_validator("value", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError(f"must be a number, got {type(v).__name__} {v!r}")
        if not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v!r}")
        return v

    @field_validator("unit")
    @classmethod
    def _known_unit(cls, u: str) -> str:
        if u not in UNITS:
            raise ValueError(f"unknown unit {u!r}; known units: {', '.join(UNITS)}")
        return u

    @property
    def dimension(self) -> str:
        return UNITS[self.unit][0]

    @property
    def si(self) -> float:
        """The value in SI units (J, s, W, m², Hz, B/s, FLOP/s; dimensionless unchanged)."""
        return float(self.value) * UNITS[self.unit][1]

    def to(self, unit: str) -> float:
        """The value converted to ``unit`` (same dimension)."""
        dim, factor = UNITS[unit]
        if dim != self.dimension:
            raise ValueError(f"cannot convert {self.unit} to {unit}")
        return self.si / factor

    def scaled(self, factor: float) -> Param:
        """A copy with the value multiplied by ``factor`` (integers stay integers, >= 1)."""
        if isinstance(self.value, int):
            new: int | float = max(1, round(self.value * factor))
        else:
            new = self.value * factor
        return self.model_copy(update={"value": new, "tag": "assumed",
                                       "source": f"override: {factor:g} x ({self.source})"})

    def replaced(self, value: float) -> Param:
        """A copy with a user-chosen value (in the same unit), tagged ``assumed``."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"override value must be a number, got {value!r}")
        if isinstance(self.value, int) and float(value).is_integer():
            value = int(value)
        return self.model_copy(update={"value": value, "tag": "assumed",
                                       "source": f"override (was {self.value} {self.unit})"})


class Component(BaseModel):
    """A hardware unit: per-action energy and latency, area, leakage and (optional) peak power."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str
    description: str = ""
    level: str = "chip"
    count: Param | None = None
    energy: dict[str, Param] = Field(default_factory=dict)
    latency: dict[str, Param] = Field(default_factory=dict)
    area: Param | None = None
    leakage: Param | None = None
    peak_power: Param | None = None

    @model_validator(mode="after")
    def _units(self) -> Component:
        checks: list[tuple[str, Param | None, str]] = [
            ("count", self.count, "1"),
            ("area", self.area, "m2"),
            ("leakage", self.leakage, "W"),
            ("peak_power", self.peak_power, "W"),
        ]
        checks += [(f"energy.{a}", p, "J") for a, p in self.energy.items()]
        checks += [(f"latency.{a}", p, "s") for a, p in self.latency.items()]
        for key, p, dim in checks:
            if p is not None and p.dimension != dim:
                raise ValueError(f"{key}: unit {p.unit!r} is not a unit of {dim}")
        return self

    @property
    def n(self) -> float:
        """Instances per instance of ``level`` (1 if not given)."""
        return 1.0 if self.count is None else float(self.count.value)

    def energy_j(self, action: str) -> float:
        """Energy of one ``action`` in joules."""
        try:
            return self.energy[action].si
        except KeyError:
            msg = f"component {self.name!r} has no energy for action {action!r}"
            raise KeyError(msg) from None

    def latency_s(self, action: str) -> float:
        """Latency of one ``action`` in seconds."""
        try:
            return self.latency[action].si
        except KeyError:
            msg = f"component {self.name!r} has no latency for action {action!r}"
            raise KeyError(msg) from None

    @property
    def area_mm2(self) -> float:
        return 0.0 if self.area is None else self.area.to("mm2")

    @property
    def leakage_w(self) -> float:
        return 0.0 if self.leakage is None else self.leakage.si


class Level(BaseModel):
    """A level of the hierarchy: ``count`` (a parameter name) instances inside each ``parent``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    parent: str
    count: str


def iter_params(obj: Any, prefix: str = "") -> list[tuple[str, Param]]:
    """All ``Param``s of a spec/component as (override key, Param) pairs."""
    out: list[tuple[str, Param]] = []
    if isinstance(obj, Param):
        return [(prefix, obj)]
    if isinstance(obj, Component):
        for fld in ("count", "area", "leakage", "peak_power"):
            p = getattr(obj, fld)
            if p is not None:
                out.append((f"{prefix}.{fld}", p))
        for fld in ("energy", "latency"):
            for action, p in getattr(obj, fld).items():
                out.append((f"{prefix}.{fld}.{action}", p))
    return out
