"""The typed schema of a ``.rapidnn`` file's JSON manifest (``docs/model-file.md``).

Everything a manifest may hold is declared here with its type and bounds, so a loaded file is
rejected before any value reaches arithmetic (an unchecked ``acc_bits`` of 2**31 made
``2 ** (acc_bits - 1)`` run forever). Integers are strict (``true`` is not 1, ``1.5`` is not an
int); names are bounded strings; graph parameters are declared per captured op. What the
schema cannot see (tensors, and whether the ops are the ones the graph and the codebooks give)
is checked by :mod:`rapidnn.composer.filecheck`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from rapidnn.composer.capture import ELEMENTWISE, LAYOUT_OPS, POOLS, WEIGHTED_OPS
from rapidnn.composer.ops import OP_TYPES

FORMAT_NAME = "rapidnn.composed"
#: 2: SHA-256 of the manifest and of the tensors; every field validated on load (issue 19).
#: 3: layers named by module path (``features.8``, ``relu#2``; issue 23), so a reader of an
#: older version refuses the file by its version instead of by a name. Versions 1 (no
#: checksums) and 2 (torch.fx names: ``features_8``) are still read and validated the same way.
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
NODE_OPS = ("input", "output", *WEIGHTED_OPS, *ELEMENTWISE, *POOLS, *LAYOUT_OPS, "add", "mul")
MAX_NAME = 512  # characters of a node, op or codebook name
MAX_DIM = 2**20  # one dimension of a captured shape
MAX_WINDOW = 2**20  # kernel, stride, padding, dilation of a captured op (a spatial mean's
#                    window spans every position)
MAX_INPUTS = 4096  # inputs of one node (a concatenation)


class ManifestError(ValueError):
    """A manifest field is missing, of the wrong type or out of bounds (``field``: where)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


#: node, op and codebook names are words of ASCII letters, digits and ``_`` joined by ``.`` or
#: ``#`` (module paths as capture names layers: ``layer1.0.conv1``, ``relu#2``; torch.fx names:
#: ``add_1``): they become tensor name parts and dictionary keys, never paths. A tensor name
#: ``<part>.<name>.<buffer>`` stays unambiguous: a buffer name has no dot.
Name = Annotated[str, StringConstraints(max_length=MAX_NAME,
                                        pattern=r"^[A-Za-z0-9_]+([.#][A-Za-z0-9_]+)*$")]
Window = Annotated[list[Annotated[int, Field(ge=1, le=MAX_WINDOW)]],
                   Field(min_length=2, max_length=2)]
Padding = Annotated[list[Annotated[int, Field(ge=0, le=MAX_WINDOW)]],
                    Field(min_length=2, max_length=2)]


Window1 = Annotated[list[Annotated[int, Field(ge=1, le=MAX_WINDOW)]],
                    Field(min_length=1, max_length=1)]
