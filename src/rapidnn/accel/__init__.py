"""The RNA accelerator simulator: crossbar lookups, in-memory NOR addition, associative search.

``simulate(composed, inputs, config) -> SimResult`` runs a ComposedModel on modelled RNA blocks
and records a :class:`Trace`; ``simulate_dataset`` does it over a data loader;
``approximation_sweep`` tabulates accuracy against the searched AM bits. See docs/simulator.md.
"""

from rapidnn.accel.config import BlockSizes, FaultConfig, SimConfig
from rapidnn.accel.events import merge_traces
from rapidnn.accel.simulator import (
    SimResult,
    Simulator,
    approximation_sweep,
    simulate,
    simulate_dataset,
)
from rapidnn.accel.trace import LayerTrace, Trace

__all__ = [
    "BlockSizes",
    "FaultConfig",
    "LayerTrace",
    "SimConfig",
    "SimResult",
    "Simulator",
    "Trace",
    "approximation_sweep",
    "merge_traces",
    "simulate",
    "simulate_dataset",
]
