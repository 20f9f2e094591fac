"""PipeLayer (Song et al., HPCA 2017) mapper, inference only.

Formulas (hardware-parameters.md §3, §6.2; docs/hardware.md §5), weighted layer with fan-in F,
C output channels, P output positions:

* weight slices ``s = weight_bits / bits_per_cell`` (16 / 4 = 4 arrays per 16-bit kernel column;
  one kernel per bit line, e.g. 1152 × 256 → 9 × 2 arrays per slice);
* arrays per copy ``n = ceil(F / rows) · ceil(C / cols) · s``;
* time per output position ``t_pos = spikes · t_read`` (16 weighted spikes × 29.31 ns);
* stage work ``W = P · t_pos``; duplication G ≤ P copies ("parallelism granularity");
* events per inference: array reads ``P · spikes · n`` (1.08 pJ each); intermediate data written
  to memory subarrays ``P · C · b_act / row_bits`` row writes (3.91 nJ each) and read back
  ``P · F · b_act / row_bits`` row reads. Integrate-and-fire, counters and spike drivers have no
  energy in the reference and are not charged (docs/hardware.md §5).
"""

from __future__ import annotations

import math

from rapidnn.hardware.common import (
    PUBLISHED_ENERGY_NOTE,
    Events,
    assemble,
    crossbar_costs,
    use_published_efficiency,
)
from rapidnn.hardware.estimate import Estimate, EstimateOptions
from rapidnn.hardware.network import LayerShape, NetworkShape
from rapidnn.hardware.spec import HardwareSpec

REQUIRED_PARAMETERS = (
    "array_rows", "array_cols", "bits_per_cell", "weight_bits", "input_spikes",
    "activation_bits", "memory_row_bits",
)
REQUIRED_COMPONENTS = {
    "morphable_array": ["count", "energy.read", "latency.read"],
    "memory_subarray": ["energy.read", "energy.write"],
}


def slices(spec: HardwareSpec) -> int:
    return math.ceil(spec.value("weight_bits") / spec.value("bits_per_cell"))


def arrays_per_chip(spec: HardwareSpec) -> float:
    return spec.per_chip("morphable_array")


def position_time_s(spec: HardwareSpec) -> float:
    """``t_pos = spikes × t_read``."""
    return spec.value("input_spikes") * spec.comp("morphable_array").latency_s("read")


def layer_arrays(spec: HardwareSpec, layer: LayerShape) -> int:
    rb = math.ceil(layer.fan_in / spec.value("array_rows"))
    cb = math.ceil(layer.out_channels / spec.value("array_cols"))
    return rb * cb * slices(spec)


def layer_events(spec: HardwareSpec, layer: LayerShape) -> Events:
    b = spec.value("activation_bits") / spec.value("memory_row_bits")
    if layer.weighted:
        p = layer.positions
        return {
            "morphable_array.read": p * spec.value("input_spikes") * layer_arrays(spec, layer),
            "memory_subarray.write": p * layer.out_channels * b,
            "memory_subarray.read": p * layer.fan_in * b,
        }
    if layer.kind == "pool":
        return {"memory_subarray.read": layer.input_values * b,
                "memory_subarray.write": layer.output_values * b}
    return {}


def peak_ops_per_s(spec: HardwareSpec) -> float:
    """arrays × rows × cols / s MACs × 2 ops per ``t_pos``."""
    macs = spec.value("array_rows") * spec.value("array_cols") / slices(spec)
    return arrays_per_chip(spec) * macs * 2 / position_time_s(spec)


def estimate(net: NetworkShape, spec: HardwareSpec, options: EstimateOptions) -> Estimate:
    """Energy, latency, throughput, area of ``net`` on PipeLayer."""
    costs = crossbar_costs(net, spec, position_time_s(spec),
                           lambda layer: layer_arrays(spec, layer),
                           lambda layer: layer_events(spec, layer))
    notes = ["integrate-and-fire, counters and spike drivers carry no energy "
             "(none in the reference)"]
    if options.baseline_energy == "published_efficiency":
        use_published_efficiency(costs, net, spec)
        notes = [PUBLISHED_ENERGY_NOTE]
    if options.gating != "gated":
        notes.append("PipeLayer publishes no chip power (its CE and PE imply 859 W, not "
                     "credible): idle power is not charged under gating="
                     f"{options.gating!r}")
    return assemble(spec, net.name, costs, arrays_per_chip(spec), options, notes)
