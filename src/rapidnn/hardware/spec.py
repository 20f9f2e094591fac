"""Hardware descriptions (``HardwareSpec``) and parameter overrides, for any architecture.

A description file (read by ``rapidnn.hardware.loader``) looks like::

    name: isaac
    model: isaac                     # its architecture (``architectures``): rapidnn | isaac | ...
    description: ...
    hierarchy:                       # level: {parent, count: <parameter name>}
      tile: {parent: chip, count: tiles_per_chip}
    parameters:
      tiles_per_chip: {value: 168, unit: "1", source: "...", tag: assumed}
    components:
      adc:
        level: ima
        count: {value: 8, unit: "1", source: "...", tag: published-secondary}
        energy: {convert: {value: 1.56, unit: pJ, source: "...", tag: derived}}
        area: {value: 0.0012, unit: mm2, source: "...", tag: published-secondary}
    aliases: {adc_energy_pj: adc.energy.convert}
    published:                       # chip-level figures the model is checked against
      power: {value: 65.8, unit: W, source: "...", tag: published-secondary}

Override keys (``HardwareSpec.with_overrides``): ``<parameter>``, ``<component>.<field>`` (count,
area, leakage, peak_power), ``<component>.energy.<action>``, ``<component>.latency.<action>`` or
an alias, optionally prefixed with the spec name or model (``"rapidnn.nor_cycle_ns"``). Values
are given in the unit the file uses for that number. The spec knows nothing of any architecture:
what a cost model reads, it reads through a typed view (``rapidnn.hardware.views``).

Every number is checked by its kind (``components.Kind``) when the file is read and again when an
override replaces it: the kind of its unit, of its component field, or a count for a hierarchy
level's count; an overridden copy is also checked against the typed view of its model (the
views register in :data:`VIEWS`), so an override breaks no rule the file itself must keep.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rapidnn.hardware.components import (
    COUNT,
    FIELD_KINDS,
    Component,
    Kind,
    Level,
    Param,
    iter_params,
)

PRESETS: tuple[str, ...] = ("rapidnn", "isaac", "pipelayer", "gpu")  # presets/<name>.yaml

#: model -> the builder of its typed view (``views.Hardware.from_spec``, registered by each view
#: class); building it checks a description against what that model's formulas read
VIEWS: dict[str, Callable[[HardwareSpec], object]] = {}


class HardwareConfigError(ValueError):
    """A hardware description is malformed; the message names the file and the key."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        where = ": ".join(x for x in (file, key) if x)
        super().__init__(f"{where}: {message}" if where else message)


