"""One-dimensional k-means codebooks for RAPIDNN weight/input encoding.

RAPIDNN clusters the weights and the layer inputs of every layer into small codebooks. In one
dimension k-means can be solved *exactly*: the optimal clusters are contiguous runs of the sorted
values and the dynamic programme of Wang & Song, "Ckmeans.1d.dp: Optimal k-means clustering in one
dimension by dynamic programming", The R Journal 3(2):29-33, 2011, finds them. This module uses

* the Wang & Song recurrence ``D[c, j] = min_i D[c-1, i] + cost(i, j)`` over the sorted distinct
  values (weights = multiplicities), with O(1) segment cost from prefix sums
  ``cost(i, j) = sum w x^2 - (sum w x)^2 / sum w``. The cost obeys the quadrangle inequality, so
  the optimal split index is monotone in ``j``; each DP row is solved by divide and conquer
  (all subproblems of one recursion depth vectorised together), O(k m log m) for m distinct
  values, or by a dense min over an m x m matrix when m is small;
* for large inputs (> :data:`EXACT_MAX_DISTINCT` distinct values): sort, compress to about
  ``max(N_BINS, min(32 k, 4096))`` weighted value bins, run the exact DP on the bins to initialise,
  then refine with Lloyd iterations (Lloyd, "Least squares quantization in PCM", IEEE Trans. Inf.
  Theory 28(2), 1982) on the *full* sorted data, each iteration O(k log n) with prefix sums
  (boundaries are ``searchsorted`` of the centroid midpoints). Then up to
  :data:`REFINE_ROUNDS` times: re-bin finely around the current boundaries (geometric offsets
  1, 2, 4, ... points) plus a coarse grid, re-solve the DP exactly on those bins (the current
  partition is one of the candidates, so the SSE never increases) and re-run Lloyd.

Public API: :func:`kmeans1d`, :func:`optimal_sse`, :func:`sse`, :func:`tree_kmeans1d` and
:class:`TreeCodebook`. All results are deterministic (bitwise) for a given input.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "EXACT_MAX_DISTINCT",
    "N_BINS",
    "REFINE_ROUNDS",
    "TreeCodebook",
    "kmeans1d",
    "optimal_sse",
    "sse",
    "tree_kmeans1d",
]

#: Inputs with at most this many distinct values are clustered exactly (DP on the distinct values).
EXACT_MAX_DISTINCT = 4096
#: Number of weighted value bins used to initialise the large-input path (before Lloyd refinement).
N_BINS = 1024
#: Max re-binned DP rounds after the first Lloyd convergence (0 disables; see _centroids).
REFINE_ROUNDS = 2
#: Base (coarse) bins of the refinement rounds, on top of the edges around current boundaries.
REFINE_BASE_BINS = 256
#: Geometric ratio of the refinement offsets around each boundary (1, r, r^2, ... points).
REFINE_RATIO = 2
#: Cap on Lloyd refinement iterations of the large-input path (it normally converges far sooner).
LLOYD_MAX_ITER = 1000
#: Distinct-value count up to which a DP row is a dense min over an m x m matrix (else D&C).
_DENSE_MAX = 320


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------


def _is_torch(x: Any) -> bool:
    mod = type(x).__module__
    return mod.startswith("torch") and hasattr(x, "detach") and hasattr(x, "device")


def _to_numpy(values: Any, fn: str) -> np.ndarray:
    """Float64 numpy view/copy of ``values`` (numpy array, torch tensor or array-like)."""
    if _is_torch(values):
        arr = values.detach().to(device="cpu").double().numpy()
    else:
        arr = np.asarray(values)
        if arr.dtype.kind == "c":
            raise TypeError(f"{fn}: complex values are not supported")
        arr = arr.astype(np.float64, copy=False)
    if arr.size == 0:
        raise ValueError(f"{fn}: values is empty")
    if not np.isfinite(arr).all():
        if np.isnan(arr).any():
            raise ValueError(f"{fn}: values contain NaN")
        raise ValueError(f"{fn}: values contain inf")
    return arr


def _check_int(name: str, v: Any, fn: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{fn}: {name} must be an int, got {type(v).__name__}")
    v = int(v)
    if v < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {v}")
    return v


class _Sorted:
    """Sorted values ``u`` with weights ``w`` and prefix sums in a normalised frame.

    ``z = (u - shift) / scale`` lies in [-1, 1] (no overflow, centred for accuracy); prefix sums
    ``W, S, Q`` of ``w, w z, w z^2`` give any segment's weight, sum and SSE in O(1). ``w=None``
    means unit weights (``W[i] = i`` is then implicit) and ``u`` may contain ties, as long as no
    segment boundary splits a run of equal values. ``Q`` is built on first use (the DP needs it,
    Lloyd does not).
    """

    def __init__(self, u: np.ndarray, w: np.ndarray | None):
        self.u = u
        self.w = w
        self.m = m = u.size
        lo, hi = u[0], u[-1]
        self.shift = lo / 2 + hi / 2
        self.scale = hi / 2 - lo / 2
        if self.scale == 0.0:
            self.scale = 1.0
        z = u - self.shift
        z /= self.scale
        self.z = z
        if w is not None:
            self.W = np.zeros(m + 1)
            np.cumsum(w, out=self.W[1:])
            z = w * z
        self.S = np.zeros(m + 1)
        np.cumsum(z, out=self.S[1:])
        self._Q: np.ndarray | None = None

    @property
    def total_weight(self) -> float:
        return float(self.m if self.w is None else self.W[-1])

    def wsum(self, i: Any, j: Any) -> Any:
        """Total weight of segments ``[i, j)``."""
        if self.w is None:
            return np.asarray(j - i, dtype=np.float64)
        return self.W[j] - self.W[i]

    def windex(self, targets: np.ndarray) -> np.ndarray:
        """Index of the point where the cumulative weight first exceeds each target."""
        if self.w is None:
            idx = np.floor(targets).astype(np.int64)
        else:
            idx = np.searchsorted(self.W, targets, side="right") - 1
        return np.clip(idx, 0, self.m - 1)

    def cost(self, i: Any, j: Any) -> np.ndarray:
        """SSE (normalised units) of segments ``[i, j)``; requires ``i < j``."""
        if self._Q is None:
            zz = self.z * self.z if self.w is None else self.w * self.z * self.z
            self._Q = np.zeros(self.m + 1)
            np.cumsum(zz, out=self._Q[1:])
        Q = self._Q
        w = self.wsum(i, j)
        s = self.S[j] - self.S[i]
        return np.maximum(Q[j] - Q[i] - s * s / w, 0.0)

    def final_means(self, bounds: np.ndarray) -> np.ndarray:
        """Like :meth:`means` but summing each segment directly (pairwise, ``add.reduceat``)
        instead of differencing prefix sums: one O(m) pass, used for the returned centroids."""
        a, b = bounds[:-1], bounds[1:]
        wz = self.z if self.w is None else self.w * self.z
        zm = np.add.reduceat(wz, a) / self.wsum(a, b)
        return np.clip(zm * self.scale + self.shift, self.u[a], self.u[b - 1])

    def means(self, bounds: np.ndarray) -> np.ndarray:
        """Means (original units) of the non-empty segments ``[bounds[c], bounds[c+1])``.

        Clipped to the segment's value range, so disjoint segments give strictly increasing means
        even under rounding.
        """
        a, b = bounds[:-1], bounds[1:]
        zm = (self.S[b] - self.S[a]) / self.wsum(a, b)
        c = zm * self.scale + self.shift
        return np.clip(c, self.u[a], self.u[b - 1])


# --------------------------------------------------------------------------------------------
# exact DP (Wang & Song 2011)
# --------------------------------------------------------------------------------------------


def _dp_bounds(P: _Sorted, k: int) -> np.ndarray:
    """Optimal partition of the m weighted points into ``k <= m`` contiguous non-empty segments.

    Wang & Song (2011) recurrence; returns ``k + 1`` boundary indices ``0 = b0 < ... < bk = m``.
    Ties between equally good split points go to the smallest index (deterministic).
    """
    m = P.m
    if k == 1:
        return np.array([0, m], dtype=np.int64)
    if k == m:
        return np.arange(m + 1, dtype=np.int64)
    jall = np.arange(m + 1)
    d_prev = np.full(m + 1, np.inf)
    d_prev[1:] = P.cost(0, jall[1:])
    arg = np.zeros((k + 1, m + 1), dtype=np.int32 if m < 2**31 else np.int64)
    dense = m <= _DENSE_MAX
    if dense:
        ii, jj = np.triu_indices(m + 1, 1)
        cmat = np.full((m + 1, m + 1), np.inf)
        cmat[ii, jj] = P.cost(ii, jj)
    for c in range(2, k + 1):
        # row c is only needed for j in [c, m - (k - c)] (the rest cannot reach (k, m)).
        jlo, jhi = c, m - (k - c)
        d_cur = np.full(m + 1, np.inf)
        if dense:
            # candidates i in [c-1, j-1]; cmat is inf for i >= j, d_prev is inf for i < c-1.
            tot = d_prev[c - 1 : jhi, None] + cmat[c - 1 : jhi, jlo : jhi + 1]
            best = np.argmin(tot, axis=0)
            d_cur[jlo : jhi + 1] = tot[best, np.arange(best.size)]
            arg[c, jlo : jhi + 1] = best + (c - 1)
        else:
            _dc_row(P, d_prev, d_cur, arg[c], jlo, jhi, c - 1)
        d_prev = d_cur
    bounds = np.empty(k + 1, dtype=np.int64)
    bounds[k] = m
    j = m
    for c in range(k, 1, -1):
        j = int(arg[c, j])
        bounds[c - 1] = j
    bounds[0] = 0
    return bounds


def _dc_row(
    P: _Sorted,
    d_prev: np.ndarray,
    d_cur: np.ndarray,
    arg_row: np.ndarray,
    jlo: int,
    jhi: int,
    ilo: int,
) -> None:
    """One DP row by divide and conquer on the monotone argmin, one numpy pass per depth.

    Each pending task is (j range, candidate i range); the middle j of every task is solved at
    once, then the tasks split around it with the candidate ranges narrowed by monotonicity.
    """
    tj0 = np.array([jlo])
    tj1 = np.array([jhi])
    ti0 = np.array([ilo])
    ti1 = np.array([jhi - 1])
    while tj0.size:
        jm = (tj0 + tj1) >> 1
        hi = np.minimum(ti1, jm - 1)
        lens = hi - ti0 + 1
        ends = np.cumsum(lens)
        starts = ends - lens
        i = np.arange(ends[-1]) + np.repeat(ti0 - starts, lens)
        val = d_prev[i] + P.cost(i, np.repeat(jm, lens))
        mins = np.minimum.reduceat(val, starts)
        hit = np.flatnonzero(val == np.repeat(mins, lens))
        opt = i[hit[np.searchsorted(hit, starts)]]
        d_cur[jm] = mins
        arg_row[jm] = opt
        left = tj0 < jm
        right = jm < tj1
        tj0 = np.concatenate((tj0[left], jm[right] + 1))
        tj1 = np.concatenate((jm[left] - 1, tj1[right]))
        ti0 = np.concatenate((ti0[left], opt[right]))
        ti1 = np.concatenate((opt[left], ti1[right]))


# --------------------------------------------------------------------------------------------
# Lloyd refinement on sorted data with prefix sums (Lloyd 1982)
# --------------------------------------------------------------------------------------------


def _lloyd(P: _Sorted, bounds: np.ndarray, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations on sorted data from partition ``bounds``, O(k log m) each.

    Assignment is ``v -> searchsorted(midpoints, v, side="left")`` (ties to the lower centroid),
    i.e. cluster c holds ``midpoints[c-1] < v <= midpoints[c]``, so the boundaries are
    ``searchsorted(sorted_values, midpoints, side="right")``. Stops when they stop moving, after
    ``max_iter`` updates, or (keeping the current state) if an update would empty a cluster.
    Returns ``(centroids, bounds)`` with ``centroids`` the means of the segments ``bounds``.
    """
    c = P.means(bounds)
    for _ in range(max_iter):
        mid = (c[1:] + c[:-1]) / 2
        nb = np.concatenate(([0], np.searchsorted(P.u, mid, side="right"), [P.m]))
        if np.array_equal(nb, bounds) or np.any(nb[1:] <= nb[:-1]):
            break
        bounds = nb
        c = P.means(bounds)
    return c, bounds


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def _codes(flat: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``searchsorted(midpoints, flat, side="left")`` as int64 (nearest centroid, ties low)."""
    mid = (centroids[1:] + centroids[:-1]) / 2
    if mid.size < 8 or flat.size < (1 << 15) or not mid[-1] > mid[0]:
        return np.searchsorted(mid, flat, side="left").astype(np.int64, copy=False)
    return _codes_grid(flat, mid)


def _codes_grid(x: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """Same result as ``searchsorted(mid, x, side="left")``, faster for large unsorted ``x``.

    A uniform grid over ``[mid[0], mid[-1]]`` gives each value a first guess (the number of
    midpoints below its cell's lower edge); vectorised passes then step codes up/down until
    ``mid[code - 1] < x <= mid[code]`` holds exactly, so rounding in the grid only costs speed.
    """
    lo, hi = mid[0], mid[-1]
    g = min(64 * mid.size, 1 << 16)
    with np.errstate(over="ignore", divide="ignore"):
        inv = g / (hi - lo)
    if not 0.0 < inv < np.inf:  # span overflows or is subnormal: plain binary search
        return np.searchsorted(mid, x, side="left").astype(np.int64, copy=False)
    t = x - lo
    t *= inv
    np.clip(t, 0.0, g, out=t)
    table = np.searchsorted(mid, lo + np.arange(g + 1) / inv, side="left")
    code = table[t.astype(np.int64)]
    above = np.append(mid, np.inf)  # above[c] = mid[c]: code too low while above[code] < x
    while True:
        up = above[code] < x
        if not up.any():
            break
        code += up
    below = np.concatenate(([-np.inf], mid))  # below[c] = mid[c-1]: too high if >= x
    while True:
        down = below[code] >= x
        if not down.any():
            break
        code -= down
    return code


def _unique(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, w = np.unique(flat, return_counts=True)
    return u, w.astype(np.float64)


def _exact_centroids(u: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Optimal centroids of the weighted distinct values ``u`` (min(k, m) of them)."""
    k = min(k, u.size)
    if k == u.size:
        return u.copy()
    P = _Sorted(u, w)
    # The DP optimum is a Lloyd fixed point; this pass only re-syncs with the midpoint rule
    # when rounding puts a value exactly on a midpoint.
    return P.final_means(_lloyd(P, _dp_bounds(P, k), 8)[1])


def _bin_bounds(P: _Sorted, nbins: int) -> np.ndarray:
    """Boundaries (indices into ``P.u``) of <= nbins value bins, never splitting tied values.

    Half the edges are weight quantiles, half equally spaced in value, so dense regions and
    sparse tails are both resolved.
    """
    u, m = P.u, P.m
    q = u[P.windex(np.linspace(0.0, P.total_weight, nbins // 2 + 1)[1:-1])]
    e = np.linspace(u[0], u[-1], nbins - nbins // 2 + 1)[1:-1]
    b = np.searchsorted(u, np.concatenate((q, e)), side="left")
    return np.unique(np.concatenate(([0], b, [m])))


def _n_bins(k: int) -> int:
    """Bins for the large-input initialisation: ~32 per cluster, at least N_BINS and 4k."""
    return max(N_BINS, min(32 * k, 4096), 4 * k)


def _binned_dp(P: _Sorted, bb: np.ndarray, k: int) -> np.ndarray:
    """Optimal partition of ``P`` among those whose boundaries are bin edges ``bb``.

    Treating each bin as one weighted point at its mean, the DP cost differs from the true SSE
    of a bin-respecting partition only by the constant within-bin SSE, so this is exact over
    that family. Returns boundaries in ``P``'s index space.
    """
    bins = _Sorted(P.means(bb), P.wsum(bb[:-1], bb[1:]))
    return bb[_dp_bounds(bins, min(k, bins.m))]


def _centroids(u: np.ndarray, w: np.ndarray | None, k: int, n_distinct: int) -> np.ndarray:
    """Centroids for sorted values ``u`` (weights ``w``, None = ones; ties allowed if w is None).

    Exact DP when ``n_distinct <= EXACT_MAX_DISTINCT``. Otherwise: exact DP over value bins,
    Lloyd on the full sorted data, then refinement rounds: re-bin with the current boundaries
    plus edges at geometric offsets (1, 2, 4, ... points) around each of them over a coarse
    base grid, re-solve the DP (the current partition is feasible, so the SSE cannot increase)
    and re-run Lloyd, until the DP keeps the partition or REFINE_ROUNDS is reached.
    """
    if n_distinct <= EXACT_MAX_DISTINCT:
        if w is None:  # compress ties into weights
            starts = np.flatnonzero(np.concatenate(([True], u[1:] != u[:-1])))
            w = np.diff(np.append(starts, u.size)).astype(np.float64)
            u = u[starts]
        return _exact_centroids(u, w, k)
    if k >= n_distinct:
        return np.unique(u)
    P = _Sorted(u, w)
    c, bounds = _lloyd(P, _binned_dp(P, _bin_bounds(P, _n_bins(k)), k), LLOYD_MAX_ITER)
    if REFINE_ROUNDS and c.size > 1:
        base = _bin_bounds(P, max(4 * k, REFINE_BASE_BINS))
        steps = REFINE_RATIO ** np.arange(int(np.log(P.m) / np.log(REFINE_RATIO)) + 1)
        offs = np.concatenate((-steps[::-1], steps))
        for _ in range(REFINE_ROUNDS):
            # offsets stay inside the two clusters adjacent to each boundary
            idx = np.clip(bounds[1:-1, None] + offs, bounds[:-2, None], bounds[2:, None] - 1)
            near = np.searchsorted(P.u, P.u[idx.ravel()], side="left")
            nb = _binned_dp(P, np.unique(np.concatenate((base, bounds, near))), k)
            if np.array_equal(nb, bounds):
                break
            c, bounds = _lloyd(P, nb, LLOYD_MAX_ITER)
    return P.final_means(bounds)


def kmeans1d(
    values: Any,
    k: int,
    seed: int = 0,
    *,
    sample_weight: Any = None,
) -> tuple[Any, Any]:
    """Cluster scalar ``values`` into at most ``k`` centroids (1-D k-means).

    Args:
        values: numpy array / array-like or torch tensor of any shape (flattened), finite reals.
        k: requested number of clusters (int >= 1).
        seed: accepted for API stability; the method is fully deterministic (no random
            sampling), so the result does not depend on it. Same input -> bitwise same output.
        sample_weight: optional non-negative weights, broadcastable to ``values``' shape; zero
            weights are allowed (those values still get a code). ``None`` = all ones.

    Returns:
        ``(centroids, codes)``. ``centroids`` are float64, strictly increasing, and there are
        ``min(k, number of distinct values)`` of them (callers that need exactly ``k`` entries must
        pad). ``codes`` are int64 with ``values``' shape; ``codes[i]`` is the nearest centroid
        (ties to the lower index), i.e. ``np.searchsorted(midpoints, v, side="left")`` with
        ``midpoints = (c[1:] + c[:-1]) / 2``. Numpy input gives numpy output; torch input gives
        torch tensors on the input's device.

    Method: with <= :data:`EXACT_MAX_DISTINCT` distinct values the optimum is computed exactly by
    the DP of Wang & Song (2011). Larger inputs: exact DP on about ``max(N_BINS, min(32k, 4096))``
    weighted value bins, then Lloyd (1982) iterations on the full sorted data until the cluster
    boundaries stop moving, then up to :data:`REFINE_ROUNDS` rounds of exact DP on bins refined
    around the current boundaries + Lloyd (near-optimal, never worse than the first Lloyd fixed
    point; the result is a Lloyd fixed point). ``sample_weight`` weights each value's
    contribution to the SSE (distinct values are counted after dropping zero weights).
    """
    fn = "kmeans1d"
    k = _check_int("k", k, fn, 1)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{fn}: seed must be an int, got {type(seed).__name__}")
    arr = _to_numpy(values, fn)
    flat = arr.reshape(-1)
    if sample_weight is not None:
        sw = np.broadcast_to(_weights(sample_weight, arr.shape, fn), arr.shape).reshape(-1)
        keep = sw > 0
        if not keep.any():
            raise ValueError(f"{fn}: sample_weight is zero everywhere")
        u, inv = np.unique(flat[keep], return_inverse=True)
        w = np.bincount(inv.reshape(-1), weights=sw[keep], minlength=u.size)
        cent = _centroids(u, w, k, u.size)
    elif flat.size <= EXACT_MAX_DISTINCT:
        cent = _exact_centroids(*_unique(flat), k)
    else:
        xs = np.sort(flat)
        cent = _centroids(xs, None, k, int(np.count_nonzero(xs[1:] != xs[:-1])) + 1)
    codes = _codes(flat, cent).reshape(arr.shape)
    if _is_torch(values):
        import torch

        dev = values.device
        return torch.from_numpy(cent).to(dev), torch.from_numpy(codes).to(dev)
    return cent, codes


def _weights(sample_weight: Any, shape: tuple[int, ...], fn: str) -> np.ndarray:
    if _is_torch(sample_weight):
        sw = sample_weight.detach().to(device="cpu").double().numpy()
    else:
        sw = np.asarray(sample_weight, dtype=np.float64)
    if not np.isfinite(sw).all() or (sw < 0).any():
        raise ValueError(f"{fn}: sample_weight must be finite and non-negative")
    try:
        np.broadcast_shapes(sw.shape, shape)
    except ValueError:
        raise ValueError(f"{fn}: sample_weight shape {sw.shape} != values shape {shape}") from None
    return sw


def optimal_sse(values: Any, k: int) -> float:
    """Exact minimum k-means SSE of ``values`` with ``k`` clusters (Wang & Song 2011 DP).

    Always runs the exact DP on all distinct values: O(k m log m) time, O(k m) memory for ``m``
    distinct values, so it is a reference for tests/benchmarks rather than for 10^6 values.
    Returns ``sse(values, optimal_centroids)``; equals ``sse(values, kmeans1d(values, k)[0])``
    bitwise whenever :func:`kmeans1d` takes its exact path.
    """
    fn = "optimal_sse"
    k = _check_int("k", k, fn, 1)
    flat = _to_numpy(values, fn).reshape(-1)
    return sse(flat, _exact_centroids(*_unique(flat), k))


def sse(values: Any, centroids: Any) -> float:
    """Sum of squared distances of ``values`` to their nearest centroid (midpoint rule)."""
    flat = _to_numpy(values, "sse").reshape(-1)
    c = np.sort(_to_numpy(centroids, "sse").reshape(-1))
    d = flat - c[_codes(flat, c)]
    return float(np.dot(d, d))


# --------------------------------------------------------------------------------------------
# multi-level (tree) codebooks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TreeCodebook:
    """Hierarchical codebook from recursive exact 2-means (:func:`tree_kmeans1d`).

    Attributes:
        levels: ``levels[d]`` holds the ``2**d`` node centroids of depth ``d`` (level 0 = global
            mean), each the mean of that node's members, sorted non-decreasing. Node ``i`` of level
            ``d`` has children ``2i`` (lower values) and ``2i + 1`` (higher values), so the top
            ``b`` bits of a leaf code index its ancestor in level ``b`` and every level is a valid
            (coarser) codebook for the same codes.
        thresholds: ``thresholds[d][i]`` splits node ``i`` of level ``d``: ``v <= t`` goes to the
            lower child. Length ``depth``.
        leaf_codes: int64 leaf code of every input value (input shape).
    """

    levels: list[np.ndarray]
    thresholds: list[np.ndarray]
    leaf_codes: np.ndarray

    @property
    def depth(self) -> int:
        return len(self.levels) - 1

    def _check_bits(self, name: str, bits: int) -> int:
        bits = _check_int(name, bits, "TreeCodebook", 0)
        if bits > self.depth:
            raise ValueError(f"TreeCodebook: {name}={bits} exceeds depth {self.depth}")
        return bits

    def codebook(self, bits: int) -> np.ndarray:
        """Centroids of level ``bits`` (``2**bits`` entries, non-decreasing)."""
        return self.levels[self._check_bits("bits", bits)].copy()

    def coarsen(self, codes: Any, from_bits: int, to_bits: int) -> Any:
        """Map level-``from_bits`` codes to their level-``to_bits`` ancestors: ``codes >> shift``.

        Works on numpy arrays and torch integer tensors alike.
        """
        f = self._check_bits("from_bits", from_bits)
        t = self._check_bits("to_bits", to_bits)
        if t > f:
            raise ValueError(f"TreeCodebook: to_bits={t} > from_bits={f}")
        return codes >> (f - t)

    def encode(self, values: Any, bits: int | None = None) -> np.ndarray:
        """Descend the tree with :attr:`thresholds`: int64 codes of level ``bits`` (default leaf).

        For the training values this reproduces :attr:`leaf_codes` (coarsened to ``bits``).
        """
        bits = self.depth if bits is None else self._check_bits("bits", bits)
        arr = _to_numpy(values, "TreeCodebook.encode")
        flat = arr.reshape(-1)
        code = np.zeros(flat.size, dtype=np.int64)
        for d in range(bits):
            code = 2 * code + (flat > self.thresholds[d][code])
        return code.reshape(arr.shape)


def _split2(P: _Sorted, a: int, b: int) -> int:
    """Exact 1-D 2-means split ``s`` of the segment ``[a, b)`` (>= 2 distinct values)."""
    s = np.arange(a + 1, b)
    tot = P.cost(a, s) + P.cost(s, b)
    return int(s[np.argmin(tot)])


def _node_mean(u: np.ndarray, w: np.ndarray, a: int, b: int) -> float:
    """Mean of the tree node ``u[a:b]`` (weights ``w``), computed in the node's own frame.

    Each node gets its own normalised frame: in one frame spanning a wider range, the members of a
    node narrower than that range's rounding step all round to one value, and its mean can leave
    the interval between its children's means (a hypothesis example: ``{0, 2.2e-308, 1e-300}``
    beside ``1e-10`` and ``1``).
    """
    return float(_Sorted(u[a:b], w[a:b]).final_means(np.array([0, b - a]))[0])


def tree_kmeans1d(values: Any, depth: int, seed: int = 0) -> TreeCodebook:
    """Multi-level codebook by recursive exact 2-means (our reading of RAPIDNN's tree encoding).

    Every node (a contiguous value range) is split by the *exact* 1-D 2-means optimum of its
    members (best split of the sorted members, O(1) cost per candidate via prefix sums as in
    Wang & Song 2011), giving ``2**depth`` leaves. A node that cannot split (a single distinct
    value, or no members) is duplicated: all its members go to the lower child, the upper child is
    empty and carries the same centroid; so leaves can repeat values (non-decreasing, not strictly
    increasing) when there are fewer than ``2**depth`` distinct values. Children of a node lie
    between the neighbouring nodes' children, so the natural (heap) leaf order is sorted and each
    subtree is a contiguous code range. ``seed`` is accepted for API symmetry; the method is
    deterministic. Torch input is accepted; the codebook holds numpy arrays.

    Note that leaf codes are tree-structured (thresholds of the ancestors), which can differ from
    the nearest-leaf assignment near the split points of coarse levels.
    """
    fn = "tree_kmeans1d"
    depth = _check_int("depth", depth, fn, 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{fn}: seed must be an int, got {type(seed).__name__}")
    arr = _to_numpy(values, fn)
    flat = arr.reshape(-1)
    u, w = _unique(flat)
    nodes = [(0, u.size)]
    levels = [np.array([_node_mean(u, w, 0, u.size)])]
    thresholds: list[np.ndarray] = []
    for _ in range(depth):
        parent_c = levels[-1]
        nxt: list[tuple[int, int]] = []
        cent = np.empty(2 * len(nodes))
        thr = np.empty(len(nodes))
        for idx, (a, b) in enumerate(nodes):
            if b - a >= 2:
                s = a + _split2(_Sorted(u[a:b], w[a:b]), 0, b - a)
                cl, cr = _node_mean(u, w, a, s), _node_mean(u, w, s, b)
                t = (cl + cr) / 2
                s2 = min(max(int(np.searchsorted(u, t, side="right")), a + 1), b - 1)
                if s2 != s:  # rounding put the midpoint beyond a member: follow the midpoint rule
                    s = s2
                    cl, cr = _node_mean(u, w, a, s), _node_mean(u, w, s, b)
                if not (u[s - 1] <= t < u[s]):
                    t = u[s - 1]
                nxt += [(a, s), (s, b)]
                cent[2 * idx], cent[2 * idx + 1] = cl, cr
                thr[idx] = t
            else:
                nxt += [(a, b), (b, b)]
                cent[2 * idx] = cent[2 * idx + 1] = parent_c[idx]
                thr[idx] = parent_c[idx]
        nodes = nxt
        levels.append(cent)
        thresholds.append(thr)
    book = TreeCodebook(levels=levels, thresholds=thresholds, leaf_codes=np.zeros(0, np.int64))
    object.__setattr__(book, "leaf_codes", book.encode(arr))
    return book
