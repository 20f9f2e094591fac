"""Accounting variants: the choices of how an event is charged, as named, sourced options.

Each :class:`Variant` changes how energy is counted, never the work done (the RAPIDNN mapper,
whose objective sees energy, may then pick another layout); the default of every choice is the
first reading below (docs/hardware.md §8 has the reasoning, the sources memo the
numbers). A variant is an update of :class:`EstimateOptions` plus spec overrides (computed from
the RAPIDNN spec, so the values stay those of the preset), and variants combine.

* ``nor-per-block``: DUAL's per-operation energies (NOR step, transfer) read as the cost of one
  block-wide operation over ``proc_rows`` rows instead of one row (÷ 1024; row writes stay).
  FloatPIM's formulas charge E_NOR per row; which DUAL meant is unverified.
* ``leakage`` / ``ungated``: static power (``EstimateOptions.gating``), the same rule for both
  sides: the periphery of the units in use leaks (ISAAC 7.8 % of rated power from PUMA's
  leakage constants × its share of crossbars in use; RAPIDNN the controllers of the tiles in
  use), or every chip draws its rated power all the time (ISAAC's own fixed-power model; RAPIDNN
  its power at peak, ``chip_summary``).
* ``entry-exact``: product-table entries at the smallest width that holds the table's products.
* ``read-sense-amp``: a table read pays a sense amplifier per bit (NVSim, 125.6 fJ at 32 nm).
* ``search-published-cam``: an associative search costs a published CAM figure per row-bit
  (2.89 fJ/bit/search, Pagiamtzis & Sheikholeslami, JSSC 2004) instead of DUAL's 303.5 fJ.
* ``published-efficiency``: ISAAC and PipeLayer energy from their published GOPS/W instead of
  their component events (reconciles PipeLayer's modelled energy with its published figure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rapidnn.hardware.spec import HardwareSpec

Overrides = dict[str, float]


@dataclass(frozen=True)
class Variant:
    """One accounting choice: what it changes, its source and tag, and a plausibility note."""

    name: str
    description: str
    source: str
    tag: str
    options: Mapping[str, Any] = field(default_factory=dict)
    overrides: Callable[[HardwareSpec], Overrides] | None = None
    plausibility: str = ""
    side: str = "rapidnn"  # whose accounting it changes: rapidnn, baselines or both

    def overrides_for(self, rapidnn: HardwareSpec) -> Overrides:
        return dict(self.overrides(rapidnn)) if self.overrides is not None else {}


def _energy(spec: HardwareSpec, action: str, unit: str | None = None) -> float:
    """A RAPIDNN block energy in its own unit (or ``unit``), read by its override key as the
    overrides that replace it are written."""
    p = spec.get(f"rna_block.energy.{action}")
    return p.value if unit is None else p.to(unit)


def _unit(spec: HardwareSpec, action: str) -> str:
    return spec.get(f"rna_block.energy.{action}").unit


def _per_block(spec: HardwareSpec) -> Overrides:
    """NOR steps and transfers are block-wide (row-parallel) operations; a product write touches
    one row, so its energy stays per row."""
    rows = float(spec.get("proc_rows").value)
    return {f"rapidnn.rna_block.energy.{a}": _energy(spec, a) / rows
            for a in ("nor_cycle", "transfer_bit")}


def _sense_amp(spec: HardwareSpec) -> Overrides:
    read = _energy(spec, "read_bit") + _energy(spec, "sense_amp_bit", _unit(spec, "read_bit"))
    return {"rapidnn.rna_block.energy.read_bit": read}


def _published_cam(spec: HardwareSpec) -> Overrides:
    cam = _energy(spec, "cam_search_bit", _unit(spec, "search_row_bit"))
    return {"rapidnn.rna_block.energy.search_row_bit": cam}


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("nor-per-block", "NOR and transfer energy per block-wide operation (÷ proc_rows) "
            "instead of per row",
            "DUAL (MICRO 2020) Table III energies, units unverified (sources memo 2, 5); "
            "FloatPIM charges E_NOR per row", "assumed", overrides=_per_block,
            plausibility="implausible as the default: FloatPIM's formulas charge one NOR per "
            "row, and a MAGIC gate that switches a cell costs ~100 fJ (1 V, 10 kOhm, 1 ns), "
            "about 5000x the 0.02 fJ per row this reading implies"),
    Variant("leakage", "idle CMOS periphery of the units in use leaks (ISAAC 7.8% of its rated "
            "power times the share of crossbars in use; RAPIDNN the controllers of the tiles in "
            "use)",
            "PUMA leakage constants applied to ISAAC (isaac.idle_leakage_fraction); RAPIDNN "
            "controller_static_w_per_tile", "derived", options={"gating": "leakage"},
            side="both",
            plausibility="plausible: leakage of ADCs, eDRAM and routers is real unless they "
            "are power-gated"),
    Variant("ungated", "no power gating: every chip draws its rated power all the time (ISAAC "
            "65.8 W, its own fixed-power model; RAPIDNN its power at peak)",
            "ISAAC Table I power; CiMLoop's ISAAC model notes 'ISAAC used a simple fixed-power "
            "model'", "published-secondary", options={"gating": "ungated"}, side="both",
            plausibility="plausible for ISAAC as published (energy = power x time); harsh for "
            "a gated implementation"),
    Variant("entry-exact", "product-table entries at the smallest width holding the table's "
            "products", "the composed table's range (LayerDemand.exact_entry_bits)", "derived",
            options={"entry_width": "exact"},
            plausibility="plausible: a design choice of the table, no circuit change"),
    Variant("read-sense-amp", "a table read pays a sense amplifier per bit (read_bit + "
            "sense_amp_bit)", "NVSim current-sense amplifier, 32 nm, 125.6 fJ per column",
            "published", overrides=_sense_amp,
            plausibility="plausible: a digital row read needs a sense amplifier per bit line"),
    Variant("search-published-cam", "associative search at a published CAM energy per row-bit "
            "(cam_search_bit) instead of DUAL's nearest-value search",
            "Pagiamtzis & Sheikholeslami, IEEE JSSC 2004: 2.89 fJ/bit/search (CMOS TCAM)",
            "published", overrides=_published_cam,
            plausibility="optimistic: an exact-match CMOS TCAM; a nearest-distance NVM search "
            "costs more (3-300 fJ per row-bit, sources memo 2)"),
    Variant("published-efficiency", "ISAAC and PipeLayer energy = 2 x MACs / published GOPS/W",
            "ISAAC 380.7 GOPS/W, PipeLayer 142.9 GOPS/W as quoted by PipeLayer Sec. 6.6",
            "published-secondary", options={"baseline_energy": "published_efficiency"},
            side="baselines",
            plausibility="plausible: each baseline's own published figure"),
)}


def combine(names: Iterable[str], rapidnn: HardwareSpec) -> tuple[dict[str, Any], Overrides]:
    """Options update and overrides of several variants applied together."""
    options: dict[str, Any] = {}
    overrides: Overrides = {}
    for name in names:
        if name not in VARIANTS:
            raise ValueError(f"unknown accounting variant {name!r}; choose from "
                             f"{', '.join(VARIANTS)}")
        v = VARIANTS[name]
        for k, val in v.options.items():
            if k in options and options[k] != val:
                raise ValueError(f"accounting variants disagree on {k}: {options[k]!r} vs "
                                 f"{val!r}")
            options[k] = val
        overrides.update(v.overrides_for(rapidnn))
    return options, overrides
