"""ISAAC (Shafiee et al., ISCA 2016) mapper: weight-stationary crossbars, balanced layer pipeline.

Formulas (hardware-parameters.md §2.5, §6.2; docs/hardware.md §4), for a weighted layer with
fan-in F, C output channels and P output positions:

* columns per weight ``c_w = weight_bits / bits_per_cell`` (16 / 2 = 8);
* crossbars per copy ``n = ceil(F / rows) · ceil(C · c_w / cols)``;
* time per output position ``t_pos = input_bits · t_cycle`` (16 × 100 ns = 1.6 µs);
* stage work ``W = P · t_pos``, replicated up to P copies (ISAAC balances the pipeline);
* events per inference: crossbar reads ``P · b_in · n``; DAC row drives ``P · b_in · F · cb``;
  ADC conversions = S&H samples = IMA shift-adds ``P · b_in · rb · C · c_w``; IMA register
  cycles ``crossbar reads / crossbars_per_ima``; tile register cycles ``... / crossbars_per_tile``;
  tile shift-adds ``P · C · (rb − 1)``; eDRAM 256-bit accesses ``P · (F + C) · b_act / 256``;
  bus bits ``P · F · b_act``; router transfers ``P · C · b_act / 256``; HyperTransport
  transfers for the network's input and output ``(inputs + outputs) · b_act / 128``;
  sigmoid ops per activation value; max-pool compares ``P · C · (window − 1)``.
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
from rapidnn.hardware.components import FRACTION
from rapidnn.hardware.estimate import ChipFigures, Estimate, EstimateOptions
from rapidnn.hardware.network import LayerShape, NetworkShape
from rapidnn.hardware.parts import (
    Adc,
    Bus,
    Crossbar,
    Dac,
    Edram,
    Link,
    Register,
    SampleHold,
    Unit,
)
from rapidnn.hardware.views import Hardware, param, part, published


@dataclass(frozen=True)
class IsaacHardware(Hardware):
    """What the ISAAC formulas read (presets/isaac.yaml; hardware-parameters.md §2)."""

    MODEL: ClassVar[str] = "isaac"

    crossbar_rows: Annotated[int, param()]
    crossbar_cols: Annotated[int, param()]
    bits_per_cell: Annotated[int, param()]
    weight_bits: Annotated[int, param()]
    input_bits: Annotated[int, param()]
    activation_bits: Annotated[int, param()]
    crossbar_cycle_s: Annotated[float, param("crossbar_cycle_ns", unit="s")]
    imas_per_tile: Annotated[int, param()]
    edram_access_bits: Annotated[int, param()]
    router_transfer_bits: Annotated[int, param()]
    link_transfer_bits: Annotated[int, param()]
    idle_leakage_fraction: Annotated[float, param(kind=FRACTION)]  # of rated power; 0: none
    crossbar: Annotated[Crossbar, part()]
    adc: Annotated[Adc, part()]
    dac: Annotated[Dac, part()]
    sample_hold: Annotated[SampleHold, part()]
    ima_shift_add: Annotated[Unit, part()]
    ima_input_register: Annotated[Register, part()]
    ima_output_register: Annotated[Register, part()]
    edram: Annotated[Edram, part()]
    edram_bus: Annotated[Bus, part()]
    router: Annotated[Link, part()]
    sigmoid: Annotated[Unit, part()]
    tile_shift_add: Annotated[Unit, part()]
    maxpool: Annotated[Unit, part()]
    tile_output_register: Annotated[Register, part()]
    hypertransport: Annotated[Link, part()]
    gops_per_w: Annotated[float | None, published("gops_per_w", "GOPS/W")]


def cols_per_weight(hw: IsaacHardware) -> int:
    return math.ceil(hw.weight_bits / hw.bits_per_cell)


def crossbars_per_chip(hw: IsaacHardware) -> float:
    return hw.crossbar.per_chip


def position_time_s(hw: IsaacHardware) -> float:
    """``t_pos = input_bits × crossbar cycle``."""
    return hw.input_bits * hw.crossbar_cycle_s


def layer_blocks(hw: IsaacHardware, layer: LayerShape) -> tuple[int, int]:
    """(row blocks, column blocks) of one copy of a weighted layer."""
    rb = math.ceil(layer.fan_in / hw.crossbar_rows)
    cb = math.ceil(layer.out_channels * cols_per_weight(hw) / hw.crossbar_cols)
    return rb, cb


def layer_events(hw: IsaacHardware, layer: LayerShape) -> Events:
    """Component actions per inference for one layer (module docstring)."""
    p, f, c = layer.positions, layer.fan_in, layer.out_channels
    b_in = hw.input_bits
    b_act = hw.activation_bits
    edram_bits = hw.edram_access_bits
    ev: Events = {}
    if layer.weighted:
        rb, cb = layer_blocks(hw, layer)
        reads = p * b_in * rb * cb
        conversions = p * b_in * rb * c * cols_per_weight(hw)
        per_ima = hw.crossbar.count
        per_tile = per_ima * hw.imas_per_tile
        ev = {
            hw.crossbar.read: reads,
            hw.dac.drive: p * b_in * f * cb,
            hw.adc.convert: conversions,
            hw.sample_hold.sample: conversions,
            hw.ima_shift_add.op: conversions,
            hw.ima_input_register.cycle: reads / per_ima,
            hw.ima_output_register.cycle: reads / per_ima,
            hw.tile_output_register.cycle: reads / per_tile,
            hw.tile_shift_add.op: p * c * (rb - 1),
            hw.edram.access: p * (f + c) * b_act / edram_bits,
            hw.edram_bus.bit: p * f * b_act,
            hw.router.transfer: p * c * b_act / hw.router_transfer_bits,
        }
    elif layer.kind == "activation":
        ev = {hw.sigmoid.op: layer.output_values}
    elif layer.kind == "pool":
        ev = {
            hw.maxpool.op: layer.output_values * max(0, layer.fan_in - 1),
            hw.edram.access: (layer.input_values + layer.output_values) * b_act / edram_bits,
        }
    return ev


def peak_ops_per_s(hw: IsaacHardware) -> float:
    """Chip peak: crossbars × rows × (cols / c_w) MACs × 2 ops per ``t_pos`` (§2.4)."""
    macs = hw.crossbar_rows * hw.crossbar_cols / cols_per_weight(hw)
    return crossbars_per_chip(hw) * macs * 2 / position_time_s(hw)


def chip_figures(hw: IsaacHardware) -> ChipFigures:
    """Peak ops/s, power (the component table; without one, every crossbar busy on a
    full-crossbar layer) and area."""
    layer = LayerShape("peak", "linear", fan_in=hw.crossbar_rows,
                       out_channels=hw.crossbar_cols // cols_per_weight(hw))
    power, basis = peak_power(hw, layer_events(hw, layer), position_time_s(hw),
                              crossbars_per_chip(hw), 1)
    return ChipFigures(peak_ops_per_s(hw), power, basis, hw.area_mm2 or None)


def estimate(net: NetworkShape, hw: IsaacHardware, options: EstimateOptions) -> Estimate:
    """Energy, latency, throughput, area of ``net`` on ISAAC."""
    costs = crossbar_costs(net, position_time_s(hw),
                           lambda layer: math.prod(layer_blocks(hw, layer)),
                           lambda layer: layer_events(hw, layer))
    if costs:
        io_values = net.layers[0].input_values + net.layers[-1].output_values
        costs[0].events[hw.hypertransport.transfer] = (io_values * hw.activation_bits
                                                       / hw.link_transfer_bits)
    notes: list[str] = []
    if options.baseline_energy == "published_efficiency":
        use_published_efficiency(costs, net, hw, hw.gops_per_w)
        notes.append(PUBLISHED_ENERGY_NOTE)
    return assemble(hw, net.name, costs, crossbars_per_chip(hw), options, notes,
                    rated_w=rated_power_w(hw), idle_leakage_fraction=hw.idle_leakage_fraction)


def rated_power_w(hw: IsaacHardware) -> float:
    """Chip power with nothing gated: the component table's total (65.8 W, hardware-parameters
    §2.2), used by ``gating="ungated"``."""
    return hw.table_power_w or 0.0
