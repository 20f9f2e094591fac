"""Typed views of a hardware description: the numbers a cost model reads, as attributes.

A ``HardwareSpec`` is generic (named parameters and components, every number a ``Param`` that
overrides and the audit address by key). An architecture's formulas read a frozen view of it
instead, in the manner of Accelergy's component classes: ``hw.crossbar_rows``,
``hw.adc.convert.energy``, ``hw.crossbar.per_chip``. A view class (a :class:`Hardware`) declares
each field once, in its annotation (``crossbar_rows: Annotated[int, param()]``):

* ``param(key=None, unit=None, kind=None)``: ``parameters.<key>`` (default: the field's name),
  converted to ``unit`` (None: the number in the file's unit), checked against ``kind`` (None:
  a bool field is a flag, an int field a bit width when its unit is ``bit`` and a count
  otherwise, a float field only the kind of its unit), then converted to the field's type;
* ``part(key=None, count=False, peak_power=False)``: ``components.<key>`` as the field's
  :class:`Part` class, whose ``Annotated[Action, action(energy=..., latency=...)]`` fields are
  the actions the formulas use (``rapidnn.hardware.parts``); ``count`` / ``peak_power``: the
  file must give it (a peak power the formulas need is the power they charge: > 0);
* ``level(name)``: instances of a hierarchy level per chip;
* ``published(key, unit)``: a published chip figure, None when the file gives none.

``<View class>.from_spec(spec)`` builds a view from a (possibly overridden) spec; a number a
declaration needs and the file lacks, or one not of its declared kind, raises
``HardwareConfigError`` naming the file and the key
(``parameters.crossbar_rows: missing key (needed by the isaac model)``,
``parameters.crossbar_rows.value: must be a whole number >= 1 (a count), got 0``). Each view
class registers ``from_spec`` in ``spec.VIEWS``, so every overridden copy is checked the same.
Energies are in J, latencies in s, powers in W, areas in mm²; a quantity the file does not give
is NaN (an action's energy or latency, a peak power), 0 (area, leakage) or 1 (count), as in
``Component``.
"""

from __future__ import annotations

import functools
import math
import typing
from dataclasses import dataclass, fields
from typing import Annotated, Any, ClassVar, Self

from rapidnn.hardware.components import BIT_WIDTH, COUNT, FLAG, Component, Kind, Param
from rapidnn.hardware.spec import VIEWS, HardwareConfigError, HardwareSpec


@dataclass(frozen=True, eq=False)
class Action:
    """One action of a component, per occurrence: ``energy`` (J) and ``latency`` (s).

    Event counts are keyed by the action itself (hashed by identity: the actions of one view),
    so charging them needs no lookup; ``component`` splits the energy in reports."""

    component: str
    name: str
    energy: float
    latency: float

    @property
    def key(self) -> str:
        """``"component.action"``."""
        return f"{self.component}.{self.name}"


@dataclass(frozen=True)
class Part:
    """One component of a view: ``count`` per instance of its level, ``per_chip`` instances per
    chip, area (mm²), leakage and peak (table) power (W) of one instance. Subclasses add one
    :class:`Action` field per action (``Annotated[Action, action(...)]``)."""

    name: str
    count: float
    per_chip: float
    area_mm2: float
    leakage_w: float
    peak_power_w: float


@dataclass(frozen=True)
class Hardware:
    """Base of the architectures' views: the description's name, model and file, and the chip's
    sums over every component (area = Σ instances × area, leakage, table power = Σ instances ×
    peak power or None when no component gives one; hardware-parameters.md §2.2)."""

    MODEL: ClassVar[str] = ""

    name: str
    model: str
    source_file: str | None
    area_mm2: float
    leakage_w: float
    table_power_w: float | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.MODEL:
            VIEWS[cls.MODEL] = cls.from_spec

    @classmethod
    def from_spec(cls, spec: HardwareSpec) -> Self:
        """The view of ``spec`` (module docstring); raises HardwareConfigError on a missing key."""
        if spec.model != cls.MODEL:
            raise HardwareConfigError(f"a {spec.model} description, not {cls.MODEL}",
                                      file=spec.source_file, key="model")
        values = {name: decl.read(spec, name, typ) for name, decl, typ in _plan(cls)}
        return cls(name=spec.name, model=spec.model, source_file=spec.source_file,
                   area_mm2=spec.chip_area_mm2(), leakage_w=spec.leakage_w(),
                   table_power_w=spec.table_power_w(), **values)


# -------------------------------------------------------------- declarations
class _Decl:
    """Base of the field declarations (the metadata of an ``Annotated`` field)."""


def _missing(spec: HardwareSpec, key: str) -> HardwareConfigError:
    return HardwareConfigError(f"missing key (needed by the {spec.model} model)",
                               file=spec.source_file, key=key)


