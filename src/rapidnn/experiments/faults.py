"""Accuracy against fault rate per block kind, and the rate that costs one point.

:func:`fault_curves` simulates a composed model on labelled test data with faults of one kind
at a time (``rapidnn.accel.faults``; rates per cell, or per bit per access for the transient
kinds), ``trials`` seeded samplings per rate, and reports per point the mean, spread and range
of the accuracy and the agreement with the fault-free simulation. ``rate_for_one_point`` is
where the mean accuracy first falls one point (0.01) below the fault-free accuracy,
interpolated linearly in log(rate) between the grid's two neighbouring rates (None when no
rate of the grid loses a point; the smallest nonzero rate when it already does).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rapidnn.accel.config import FaultConfig, SimConfig
from rapidnn.accel.simulator import Simulator
from rapidnn.composer.composed import ComposedModel

KINDS = ("table", "processing", "am", "read_flips", "search_flips")
RATES = (0.0, 1e-4, 1e-3, 1e-2, 0.1)
ONE_POINT = 0.01


def _accuracy(sim: Simulator, x: torch.Tensor, y: torch.Tensor, ref: torch.Tensor | None,
              batch: int) -> tuple[float, float, torch.Tensor]:
    preds = torch.cat([sim.run(x[i:i + batch]).outputs.argmax(1) for i in
                       range(0, len(x), batch)])
    agree = 1.0 if ref is None else float((preds == ref).float().mean())
    return float((preds == y).float().mean()), agree, preds


def rate_for_one_point(points: list[dict[str, Any]], clean: float) -> float | None:
    """The rate at which the mean accuracy falls :data:`ONE_POINT` below ``clean`` (module
    docstring)."""
    target = clean - ONE_POINT
    prev = None
    for p in sorted(points, key=lambda p: p["rate"]):
        if p["rate"] <= 0:
            continue
        if p["accuracy"] <= target:
            if prev is None:
                return p["rate"]
            (r0, a0), (r1, a1) = prev, (p["rate"], p["accuracy"])
            t = (a0 - target) / (a0 - a1) if a0 != a1 else 1.0
            return math.exp(math.log(r0) + t * (math.log(r1) - math.log(r0)))
        prev = (p["rate"], p["accuracy"])
    return None


def fault_curves(composed: ComposedModel, x: torch.Tensor, y: torch.Tensor, *,
                 rates: Sequence[float] = RATES, kinds: Sequence[str] = KINDS[:3],
                 trials: int = 3, seed: int = 0, mitigation: dict[str, Any] | None = None,
                 sim_config: SimConfig | None = None, batch: int = 250,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Accuracy against fault rate for every kind in ``kinds`` (module docstring).

    ``mitigation``: FaultConfig fields applied to every faulty point (``spare_rows``,
    ``table_protection``, ``stuck_at_one``). Returns ``{"clean_accuracy", "images",
    "curves": [{"block", "points": [{"rate", "accuracy", "std", "min", "max", "agreement",
    "trials"}], "rate_for_one_point", "one_point_at_first_rate"}], "seconds"}``
    (``one_point_at_first_rate``: the smallest nonzero rate of the grid already loses a point,
    so ``rate_for_one_point`` is an upper bound).
    """
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(KINDS)}")
    bad = [r for r in rates if not 0 <= r <= 1]
    if bad:
        raise ValueError(f"fault rates must lie in [0, 1], got {bad}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    base = sim_config or SimConfig()
    base = base.model_copy(update={"record_trace": False, "record_codes": False,
                                   "record_accumulators": False})
    t0 = time.perf_counter()
    with torch.no_grad():
        clean, _, ref = _accuracy(Simulator(composed, base), x, y, None, batch)
    extra = dict(mitigation or {})
    curves = []
    for kind in kinds:
        points = []
        for rate in sorted(set(rates)):
            if rate == 0:
                points.append({"rate": 0.0, "accuracy": clean, "std": 0.0, "min": clean,
                               "max": clean, "agreement": 1.0, "trials": 1})
                continue
            accs, agrees = [], []
            for t in range(trials):
                faults = FaultConfig(**{kind: float(rate)}, seed=seed + t, **extra)
                sim = Simulator(composed, base.model_copy(update={"faults": faults}))
                with torch.no_grad():
                    acc, agree, _ = _accuracy(sim, x, y, ref, batch)
                accs.append(acc)
                agrees.append(agree)
            points.append({"rate": float(rate), "accuracy": statistics.fmean(accs),
                           "std": statistics.pstdev(accs), "min": min(accs), "max": max(accs),
                           "agreement": statistics.fmean(agrees), "trials": trials})
            if progress is not None:
                progress(f"{kind} {rate:g}: accuracy {points[-1]['accuracy']:.4f}")
        faulty = [p for p in points if p["rate"] > 0]
        curves.append({"block": kind, "points": points,
                       "rate_for_one_point": rate_for_one_point(points, clean),
                       "one_point_at_first_rate": bool(faulty) and
                       faulty[0]["accuracy"] <= clean - ONE_POINT})
    return {"clean_accuracy": clean, "images": len(x), "trials": trials, "seed": seed,
            "mitigation": extra, "curves": curves, "seconds": time.perf_counter() - t0}
