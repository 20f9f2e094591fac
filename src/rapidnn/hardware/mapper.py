"""The RAPIDNN mapper: each layer's layout and copies within the chip's block budget.

In the manner of Timeloop's mapper (a search over the mapspace scored by a cost model), the
mapspace of one layer is its Pareto-pruned layouts (``rapidnn.candidates``: values per row from
one to dense packing × row splits of a long sum) and its copies ``1 <= r <= cap`` (``cap`` = the
layer's output positions under the "balanced" replication policy, unbounded under "fill", 1 under
"none"). A mapping is scored by the objective (docs/hardware.md §7.6):

* ``latency``: the pipeline period ``T = max_l W_l / r_l`` (1 / throughput);
* ``energy``: ``E = E_dyn + P_tile · tiles powered · T`` per inference (the static power of the
  tiles in use; with no static power every mapping costs the same and the fewest blocks win);
* ``edp``: ``E · T``.

Search: for a target period ``T`` every layer takes the (layout, copies ``ceil(W / T)``) that
needs the fewest blocks; ``T`` is scanned on a log grid from the lower bound (every layer at its
cap, fastest layout) to the cheapest mapping's period, and the smallest feasible ``T`` is refined
by bisection. The best-scoring feasible mapping is kept; for ``latency`` and ``edp`` the blocks
left over then go to the bottleneck stages (``pipeline.replicate``, the exact min-max for the
chosen layouts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rapidnn.accel.trace import Trace
from rapidnn.hardware import pipeline
from rapidnn.hardware import rapidnn as R
from rapidnn.hardware.common import LayerCost, assemble, chips_for, event_energy
from rapidnn.hardware.estimate import Estimate, EstimateOptions
from rapidnn.hardware.rapidnn import Candidate, RapidnnHardware

Objective = Literal["latency", "energy", "edp"]
OBJECTIVES: tuple[str, ...] = ("latency", "energy", "edp")
GRID = 48


@dataclass(frozen=True)
class Mapping:
    """The chosen candidate and copies of every layer, and the resulting pipeline period."""

    choice: tuple[Candidate, ...]
    copies: tuple[int, ...]

    @property
    def blocks(self) -> int:
        return sum(c.blocks * r for c, r in zip(self.choice, self.copies, strict=True))

    @property
    def period_s(self) -> float:
        return max((c.work_s / r for c, r in zip(self.choice, self.copies, strict=True)
                    if c.blocks), default=0.0)


def cap_of(positions: int, policy: pipeline.Policy) -> int:
    """Most copies of a stage under a replication policy (``pipeline`` module docstring)."""
    if policy == "none":
        return 1
    if policy == "fill":
        return 1 << 40
    return max(1, positions)


def _at(options: Sequence[Sequence[Candidate]], caps: Sequence[int],
        target: float) -> Mapping | None:
    """The fewest-blocks mapping whose period is at most ``target`` (None: infeasible)."""
    choice, copies = [], []
    for opts, cap in zip(options, caps, strict=True):
        best: tuple[int, float, Candidate, int] | None = None
        for c in opts:
            r = 1
            if c.blocks and c.work_s > 0:
                r = max(1, math.ceil(c.work_s / target - 1e-12))
                if r > cap:
                    continue
            key = (r * c.blocks, c.work_s / r)
            if best is None or key < best[:2]:
                best = (key[0], key[1], c, r)
        if best is None:
            return None
        choice.append(best[2])
        copies.append(best[3])
    return Mapping(tuple(choice), tuple(copies))


def search(options: Sequence[Sequence[Candidate]], caps: Sequence[int], budget: float,
           objective: Objective, energy: Callable[[Mapping], float]) -> Mapping:
    """The best mapping under ``budget`` blocks (module docstring). ``energy(mapping)``: energy
    per inference of a mapping. Raises ValueError when even the cheapest mapping does not fit."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown mapper objective {objective!r}; choose from {OBJECTIVES}")
    cheapest = Mapping(tuple(min(o, key=lambda c: (c.blocks, c.work_s)) for o in options),
                       tuple(1 for _ in options))
    if cheapest.blocks > budget:
        raise ValueError(f"the network needs {cheapest.blocks} blocks, more than the budget "
                         f"{budget:g}")
    hi = cheapest.period_s
    works = [min(c.work_s for c in o) / cap for o, cap in zip(options, caps, strict=True)
             if any(c.blocks for c in o)]
    lo = max(works, default=0.0)
    if hi <= 0 or lo >= hi:
        return _polish(cheapest, options, caps, budget, objective)
    feasible: list[Mapping] = [cheapest]
    ratio = hi / lo
    grid = [lo * ratio ** (i / GRID) for i in range(GRID + 1)]
    ok = [t for t in grid if (m := _at(options, caps, t)) is not None and m.blocks <= budget]
    if ok:
        t_hi, t_lo = min(ok), max([t for t in grid if t < min(ok)], default=lo)
        for _ in range(40):  # bisection to the smallest feasible period
            mid = math.sqrt(t_lo * t_hi)
            m = _at(options, caps, mid)
            if m is not None and m.blocks <= budget:
                t_hi = mid
            else:
                t_lo = mid
            if t_hi - t_lo <= 1e-9 * t_hi:
                break
        for t in [*ok, t_hi]:
            m = _at(options, caps, t)
            if m is not None and m.blocks <= budget:
                feasible.append(m)

    def score(m: Mapping) -> tuple[float, float]:
        t = m.period_s
        if objective == "latency":
            return t, energy(m)
        e = energy(m)
        return (e, t) if objective == "energy" else (e * t, t)

    best = min(feasible, key=score)
    polished = _polish(best, options, caps, budget, objective)
    return polished if score(polished) <= score(best) else best


