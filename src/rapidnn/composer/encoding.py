"""Element-wise functions and fused activation + encoding: integer thresholds that map an
accumulator to the next code.

The next layer only needs the code of ``g(z)`` in its input codebook, where ``z = acc * s`` is
the dequantized accumulator. Nearest-centroid encoding with sorted centroids and midpoints
``m_k`` gives ``code = #{k : g(z) > m_k}`` (a value on a midpoint takes the lower code). For a
non-decreasing ``g`` each condition is ``acc >= theta_k`` with the integer threshold

    theta_k = min{ a in Z : g(a * s) > m_k } = floor(g^-1(m_k) / s) + 1,

so ``code = #{k : acc >= theta_k}``: one search of the accumulator against ``u - 1`` stored
thresholds (paper notes section 5, step 5, threshold form). Thresholds are clamped to
``[lo, hi + 1]`` so that "always" and "never" stay representable.

A function that is not non-decreasing (Hardswish, SiLU, GELU, Mish, a negative scale) has no
threshold form: the producer is encoded as is (identity thresholds) into a codebook of its own,
and the function becomes a code-to-code table (one more associative-memory lookup; decision
F14, ``docs/operators.md``). :data:`FUNCTIONS` lists every element-wise function with its
parameters; :func:`apply` is its one float definition (float64), used by capture, the
threshold search and the code tables alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

#: element-wise functions and their parameters (name -> parameter names)
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "identity": (), "relu": (), "sigmoid": (), "tanh": (),
    "hardtanh": ("min_val", "max_val"), "leaky_relu": ("negative_slope",),
    "hardsigmoid": (), "hardswish": (), "silu": (), "gelu": ("approximate",), "mish": (),
    "scale": ("factor",), "offset": ("value",),
}
ACTIVATION_NAMES = tuple(FUNCTIONS)
Params = Mapping[str, Any]


def _check(act: str) -> None:
    if act not in FUNCTIONS:
        raise ValueError(f"unknown activation {act!r}; known: {ACTIVATION_NAMES}")


def apply(act: str, z: torch.Tensor, params: Params | None = None) -> torch.Tensor:
    """The float definition of element-wise function ``act`` (torch semantics)."""
    _check(act)
    p = params or {}
    if act == "identity":
        return z
    if act == "relu":
        return torch.relu(z)
    if act == "sigmoid":
        return torch.sigmoid(z)
    if act == "tanh":
        return torch.tanh(z)
    if act == "hardtanh":
        return F.hardtanh(z, float(p["min_val"]), float(p["max_val"]))
    if act == "leaky_relu":
        return F.leaky_relu(z, float(p["negative_slope"]))
    if act == "hardsigmoid":
        return F.hardsigmoid(z)
    if act == "hardswish":
        return F.hardswish(z)
    if act == "silu":
        return F.silu(z)
    if act == "gelu":
        return F.gelu(z, approximate=str(p["approximate"]))
    if act == "mish":
        return F.mish(z)
    if act == "scale":
        return z * float(p["factor"])
    return z + float(p["value"])  # offset


#: the functions of format-1 files, computed as they always were (a stored model's tables and
#: thresholds must rebuild bit for bit)
_ORIGINAL = ("identity", "relu", "sigmoid", "tanh")


def activate(act: str, z: np.ndarray, params: Params | None = None) -> np.ndarray:
    """:func:`apply` on a NumPy array, in float64 (code tables and threshold checks)."""
    z = np.asarray(z, dtype=np.float64)
    if act == "identity":
        return z
    if act == "relu":
        return np.maximum(z, 0.0)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if act == "tanh":
        return np.tanh(z)
    return apply(act, torch.from_numpy(z), params).numpy()


def monotonic(act: str, params: Params | None = None) -> bool:
    """Whether ``act`` is non-decreasing (it then has the threshold form)."""
    _check(act)
    p = params or {}
    if act in ("hardswish", "silu", "gelu", "mish"):
        return False
    if act == "leaky_relu":
        return float(p["negative_slope"]) >= 0
    if act == "scale":
        return float(p["factor"]) > 0
    if act == "hardtanh":
        return float(p["max_val"]) >= float(p["min_val"])
    return True


def _inverse(act: str, m: float, p: Params) -> float:
    """An estimate of the z with g(z) = m (±inf: always / never above m), corrected exactly
    by :func:`thresholds` against :func:`apply`."""
    if act in ("identity",):
        return m
    if act == "relu":
        return m if m >= 0 else -math.inf
    if act == "sigmoid":
        if m <= 0.0:
            return -math.inf
        if m >= 1.0:
            return math.inf
        return math.log(m / (1.0 - m))
    if act == "hardsigmoid":
        if m < 0.0:
            return -math.inf
        if m >= 1.0:
            return math.inf
        return (m - 0.5) * 6.0
    if act == "tanh":
        if m <= -1.0:
            return -math.inf
        if m >= 1.0:
            return math.inf
        return math.atanh(m)
    if act == "hardtanh":
        lo, hi = float(p["min_val"]), float(p["max_val"])
        return -math.inf if m < lo else (math.inf if m >= hi else m)
    if act == "leaky_relu":
        slope = float(p["negative_slope"])
        if m >= 0:
            return m
        return m / slope if slope > 0 else -math.inf
    if act == "scale":
        return m / float(p["factor"])
    if act == "offset":
        return m - float(p["value"])
    raise ValueError(f"activation {act!r} is not non-decreasing: it has no threshold form")


def thresholds(act: str, scale: float, mids: np.ndarray, lo: int, hi: int,
               params: Params | None = None) -> np.ndarray:
    """Integer thresholds ``theta_k`` for accumulators in ``[lo, hi]`` with value ``acc*scale``.

    The analytic inverse gives a first estimate; a few steps against the float definition
    then make ``acc >= theta_k`` exactly ``g(acc * scale) > m_k`` (so round-off in an inverse
    can never move a code); the four original functions keep their analytic thresholds.
    """
    _check(act)
    p = params or {}
    if not monotonic(act, p):
        raise ValueError(f"activation {act!r} is not non-decreasing: it has no threshold form")
    if scale <= 0:
        raise ValueError("accumulator scale must be positive")

    def above(a: int, m: float) -> bool:
        return bool(activate(act, np.array([a * scale]), p)[0] > m)

    out = np.empty(len(mids), dtype=np.int64)
    for k, m in enumerate(np.asarray(mids, dtype=np.float64)):
        m = float(m)
        z = _inverse(act, m, p)
        if z == -math.inf:
            t = lo
        elif z == math.inf:
            t = hi + 1
        else:
            t = min(max(math.floor(z / scale) + 1, lo), hi + 1)
            # the smallest a with g(a*s) > m: step down while below qualifies, then up
            for _ in range(0 if act in _ORIGINAL else 64):
                if t > lo and above(t - 1, m):
                    t -= 1
                elif t <= hi and not above(t, m):
                    t += 1
                else:
                    break
        out[k] = t
    # the codebook is sorted, so thresholds must be too (guards against inverse round-off)
    return np.maximum.accumulate(out)
