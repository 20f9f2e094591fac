"""Codebooks and their fixed-point form.

A codebook is a sorted list of centroids from 1-D k-means (:func:`rapidnn.kmeans1d`), so that
code order equals value order (paper notes section 5, steps 1-2). The accelerator stores every
centroid as an integer times a per-layer power-of-two scale: ``value = int * 2**exponent``
(decision F5 in ``docs/decisions.md``). Rounding is to nearest, ties to even, everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from rapidnn.composer.kmeans import kmeans1d, tree_kmeans1d


@dataclass(frozen=True)
class FixedPoint:
    """A fixed-point format: ``bits`` wide, signed or not, value = integer * 2**exponent."""

    bits: int
    signed: bool
    exponent: int

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1)) + 1 if self.signed else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.signed else 2**self.bits - 1

    @property
    def scale(self) -> float:
        return math.ldexp(1.0, self.exponent)


MIN_EXPONENT = -1074  # 2**-1074, the smallest positive float64


def fixed_point_for(values: np.ndarray, bits: int, signed: bool | None = None) -> FixedPoint:
    """Smallest power-of-two scale at which every value fits in ``bits`` (symmetric range).

    Signed unless every value is non-negative (then the sign bit is spent on range instead).
    """
    if bits < 2:
        raise ValueError(f"fixed-point width must be at least 2 bits, got {bits}")
    values = np.asarray(values, dtype=np.float64)
    if signed is None:
        signed = bool((values < 0).any())
    qmax = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    peak = float(np.abs(values).max()) if values.size else 0.0
    if peak == 0.0:
        return FixedPoint(bits, signed, 0)
    ratio = peak / qmax
    # a denormal peak can underflow the ratio to 0: take the logarithms apart then
    exponent = math.ceil(math.log2(ratio) if ratio > 0 else math.log2(peak) - math.log2(qmax))
    while math.ldexp(peak, -exponent) > qmax:  # log2 round-off (peak / 2**exponent, exact)
        exponent += 1
    exponent = max(exponent, MIN_EXPONENT)  # the scale itself must be a float above zero
    return FixedPoint(bits, signed, exponent)


def quantize(values: np.ndarray, fmt: FixedPoint) -> np.ndarray:
    """Integers of ``values`` in ``fmt`` (round to nearest, ties to even; saturating)."""
    q = np.rint(np.asarray(values, dtype=np.float64) / fmt.scale)
    return np.clip(q, fmt.qmin, fmt.qmax).astype(np.int64)


def pad_centroids(centroids: np.ndarray, k: int) -> np.ndarray:
    """Pad a codebook with fewer than ``k`` distinct centroids by repeating its largest one.

    A repeated code decodes to the same value as the original, so the padding only keeps
    table shapes at exactly ``k`` entries and changes no result.
    """
    centroids = np.asarray(centroids, dtype=np.float64)
    if centroids.size == 0:
        return np.zeros(k)
    if centroids.size >= k:
        return centroids[:k]
    return np.concatenate([centroids, np.full(k - centroids.size, centroids[-1])])


@dataclass(frozen=True)
class Clustering:
    """Result of clustering one set of values into a k-entry codebook.

    ``levels`` is set for tree (multi-level) codebooks: ``levels[b]`` is the valid coarser
    codebook of ``2**b`` entries indexed by the top ``b`` bits of a code (paper notes 5.8).
    """

    centroids: np.ndarray  # (k,) float64, non-decreasing
    codes: np.ndarray  # int64, same shape as the clustered values
    levels: tuple[np.ndarray, ...] | None = None


def cluster(values: np.ndarray, k: int, seed: int, tree: bool = False) -> Clustering:
    """Cluster ``values`` into exactly ``k`` sorted centroids (flat or tree codebook)."""
    values = np.asarray(values, dtype=np.float64)
    if tree:
        depth = round(math.log2(k))
        if 2**depth != k:
            raise ValueError(f"tree codebooks need a power-of-two cluster count, got {k}")
        tc = tree_kmeans1d(values, depth, seed=seed)
        levels = tuple(np.asarray(lv, dtype=np.float64) for lv in tc.levels)
        codes = np.asarray(tc.leaf_codes, dtype=np.int64).reshape(values.shape)
        return Clustering(levels[-1], codes, levels)
    centroids, codes = kmeans1d(values, k, seed=seed)
    centroids = pad_centroids(centroids, k)
    return Clustering(centroids, np.asarray(codes, dtype=np.int64).reshape(values.shape))


def midpoints(centroids: np.ndarray) -> np.ndarray:
    """Decision boundaries of nearest-centroid encoding between consecutive centroids."""
    c = np.asarray(centroids, dtype=np.float64)
    return (c[1:] + c[:-1]) / 2.0


def nearest_codes(values: np.ndarray | torch.Tensor, centroids: np.ndarray):
    """Code of the nearest centroid; a value exactly between two centroids gets the lower code."""
    mids = midpoints(centroids)
    if isinstance(values, torch.Tensor):
        b = torch.as_tensor(mids, dtype=values.dtype, device=values.device)
        return torch.bucketize(values, b, right=False)
    return np.searchsorted(mids, np.asarray(values, dtype=np.float64), side="left").astype(
        np.int64
    )


def sample_values(t: torch.Tensor, cap: int, generator: torch.Generator) -> torch.Tensor:
    """All values of ``t``, or ``cap`` of them drawn uniformly with replacement (seeded).

    Drawing with replacement costs O(cap) instead of the O(numel) of a permutation: a
    calibration batch of a CIFAR CNN holds millions of activations per tensor, and k-means
    on 200,000 draws cannot tell the two schemes apart (decision F4)."""
    flat = t.detach().reshape(-1)
    if flat.numel() <= cap:
        return flat.to(torch.float64).cpu()
    idx = torch.randint(flat.numel(), (cap,), generator=generator)
    return flat.cpu()[idx].to(torch.float64)
