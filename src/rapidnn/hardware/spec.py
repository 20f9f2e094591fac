"""Hardware descriptions (``HardwareSpec``), the YAML loader and parameter overrides.

A description file looks like::

    name: isaac
    model: isaac                     # which mapper evaluates it: rapidnn | isaac | pipelayer | gpu
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
are given in the unit the file uses for that number.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rapidnn.hardware.components import Component, Level, ModelName, Param, iter_params

PRESETS: tuple[str, ...] = ("rapidnn", "isaac", "pipelayer", "gpu")


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
    model: ModelName
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
        for key, c in self.components.items():
            if c.level != "chip" and c.level not in self.hierarchy:
                raise ValueError(f"components.{key}.level: unknown level {c.level!r}")
        return self

    # ----------------------------------------------------------------- access
    def param(self, name: str) -> Param:
        try:
            return self.parameters[name]
        except KeyError:
            raise HardwareConfigError("missing parameter", file=self.source_file,
                                      key=f"parameters.{name}") from None

    def value(self, name: str, unit: str | None = None) -> float:
        """A parameter's value, converted to ``unit`` when given."""
        p = self.param(name)
        return float(p.value) if unit is None else p.to(unit)

    def comp(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise HardwareConfigError("missing component", file=self.source_file,
                                      key=f"components.{name}") from None

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
            n *= self.value(lv.count)
            level = lv.parent
        return n

    def per_chip(self, component: str) -> float:
        """Instances of a component per chip."""
        c = self.comp(component)
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

    def with_overrides(self, overrides: Mapping[str, float | int | Param]) -> HardwareSpec:
        """A copy with single numbers replaced; new values are tagged ``assumed``."""
        spec = self
        for raw_key, new in overrides.items():
            key = spec._resolve(raw_key)
            old = spec.get(key)
            if isinstance(new, Param):
                p = new
            else:
                try:
                    p = old.replaced(new)
                except TypeError as exc:
                    raise HardwareConfigError(str(exc), file=self.source_file, key=key) from None
            spec = spec._set(key, p)
        return spec

    def with_own_overrides(self, overrides: Mapping[str, float]) -> HardwareSpec:
        """A copy with the overrides that apply to this design (:func:`overrides_for` its name
        and model), so one overrides dict can serve a whole comparison."""
        return self.with_overrides(overrides_for({self.name, self.model}, overrides))

    def scaled(self, key: str, factor: float) -> HardwareSpec:
        """A copy with one number multiplied by ``factor`` (sensitivity analysis)."""
        key = self._resolve(key)
        return self._set(key, self.get(key).scaled(factor))

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


# ------------------------------------------------------------------- loading
def _loc(loc: tuple[Any, ...]) -> str:
    # drop pydantic's union-branch labels such as 'int' / 'float' / 'function-after[...]'
    def label(x: Any) -> bool:
        return isinstance(x, str) and ("[" in x or x in {"int", "float"})

    parts = [str(x) for x in loc if not label(x)]
    return ".".join(parts)


def _requirements(model: str) -> tuple[list[str], dict[str, list[str]]]:
    from rapidnn.hardware import gpu, isaac, pipelayer, rapidnn

    mod = {"rapidnn": rapidnn, "isaac": isaac, "pipelayer": pipelayer, "gpu": gpu}[model]
    return list(mod.REQUIRED_PARAMETERS), dict(mod.REQUIRED_COMPONENTS)


def check_requirements(spec: HardwareSpec) -> None:
    """Raise HardwareConfigError naming the first parameter/component the mapper needs but lacks."""
    params, comps = _requirements(spec.model)
    for p in params:
        if p not in spec.parameters:
            raise HardwareConfigError(f"missing key (needed by the {spec.model} model)",
                                      file=spec.source_file, key=f"parameters.{p}")
    for cname, fields in comps.items():
        if cname not in spec.components:
            raise HardwareConfigError(f"missing key (needed by the {spec.model} model)",
                                      file=spec.source_file, key=f"components.{cname}")
        c = spec.components[cname]
        for f in fields:
            fld, *rest = f.split(".")
            present = getattr(c, fld) is not None if not rest else rest[0] in getattr(c, fld)
            if not present:
                raise HardwareConfigError(f"missing key (needed by the {spec.model} model)",
                                          file=spec.source_file, key=f"components.{cname}.{f}")


def spec_from_dict(data: Any, file: str | None = None) -> HardwareSpec:
    """Validate a parsed description; errors become HardwareConfigError(file, key)."""
    if not isinstance(data, dict):
        raise HardwareConfigError("top level must be a mapping", file=file)
    try:
        spec = HardwareSpec.model_validate({**data, "source_file": file})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _loc(err["loc"])
        msg = "missing key" if err["type"] == "missing" else err["msg"]
        if err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
            head, sep, rest = msg.partition(": ")
            if sep and head.replace(".", "").replace("_", "").isalnum():
                key, msg = (f"{key}.{head}" if key else head), rest
        if err["type"] == "literal_error" and key.endswith("tag"):
            msg = f"unknown tag {err.get('input')!r}; {err['msg']}"
        raise HardwareConfigError(msg, file=file, key=key or None) from None
    check_requirements(spec)
    known = dict(spec.all_params())
    for alias, target in spec.aliases.items():
        if target not in known:
            raise HardwareConfigError(f"unknown target {target!r}", file=file,
                                      key=f"aliases.{alias}")
    return spec


def preset_path(name: str) -> Path:
    """Path of a packaged preset (``rapidnn``, ``isaac``, ``pipelayer``, ``gpu``)."""
    res = importlib.resources.files("rapidnn.hardware") / "presets" / f"{name}.yaml"
    return Path(str(res))


def load_hardware(name_or_path: str | Path | HardwareSpec) -> HardwareSpec:
    """Load a preset by name or a user YAML file by path (parsed once per file version: a spec
    is never changed in place, ``with_overrides`` returns copies)."""
    if isinstance(name_or_path, HardwareSpec):
        return name_or_path
    s = str(name_or_path)
    path = preset_path(s) if s in PRESETS else Path(s)
    if not path.is_file():
        raise HardwareConfigError(
            f"no such hardware description (presets: {', '.join(PRESETS)})", file=s)
    st = path.stat()
    return _load_file(str(path), st.st_mtime_ns, st.st_size).model_copy()


@functools.lru_cache(maxsize=64)
def _load_file(file: str, mtime_ns: int, size: int) -> HardwareSpec:
    """Parse and validate one YAML file (cached by path, modification time and size)."""
    path = Path(file)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise HardwareConfigError(f"malformed YAML{where}: {exc}", file=str(path)) from None
    return spec_from_dict(data, file=str(path))
