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
    "crossbar_rows", "crossbar_cols", "bits_per_cell", "weight_bits", "input_bits",
    "activation_bits", "crossbar_cycle_ns", "imas_per_tile", "tiles_per_chip",
    "edram_access_bits", "router_transfer_bits", "link_transfer_bits",
)
REQUIRED_COMPONENTS = {
    "crossbar": ["energy.read"], "adc": ["energy.convert"], "dac": ["energy.drive"],
    "sample_hold": ["energy.sample"], "ima_shift_add": ["energy.op"],
    "ima_input_register": ["energy.cycle"], "ima_output_register": ["energy.cycle"],
    "edram": ["energy.access"], "edram_bus": ["energy.bit"], "router": ["energy.transfer"],
    "sigmoid": ["energy.op"], "tile_shift_add": ["energy.op"], "maxpool": ["energy.op"],
    "tile_output_register": ["energy.cycle"], "hypertransport": ["energy.transfer"],
}


def cols_per_weight(spec: HardwareSpec) -> int:
    return math.ceil(spec.value("weight_bits") / spec.value("bits_per_cell"))


def crossbars_per_chip(spec: HardwareSpec) -> float:
    return spec.per_chip("crossbar")


def position_time_s(spec: HardwareSpec) -> float:
    """``t_pos = input_bits × crossbar cycle``."""
    return spec.value("input_bits") * spec.value("crossbar_cycle_ns", "s")


def layer_blocks(spec: HardwareSpec, layer: LayerShape) -> tuple[int, int]:
    """(row blocks, column blocks) of one copy of a weighted layer."""
    rb = math.ceil(layer.fan_in / spec.value("crossbar_rows"))
    cb = math.ceil(layer.out_channels * cols_per_weight(spec) / spec.value("crossbar_cols"))
    return rb, cb


def layer_events(spec: HardwareSpec, layer: LayerShape) -> Events:
    """Component actions per inference for one layer (module docstring)."""
    p, f, c = layer.positions, layer.fan_in, layer.out_channels
    b_in = spec.value("input_bits")
    b_act = spec.value("activation_bits")
    edram_bits = spec.value("edram_access_bits")
    ev: Events = {}
    if layer.weighted:
        rb, cb = layer_blocks(spec, layer)
        reads = p * b_in * rb * cb
        conversions = p * b_in * rb * c * cols_per_weight(spec)
        per_ima = spec.comp("crossbar").n
        per_tile = per_ima * spec.value("imas_per_tile")
        ev = {
            "crossbar.read": reads,
            "dac.drive": p * b_in * f * cb,
            "adc.convert": conversions,
            "sample_hold.sample": conversions,
            "ima_shift_add.op": conversions,
            "ima_input_register.cycle": reads / per_ima,
            "ima_output_register.cycle": reads / per_ima,
            "tile_output_register.cycle": reads / per_tile,
            "tile_shift_add.op": p * c * (rb - 1),
            "edram.access": p * (f + c) * b_act / edram_bits,
            "edram_bus.bit": p * f * b_act,
            "router.transfer": p * c * b_act / spec.value("router_transfer_bits"),
        }
    elif layer.kind == "activation":
        ev = {"sigmoid.op": layer.output_values}
    elif layer.kind == "pool":
        ev = {
            "maxpool.op": layer.output_values * max(0, layer.fan_in - 1),
            "edram.access": (layer.input_values + layer.output_values) * b_act / edram_bits,
        }
    return ev


def peak_ops_per_s(spec: HardwareSpec) -> float:
    """Chip peak: crossbars × rows × (cols / c_w) MACs × 2 ops per ``t_pos`` (§2.4)."""
    macs = spec.value("crossbar_rows") * spec.value("crossbar_cols") / cols_per_weight(spec)
    return crossbars_per_chip(spec) * macs * 2 / position_time_s(spec)


def estimate(net: NetworkShape, spec: HardwareSpec, options: EstimateOptions) -> Estimate:
    """Energy, latency, throughput, area of ``net`` on ISAAC."""
    costs = crossbar_costs(net, spec, position_time_s(spec),
                           lambda layer: math.prod(layer_blocks(spec, layer)),
                           lambda layer: layer_events(spec, layer))
    if costs:
        io_values = net.layers[0].input_values + net.layers[-1].output_values
        link = io_values * spec.value("activation_bits") / spec.value("link_transfer_bits")
        costs[0].events["hypertransport.transfer"] = link
    notes: list[str] = []
    if options.baseline_energy == "published_efficiency":
        use_published_efficiency(costs, net, spec)
        notes.append(PUBLISHED_ENERGY_NOTE)
    return assemble(spec, net.name, costs, crossbars_per_chip(spec), options, notes,
                    rated_w=rated_power_w(spec))


def rated_power_w(spec: HardwareSpec) -> float:
    """Chip power with nothing gated: the component table's total (65.8 W, hardware-parameters
    §2.2), used by ``gating="ungated"``."""
    return spec.table_power_w() or 0.0
