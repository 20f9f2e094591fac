"""The hardware cost model: RAPIDNN, ISAAC, PipeLayer and GPU on the same networks.

Public API (docs/hardware.md):

* ``load_hardware(name_or_path) -> HardwareSpec`` — a preset (rapidnn, isaac, pipelayer, gpu) or a
  user YAML file; ``HardwareSpec.with_overrides({...})`` replaces single numbers;
* ``estimate_network(shape_or_trace, hardware, config) -> Estimate``;
* ``chip_summary(hardware) -> dict`` — peak GOPS, area, power, GOPS/mm², GOPS/W;
* ``synthetic_trace(shape, hardware)`` — RAPIDNN's analytical trace of a network shape;
* ``compare_estimates(rapidnn_est, baseline_ests) -> dict`` — energy efficiency, speed-up,
  latency ratio per baseline; ``summarize_comparisons`` — geometric means over networks;
* ``policies.evaluate_all`` — RAPIDNN against every baseline under matched, named policies;
  ``accounting.VARIANTS`` — how events are charged; ``audit.audit`` — the paper's ratios
  against every scenario, a wide sweep of every number and the smallest changes that reach them.

Modules, each importing only those before it (docs/hardware.md §2.5): ``components`` (Param,
Component) → ``spec`` (HardwareSpec, overrides) → ``views`` (typed views: Action, Part,
Hardware) → ``parts`` (component classes) → ``pipeline``, ``estimate``, ``network``, ``common``
→ one module per architecture, defining its view and its formulas (``rapidnn`` + ``mapper``,
``isaac``, ``pipelayer``, ``gpu``) → ``architectures`` (the registry: model name →
:class:`Architecture`) → ``loader`` (YAML, checked against the registry) → this package's API
→ ``accounting``, ``policies``, ``audit``, ``costs``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rapidnn.accel.trace import Trace
from rapidnn.hardware import rapidnn
from rapidnn.hardware.architectures import ARCHITECTURES, Architecture, architecture_of
from rapidnn.hardware.components import TAGS, Component, Param
from rapidnn.hardware.endurance import Endurance, lifetime
from rapidnn.hardware.estimate import Estimate, EstimateOptions, LayerEstimate
from rapidnn.hardware.loader import load_hardware
from rapidnn.hardware.network import (
    LayerShape,
    NetworkShape,
    mlp,
    network_from_module,
)
from rapidnn.hardware.spec import PRESETS, HardwareConfigError, HardwareSpec

__all__ = [
    "ARCHITECTURES",
    "PRESETS",
    "TAGS",
    "Architecture",
    "Component",
    "Endurance",
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
    "lifetime",
    "load_hardware",
    "mlp",
    "network_from_module",
    "summarize_comparisons",
    "synthetic_trace",
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
    arch = architecture_of(spec)
    return arch.estimate(shape_or_trace, arch.view(spec), opts)


def chip_summary(hardware: HardwareLike) -> dict[str, Any]:
    """Chip-level figures: peak GOPS, area, power, GOPS/mm², GOPS/W (+ published values).

    ``power_basis`` says where ``power_w`` comes from: "component table" (Σ peak power of the
    components, ISAAC), "events at peak" (every array/block busy on a full-array layer), or
    "board power" (GPU). Ops are 2 per MAC (16-bit for ISAAC/PipeLayer).
    """
    spec = load_hardware(hardware)
    arch = architecture_of(spec)
    fig = arch.chip_figures(arch.view(spec))
    gops = fig.peak_ops_per_s / 1e9
    area, power = fig.area_mm2, fig.power_w
    return {
        "name": spec.name,
        "model": spec.model,
        "peak_gops": gops,
        "area_mm2": area,
        "power_w": power,
        "power_basis": fig.power_basis,
        "gops_per_mm2": gops / area if area else None,
        "gops_per_w": gops / power if power else None,
        "published": {k: {"value": p.value, "unit": p.unit, "source": p.source}
                      for k, p in spec.published.items()},
    }


def synthetic_trace(shape: NetworkShape, hardware: HardwareLike = "rapidnn") -> Trace:
    """The synthetic trace of ``shape`` on a RAPIDNN description (``rapidnn.synthetic_trace``,
    docs/hardware.md §7.4)."""
    hw = rapidnn.RapidnnHardware.from_spec(load_hardware(hardware))
    return rapidnn.synthetic_trace(shape, hw)


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
