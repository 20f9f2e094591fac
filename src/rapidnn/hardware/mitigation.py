"""What fault mitigations cost: spare rows and table protection, through the cost model.

The mitigations of :class:`rapidnn.accel.config.FaultConfig` (``docs/faults.md``) change two
things the RAPIDNN cost model reads (``docs/hardware.md``; our reconstruction, the paper has
no fault analysis):

* **area**: an RNA block is a processing crossbar (``proc_rows x proc_cols``), a product-table
  crossbar (``table_rows x table_cols``) and an AM (``am_rows x am_bits`` CAM cells of two
  devices each); ``rna_block.area`` is scaled by the ratio of the devices of a mitigated block
  to a plain one: ``s`` spare rows add ``s`` rows to each memory, ``tmr`` triples the table
  crossbar, ``parity`` widens it by one cell per B-bit entry (``(B + 1) / B``, B the widest
  entry of the model's weighted layers);
* **energy**: every product lookup reads three entries (``tmr``) or ``B + 1`` cells (``parity``):
  the weighted layers' ``table_lookups`` of the Trace are scaled by 3 or ``(B + 1) / B``. The
  majority vote and the parity check are CMOS gates of the row periphery, and the remapping of
  a spare row is a comparison in the row decoder: neither is costed (assumed small).

:func:`mitigation_cost` estimates the model with and without the mitigation, in one run, and
reports both and their ratios.
"""

from __future__ import annotations

from typing import Any

from rapidnn.accel.config import FaultConfig, SimConfig
from rapidnn.accel.trace import Trace
from rapidnn.composer.composed import ComposedModel
from rapidnn.hardware.costs import estimate, model_trace
from rapidnn.hardware.loader import load_hardware
from rapidnn.hardware.rapidnn import RapidnnHardware
from rapidnn.hardware.spec import HardwareSpec

WEIGHTED = ("linear", "conv2d", "conv1d")


def block_area_factor(hw: RapidnnHardware, faults: FaultConfig, entry_bits: int) -> float:
    """Devices of a mitigated RNA block over those of a plain one (module docstring)."""
    s = faults.spare_rows
    proc = hw.proc_rows * hw.proc_cols
    table = hw.table_rows * hw.table_cols
    am = 2 * hw.am_rows * hw.am_bits
    widen = {"none": 1.0, "tmr": 3.0, "parity": (entry_bits + 1) / entry_bits}[
        faults.table_protection]
    mitigated = (proc * (1 + s / hw.proc_rows) + table * widen * (1 + s / hw.table_rows)
                 + am * (1 + s / hw.am_rows))
    return mitigated / (proc + table + am)


def read_factor(faults: FaultConfig, entry_bits: int) -> float:
    """Cells read per product lookup, relative to an unprotected table."""
    return {"none": 1.0, "tmr": 3.0, "parity": (entry_bits + 1) / entry_bits}[
        faults.table_protection]


def mitigation_cost(composed: ComposedModel, faults: FaultConfig,
                    hardware: str | HardwareSpec = "rapidnn",
                    sim_config: SimConfig | None = None,
                    config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Energy, latency and area of ``composed`` with and without the mitigations of
    ``faults`` on the RAPIDNN cost model, and their ratios."""
    spec = load_hardware(hardware)
    hw = RapidnnHardware.from_spec(spec)
    trace = model_trace(composed, sim_config=sim_config)
    bits = max((lt.entry_bits for lt in trace.layers if lt.kind in WEIGHTED), default=8)
    area = block_area_factor(hw, faults, bits)
    reads = read_factor(faults, bits)
    mitigated = Trace.from_dict(trace.to_dict())
    for lt in mitigated.layers:
        if lt.kind in WEIGHTED:
            lt.table_lookups *= reads
    plain = estimate(composed, spec, trace=trace, config=config)
    costed = estimate(composed, spec.scaled("rna_block.area", area), trace=mitigated,
                      config=config)

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    return {
        "spare_rows": faults.spare_rows, "table_protection": faults.table_protection,
        "block_area_factor": area, "lookup_read_factor": reads,
        "plain": {"energy_j": plain.energy_j, "latency_s": plain.latency_s,
                  "area_mm2": plain.area_mm2},
        "mitigated": {"energy_j": costed.energy_j, "latency_s": costed.latency_s,
                      "area_mm2": costed.area_mm2},
        "energy_ratio": ratio(costed.energy_j, plain.energy_j),
        "latency_ratio": ratio(costed.latency_s, plain.latency_s),
        "area_ratio": ratio(costed.area_mm2, plain.area_mm2),
    }