class HardwareSpec(BaseModel):
    """One architecture: scalar parameters + components + hierarchy, every number cited."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: str
    model: str
    description: str = ""
    hierarchy: dict[str, Level] = Field(default_factory=dict)
    parameters: dict[str, Param] = Field(default_factory=dict)
    components: dict[str, Component] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    published: dict[str, Param] = Field(default_factory=dict)
    source_file: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_components(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("components"), dict):
            comps = {}
            for key, c in data["components"].items():
                if isinstance(c, dict) and "name" not in c:
                    c = {"name": key, **c}
                comps[key] = c
            data = {**data, "components": comps}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> HardwareSpec:
        for lvl, spec in self.hierarchy.items():
            if spec.count not in self.parameters:
                raise ValueError(f"hierarchy.{lvl}.count: no parameter named {spec.count!r}")
            if spec.parent != "chip" and spec.parent not in self.hierarchy:
                raise ValueError(f"hierarchy.{lvl}.parent: unknown level {spec.parent!r}")
            try:
                COUNT.check(self.parameters[spec.count].value)
            except ValueError as exc:
                raise ValueError(f"parameters.{spec.count}.value: {exc}") from None
        for key, c in self.components.items():
            if c.level != "chip" and c.level not in self.hierarchy:
                raise ValueError(f"components.{key}.level: unknown level {c.level!r}")
        return self

    # ----------------------------------------------------------------- access
    def instances(self, level: str) -> float:
        """Instances of ``level`` per chip (product of the counts up the hierarchy)."""
        n = 1.0
        seen: set[str] = set()
        while level != "chip":
            if level in seen:
                raise HardwareConfigError(f"hierarchy cycle at level {level!r}",
                                          file=self.source_file, key="hierarchy")
            seen.add(level)
            lv = self.hierarchy[level]
            n *= float(self.parameters[lv.count].value)
            level = lv.parent
        return n

    def per_chip(self, component: str) -> float:
        """Instances of a component per chip."""
        c = self.components[component]
        return c.n * self.instances(c.level)

    def chip_area_mm2(self) -> float:
        """Σ over components of instances per chip × area (section 2.2 of the reference)."""
        return sum(self.per_chip(k) * c.area_mm2 for k, c in self.components.items())

    def table_power_w(self) -> float | None:
        """Σ instances × peak (table) power, or None when no component gives one."""
        comps = [(k, c) for k, c in self.components.items() if c.peak_power is not None]
        if not comps:
            return None
        return sum(self.per_chip(k) * c.peak_power.si for k, c in comps)  # type: ignore[union-attr]

    def leakage_w(self) -> float:
        """Static power of one chip: Σ instances × leakage."""
        return sum(self.per_chip(k) * c.leakage_w for k, c in self.components.items())

    def all_params(self) -> list[tuple[str, Param]]:
        """Every overridable number as (key, Param)."""
        out = list(self.parameters.items())
        for key, c in self.components.items():
            out += iter_params(c, key)
        return out

    # -------------------------------------------------------------- overrides
    def _resolve(self, key: str) -> str:
        for prefix in (self.name + ".", self.model + "."):
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        return self.aliases.get(key, key)

    def get(self, key: str) -> Param:
        """The Param at an override key (see module docstring)."""
        key = self._resolve(key)
        params = dict(self.all_params())
        if key not in params:
            raise HardwareConfigError("unknown parameter key", file=self.source_file, key=key)
        return params[key]

    def kind_of(self, key: str) -> Kind:
        """The kind of the number at a (resolved) override key in any description: a hierarchy
        level's count is a count, a component's field has that field's kind, another parameter
        its unit's (the typed view of the model may declare more, ``views.param``)."""
        if "." in key:
            return FIELD_KINDS[key.split(".")[1]]
        if key in {lv.count for lv in self.hierarchy.values()}:
            return COUNT
        return self.parameters[key].kind

    def with_overrides(self, overrides: Mapping[str, float | int | Param]) -> HardwareSpec:
        """A copy with single numbers replaced; new values are tagged ``assumed``. A value that
        is not a number, or not of the number's kind, raises HardwareConfigError naming the key."""
        spec = self
        for raw_key, new in overrides.items():
            spec = spec._replaced(raw_key, lambda old, new=new: (
                new if isinstance(new, Param) else old.replaced(new)))
        return spec._checked()

    def with_own_overrides(self, overrides: Mapping[str, float]) -> HardwareSpec:
        """A copy with the overrides that apply to this design (:func:`overrides_for` its name
        and model), so one overrides dict can serve a whole comparison."""
        return self.with_overrides(overrides_for({self.name, self.model}, overrides))

    def scaled(self, key: str, factor: float) -> HardwareSpec:
        """A copy with one number multiplied by ``factor`` (sensitivity analysis), checked as an
        override."""
        return self._replaced(key, lambda old: old.scaled(factor))._checked()

    def _replaced(self, raw_key: str, change: Callable[[Param], Param]) -> HardwareSpec:
        """A copy with the number at ``raw_key`` changed, checked against its kind."""
        key = self._resolve(raw_key)
        old = self.get(key)
        try:
            p = change(old)
            if p.dimension != old.dimension:
                raise ValueError(f"unit {p.unit!r} is not a unit of {old.dimension}")
            self.kind_of(key).check(p.value)
        except (TypeError, ValueError) as exc:
            raise HardwareConfigError(str(exc), file=self.source_file, key=raw_key) from None
        return self._set(key, p)

    def _checked(self) -> HardwareSpec:
        """This spec, once the typed view of its model (if registered) accepts it."""
        view = VIEWS.get(self.model)
        if view is not None:
            view(self)
        return self

    def _set(self, key: str, p: Param) -> HardwareSpec:
        if "." not in key:
            return self.model_copy(update={"parameters": {**self.parameters, key: p}})
        cname, fld, *rest = key.split(".")
        c = self.components[cname]
        if rest:
            new_c = c.model_copy(update={fld: {**getattr(c, fld), rest[0]: p}})
        else:
            new_c = c.model_copy(update={fld: p})
        return self.model_copy(update={"components": {**self.components, cname: new_c}})


def overrides_for(names: Collection[str], overrides: Mapping[str, float]) -> dict[str, float]:
    """The overrides for the design known by ``names``: unprefixed keys and keys prefixed with
    one of ``names``; keys prefixed with another preset's name are another architecture's."""
    return {k: v for k, v in overrides.items()
            if not (k.split(".", 1)[0] in PRESETS and k.split(".", 1)[0] not in names)}
