"""One network, four architectures: ``rapidnn.estimate`` and ``rapidnn.compare``.

RAPIDNN is estimated from the Trace of simulating the composed model; the baselines (ISAAC,
PipeLayer, GPU) run the same network's float shapes (16-bit weights, as in their papers), which
``NetworkShape.from_trace`` derives from the same Trace, so every architecture sees exactly the
same layers. Formulas and parameters: ``docs/hardware.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from rapidnn.accel.config import SimConfig
from rapidnn.accel.simulator import simulate
from rapidnn.accel.trace import Trace
from rapidnn.composed import ComposedModel
from rapidnn.hardware import (
    Estimate,
    EstimateOptions,
    HardwareSpec,
    NetworkShape,
    compare_estimates,
    estimate_network,
    network_from_module,
    sensitivity,
)

BASELINES = ("isaac", "pipelayer", "gpu")


def example_inputs(composed: ComposedModel, batch: int = 16, seed: int = 0) -> torch.Tensor:
    """A seeded batch whose values are the raw-input codebook's centroids, drawn uniformly.

    Used when no inputs are given: the adder-tree Trace depends only on shapes, and the
    counting strategy's pair counts then reflect a spread of input codes.
    """
    cb = composed.codebooks[composed.source.input.name]
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, cb.size, (batch, *composed.source.input.shape), generator=gen)
    return cb.quantized()[codes].float()


def model_trace(composed: ComposedModel, inputs: torch.Tensor | None = None,
                sim_config: SimConfig | None = None) -> Trace:
    """Simulate ``composed`` (on ``inputs`` or :func:`example_inputs`) and return its Trace."""
    x = example_inputs(composed) if inputs is None else inputs
    cfg = (sim_config or SimConfig()).model_copy(update={"record_trace": True})
    res = simulate(composed, x, cfg)
    assert res.trace is not None
    return res.trace


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
    """RAPIDNN against each baseline on the same network (ratios above 1 favour RAPIDNN)."""

    network: str
    rapidnn: Estimate
    baselines: dict[str, Estimate]
    ratios: dict[str, dict[str, float]]
    trace: Trace
    sensitivity: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "rapidnn": _summary(self.rapidnn),
            "baselines": {name: {**self.ratios[name], **_summary(est)}
                          for name, est in self.baselines.items()},
            "sensitivity": self.sensitivity,
        }


def _summary(est: Estimate) -> dict[str, Any]:
    return {"energy_j": est.energy_j, "latency_s": est.latency_s,
            "throughput_ips": est.throughput_ips, "area_mm2": est.area_mm2,
            "power_w": est.power_w}


def compare(composed: ComposedModel, baselines: Iterable[str] = BASELINES,
            trace: Trace | None = None, config: EstimateOptions | Mapping[str, Any] | None = None,
            inputs: torch.Tensor | None = None, with_sensitivity: bool = False,
            name: str = "network") -> Comparison:
    """Energy-efficiency improvement and speedup of RAPIDNN over each baseline."""
    trace = trace or model_trace(composed, inputs)
    mine = estimate_network(trace, "rapidnn", config)
    shape = NetworkShape.from_trace(trace, name=name)
    others = {b: estimate_network(shape, b, config) for b in baselines}
    rows = sensitivity(trace, shape, top=10) if with_sensitivity else []
    return Comparison(name, mine, others, compare_estimates(mine, others), trace, rows)
