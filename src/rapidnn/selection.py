"""Reading a sweep of (w, u) points: the paper's quality tolerance, the Pareto front of energy
against accuracy, the smallest point within the tolerance, the most accurate point and the order
the search retrains points in. Pure functions of the point dicts, shared by the experiments
(which choose the operating point) and the report (which highlights it)."""

from __future__ import annotations

from typing import Any

TOLERANCE = 0.003  # the paper's quality-loss budget: 0.3 points (absolute, as a fraction)


def pareto_front(points: list[dict[str, Any]], x: str = "energy_j",
                 y: str = "composed_accuracy") -> list[int]:
    """Indices of the points no other point beats (lower ``x`` and higher ``y``)."""
    front = []
    for i, p in enumerate(points):
        dominated = any(q[x] <= p[x] and q[y] >= p[y] and (q[x] < p[x] or q[y] > p[y])
                        for j, q in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return front


def _size(p: dict[str, Any]) -> tuple[float, int, int]:
    return p["bits_per_neuron"], p["weight_clusters"], p["input_clusters"]


def smallest_within_tolerance(points: list[dict[str, Any]],
                              tolerance: float = TOLERANCE) -> dict[str, Any] | None:
    """The point with the least memory per neuron whose quality loss is within tolerance."""
    ok = [p for p in points if p["quality_loss"] <= tolerance + 1e-12]
    return min(ok, key=_size) if ok else None


def most_accurate(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The point with the least quality loss (the smaller one on a tie)."""
    return min(points, key=lambda p: (p["quality_loss"], *_size(p))) if points else None


def search_order(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points in the order the search retrains them: ascending memory per neuron."""
    return sorted(points, key=_size)
