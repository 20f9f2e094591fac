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
from dataclasses import dataclass
from typing import Annotated, ClassVar

from rapidnn.hardware.common import (
    PUBLISHED_ENERGY_NOTE,
    Events,
    assemble,
    crossbar_costs,
    peak_power,
    use_published_efficiency,
)
from rapidnn.hardware.estimate import ChipFigures, Estimate, EstimateOptions
from rapidnn.hardware.network import LayerShape, NetworkShape
from rapidnn.hardware.parts import MemorySubarray, MorphableArray
from rapidnn.hardware.views import Hardware, param, part, published


@dataclass(frozen=True)
class PipeLayerHardware(Hardware):
    """What the PipeLayer formulas read (presets/pipelayer.yaml; hardware-parameters.md §3)."""

    MODEL: ClassVar[str] = "pipelayer"

    array_rows: Annotated[int, param()]
    array_cols: Annotated[int, param()]
    bits_per_cell: Annotated[int, param()]
    weight_bits: Annotated[int, param()]
    input_spikes: Annotated[int, param()]
    activation_bits: Annotated[int, param()]
    memory_row_bits: Annotated[int, param()]
    morphable_array: Annotated[MorphableArray, part(count=True)]
    memory_subarray: Annotated[MemorySubarray, part()]
    gops_per_w: Annotated[float | None, published("gops_per_w", "GOPS/W")]


def slices(hw: PipeLayerHardware) -> int:
    return math.ceil(hw.weight_bits / hw.bits_per_cell)


def arrays_per_chip(hw: PipeLayerHardware) -> float:
    return hw.morphable_array.per_chip


def position_time_s(hw: PipeLayerHardware) -> float:
    """``t_pos = spikes × t_read``."""
    return hw.input_spikes * hw.morphable_array.read.latency


def layer_arrays(hw: PipeLayerHardware, layer: LayerShape) -> int:
    rb = math.ceil(layer.fan_in / hw.array_rows)
    cb = math.ceil(layer.out_channels / hw.array_cols)
    return rb * cb * slices(hw)


def layer_events(hw: PipeLayerHardware, layer: LayerShape) -> Events:
    b = hw.activation_bits / hw.memory_row_bits
    memory = hw.memory_subarray
    if layer.weighted:
        p = layer.positions
        return {
            hw.morphable_array.read: p * hw.input_spikes * layer_arrays(hw, layer),
            memory.write: p * layer.out_channels * b,
            memory.read: p * layer.fan_in * b,
        }
    if layer.kind == "pool":
        return {memory.read: layer.input_values * b, memory.write: layer.output_values * b}
    return {}


def peak_ops_per_s(hw: PipeLayerHardware) -> float:
    """arrays × rows × cols / s MACs × 2 ops per ``t_pos``."""
    macs = hw.array_rows * hw.array_cols / slices(hw)
    return arrays_per_chip(hw) * macs * 2 / position_time_s(hw)


def chip_figures(hw: PipeLayerHardware) -> ChipFigures:
    """Peak ops/s, power and area; the power is the component table's when the file gives one,
    otherwise (the preset: PipeLayer publishes no chip power) every array busy on a full-array
    layer."""
    layer = LayerShape("peak", "linear", fan_in=hw.array_rows, out_channels=hw.array_cols)
    power, basis = peak_power(hw, layer_events(hw, layer), position_time_s(hw),
                              arrays_per_chip(hw), layer_arrays(hw, layer))
    return ChipFigures(peak_ops_per_s(hw), power, basis, hw.area_mm2 or None)


def estimate(net: NetworkShape, hw: PipeLayerHardware, options: EstimateOptions) -> Estimate:
    """Energy, latency, throughput, area of ``net`` on PipeLayer."""
    costs = crossbar_costs(net, position_time_s(hw), lambda layer: layer_arrays(hw, layer),
                           lambda layer: layer_events(hw, layer))
    notes = ["integrate-and-fire, counters and spike drivers carry no energy "
             "(none in the reference)"]
    if options.baseline_energy == "published_efficiency":
        use_published_efficiency(costs, net, hw, hw.gops_per_w)
        notes = [PUBLISHED_ENERGY_NOTE]
    if options.gating != "gated":
        notes.append("PipeLayer publishes no chip power (its CE and PE imply 859 W, not "
                     "credible): idle power is not charged under gating="
                     f"{options.gating!r}")
    return assemble(hw, net.name, costs, arrays_per_chip(hw), options, notes)
