"""Layer pipelining, replication under an array budget, bottleneck throughput (shared by mappers).

Formulas (hardware-parameters.md §2.5 and §6.2; docs/hardware.md §3):

* stage time of layer l with ``r_l`` copies: ``T_l = W_l / r_l``, where ``W_l`` is the time one
  copy needs for one inference (output positions × time per position);
* steady-state throughput of a continuous stream: ``1 / max_l T_l`` (the bottleneck stage);
* single-inference latency: ``Σ_l T'_l`` ("sequential", layers back to back) or
  ``min(Σ_l T'_l, Σ_l fill_l + max_l T'_l)`` ("overlap", ISAAC-style line buffering, where
  ``fill_l`` is the time to the layer's first output), with ``T'_l = W_l / min(r_l, P_l)``:
  copies beyond the P_l output positions serve other inferences, not this one;
* replication: choose ``1 <= r_l <= cap_l`` minimising ``max_l T_l`` subject to
  ``Σ_l r_l · units_l <= budget`` (ISAAC replicates early layers to balance the pipeline).
  Policy "balanced" caps ``r_l`` at the layer's output positions (copies split the positions of
  one inference); "fill" lifts the cap (copies also work on different inferences); "none" keeps
  ``r_l = 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Policy = Literal["balanced", "fill", "none"]
LatencyMode = Literal["sequential", "overlap"]
POLICIES: tuple[str, ...] = ("balanced", "fill", "none")


@dataclass(frozen=True)
class Stage:
    """One pipeline stage (a layer): work of one copy per inference and copy size."""

    name: str
    work_s: float
    units: int
    max_copies: int = 1
    fill_s: float = 0.0

    def __post_init__(self) -> None:
        if self.work_s < 0 or self.units < 0 or self.max_copies < 1:
            raise ValueError(f"stage {self.name}: invalid work/units/max_copies")


def _cap(stage: Stage, policy: Policy) -> int:
    if policy == "none" or stage.work_s == 0 or stage.units == 0:
        return 1
    if policy == "fill":
        return 1 << 40
    return stage.max_copies


def _cost(stages: Sequence[Stage], caps: Sequence[int], t: float) -> float:
    total = 0.0
    for s, cap in zip(stages, caps, strict=True):
        need = max(1, math.ceil(s.work_s / t - 1e-12)) if s.work_s > 0 else 1
        if need > cap:
            return math.inf
        total += need * s.units
    return total


def replicate(stages: Sequence[Stage], budget: float, policy: Policy = "balanced") -> list[int]:
    """Copies per stage minimising the bottleneck stage time under ``budget`` units.

    Bisection on the target stage time gives a feasible start; a greedy pass then increments the
    bottleneck stage while the budget allows, which makes the result the exact min-max optimum
    (so a larger budget never lowers throughput). Needs ``Σ units <= budget``.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown replication policy {policy!r}; choose from {POLICIES}")
    base = sum(s.units for s in stages)
    if base > budget:
        raise ValueError(f"the network needs {base} units, more than the budget {budget:g}")
    caps = [_cap(s, policy) for s in stages]
    works = [s.work_s for s in stages if s.work_s > 0]
    if policy == "none" or not works:
        return [1] * len(stages)
    hi = max(works)
    lo = max(s.work_s / c for s, c in zip(stages, caps, strict=True) if s.work_s > 0)
    if _cost(stages, caps, lo) <= budget:
        hi = lo
    else:
        for _ in range(200):
            mid = math.sqrt(lo * hi) if lo > 0 else (lo + hi) / 2
            if _cost(stages, caps, mid) <= budget:
                hi = mid
            else:
                lo = mid
            if hi - lo <= 1e-12 * hi:
                break
    reps = [max(1, math.ceil(s.work_s / hi - 1e-12)) if s.work_s > 0 else 1 for s in stages]
    reps = [min(r, c) for r, c in zip(reps, caps, strict=True)]
    used = sum(r * s.units for r, s in zip(reps, stages, strict=True))
    while True:  # greedy polish: raise every bottleneck stage by one copy if possible
        t = bottleneck(stages, reps)
        tied = [i for i, s in enumerate(stages)
                if s.work_s > 0 and s.work_s / reps[i] >= t * (1 - 1e-12)]
        extra = sum(stages[i].units for i in tied)
        if any(reps[i] >= caps[i] for i in tied) or used + extra > budget:
            return reps
        for i in tied:
            reps[i] += 1
        used += extra


def stage_times(stages: Sequence[Stage], reps: Sequence[int]) -> list[float]:
    return [s.work_s / r for s, r in zip(stages, reps, strict=True)]


def bottleneck(stages: Sequence[Stage], reps: Sequence[int]) -> float:
    """The largest stage time ``max_l W_l / r_l``."""
    return max(stage_times(stages, reps), default=0.0)


def throughput(stages: Sequence[Stage], reps: Sequence[int]) -> float:
    """Inferences per second of a continuous stream: ``1 / max_l T_l``."""
    t = bottleneck(stages, reps)
    return math.inf if t == 0 else 1.0 / t


def latency(stages: Sequence[Stage], reps: Sequence[int],
            mode: LatencyMode = "sequential") -> float:
    """Single-inference latency (see module docstring). Copies beyond ``max_copies`` (the
    output positions) work on other inferences and do not shorten one inference."""
    times = [s.work_s / min(r, s.max_copies) for s, r in zip(stages, reps, strict=True)]
    seq = sum(times)
    if mode == "sequential":
        return seq
    if mode == "overlap":
        return min(seq, sum(s.fill_s for s in stages) + max(times, default=0.0))
    raise ValueError(f"unknown latency mode {mode!r}")


def chips_needed(stages: Sequence[Stage], units_per_chip: float) -> int:
    """Smallest number of chips whose units hold one copy of every stage."""
    return max(1, math.ceil(sum(s.units for s in stages) / units_per_chip))