def _polish(m: Mapping, options: Sequence[Sequence[Candidate]], caps: Sequence[int],
            budget: float, objective: Objective) -> Mapping:
    """Give the blocks left over to the bottleneck stages (latency and edp objectives; the
    caller keeps the result only if it scores no worse)."""
    if objective == "energy":
        return m
    stages = [pipeline.Stage(str(i), c.work_s if c.blocks else 0.0, c.blocks,
                             max_copies=min(cap, 1 << 40))
              for i, (c, cap) in enumerate(zip(m.choice, caps, strict=True))]
    reps = pipeline.replicate(stages, budget, "balanced")
    reps = [max(r, old) for r, old in zip(reps, m.copies, strict=True)]
    if sum(c.blocks * r for c, r in zip(m.choice, reps, strict=True)) > budget:
        return m
    return Mapping(m.choice, tuple(reps))


# ------------------------------------------------------------------- estimate
def _layer_report(c: Candidate, dense: int, copies: int) -> dict[str, Any]:
    m = c.lmap
    return {"blocks": dense, "values_per_row": m.values_per_row,
            "max_values_per_row": m.max_values_per_row, "row_split": m.row_blocks,
            "blocks_per_copy": c.blocks, "copies": copies, "blocks_used": c.blocks * copies,
            "rows_used": m.rows_used, "proc_blocks": m.proc_blocks, "am_blocks": m.am_blocks,
            "pool_blocks": m.pool_blocks, "t_pos_s": c.t_pos,
            "time_split_s": {"mul": c.time.mul, "add": c.time.add, "act": c.time.act,
                             "pool": c.time.pool, "move": c.time.move}}


