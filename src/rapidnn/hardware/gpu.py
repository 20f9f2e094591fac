"""GPU baseline as a roofline (hardware-parameters.md §7; docs/hardware.md §6).

For layer l at batch B: ``FLOPs_l = 2 · MACs_l · B`` (pooling: ``window · outputs · B``
compares; activation: ``outputs · B``), ``bytes_l = b · (weights_l + B · (inputs_l + outputs_l))``,
``t_l = max(FLOPs_l / (peak · eff_c), bytes_l / (bandwidth · eff_m))``; per inference the time is
``t_l / B`` and the energy ``P_board · t_l / B``. Throughput ``B / Σ t_l``; latency ``Σ t_l``
(a whole batch finishes together).
"""

from __future__ import annotations

from rapidnn.hardware.estimate import Estimate, EstimateOptions, LayerEstimate
from rapidnn.hardware.network import LayerShape, NetworkShape
from rapidnn.hardware.spec import HardwareSpec

REQUIRED_PARAMETERS = (
    "peak_flops", "memory_bandwidth", "compute_efficiency", "memory_efficiency",
    "bytes_per_value", "batch",
)
REQUIRED_COMPONENTS = {"board": ["peak_power"]}


def layer_flops(layer: LayerShape) -> float:
    if layer.weighted:
        return 2.0 * layer.macs
    if layer.kind == "pool":
        return float(layer.output_values * max(1, layer.fan_in))
    return float(layer.output_values)


def layer_time_s(spec: HardwareSpec, layer: LayerShape, batch: int) -> float:
    """Roofline time of one batch through one layer."""
    peak = spec.param("peak_flops").si * spec.value("compute_efficiency")
    bw = spec.param("memory_bandwidth").si * spec.value("memory_efficiency")
    values = layer.weights + batch * (layer.input_values + layer.output_values)
    t_compute = layer_flops(layer) * batch / peak
    t_memory = values * spec.value("bytes_per_value") / bw
    return max(t_compute, t_memory)


def board_power_w(spec: HardwareSpec) -> float:
    return spec.comp("board").peak_power.si  # type: ignore[union-attr]


def peak_ops_per_s(spec: HardwareSpec) -> float:
    return spec.param("peak_flops").si


def estimate(net: NetworkShape, spec: HardwareSpec, options: EstimateOptions) -> Estimate:
    """Energy (board power × time), latency and throughput of ``net`` on the GPU."""
    batch = options.batch or int(spec.value("batch"))
    power = board_power_w(spec)
    layers = []
    total = 0.0
    for layer in net.layers:
        t = layer_time_s(spec, layer, batch)
        total += t
        e = power * t / batch
        layers.append(LayerEstimate(layer.name, layer.kind, e, t / batch, 0, 1, {"board": e}))
    thr = batch / total if total > 0 else float("inf")
    return Estimate(hardware=spec.name, model=spec.model, network=net.name, layers=layers,
                    energy_j=sum(x.energy_j for x in layers), static_energy_j=0.0,
                    latency_s=total, throughput_ips=thr, area_mm2=None,
                    notes=[f"roofline at batch {batch}"])
