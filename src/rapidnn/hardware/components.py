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

Every number is checked against its :class:`Kind` (docs/hardware.md, "Validation rules"): a
``Param`` against the kind of its unit (an energy > 0, a power >= 0, ...), a component's field
against the kind of that field (a count > 0), and the typed views add what their formulas need
(``views.param(kind=...)``: counts and bit widths whole and >= 1, fractions in [0, 1]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Kind:
    """A kind of quantity and the values it may take: finite, of ``dimension``, >= ``low`` (>
    when ``strict``), <= ``high``, a whole number when ``whole``."""

    name: str
    dimension: str = "1"
    low: float = 0.0
    strict: bool = False
    high: float = math.inf
    whole: bool = False

    @property
    def rule(self) -> str:
        """The allowed values in words: ``> 0``, ``a whole number >= 1``, ``in [0, 1]``."""
        if math.isinf(self.high):
            bound = f"{'>' if self.strict else '>='} {self.low:g}"
        else:
            bound = f"in {'(' if self.strict else '['}{self.low:g}, {self.high:g}]"
        return f"a whole number {bound}" if self.whole else bound

    def check(self, value: float) -> None:
        """Raise ValueError (the rule, the kind, the value) unless ``value`` is of this kind."""
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number ({self.name}), got {value!r}")
        above = value > self.low if self.strict else value >= self.low
        if not (above and value <= self.high and (not self.whole or float(value).is_integer())):
            raise ValueError(f"must be {self.rule} ({self.name}), got {value!r}")


# The kind of a number by its unit. Energies and times are > 0: every action costs something and
# takes time (an action that costs nothing is left out of the description), and times divide.
# Powers and areas may be 0 (non-volatile arrays leak nothing; a unit may have no modelled
# area). Rates (frequencies, bandwidths, throughputs, published GOPS/W) divide: > 0.
# Dimensionless numbers are >= 0 (no quantity of a description is negative); a number of bits
# is whole. The views refine the dimensionless ones (counts, fractions, flags).
ENERGY = Kind("an energy", "J", strict=True)
TIME = Kind("a time", "s", strict=True)
POWER = Kind("a power", "W")
AREA = Kind("an area", "m2")
NUMBER = Kind("a dimensionless number")
BITS = Kind("a number of bits", whole=True)
DIMENSION_KINDS: dict[str, Kind] = {
    "1": NUMBER, "J": ENERGY, "s": TIME, "W": POWER, "m2": AREA,
    **{d: Kind("a rate", d, strict=True) for d in ("Hz", "B/s", "FLOP/s", "OPS/m2", "OPS/W")},
}
UNIT_KINDS: dict[str, Kind] = {"bit": BITS}

# Refinements of dimensionless numbers, declared by the typed views and the hierarchy.
COUNT = Kind("a count", low=1, whole=True)
BIT_WIDTH = Kind("a bit width", low=1, whole=True)
FRACTION = Kind("a fraction", high=1)
EFFICIENCY = Kind("an efficiency", strict=True, high=1)  # a fraction of a peak that divides
FLAG = Kind("a flag", high=1, whole=True)
# A component's count may be fractional (a unit shared by several instances of its level, as
# ISAAC's router shared by 4 tiles: 0.25 per tile) but not 0: it divides (events per instance).
SHARE = Kind("instances per instance of its level", strict=True)

# The kind of each field of a component (its unit must be of that kind's dimension).
FIELD_KINDS: dict[str, Kind] = {"count": SHARE, "energy": ENERGY, "latency": TIME, "area": AREA,
                                "leakage": POWER, "peak_power": POWER}


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

    @model_validator(mode="after")
    def _of_its_kind(self) -> Param:
        try:
            self.kind.check(self.value)
        except ValueError as exc:
            raise ValueError(f"value: {exc}") from None
        return self

    @property
    def dimension(self) -> str:
        return UNITS[self.unit][0]

    @property
    def kind(self) -> Kind:
        """The kind of quantity the unit says this is (the rule every value of it obeys)."""
        return UNIT_KINDS.get(self.unit) or DIMENSION_KINDS[self.dimension]

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
        """A copy with the value multiplied by ``factor`` (integers stay integers, >= 1);
        ValueError when the result is not of the unit's kind."""
        if isinstance(self.value, int):
            new: int | float = max(1, round(self.value * factor))
        else:
            new = self.value * factor
        self.kind.check(new)
        return self.model_copy(update={"value": new, "tag": "assumed",
                                       "source": f"override: {factor:g} x ({self.source})"})

    def replaced(self, value: float) -> Param:
        """A copy with a user-chosen value (in the same unit), tagged ``assumed``; TypeError for
        a value that is not a number, ValueError for one not of the unit's kind."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"override value must be a number, got {value!r}")
        self.kind.check(value)
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
    def _of_their_kinds(self) -> Component:
        fields: list[tuple[str, Param | None]] = [
            (f, getattr(self, f)) for f in ("count", "area", "leakage", "peak_power")]
        fields += [(f"energy.{a}", p) for a, p in self.energy.items()]
        fields += [(f"latency.{a}", p) for a, p in self.latency.items()]
        for key, p in fields:
            kind = FIELD_KINDS[key.split(".")[0]]
            if p is None:
                continue
            if p.dimension != kind.dimension:
                raise ValueError(f"{key}: unit {p.unit!r} is not a unit of {kind.dimension}")
            try:
                kind.check(p.value)
            except ValueError as exc:
                raise ValueError(f"{key}.value: {exc}") from None
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
