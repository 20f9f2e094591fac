"""One network, four architectures: ``rapidnn.estimate``, ``rapidnn.compare``, ``rapidnn.audit``.

RAPIDNN is estimated from the Trace of simulating the composed model; the baselines (ISAAC,
PipeLayer, GPU) run the same network's float shapes (16-bit weights, as in their papers), which
``NetworkShape.from_trace`` derives from the same Trace, so every architecture sees exactly the
same layers. Formulas and parameters: ``docs/hardware.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rapidnn.accel.simulator import model_trace
from rapidnn.accel.trace import Trace
from rapidnn.composer.composed import ComposedModel
from rapidnn.hardware import (
    Estimate,
    EstimateOptions,
    HardwareSpec,
    NetworkShape,
    compare_estimates,
    estimate_network,
    load_hardware,
    network_from_module,
)
from rapidnn.hardware.audit import FACTORS
from rapidnn.hardware.audit import audit as run_audit
from rapidnn.hardware.policies import POLICIES, Matchup, evaluate_all, ratios_table

BASELINES: tuple[str, ...] = ("isaac", "pipelayer", "gpu")


def estimate(model: ComposedModel | NetworkShape | torch.nn.Module,
             hardware: str | HardwareSpec = "rapidnn", trace: Trace | None = None,
             config: EstimateOptions | Mapping[str, Any] | None = None,
             inputs: torch.Tensor | None = None) -> Estimate:
    """Energy (J/inference), latency, throughput, area and power of ``model`` on ``hardware``.

    ``model`` is a ComposedModel (simulated unless ``trace`` is given), a NetworkShape, or a
    plain ``nn.Module`` (then ``inputs`` is needed to record its shapes).
    """
    if isinstance(model, ComposedModel):
        return estimate_network(trace or model_trace(model, inputs), hardware, config)
    if isinstance(model, NetworkShape):
        return estimate_network(model, hardware, config)
    if isinstance(model, torch.nn.Module):
        if inputs is None:
            raise ValueError("estimating a plain nn.Module needs example inputs")
        return estimate_network(network_from_module(model, inputs), hardware, config)
    raise TypeError(f"cannot estimate a {type(model).__name__}")


@dataclass
class Comparison:
    """RAPIDNN against each baseline on the same network (ratios above 1 favour RAPIDNN).

    ``rapidnn`` / ``baselines``: the as-published estimates; ``before``: RAPIDNN with the dense
    layout (every row slot filled, the layout before the mapper); ``policies``: every matched
    policy (``rapidnn.hardware.policies``) against every baseline.
    """

    network: str
    rapidnn: Estimate
    baselines: dict[str, Estimate]
    trace: Trace
    before: Estimate
    policies: dict[str, dict[str, Matchup]] = field(default_factory=dict)

    @property
    def ratios(self) -> dict[str, dict[str, float]]:
        """As-published ratios per baseline."""
        return compare_estimates(self.rapidnn, self.baselines)

    def to_dict(self) -> dict[str, Any]:
        ratios = self.ratios
        return {
            "network": self.network,
            "policies": ratios_table(self.policies),
            "rapidnn": {**_summary(self.rapidnn), **_mapping_summary(self.rapidnn),
                        "before": {**_summary(self.before), **_mapping_summary(self.before)},
                        "layers": [{"name": lay.name, "kind": lay.kind, **lay.mapping}
                                   for lay in self.rapidnn.layers if lay.mapping]},
            "baselines": {name: {**ratios[name], **_summary(est)}
                          for name, est in self.baselines.items()},
        }


def _summary(est: Estimate) -> dict[str, Any]:
    return {"energy_j": est.energy_j, "latency_s": est.latency_s,
            "throughput_ips": est.throughput_ips, "area_mm2": est.area_mm2,
            "power_w": est.power_w, "notes": list(est.notes)}


def _mapping_summary(est: Estimate) -> dict[str, Any]:
    """Row occupancy (fraction of all chip rows busy on average), its bound (all rows busy)
    and the throughput that bound would allow."""
    occ = est.row_occupancy
    return {"row_occupancy": occ, "occupancy_bound": 1.0,
            "throughput_at_full_occupancy_ips": est.throughput_ips / occ if occ else None,
            "blocks_used": est.units_used, "blocks_available": est.units_available}


def compare(composed: ComposedModel, baselines: Iterable[str] = BASELINES,
            trace: Trace | None = None, config: EstimateOptions | Mapping[str, Any] | None = None,
            inputs: torch.Tensor | None = None, name: str = "network",
            policies: Iterable[str] = POLICIES) -> Comparison:
    """Energy-efficiency improvement and speedup of RAPIDNN over each baseline, as published
    and under every matched policy (``rapidnn.hardware.policies``), in one run."""
    trace = trace or model_trace(composed, inputs)
    opts = EstimateOptions.coerce(config)
    mine = estimate_network(trace, "rapidnn", opts)
    before = estimate_network(trace, "rapidnn", opts.model_copy(update={"mapping": "dense"}))
    shape = NetworkShape.from_trace(trace, name=name)
    names = list(baselines)
    others = {b: estimate_network(shape, b, opts) for b in names}
    spec = load_hardware("rapidnn").with_own_overrides(opts.overrides)
    per_policy = evaluate_all(trace, shape, estimate_network, policies, names, opts, spec)
    return Comparison(name, mine, others, trace, before, per_policy)


def audit(composed: ComposedModel, trace: Trace | None = None,
          config: EstimateOptions | Mapping[str, Any] | None = None,
          inputs: torch.Tensor | None = None, name: str = "network",
          sweep_keys: Sequence[str] | None = None,
          factors: Sequence[float] = FACTORS) -> dict[str, Any]:
    """The audit of the paper's ratios on ``composed`` (``rapidnn.hardware.audit``)."""
    trace = trace or model_trace(composed, inputs)
    shape = NetworkShape.from_trace(trace, name=name)
    return run_audit(trace, shape, estimate_network, EstimateOptions.coerce(config), sweep_keys,
                     factors)
