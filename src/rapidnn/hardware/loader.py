"""Reading hardware descriptions: the packaged presets and user YAML files.

A file is parsed, validated (``HardwareSpec``: types, units, tags, hierarchy, every number by its
kind, ``components.Kind``) and checked against the architecture its ``model`` names
(``architectures``: the typed view of that architecture is built once, so a number its formulas
need and the file lacks, or one not of the kind they declare, fails here, with the file and the
key named); errors are ``HardwareConfigError``s.
"""

from __future__ import annotations

import functools
import importlib.resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from rapidnn.hardware.architectures import architecture_of
from rapidnn.hardware.spec import PRESETS, HardwareConfigError, HardwareSpec


def _loc(loc: tuple[Any, ...]) -> str:
    # drop pydantic's union-branch labels such as 'int' / 'float' / 'function-after[...]'
    def label(x: Any) -> bool:
        return isinstance(x, str) and ("[" in x or x in {"int", "float"})

    parts = [str(x) for x in loc if not label(x)]
    return ".".join(parts)


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
    architecture_of(spec).view(spec)
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
