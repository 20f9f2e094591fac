"""Comparison policies: under which matched conditions RAPIDNN meets each baseline.

A policy fixes what the two designs share (docs/hardware.md §9); every policy is a function of
(trace, network shape, options) and all of them run in one call (:func:`evaluate_all`):

* ``as-published``: each chip at its own size, replication policy (the options', "balanced" by
  default) and precision (ISAAC/PipeLayer at 16-bit operands, RAPIDNN at its codes);
* ``iso-area``: RAPIDNN gets the baseline's silicon area (``area / area per RNA block`` blocks,
  tile periphery included); the GPU has no modelled area, so it stays as published;
* ``iso-power``: RAPIDNN gets the blocks whose rated (peak) power equals the baseline's rated
  chip power (ISAAC's component table, the GPU's board power, PipeLayer's events at peak: it
  publishes none); the same power budget, not the same average power on one network;
* ``filled``: every design replicates over its whole chip ("fill": copies also serve other
  inferences);
* ``precision-matched``: the baselines at the composed model's operand widths
  (``ceil(log2 w)``-bit weights, ``ceil(log2 u)``-bit inputs; the GPU at one byte per value)
  instead of 16 bits (activations too).

Ratios above 1 favour RAPIDNN: ``energy_efficiency = E_base / E_rapidnn`` (per inference),
``speedup = throughput_rapidnn / throughput_base``, ``latency_ratio = latency_base /
latency_rapidnn``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rapidnn.accel.trace import Trace
from rapidnn.hardware import chip_summary
from rapidnn.hardware.estimate import Estimate, EstimateOptions
from rapidnn.hardware.loader import load_hardware
from rapidnn.hardware.network import NetworkShape
from rapidnn.hardware.rapidnn import RapidnnHardware
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
                "notes": [*self.notes, *r.notes, *b.notes]}


def operand_bits(trace: Trace) -> tuple[int, int]:
    """(weight bits, input bits) of the composed model: ceil(log2) of its largest codebooks."""
    w = max((lt.weight_clusters for lt in trace.layers), default=2)
    u = max((lt.input_clusters for lt in trace.layers), default=2)
    return max(1, math.ceil(math.log2(max(2, w)))), max(1, math.ceil(math.log2(max(2, u))))


def precision_overrides(trace: Trace) -> dict[str, float]:
    """Overrides that run ISAAC, PipeLayer and the GPU at the composed operand widths (weights,
    inputs and the activations they buffer and move)."""
    wb, ub = operand_bits(trace)
    return {"isaac.weight_bits": wb, "isaac.input_bits": ub, "isaac.activation_bits": ub,
            "pipelayer.weight_bits": wb, "pipelayer.input_spikes": ub,
            "pipelayer.activation_bits": ub, "gpu.bytes_per_value": math.ceil(max(wb, ub) / 8)}


def _with(options: EstimateOptions, **update: Any) -> EstimateOptions:
    return options.model_copy(update=update)


def _area_per_block(hw: RapidnnHardware) -> float:
    return hw.area_mm2 / hw.blocks_per_chip


def rated_power_w(name: str, options: EstimateOptions) -> tuple[float, str]:
    """A design's rated chip power (its power budget) and where it comes from: ISAAC's
    component table, the GPU's board power, RAPIDNN's and PipeLayer's events at peak
    (``chip_summary``; PipeLayer publishes no chip power)."""
    summary = chip_summary(load_hardware(name).with_own_overrides(options.overrides))
    return float(summary["power_w"]), str(summary["power_basis"])


def evaluate(policy: str, trace: Trace, shape: NetworkShape, estimate: Estimator,
             baselines: Iterable[str] = BASELINES,
             options: EstimateOptions | None = None,
             rapidnn_spec: HardwareSpec | None = None) -> dict[str, Matchup]:
    """Every baseline against RAPIDNN under ``policy`` (module docstring)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown comparison policy {policy!r}; choose from "
                         f"{', '.join(POLICIES)}")
    opts = options or EstimateOptions()  # as published: the options' replication (balanced)
    if policy == "filled":
        opts = _with(opts, replication="fill")
    base_opts = opts
    if policy == "precision-matched":
        base_opts = _with(opts, overrides={**opts.overrides, **precision_overrides(trace)})
    mine = estimate(trace, "rapidnn", opts)
    hw = None if rapidnn_spec is None else RapidnnHardware.from_spec(rapidnn_spec)
    out: dict[str, Matchup] = {}
    for name in baselines:
        other = estimate(shape, name, base_opts)
        notes: list[str] = []
        r = mine
        if policy == "iso-area":
            if other.area_mm2:
                assert hw is not None, "iso-area needs the RAPIDNN spec"
                budget = other.area_mm2 / _area_per_block(hw)
                r = estimate(trace, "rapidnn", _with(opts, block_budget=budget))
                notes.append(f"RAPIDNN on {other.area_mm2:.3g} mm2 = {budget:,.0f} blocks")
            else:
                notes.append(f"{name} has no modelled area: as published")
        elif policy == "iso-power":
            assert hw is not None, "iso-power needs the RAPIDNN spec"
            mine_w, _ = rated_power_w("rapidnn", opts)
            theirs_w, basis = rated_power_w(name, base_opts)
            theirs_w *= other.chips
            per_block_w = mine_w / hw.blocks_per_chip
            budget = theirs_w / per_block_w
            r = estimate(trace, "rapidnn", _with(opts, block_budget=budget))
            notes.append(f"RAPIDNN on a {theirs_w:.3g} W budget ({name}'s {basis}) = "
                         f"{budget:,.0f} blocks at {per_block_w * 1e3:.3g} mW each (events at "
                         "peak)")
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
