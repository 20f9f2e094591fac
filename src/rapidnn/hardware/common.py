"""Glue shared by the array mappers: events → energy, stages → pipeline → ``Estimate``.

Energy per inference (hardware-parameters.md §6.2; docs/hardware.md §3):
``E = Σ_layers Σ_(component, action) count × E_action + P_static × chips / throughput``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rapidnn.hardware import pipeline
from rapidnn.hardware.estimate import Estimate, EstimateOptions, LayerEstimate
from rapidnn.hardware.network import LayerShape, NetworkShape
from rapidnn.hardware.spec import HardwareConfigError
from rapidnn.hardware.views import Action, Hardware

Events = dict[Action, float]  # action -> count per inference


@dataclass
class LayerCost:
    """What a mapper computed for one layer before pipelining."""

    name: str
    kind: str
    events: Events = field(default_factory=dict)
    stage: pipeline.Stage | None = None
    energy_override_j: float | None = None  # e.g. ops / published GOPS/W
    mapping: dict[str, Any] = field(default_factory=dict)  # reported layout (RAPIDNN)


def event_energy(events: Events) -> tuple[float, dict[str, float]]:
    """Σ count × energy per action, and the same split by component (J)."""
    total = 0.0
    by_comp: dict[str, float] = {}
    for action, count in events.items():
        if not count:
            continue
        e = count * action.energy
        total += e
        by_comp[action.component] = by_comp.get(action.component, 0.0) + e
    return total, by_comp


def action_energy(events: Events) -> dict[str, float]:
    """Σ count × energy per action, split by ``"component.action"`` (J): the finer split of
    ``event_energy`` (one component, RAPIDNN's RNA block, does several kinds of work)."""
    out: dict[str, float] = {}
    for action, count in events.items():
        if count:
            out[action.key] = out.get(action.key, 0.0) + count * action.energy
    return out


def peak_power(hw: Hardware, events: Events, t_pos: float, units_per_chip: float,
               units: int) -> tuple[float, str]:
    """Chip power and its basis for ``chip_summary``: the component table's total when the file
    gives peak powers (ISAAC, hardware-parameters.md §2.2), otherwise every array busy: the
    events of a full-array layer (``units`` arrays per copy) per ``t_pos``, tiled over the chip,
    plus leakage."""
    if hw.table_power_w:
        return hw.table_power_w, "component table"
    energy = event_energy(events)[0]
    return energy / t_pos * units_per_chip / units + hw.leakage_w, "events at peak"


def chips_for(options: EstimateOptions, needed: int, notes: list[str]) -> int:
    """Chips to use: the requested number, or the fewest that hold the network (noted)."""
    chips = options.chips or needed
    if chips < needed:
        notes.append(f"{options.chips} chip(s) requested but one copy of the network needs "
                     f"{needed}; using {needed}")
        chips = needed
    elif options.chips is None and needed > 1:
        notes.append(f"the network does not fit one chip; using {needed} chips")
    return chips


def assemble(hw: Hardware, network: str, costs: list[LayerCost], units_per_chip: float,
             options: EstimateOptions, notes: list[str] | None = None, *,
             reps: list[int] | None = None, chips: int | None = None,
             static_w: float | None = None, rated_w: float | None = None,
             idle_leakage_fraction: float = 0.0, budget: float | None = None) -> Estimate:
    """Replicate, pipeline and sum the layer costs into an ``Estimate``.

    ``reps`` / ``chips`` / ``budget``: copies per stage, chips and units already chosen by a
    mapper (None: ``pipeline.replicate`` under the policy on the fewest chips). Static energy per
    inference is ``static_w × chips / throughput`` (None: the chip's leakage); a design with a
    ``rated_w`` chip power draws, under ``gating="ungated"``, at least that all the time
    (``E = max(E_dyn + E_static, rated_w × chips / throughput)``) and, under ``"leakage"``,
    ``idle_leakage_fraction × rated_w × used / available`` on top of its dynamic energy (the
    units in use leak, as RAPIDNN's tiles in use do).
    """
    notes = list(notes or [])
    stages = [c.stage for c in costs if c.stage is not None]
    if chips is None:
        needed = pipeline.chips_needed(stages, units_per_chip) if stages else 1
        chips = chips_for(options, needed, notes)
    if budget is None:
        budget = units_per_chip * chips
    if reps is None:
        reps = pipeline.replicate(stages, budget, options.replication) if stages else []
    rep_of = {id(s): r for s, r in zip(stages, reps, strict=True)}
    thr = pipeline.throughput(stages, reps) if stages else float("inf")
    lat = pipeline.latency(stages, reps, options.latency_mode) if stages else 0.0

    layers: list[LayerEstimate] = []
    for c in costs:
        e, by_comp = event_energy(c.events)
        actions = action_energy(c.events)
        if c.energy_override_j is not None:
            e, by_comp = c.energy_override_j, {"published_efficiency": c.energy_override_j}
            actions = dict(by_comp)
        r = rep_of.get(id(c.stage), 1) if c.stage is not None else 1
        t = c.stage.work_s / r if c.stage is not None else 0.0
        units = c.stage.units if c.stage is not None else 0
        layers.append(LayerEstimate(c.name, c.kind, e, t, units, r, by_comp, dict(c.mapping),
                                    actions))

    finite = thr not in (0.0, float("inf"))
    static_w = (hw.leakage_w if static_w is None else static_w) * chips
    static_e = static_w / thr if finite else 0.0
    dyn = sum(layer.energy_j for layer in layers)
    used = sum(s.units * r for s, r in zip(stages, reps, strict=True))
    if options.gating == "ungated" and rated_w and finite:
        static_e = max(static_e, rated_w * chips / thr - dyn)
    elif options.gating == "leakage" and rated_w and finite and budget:
        share = used / budget
        static_e += idle_leakage_fraction * rated_w * chips * share / thr
    return Estimate(
        hardware=hw.name, model=hw.model, network=network, layers=layers,
        energy_j=dyn + static_e, static_energy_j=static_e, latency_s=lat, throughput_ips=thr,
        area_mm2=hw.area_mm2 * chips, chips=chips, units_used=used,
        units_available=budget, notes=notes)


PUBLISHED_ENERGY_NOTE = "energy = 2·MACs / published GOPS/W (baseline_energy=published_efficiency)"


def crossbar_costs(net: NetworkShape, t_pos: float, units: Callable[[LayerShape], int],
                   events: Callable[[LayerShape], Events]) -> list[LayerCost]:
    """Per-layer costs of a position-serial crossbar design (ISAAC, PipeLayer): a weighted
    layer is one pipeline stage of ``positions · t_pos`` that can be replicated per position."""
    costs = []
    for layer in net.layers:
        stage = None
        if layer.weighted:
            stage = pipeline.Stage(layer.name, layer.positions * t_pos, units(layer),
                                   max_copies=layer.positions, fill_s=t_pos)
        costs.append(LayerCost(layer.name, layer.kind, events(layer), stage))
    return costs


def use_published_efficiency(costs: list[LayerCost], net: NetworkShape, hw: Hardware,
                             gops_per_w: float | None) -> None:
    """Replace modelled energy by ``2 · MACs / published GOPS/W`` (hardware.md §9, H8)."""
    if gops_per_w is None:
        raise HardwareConfigError("missing key (needed by baseline_energy="
                                  "published_efficiency)", file=hw.source_file,
                                  key="published.gops_per_w")
    pe = gops_per_w * 1e9
    for c, layer in zip(costs, net.layers, strict=True):
        c.energy_override_j = 2 * layer.macs / pe
