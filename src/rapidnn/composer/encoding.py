"""Fused activation + encoding: integer thresholds that map an accumulator to the next code.

The next layer only needs the code of ``g(z)`` in its input codebook, where ``z = acc * s`` is
the dequantized accumulator. Nearest-centroid encoding with sorted centroids and midpoints
``m_k`` gives ``code = #{k : g(z) > m_k}`` (a value on a midpoint takes the lower code). For a
non-decreasing ``g`` each condition is ``acc >= theta_k`` with the integer threshold

    theta_k = min{ a in Z : g(a * s) > m_k } = floor(g^-1(m_k) / s) + 1,

so ``code = #{k : acc >= theta_k}``: one search of the accumulator against ``u - 1`` stored
thresholds (paper notes section 5, step 5, threshold form). Thresholds are clamped to
``[lo, hi + 1]`` so that "always" and "never" stay representable.
"""

from __future__ import annotations

import math

import numpy as np

ACTIVATION_NAMES = ("identity", "relu", "sigmoid", "tanh")


def _inverse(act: str, m: float) -> float:
    """Smallest real z with g(z) > m is just above the returned value (±inf for always/never)."""
    if act == "identity":
        return m
    if act == "relu":
        return m if m >= 0 else -math.inf
    if act == "sigmoid":
        if m <= 0.0:
            return -math.inf
        if m >= 1.0:
            return math.inf
        return math.log(m / (1.0 - m))
    if act == "tanh":
        if m <= -1.0:
            return -math.inf
        if m >= 1.0:
            return math.inf
        return math.atanh(m)
    raise ValueError(f"unknown activation {act!r}; known: {ACTIVATION_NAMES}")


def thresholds(act: str, scale: float, mids: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Integer thresholds ``theta_k`` for accumulators in ``[lo, hi]`` with value ``acc*scale``."""
    if scale <= 0:
        raise ValueError("accumulator scale must be positive")
    out = np.empty(len(mids), dtype=np.int64)
    for k, m in enumerate(np.asarray(mids, dtype=np.float64)):
        z = _inverse(act, float(m))
        if z == -math.inf:
            t = lo
        elif z == math.inf:
            t = hi + 1
        else:
            t = min(max(math.floor(z / scale) + 1, lo), hi + 1)
        out[k] = t
    # the codebook is sorted, so thresholds must be too (guards against inverse round-off)
    return np.maximum.accumulate(out)


def activate(act: str, z: np.ndarray) -> np.ndarray:
    """Float activation, used for code-to-code activation tables."""
    z = np.asarray(z, dtype=np.float64)
    if act == "identity":
        return z
    if act == "relu":
        return np.maximum(z, 0.0)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if act == "tanh":
        return np.tanh(z)
    raise ValueError(f"unknown activation {act!r}; known: {ACTIVATION_NAMES}")