def estimate(trace: Trace, hw: RapidnnHardware, options: EstimateOptions,
             network: str | None = None) -> Estimate:
    """Energy, latency, throughput, area and row occupancy of a Trace on RAPIDNN: layouts and
    copies from the mapper (``options.mapping = "search"``) or dense layouts replicated by
    ``options.replication`` ("dense", the layout before the mapper)."""
    sizes = R.block_sizes(hw)
    per_chip = hw.blocks_per_chip
    per_tile = hw.blocks_per_tile
    if per_chip < 1:
        raise ValueError("the RAPIDNN chip has no blocks (tiles_per_chip x blocks_per_tile < 1)")
    notes: list[str] = []
    if trace.config.get("synthetic"):
        notes.append("synthetic trace (rapidnn.hardware.rapidnn.synthetic_trace), not simulated")
    demands = [R.demand_of(lt, hw) for lt in trace.layers]
    dense = [R.candidate(hw, lt, d, sizes=sizes) for lt, d in zip(trace.layers, demands,
                                                                  strict=True)]
    if options.mapping == "search":
        opts = [R.candidates(hw, lt, d, sizes) for lt, d in zip(trace.layers, demands,
                                                                strict=True)]
    else:
        opts = [[c] for c in dense]
    active = [i for i, o in enumerate(opts) if o[0].blocks > 0 and o[0].work_s > 0]
    least = sum(min(c.blocks for c in opts[i]) for i in active)
    chips = chips_for(options, max(1, math.ceil(least / per_chip)), notes)
    budget = options.block_budget or per_chip * chips
    if budget < least:
        notes.append(f"a budget of {budget:g} blocks cannot hold the network; using {least}")
        budget = least
    chips = max(chips, math.ceil(budget / per_chip - 1e-9))
    caps = [cap_of(opts[i][0].positions, options.replication) for i in active]
    events = [R.layer_events(hw, lt, options.entry_width) for lt in trace.layers]
    dyn_base = sum(event_energy(ev)[0] for ev in events)
    tile_w = hw.controller_static_w_per_tile

    leak_w = hw.leakage_w * chips  # component leakage of the whole chips (0 in the preset)

    # ungated: the silicon of the budget draws the chip's rated (peak) power all the time
    rated_w = (R.chip_figures(hw).power_w * budget / per_chip if options.gating == "ungated"
               else 0.0)

    def static_w(m: Mapping) -> float:
        """Static power: component leakage plus, under "leakage", the controllers of the tiles
        in use (under "ungated" the chips draw their rated power instead, as ISAAC's do)."""
        if options.gating == "leakage":
            return leak_w + tile_w * math.ceil(m.blocks / per_tile)
        return leak_w

    def energy(m: Mapping) -> float:
        extra = sum(event_energy(c.extra)[0] for c in m.choice)
        e = dyn_base + extra + static_w(m) * m.period_s
        return max(e, rated_w * m.period_s)

    sub = [opts[i] for i in active]
    if options.mapping == "search":
        chosen = search(sub, caps, budget, options.objective, energy)
    else:
        stages = [pipeline.Stage(str(i), o[0].work_s, o[0].blocks, max_copies=cap)
                  for i, (o, cap) in enumerate(zip(sub, caps, strict=True))]
        reps = pipeline.replicate(stages, budget, "fill" if options.replication == "fill"
                                  else options.replication)
        chosen = Mapping(tuple(o[0] for o in sub), tuple(reps))
    pick = dict(zip(active, zip(chosen.choice, chosen.copies, strict=True), strict=True))
    costs: list[LayerCost] = []
    reps_all: list[int] = []
    busy = 0.0
    for i, lt in enumerate(trace.layers):
        c, r = pick.get(i, (dense[i], 1))
        ev = dict(events[i])
        for k, n in c.extra.items():
            ev[k] = ev.get(k, 0.0) + n
        stage = None
        if i in pick:
            stage = pipeline.Stage(lt.name, c.work_s, c.blocks, max_copies=c.positions,
                                   fill_s=c.t_pos)
            reps_all.append(r)
            busy += c.lmap.rows_used * c.work_s
        costs.append(LayerCost(lt.name, lt.kind, ev, stage,
                               mapping=_layer_report(c, dense[i].blocks, r)))
    est = assemble(hw, network or str(trace.config.get("name", "trace")), costs, per_chip,
                   options, notes, reps=reps_all, chips=chips, budget=budget,
                   static_w=static_w(chosen) / chips, rated_w=rated_w / chips or None)
    if options.block_budget is not None:  # the silicon of the budget, not of whole chips
        est.area_mm2 = budget * hw.area_mm2 / per_chip
    period = chosen.period_s
    if period > 0:
        rows = budget * hw.proc_rows * period
        est.row_occupancy = busy / rows
        for lay in est.layers:  # each layer's share of the chip's busy row-seconds
            m = lay.mapping
            if m and lay.units:
                m["row_occupancy"] = m["rows_used"] * lay.stage_time_s * lay.replicas / rows
    return est
