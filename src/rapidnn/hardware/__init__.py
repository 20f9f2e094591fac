"""The hardware cost model: RAPIDNN, ISAAC, PipeLayer and GPU on the same networks.

Public API (docs/hardware.md):

* ``load_hardware(name_or_path) -> HardwareSpec`` — a preset (rapidnn, isaac, pipelayer, gpu) or a
  user YAML file; ``HardwareSpec.with_overrides({...})`` replaces single numbers;
* ``estimate_network(shape_or_trace, hardware, config) -> Estimate``;
* ``chip_summary(hardware) -> dict`` — peak GOPS, area, power, GOPS/mm², GOPS/W;
* ``compare_estimates(rapidnn_est, baseline_ests) -> dict`` — energy efficiency, speed-up,
  latency ratio per baseline; ``summarize_comparisons`` — geometric means over networks;
* ``policies.evaluate_all`` — RAPIDNN against every baseline under matched, named policies;
  ``accounting.VARIANTS`` — how events are charged; ``audit.audit`` — the paper's ratios
  against every scenario, a wide sweep of every number and the smallest changes that reach them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rapidnn.accel.trace import Trace
from rapidnn.hardware import gpu, isaac, mapper, pipelayer, rapidnn
from rapidnn.hardware.components import TAGS, Component, Param
from rapidnn.hardware.estimate import Estimate, EstimateOptions, LayerEstimate
from rapidnn.hardware.network import (
    LayerShape,
    NetworkShape,
    mlp,
    network_from_module,
)
from rapidnn.hardware.spec import PRESETS, HardwareConfigError, HardwareSpec, load_hardware

__all__ = [
    "PRESETS",
    "TAGS",
    "Component",
    "Estimate",
    "EstimateOptions",
    "HardwareConfigError",
    "HardwareSpec",
    "LayerEstimate",
    "LayerShape",
    "NetworkShape",
    "Param",
    "chip_summary",
    "compare_estimates",
    "estimate_network",
    "load_hardware",
    "mlp",
    "network_from_module",
    "summarize_comparisons",
]

HardwareLike = str | Path | HardwareSpec


def estimate_network(shape_or_trace: NetworkShape | Trace, hardware: HardwareLike = "rapidnn",
                     config: EstimateOptions | Mapping[str, Any] | None = None) -> Estimate:
    """Estimate one network on one architecture.

    RAPIDNN reads a Trace (a NetworkShape is first turned into a synthetic trace); the baselines
    read a NetworkShape (a Trace is first turned into shapes with ``NetworkShape.from_trace``).
    ``config``: ``EstimateOptions`` or a dict of its fields (replication, latency_mode, chips,
    overrides, baseline_energy, batch). Override keys prefixed with another preset's name
    (``"isaac.tiles_per_chip"`` while estimating RAPIDNN) are ignored, so one config serves a
    whole comparison.
    """
    spec = load_hardware(hardware)
    opts = EstimateOptions.coerce(config)
    if opts.overrides:
        spec = spec.with_own_overrides(opts.overrides)
    if spec.model == "rapidnn":
        if isinstance(shape_or_trace, NetworkShape):
            trace = rapidnn.synthetic_trace(shape_or_trace, spec)
            return mapper.estimate(trace, spec, opts, network=shape_or_trace.name)
        return mapper.estimate(shape_or_trace, spec, opts)
    net = (shape_or_trace if isinstance(shape_or_trace, NetworkShape)
           else NetworkShape.from_trace(shape_or_trace))
    baseline = {"isaac": isaac, "pipelayer": pipelayer, "gpu": gpu}[spec.model]
    return baseline.estimate(net, spec, opts)


def _event_power(spec: HardwareSpec, mod: Any, units_per_chip: float) -> float:
    """Power with every array busy: one full-array linear layer's events per t_pos, tiled."""
    if spec.model == "isaac":
        layer = LayerShape("peak", "linear", fan_in=int(spec.value("crossbar_rows")),
                           out_channels=int(spec.value("crossbar_cols")
                                            // isaac.cols_per_weight(spec)))
        units = 1
    else:
        layer = LayerShape("peak", "linear", fan_in=int(spec.value("array_rows")),
                           out_channels=int(spec.value("array_cols")))
        units = pipelayer.layer_arrays(spec, layer)
    events = mod.layer_events(spec, layer)
    energy = sum(n * spec.comp(k.split(".")[0]).energy_j(k.split(".")[1])
                 for k, n in events.items() if n)
    return energy / mod.position_time_s(spec) * units_per_chip / units + spec.leakage_w()


def chip_summary(hardware: HardwareLike) -> dict[str, Any]:
    """Chip-level figures: peak GOPS, area, power, GOPS/mm², GOPS/W (+ published values).

    ``power_basis`` says where ``power_w`` comes from: "component table" (Σ peak power of the
    components, ISAAC), "events at peak" (every array/block busy on a full-array layer), or
    "board power" (GPU). Ops are 2 per MAC (16-bit for ISAAC/PipeLayer).
    """
    spec = load_hardware(hardware)
    area: float | None = spec.chip_area_mm2() or None
    if spec.model == "rapidnn":
        ops, power = rapidnn.peak_figures(spec)
        basis = "events at peak"
    elif spec.model == "gpu":
        ops, power, basis, area = gpu.peak_ops_per_s(spec), gpu.board_power_w(spec), \
            "board power", None
    else:
        mod = isaac if spec.model == "isaac" else pipelayer
        ops = mod.peak_ops_per_s(spec)
        units = isaac.crossbars_per_chip(spec) if mod is isaac else pipelayer.arrays_per_chip(spec)
        event_power = _event_power(spec, mod, units)
        table = spec.table_power_w()
        power, basis = (table, "component table") if table else (event_power, "events at peak")
    gops = ops / 1e9
    return {
        "name": spec.name,
        "model": spec.model,
        "peak_gops": gops,
        "area_mm2": area,
        "power_w": power,
        "power_basis": basis,
        "gops_per_mm2": gops / area if area else None,
        "gops_per_w": gops / power if power else None,
        "published": {k: {"value": p.value, "unit": p.unit, "source": p.source}
                      for k, p in spec.published.items()},
    }


def compare_estimates(rapidnn_est: Estimate,
                      baseline_ests: Mapping[str, Estimate] | Iterable[Estimate]
                      ) -> dict[str, dict[str, float]]:
    """Per baseline: ``energy_efficiency = E_base / E_rapidnn`` (energy per inference),
    ``speedup = throughput_rapidnn / throughput_base`` and
    ``latency_ratio = latency_base / latency_rapidnn``."""
    items = (baseline_ests.items() if isinstance(baseline_ests, Mapping)
             else ((e.hardware, e) for e in baseline_ests))
    out: dict[str, dict[str, float]] = {}
    for name, b in items:
        out[name] = {
            "energy_efficiency": b.energy_j / rapidnn_est.energy_j,
            "speedup": rapidnn_est.throughput_ips / b.throughput_ips,
            "latency_ratio": b.latency_s / rapidnn_est.latency_s,
        }
    return out


def summarize_comparisons(per_network: Sequence[Mapping[str, Mapping[str, float]]]
                          ) -> dict[str, dict[str, float]]:
    """Geometric mean of every ratio over networks (decision E2: per-network ratios + geomean)."""
    acc: dict[str, dict[str, list[float]]] = {}
    for comp in per_network:
        for base, ratios in comp.items():
            for k, v in ratios.items():
                acc.setdefault(base, {}).setdefault(k, []).append(v)
    return {b: {k: math.exp(sum(math.log(x) for x in v) / len(v)) for k, v in d.items()}
            for b, d in acc.items()}
