"""Comparison policies: under which matched conditions RAPIDNN meets each baseline.

A policy fixes what the two designs share (docs/hardware.md §9); every policy is a function of
(trace, network shape, options) and all of them run in one call (:func:`evaluate_all`):

* ``as-published``: each chip at its own size, replication policy ("balanced") and precision
  (ISAAC/PipeLayer at 16-bit operands, RAPIDNN at its codes);
* ``iso-area``: RAPIDNN gets the baseline's silicon area (``area / area per RNA block`` blocks,
  tile periphery included); the GPU has no modelled area, so it stays as published;
* ``iso-power``: RAPIDNN gets the largest block budget whose average power does not exceed the
  baseline's; when even the smallest mapping draws more, its throughput is scaled down to the
  baseline's power (a power-capped chip);
* ``filled``: every design replicates over its whole chip ("fill": copies also serve other
  inferences);
* ``precision-matched``: the baselines at the composed model's operand widths
  (``ceil(log2 w)``-bit weights, ``ceil(log2 u)``-bit inputs; the GPU at one byte per value)
  instead of 16 bits.

Ratios above 1 favour RAPIDNN: ``energy_efficiency = E_base / E_rapidnn`` (per inference),
``speedup = throughput_rapidnn / throughput_base``, ``latency_ratio = latency_base /
latency_rapidnn``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rapidnn.accel.trace import Trace
from rapidnn.hardware import rapidnn as R
from rapidnn.hardware.estimate import Estimate, EstimateOptions
from rapidnn.hardware.network import NetworkShape
from rapidnn.hardware.spec import HardwareSpec

POLICIES: tuple[str, ...] = ("as-published", "iso-area", "iso-power", "filled",
                             "precision-matched")
BASELINES: tuple[str, ...] = ("isaac", "pipelayer", "gpu")

Estimator = Callable[[NetworkShape | Trace, str, EstimateOptions], Estimate]


@dataclass
class Matchup:
    """RAPIDNN against one baseline under one policy."""

    rapidnn: Estimate
    baseline: Estimate
    notes: list[str] = field(default_factory=list)

    @property
    def ratios(self) -> dict[str, float]:
        r, b = self.rapidnn, self.baseline
        return {"energy_efficiency": b.energy_j / r.energy_j,
                "speedup": r.throughput_ips / b.throughput_ips,
                "latency_ratio": b.latency_s / r.latency_s}

    def to_dict(self) -> dict[str, Any]:
        r, b = self.rapidnn, self.baseline
        return {**self.ratios,
                "rapidnn": {"energy_j": r.energy_j, "throughput_ips": r.throughput_ips,
                            "latency_s": r.latency_s, "power_w": r.power_w,
                            "area_mm2": r.area_mm2, "blocks_used": r.units_used,
                            "blocks_available": r.units_available,
                            "row_occupancy": r.row_occupancy},
                "baseline": {"energy_j": b.energy_j, "throughput_ips": b.throughput_ips,
                             "latency_s": b.latency_s, "power_w": b.power_w,
                             "area_mm2": b.area_mm2, "units_used": b.units_used},
                "notes": list(self.notes)}


def operand_bits(trace: Trace) -> tuple[int, int]:
    """(weight bits, input bits) of the composed model: ceil(log2) of its largest codebooks."""
    w = max((lt.weight_clusters for lt in trace.layers), default=2)
    u = max((lt.input_clusters for lt in trace.layers), default=2)
    return max(1, math.ceil(math.log2(max(2, w)))), max(1, math.ceil(math.log2(max(2, u))))


def precision_overrides(trace: Trace) -> dict[str, float]:
    """Overrides that run ISAAC, PipeLayer and the GPU at the composed operand widths."""
    wb, ub = operand_bits(trace)
    return {"isaac.weight_bits": wb, "isaac.input_bits": ub, "pipelayer.weight_bits": wb,
            "pipelayer.input_spikes": ub, "gpu.bytes_per_value": math.ceil(max(wb, ub) / 8)}


def _with(options: EstimateOptions, **update: Any) -> EstimateOptions:
    return options.model_copy(update=update)


def _area_per_block(spec: HardwareSpec) -> float:
    return spec.chip_area_mm2() / R.blocks_per_chip(spec)


def _iso_power(estimate: Estimator, trace: Trace, options: EstimateOptions,
               power_w: float, least: float, notes: list[str]) -> Estimate:
    """The largest budget (geometric bisection) whose RAPIDNN power stays at ``power_w``."""
    lo_est = estimate(trace, "rapidnn", _with(options, block_budget=least))
    if lo_est.power_w > power_w:
        scale = power_w / lo_est.power_w
        # a copy (estimates may be cached); dynamic energy per inference is unchanged
        lo_est = dataclasses.replace(lo_est, throughput_ips=lo_est.throughput_ips * scale,
                                     notes=list(lo_est.notes))
        notes.append(f"the smallest RAPIDNN mapping draws {power_w / scale:.3g} W, more "
                     f"than the baseline's {power_w:.3g} W: throughput capped by x{scale:.3g}")
        return lo_est
    lo, hi = least, least * 1e4
    hi_est = estimate(trace, "rapidnn", _with(options, block_budget=hi))
    if hi_est.power_w <= power_w:
        notes.append(f"RAPIDNN saturates below the baseline's power ({hi_est.power_w:.3g} W of "
                     f"{power_w:.3g} W) at a budget of {hi:.3g} blocks")
        return hi_est
    best = lo_est
    for _ in range(24):
        mid = math.sqrt(lo * hi)
        est = estimate(trace, "rapidnn", _with(options, block_budget=mid))
        if est.power_w <= power_w:
            lo, best = mid, est
        else:
            hi = mid
        if hi / lo < 1.02:
            break
    return best


def evaluate(policy: str, trace: Trace, shape: NetworkShape, estimate: Estimator,
             baselines: Iterable[str] = BASELINES,
             options: EstimateOptions | None = None,
             rapidnn_spec: HardwareSpec | None = None) -> dict[str, Matchup]:
    """Every baseline against RAPIDNN under ``policy`` (module docstring)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown comparison policy {policy!r}; choose from "
                         f"{', '.join(POLICIES)}")
    opts = _with(options or EstimateOptions(), replication="balanced")
    if policy == "filled":
        opts = _with(opts, replication="fill")
    base_opts = opts
    if policy == "precision-matched":
        base_opts = _with(opts, overrides={**opts.overrides, **precision_overrides(trace)})
    mine = estimate(trace, "rapidnn", opts)
    out: dict[str, Matchup] = {}
    for name in baselines:
        other = estimate(shape, name, base_opts)
        notes: list[str] = []
        r = mine
        if policy == "iso-area":
            if other.area_mm2:
                spec = rapidnn_spec
                assert spec is not None, "iso-area needs the RAPIDNN spec"
                budget = other.area_mm2 / _area_per_block(spec)
                r = estimate(trace, "rapidnn", _with(opts, block_budget=budget))
                notes.append(f"RAPIDNN on {other.area_mm2:.3g} mm2 = {budget:,.0f} blocks")
            else:
                notes.append(f"{name} has no modelled area: as published")
        elif policy == "iso-power":
            least = estimate(trace, "rapidnn", _with(opts, block_budget=1)).units_available
            r = _iso_power(estimate, trace, opts, other.power_w, least, notes)
        out[name] = Matchup(r, other, notes)
    return out


def evaluate_all(trace: Trace, shape: NetworkShape, estimate: Estimator,
                 policies: Iterable[str] = POLICIES, baselines: Iterable[str] = BASELINES,
                 options: EstimateOptions | None = None,
                 rapidnn_spec: HardwareSpec | None = None) -> dict[str, dict[str, Matchup]]:
    """:func:`evaluate` for every policy, in one call."""
    names = list(baselines)
    return {p: evaluate(p, trace, shape, estimate, names, options, rapidnn_spec)
            for p in policies}


def ratios_table(results: Mapping[str, Mapping[str, Matchup]]) -> dict[str, dict[str, Any]]:
    """``{policy: {baseline: matchup dict}}`` (the JSON of ``rapidnn compare``)."""
    return {p: {b: m.to_dict() for b, m in per.items()} for p, per in results.items()}
