"""Component classes (Accelergy style): the actions each kind of unit is charged for.

Each class lists one ``action`` per action the cost formulas use, with the quantities the file
must give (``energy`` for events, ``latency`` for timing); the architectures' views declare their
components with these classes (``views.part``). Numbers: hardware-parameters.md §2.3 (ISAAC), §3
(PipeLayer), §4 (RAPIDNN's FloatPIM/DUAL primitives); docs/hardware.md §4, §5, §7.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from rapidnn.hardware.views import Action, Part, action


# ---------------------------------------------------------------------- ISAAC
@dataclass(frozen=True)
class Crossbar(Part):
    """A memristor crossbar, charged per read (one input bit over every row)."""

    read: Annotated[Action, action(energy=True)]


@dataclass(frozen=True)
class Adc(Part):
    """An analog-to-digital converter, charged per conversion."""

    convert: Annotated[Action, action(energy=True)]


@dataclass(frozen=True)
class Dac(Part):
    """A row driver (1-bit DAC), charged per row drive."""

    drive: Annotated[Action, action(energy=True)]


@dataclass(frozen=True)
class SampleHold(Part):
    """A sample-and-hold, charged per sample."""

    sample: Annotated[Action, action(energy=True)]


@dataclass(frozen=True)
class Unit(Part):
    """A digital unit charged per operation (shift-and-add, sigmoid, max-pool compare)."""

    op: Annotated[Action, action(energy=True)]


@dataclass(frozen=True)
class Register(Part):
    """A register, charged per cycle."""

    cycle: Annotated[Action, action(energy=True)]


@dataclass(frozen=True)
class Edram(Part):
    """An eDRAM buffer, charged per access (``edram_access_bits`` wide)."""

    access: Annotated[Action, action(energy=True)]


@dataclass(frozen=True)
class Bus(Part):
    """A bus or link charged per bit moved (ISAAC's eDRAM bus, RAPIDNN's tile link)."""

    bit: Annotated[Action, action(energy=True)]


@dataclass(frozen=True)
class Link(Part):
    """A router or off-chip link, charged per transfer (a flit of fixed width)."""

    transfer: Annotated[Action, action(energy=True)]


# ------------------------------------------------------------------ PipeLayer
@dataclass(frozen=True)
class MorphableArray(Part):
    """A ReRAM compute array: one read per input spike (energy, and its time)."""

    read: Annotated[Action, action(energy=True, latency=True)]


@dataclass(frozen=True)
class MemorySubarray(Part):
    """ReRAM memory subarrays holding data between layers, charged per row read and write."""

    read: Annotated[Action, action(energy=True)]
    write: Annotated[Action, action(energy=True)]


# -------------------------------------------------------------------- RAPIDNN
@dataclass(frozen=True)
class RnaBlock(Part):
    """An RNA block (product table, processing crossbar, associative memory): energies per
    row-NOR step and per bit read, written, transferred and searched per row; latencies per
    NOR step, row read, row write and search."""

    nor_cycle: Annotated[Action, action(energy=True, latency=True)]
    read_bit: Annotated[Action, action(energy=True)]
    write_bit: Annotated[Action, action(energy=True)]
    transfer_bit: Annotated[Action, action(energy=True)]
    search_row_bit: Annotated[Action, action(energy=True)]
    read_row: Annotated[Action, action(latency=True)]
    write_row: Annotated[Action, action(latency=True)]
    search: Annotated[Action, action(latency=True)]