Padding1 = Annotated[list[Annotated[int, Field(ge=0, le=MAX_WINDOW)]],
                     Field(min_length=1, max_length=1)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Groups = Annotated[int, Field(ge=1, le=MAX_DIM)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Weighted(_Strict):
    folded_batchnorm: Annotated[str, StringConstraints(max_length=MAX_NAME)] | None = None


class _Conv(_Weighted):
    kernel: Window
    stride: Window
    padding: Padding
    dilation: Window
    groups: Groups | None = None


class _Conv1d(_Weighted):
    kernel: Window1
    stride: Window1
    padding: Padding1
    dilation: Window1
    groups: Groups | None = None


class _Hardtanh(_Strict):
    min_val: Finite
    max_val: Finite


class _LeakyRelu(_Strict):
    negative_slope: Finite


class _Gelu(_Strict):
    approximate: Literal["none", "tanh"]


class _Scale(_Strict):
    factor: Finite


class _Offset(_Strict):
    value: Finite


class _Adaptive(_Strict):
    output_size: Window


class _Permute(_Strict):
    dims: Annotated[list[Annotated[int, Field(ge=0, le=7)]], Field(min_length=1, max_length=7)]


class _Slice(_Strict):
    slices: Annotated[list[Annotated[list[Annotated[int, Field(ge=0, le=MAX_DIM)]],
                                     Field(min_length=3, max_length=3)]],
                      Field(min_length=1, max_length=7)]


class _Pad(_Strict):
    pad: Annotated[list[Annotated[int, Field(ge=0, le=MAX_WINDOW)]],
                   Field(min_length=2, max_length=6)]
    value: Finite


class _Concat(_Strict):
    dim: Annotated[int, Field(ge=1, le=7)]


class _MaxPool(_Strict):
    kernel: Window
    stride: Window
    padding: Padding
    dilation: Window
    ceil_mode: bool


class _AvgPool(_Strict):
    kernel: Window
    stride: Window
    padding: Padding


class _NoParams(_Strict):
    pass


#: the parameters each captured op carries (an op not listed carries none)
NODE_PARAMS: dict[str, type[_Strict]] = {
    "linear": _Weighted, "conv2d": _Conv, "conv1d": _Conv1d, "maxpool2d": _MaxPool,
    "avgpool2d": _AvgPool, "adaptive_avgpool2d": _Adaptive, "adaptive_maxpool2d": _Adaptive,
    "hardtanh": _Hardtanh, "leaky_relu": _LeakyRelu, "gelu": _Gelu, "scale": _Scale,
    "offset": _Offset, "permute": _Permute, "slice": _Slice, "pad": _Pad, "concat": _Concat,
}


class NodeEntry(_Strict):
    """One node of the captured graph (``rapidnn.composer.capture.CapturedNode``)."""

    name: Name
    op: str
    inputs: Annotated[list[Name], Field(max_length=MAX_INPUTS)]
    shape: Annotated[list[Annotated[int, Field(ge=1, le=MAX_DIM)]], Field(min_length=1,
                                                                          max_length=8)]
    params: dict[str, Any]
    source: Annotated[str, StringConstraints(max_length=4 * MAX_NAME)]

    def checked_params(self) -> dict[str, Any]:
        """The node's parameters validated against its op's declaration (pairs as tuples)."""
        if self.op not in NODE_OPS:
            raise ValueError(f"unknown op {self.op!r}; known: {', '.join(NODE_OPS)}")
        model = NODE_PARAMS.get(self.op, _NoParams)
        checked = model.model_validate(self.params).model_dump(exclude_none=True)
        return {k: tuple(v) if isinstance(v, list) else v for k, v in checked.items()}


class _OpFrame(_Strict):
    name: Name
    inputs: Annotated[list[Name], Field(max_length=MAX_INPUTS)]


class OpEntry(_Strict):
    """One composed op: its kind and its JSON spec (compared field by field with the op the
    graph, the configuration and the codebooks give, so only its frame is declared here)."""

    kind: str
    spec: dict[str, Any]

    @field_validator("spec")
    @classmethod
    def _framed(cls, spec: dict[str, Any]) -> dict[str, Any]:
        _OpFrame.model_validate({k: spec.get(k) for k in ("name", "inputs")})
        return spec

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in OP_TYPES:
            raise ValueError(f"unknown op kind {kind!r}; known: {', '.join(OP_TYPES)}")
        return kind


class CodebookEntry(_Strict):
    key: Name
    spec: dict[str, Any]


class Manifest(_Strict):
    """The whole manifest. ``config`` is validated by ``ComposeConfig`` (same limits as
    :func:`rapidnn.compose`); ``tensors_sha256`` is required from version 2 on."""

    format: Literal["rapidnn.composed"]
    version: int
    rapidnn_version: Annotated[str, StringConstraints(max_length=64)]
    config: dict[str, Any]
    ops: Annotated[list[OpEntry], Field(min_length=1, max_length=100_000)]
    codebooks: Annotated[list[CodebookEntry], Field(min_length=1, max_length=100_000)]
    graph: Annotated[list[NodeEntry], Field(min_length=2, max_length=100_000)]
    metadata: dict[str, Any] = Field(default_factory=dict)
    tensors_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None


def parse_manifest(data: Any) -> Manifest:
    """Validate a decoded manifest; the first problem raises :class:`ManifestError`."""
    if not isinstance(data, dict):
        raise ManifestError("", f"the manifest must be a JSON object, not {type(data).__name__}")
    if data.get("format") != FORMAT_NAME:
        raise ManifestError("format", f"unknown format {data.get('format')!r} "
                                      f"(expected {FORMAT_NAME!r})")
    version = data.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ManifestError("version", f"file format version {version!r} is not supported "
                                       f"(this rapidnn reads versions "
                                       f"{', '.join(map(str, READABLE_VERSIONS))})")
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc) from None
    if manifest.version >= 2 and manifest.tensors_sha256 is None:
        raise ManifestError("tensors_sha256", "missing (required from format version 2)")
    for i, node in enumerate(manifest.graph):
        try:
            node.checked_params()
        except ValidationError as exc:
            raise first_error(exc, f"graph[{i}].params") from None
        except ValueError as exc:
            raise ManifestError(f"graph[{i}].op", str(exc)) from None
    return manifest


def first_error(exc: ValidationError, prefix: str = "") -> ManifestError:
    """The first problem of a pydantic error as a ManifestError naming its field under
    ``prefix`` (``graph[3].shape[0]``, ``config.acc_bits``)."""
    err = exc.errors()[0]
    field = _where(err["loc"])
    field = f"{prefix}.{field}" if prefix and field else prefix or field
    msg = "missing" if err["type"] == "missing" else str(err["msg"]).removeprefix("Value error, ")
    return ManifestError(field, msg)


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
