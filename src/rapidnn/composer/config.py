"""Composer configuration, with per-layer overrides by layer name or layer type.

Defaults are our reconstruction (``docs/decisions.md``, F1-F12); every one is an option.
Overrides work like torch.ao's QConfigMapping: an entry keyed by a layer's name wins over one
keyed by its type (``"linear"``, ``"conv2d"`` or ``"conv1d"``), which wins over the global values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

LAYER_TYPES = ("linear", "conv2d", "conv1d")


def _not_bool(value: Any) -> Any:
    """Refuse a bool where an integer is expected: ``True`` is an ``int`` and would pass as 1."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a bool")
    return value


#: An integer option (optional: None allowed): pydantic's int, but a bool is an error, not 0 or 1.
Int = Annotated[int, BeforeValidator(_not_bool)]
OptionalInt = Annotated[int | None, BeforeValidator(_not_bool)]


def describe_errors(exc: ValidationError) -> str:
    """One line per pydantic error, each naming its field (``overrides.fc1.weight_clusters``):
    the CLI prints the first line of an error, which must say what is wrong where."""
    parts = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        if err["loc"]:
            parts.append(f"{'.'.join(map(str, err['loc']))}: {msg} (got {err['input']!r})")
        else:  # a check of the whole configuration (its message names the fields)
            parts.append(msg)
    return "; ".join(parts)


class LayerOptions(BaseModel):
    """Options that can differ per layer. ``None`` in an override means "inherit"."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    weight_clusters: OptionalInt = Field(default=None, ge=1, le=256)
    input_clusters: OptionalInt = Field(default=None, ge=1, le=256)
    weight_bits: OptionalInt = Field(default=None, ge=2, le=24)
    input_bits: OptionalInt = Field(default=None, ge=2, le=24)
    table_bits: OptionalInt = Field(default=None, ge=2, le=48)
    per_channel: bool | None = None


class ResolvedLayerOptions(BaseModel):
    """The options in force for one layer after applying overrides."""

    model_config = ConfigDict(frozen=True)

    weight_clusters: int
    input_clusters: int
    weight_bits: int
    input_bits: int
    table_bits: int | None
    per_channel: bool


class ComposeConfig(BaseModel):
    """Everything :func:`rapidnn.compose` needs besides the model and the calibration data.

    - ``weight_clusters`` (w) / ``input_clusters`` (u): codebook sizes (paper notes F2).
    - ``weight_bits`` / ``input_bits``: fixed-point width of stored centroids (F5).
    - ``acc_bits``: accumulator width; results saturate to it (F5).
    - ``table_bits``: product-table entry width; ``None`` keeps the exact
      ``weight_bits + input_bits``; fewer bits round entries to nearest (design-space work).
    - ``per_channel``: one weight codebook (and table) per output channel instead of per layer (F1).
    - ``tree``: multi-level (tree) codebooks built by recursive 2-means (F6); cluster counts
      must then be powers of two.
    - ``bias_mode``: ``"addend"`` adds the bias in the accumulator; ``"threshold"`` folds it into
      per-neuron encoding thresholds (F8).
    - ``raw_input``: how the network's raw input is encoded: ``"kmeans"`` codebook or
      ``"uniform"`` levels over the calibration range (F11).
    - ``calibration_batches`` / ``calibration_values``: how much data feeds input clustering (F4).
    - ``seed``: every stochastic step (subsampling, k-means) derives from it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    weight_clusters: Int = Field(default=16, ge=1, le=256)
    input_clusters: Int = Field(default=16, ge=1, le=256)
    weight_bits: Int = Field(default=8, ge=2, le=24)
    input_bits: Int = Field(default=8, ge=2, le=24)
    acc_bits: Int = Field(default=32, ge=8, le=62)
    table_bits: OptionalInt = Field(default=None, ge=2, le=48)
    per_channel: bool = False
    tree: bool = False
    bias_mode: Literal["addend", "threshold"] = "addend"
    raw_input: Literal["kmeans", "uniform"] = "kmeans"
    calibration_batches: OptionalInt = Field(default=None, ge=1)
    calibration_values: Int = Field(default=200_000, ge=16)
    seed: Int = Field(default=0, ge=-(2**63), lt=2**64)  # torch.Generator's range
    overrides: dict[str, LayerOptions] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_tree(self) -> ComposeConfig:
        if self.tree:
            counts = [self.weight_clusters, self.input_clusters]
            for o in self.overrides.values():
                counts += [c for c in (o.weight_clusters, o.input_clusters) if c is not None]
            bad = [c for c in counts if c & (c - 1)]
            if bad:
                raise ValueError(f"tree codebooks need power-of-two cluster counts, got {bad}")
        return self

    def for_layer(self, name: str, op: str) -> ResolvedLayerOptions:
        """Options in force for layer ``name`` of type ``op`` (name > type > global)."""
        base = {
            "weight_clusters": self.weight_clusters,
            "input_clusters": self.input_clusters,
            "weight_bits": self.weight_bits,
            "input_bits": self.input_bits,
            "table_bits": self.table_bits,
            "per_channel": self.per_channel,
        }
        for key in (op, name):
            o = self.overrides.get(key)
            if o is not None:
                base.update({k: v for k, v in o.model_dump().items() if v is not None})
        return ResolvedLayerOptions(**base)

    def check_overrides(self, layer_names: list[str]) -> None:
        """Fail on an override key that names neither a layer nor a layer type."""
        unknown = [k for k in self.overrides if k not in layer_names and k not in LAYER_TYPES]
        if unknown:
            old = {_fx_name(n): n for n in layer_names}
            renamed = {k: old[k] for k in unknown if k in old}
            hint = (f" (layers are named by module path now: {renamed})" if renamed else "")
            raise ValueError(
                f"override keys {unknown} name no layer{hint}; layers are {layer_names}, "
                f"types are {list(LAYER_TYPES)}"
            )


def _fx_name(name: str) -> str:
    """The torch.fx node name the layer at module path ``name`` had before layers were named
    by module path (``.rapidnn`` format version 2: ``features_8``, ``_1``)."""
    fx = name.replace(".", "_")
    return f"_{fx}" if fx[:1].isdigit() else fx