def _check(spec: HardwareSpec, kind: Kind, value: float, key: str) -> None:
    try:
        kind.check(value)
    except ValueError as exc:
        raise HardwareConfigError(str(exc), file=spec.source_file, key=key) from None


def _convert(spec: HardwareSpec, p: Param, unit: str | None, key: str) -> float:
    if unit is None:
        return p.value
    try:
        return p.to(unit)
    except ValueError as exc:
        raise HardwareConfigError(str(exc), file=spec.source_file, key=key) from None


@dataclass(frozen=True)
class _Param(_Decl):
    key: str | None
    unit: str | None
    kind: Kind | None

    def read(self, spec: HardwareSpec, name: str, typ: type) -> Any:
        key = f"parameters.{self.key or name}"
        p = spec.parameters.get(self.key or name)
        if p is None:
            raise _missing(spec, key)
        value = _convert(spec, p, self.unit, key)
        kind = self.kind or _kind_of_type(typ, p)
        if kind is not None:
            _check(spec, kind, value, f"{key}.value")
        return typ(value)


def _kind_of_type(typ: type, p: Param) -> Kind | None:
    """The kind a field's type implies: a bool is a flag, an int a bit width (unit ``bit``) or a
    count; a float only the kind of its unit, already checked (None)."""
    if typ is bool:
        return FLAG
    if typ is int:
        return BIT_WIDTH if p.unit == "bit" else COUNT
    return None


@dataclass(frozen=True)
class _Published(_Decl):
    key: str
    unit: str

    def read(self, spec: HardwareSpec, name: str, typ: Any) -> float | None:
        p = spec.published.get(self.key)
        return None if p is None else _convert(spec, p, self.unit, f"published.{self.key}")


@dataclass(frozen=True)
class _Level(_Decl):
    level: str

    def read(self, spec: HardwareSpec, name: str, typ: type) -> float:
        if self.level != "chip" and self.level not in spec.hierarchy:
            raise _missing(spec, f"hierarchy.{self.level}")
        return spec.instances(self.level)


@dataclass(frozen=True)
class _Action(_Decl):
    key: str | None
    energy: bool
    latency: bool

    def read(self, spec: HardwareSpec, component: str, c: Component, name: str) -> Action:
        action = self.key or name
        out = []
        for kind, needed, given in (("energy", self.energy, c.energy),
                                    ("latency", self.latency, c.latency)):
            if action in given:
                out.append(given[action].si)
            elif needed:
                raise _missing(spec, f"components.{component}.{kind}.{action}")
            else:
                out.append(math.nan)
        return Action(component, action, *out)


#: a peak power the formulas need is the power they charge (the GPU's board): 0 would make a
#: design that does work for free
CHARGED_POWER = Kind("the power the model charges", "W", strict=True)


@dataclass(frozen=True)
class _Part(_Decl):
    key: str | None
    count: bool
    peak_power: bool

    def read(self, spec: HardwareSpec, name: str, typ: type[Part]) -> Part:
        key = self.key or name
        c = spec.components.get(key)
        if c is None:
            raise _missing(spec, f"components.{key}")
        for fld, needed in (("count", self.count), ("peak_power", self.peak_power)):
            if needed and getattr(c, fld) is None:
                raise _missing(spec, f"components.{key}.{fld}")
        if self.peak_power:
            _check(spec, CHARGED_POWER, c.peak_power.value,  # type: ignore[union-attr]
                   f"components.{key}.peak_power.value")
        actions = {f: decl.read(spec, key, c, f) for f, decl, _ in _plan(typ)}
        peak = math.nan if c.peak_power is None else c.peak_power.si
        return typ(name=key, count=c.n, per_chip=spec.per_chip(key), area_mm2=c.area_mm2,
                   leakage_w=c.leakage_w, peak_power_w=peak, **actions)


@functools.cache
def _plan(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """(field, declaration, type) of every declared field of a view or part class."""
    out = []
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) is Annotated:
            typ, *meta = typing.get_args(hint)
            out += [(f.name, m, typ) for m in meta if isinstance(m, _Decl)]
    return tuple(out)


def param(key: str | None = None, unit: str | None = None, kind: Kind | None = None) -> _Param:
    """A parameter field (module docstring)."""
    return _Param(key, unit, kind)


def published(key: str, unit: str) -> _Published:
    """A published chip figure in ``unit``, or None (module docstring)."""
    return _Published(key, unit)


def level(name: str) -> _Level:
    """Instances of hierarchy level ``name`` per chip."""
    return _Level(name)


def part(key: str | None = None, *, count: bool = False, peak_power: bool = False) -> _Part:
    """A component field; its type is a :class:`Part` subclass (module docstring)."""
    return _Part(key, count, peak_power)


def action(key: str | None = None, *, energy: bool = False, latency: bool = False) -> _Action:
    """An action field of a :class:`Part` subclass; ``energy`` / ``latency``: the file must give
    it (otherwise NaN when absent)."""
    return _Action(key, energy, latency)
