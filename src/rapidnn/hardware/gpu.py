"""GPU baseline as a roofline (hardware-parameters.md §7; docs/hardware.md §6).

For layer l at batch B: ``FLOPs_l = 2 · MACs_l · B`` (pooling: ``window · outputs · B``
compares; activation: ``outputs · B``), ``bytes_l = b · (weights_l + B · (inputs_l + outputs_l))``,
``t_l = max(FLOPs_l / (peak · eff_c), bytes_l / (bandwidth · eff_m))``; per inference the time is
``t_l / B`` and the energy ``P_board · t_l / B``. Throughput ``B / Σ t_l``; latency ``Σ t_l``
(a whole batch finishes together).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from rapidnn.hardware.components import EFFICIENCY, Kind
from rapidnn.hardware.estimate import ChipFigures, Estimate, EstimateOptions, LayerEstimate
from rapidnn.hardware.network import LayerShape, NetworkShape
from rapidnn.hardware.views import Hardware, Part, param, part

#: bytes moved per weight or activation; fractional for sub-byte values, never 0 (a network
#: that moves no data)
VALUE_BYTES = Kind("bytes per value", strict=True)


@dataclass(frozen=True)
class GpuHardware(Hardware):
    """What the roofline reads (presets/gpu.yaml; hardware-parameters.md §7)."""

    MODEL: ClassVar[str] = "gpu"

    peak_flops: Annotated[float, param(unit="FLOP/s")]
    memory_bandwidth: Annotated[float, param(unit="B/s")]
    compute_efficiency: Annotated[float, param(kind=EFFICIENCY)]
    memory_efficiency: Annotated[float, param(kind=EFFICIENCY)]
    bytes_per_value: Annotated[float, param(kind=VALUE_BYTES)]
    batch: Annotated[int, param()]
    board: Annotated[Part, part(peak_power=True)]


def layer_flops(layer: LayerShape) -> float:
    if layer.weighted:
        return 2.0 * layer.macs
    if layer.kind == "pool":
        return float(layer.output_values * max(1, layer.fan_in))
    return float(layer.output_values)


def layer_time_s(hw: GpuHardware, layer: LayerShape, batch: int) -> float:
    """Roofline time of one batch through one layer."""
    peak = hw.peak_flops * hw.compute_efficiency
    bw = hw.memory_bandwidth * hw.memory_efficiency
    values = layer.weights + batch * (layer.input_values + layer.output_values)
    t_compute = layer_flops(layer) * batch / peak
    t_memory = values * hw.bytes_per_value / bw
    return max(t_compute, t_memory)


def chip_figures(hw: GpuHardware) -> ChipFigures:
    """Peak FLOP/s and board power; no modelled area."""
    return ChipFigures(hw.peak_flops, hw.board.peak_power_w, "board power", None)


def estimate(net: NetworkShape, hw: GpuHardware, options: EstimateOptions) -> Estimate:
    """Energy (board power × time), latency and throughput of ``net`` on the GPU."""
    batch = options.batch or hw.batch
    power = hw.board.peak_power_w
    layers = []
    total = 0.0
    for layer in net.layers:
        t = layer_time_s(hw, layer, batch)
        total += t
        e = power * t / batch
        layers.append(LayerEstimate(layer.name, layer.kind, e, t / batch, 0, 1, {"board": e},
                                    actions={"board.energy": e}))
    thr = batch / total if total > 0 else float("inf")
    return Estimate(hardware=hw.name, model=hw.model, network=net.name, layers=layers,
                    energy_j=sum(x.energy_j for x in layers), static_energy_j=0.0,
                    latency_s=total, throughput_ips=thr, area_mm2=None,
                    notes=[f"roofline at batch {batch}"])
