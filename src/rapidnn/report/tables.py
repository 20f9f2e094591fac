"""Tables as plain ``(headers, rows)`` pairs, rendered as Markdown, rich or text.

Cells, titles and the report's paragraphs are Markdown (``**bold**``, `` `code` ``); every
string from the data (a name, a path, a description) goes in through :func:`esc`, so it is
shown as it is and can neither break a table nor inject markup or HTML."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table as RichTable

from rapidnn.selection import TOLERANCE

#: The paper's claims (arXiv 1806.05794 v4 / HPCA 2020 for ISAAC and PipeLayer; v1 for GPU).
PAPER = {"quality_loss": "< 0.3",
         "isaac": {"energy_efficiency": 68.4, "speedup": 48.1},
         "pipelayer": {"energy_efficiency": 49.5, "speedup": 10.9},
         "gpu": {"energy_efficiency": 382.6, "speedup": 211.5}}
BASELINES = ("isaac", "pipelayer", "gpu")
#: how each design is named in report text
NAMES = {"rapidnn": "RAPIDNN", "isaac": "ISAAC", "pipelayer": "PipeLayer", "gpu": "GPU"}


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def points(x: float | None) -> str:
    """A quality loss (a fraction) in accuracy points, the report's one unit for losses."""
    return "-" if x is None else f"{100 * x:.2f}"


def loss(x: float | None, se: float | None = None) -> str:
    """A quality loss in points, with its paired standard error when known."""
    return points(x) if x is None or se is None else f"{points(x)} ± {100 * se:.2f}"


def num(x: float) -> str:
    """Three significant digits, thousands written out rather than in e-notation."""
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def ratio(x: float | None) -> str:
    return "-" if x is None else f"{num(x)}x"


#: per ratio: its name, and what RAPIDNN does when it is above 1 and below 1
_RATIOS = {"energy_efficiency": ("energy efficiency", "uses {}x less", "uses {}x more"),
           "speedup": ("speed", "{}x faster", "{}x slower")}


def ratio_header(base: str, metric: str) -> str:
    """A ratio column's name, its direction written out: "energy efficiency, RAPIDNN ÷ ISAAC"."""
    return f"{_RATIOS[metric][0]}, RAPIDNN ÷ {NAMES.get(base, base)}"


def said(x: float | None, metric: str) -> str:
    """A RAPIDNN ÷ baseline ratio and what it means: "0.4x (RAPIDNN uses 2.5x more)"."""
    if x is None:
        return "-"
    _, up, down = _RATIOS[metric]
    return f"{num(x)}x (RAPIDNN {(up if x >= 1 else down).format(num(max(x, 1 / x)))})"


def absolute(entry: dict[str, Any], design: str) -> dict[str, float | None]:
    """Energy (J), latency (s), throughput (inferences/s) and average power (W: energy x
    throughput) of one design on one network, from its results entry."""
    if design == "rapidnn":
        r = entry["rapidnn"]
        energy, latency, throughput = r["energy_j"], r["latency_s"], r["throughput_ips"]
    else:
        v = entry["vs"][design]
        energy, throughput = v["energy_j"], v["throughput_ips"]
        latency = v["latency_ratio"] * entry["rapidnn"]["latency_s"]
    return {"energy_j": energy, "latency_s": latency, "throughput_ips": throughput,
            "power_w": energy * throughput}


#: Markdown's special characters (and ``|``, which ends a table cell, and ``&``, ``<``, ``>``,
#: which start HTML), backslash-escaped in data
_SPECIAL = frozenset("\\`*_[]<>&|#!~")
#: a backslash escape of an ASCII punctuation character (group 1: the character)
ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")
_PLAIN = re.compile(ESCAPED.pattern + r"|\*\*")


def esc(text: Any) -> str:
    """``text`` (data) as literal Markdown: on one line, every special character escaped."""
    flat = " ".join(str(text).splitlines())
    return "".join("\\" + c if c in _SPECIAL else c for c in flat)


def plain(text: str) -> str:
    """Markdown of a cell or title as plain text: bold markers dropped, escapes resolved."""
    return _PLAIN.sub(lambda m: m.group(1) or "", text)


def _cell(text: str) -> str:
    """A table cell's Markdown on one line, with any unescaped ``|`` escaped."""
    flat = " ".join(str(text).splitlines())
    return re.sub(r"\\.|\|", lambda m: "\\|" if m.group() == "|" else m.group(), flat)


def to_markdown(table: Table) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in table.headers) + " |",
             "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_rich(table: Table) -> RichTable:
    """The table for a terminal: Markdown made plain, rich's own markup escaped."""
    out = RichTable(title=rich_escape(plain(table.title)) if table.title else None)
    for i, h in enumerate(table.headers):
        out.add_column(rich_escape(plain(h)), justify="left" if i == 0 else "right")
    for row in table.rows:
        out.add_row(*(rich_escape(plain(c)) for c in row))
    return out


def render_text(table: Table, width: int = 160) -> str:
    buf = io.StringIO()
    Console(file=buf, width=width, no_color=True).print(to_rich(table))
    return buf.getvalue()


def paper_table(workloads: Sequence[dict[str, Any]], shapes: Sequence[dict[str, Any]],
                geomean: dict[str, dict[str, float]],
                geomean_all: dict[str, dict[str, float]] | None = None, *,
                tolerance: float = TOLERANCE) -> Table:
    """Per workload and geometric mean: accuracies, quality loss (points), energy efficiency
    and speedup over each baseline (RAPIDNN ÷ baseline), with the paper's claims last."""
    t = Table(_ratio_headers(["network", "(w, u)", "float acc.", "composed acc.",
                              "quality loss (points)"]),
              title="RAPIDNN vs ISAAC, PipeLayer, GPU (per network: the smallest (w, u) within "
                    f"{100 * tolerance:.1f} points; * = none within, most accurate shown; "
                    "quality loss ± its paired standard error; above 1x favours RAPIDNN)")

    def ratios(vs: dict[str, dict[str, float]]) -> list[str]:
        return [said(vs.get(b, {}).get(k), k) for b in BASELINES for k in _METRICS]

    for e in workloads:
        star = "" if e.get("smallest_within_tolerance") is not None else "*"
        t.rows.append([esc(e["name"]), f"{e['weight_clusters']},\u00a0{e['input_clusters']}{star}",
                       pct(e["float_accuracy"]), pct(e["composed_accuracy"]),
                       loss(e["quality_loss"], e.get("quality_loss_se")), *ratios(e["vs"])])
    for s in shapes:
        t.rows.append([f"{esc(s['name'])} (shape only)", "n/a", "n/a", "n/a", "n/a",
                       *ratios(s["vs"])])
    losses = [e["quality_loss"] for e in workloads]
    mean_loss = sum(losses) / len(losses) if losses else None
    t.rows.append(["**geometric mean (applications)**", "", "", "",
                   f"mean {points(mean_loss)}", *ratios(geomean)])
    if geomean_all is not None:
        t.rows.append(["**geometric mean (incl. ImageNet shapes)**", "", "", "", "",
                       *ratios(geomean_all)])
    t.rows.append(["**paper**", "", "", "", PAPER["quality_loss"], *_paper_ratios()])
    return t


def memory_table(workloads: Sequence[dict[str, Any]]) -> Table:
    """Per network: each layer's memory and the network's (its tables summed over layers)."""
    t = Table(["network", "layer", "neurons", "bytes/neuron", "table KiB", "total KiB"],
              title="memory per neuron and per layer (at each network's (w, u), "
                    "after retraining)")
    for e in workloads:
        mem = e["memory"]
        for name, m in mem["layers"].items():
            t.rows.append([esc(e["name"]), esc(name), str(m["neurons"]),
                           f"{m['bits_per_neuron'] / 8:.1f}", f"{m['table_bits'] / 8192:.1f}",
                           f"{m['total_bits'] / 8192:.1f}"])
        tables = sum(m["table_bits"] for m in mem["layers"].values())
        t.rows.append([esc(e["name"]), "**all layers**", str(mem["neurons"]),
                       f"{mem['bits_per_neuron'] / 8:.1f}", f"{tables / 8192:.1f}",
                       f"{mem['total_bits'] / 8192:.1f}"])
    return t


def sweep_table(points: Sequence[dict[str, Any]], title: str = "sweep") -> Table:
    t = Table(["w", "u", "before retraining", "accuracy", "quality loss (points)", "bytes/neuron",
               "energy (J/inf)", "retrain rounds", "Pareto (energy, loss)"], title=title)
    for p in points:
        t.rows.append([str(p["weight_clusters"]), str(p["input_clusters"]),
                       pct(p.get("accuracy_before_retraining")), pct(p["composed_accuracy"]),
                       loss(p["quality_loss"], p.get("quality_loss_se")),
                       f"{p['bytes_per_neuron']:.1f}", f"{p['energy_j']:.3e}",
                       str(p.get("retrain_rounds", "-")),
                       "*" if p.get("pareto") else ""])
    return t


def smallest_table(workloads: Sequence[dict[str, Any]]) -> Table:
    """Per workload: the smallest (w, u) within tolerance found by the search sweep."""
    t = Table(["network", "smallest (w, u) within tolerance", "quality loss (points)",
               "bytes/neuron", "retrain rounds"],
              title="smallest (w, u) within tolerance (search sweep)")
    for e in workloads:
        p = e.get("smallest_within_tolerance")
        if p is None:
            t.rows.append([esc(e["name"]), "none in the grid", "-", "-", "-"])
        else:
            t.rows.append([esc(e["name"]), f"{p['weight_clusters']}, {p['input_clusters']}",
                           points(p["quality_loss"]), f"{p['bytes_per_neuron']:.1f}",
                           str(p.get("retrain_rounds") or 0)])
    return t


def approx_table(workloads: Sequence[dict[str, Any]]) -> Table:
    """Every approximate-search row: accuracy and agreement with exact search per bit count."""
    t = Table(["network", "searched bits", "accuracy", "agreement with exact"],
              title="approximate associative search")
    for e in workloads:
        for r in e["approximation"]["rows"]:
            t.rows.append([esc(e["name"]), "exact" if r["bits"] is None else str(r["bits"]),
                           pct(r["accuracy"]), pct(r["agreement"])])
    return t


_METRICS = ("energy_efficiency", "speedup")


def absolute_table(workloads: Sequence[dict[str, Any]],
                   areas: dict[str, float | None]) -> Table:
    """Per network and design: energy per inference, latency, throughput, average power
    (energy x throughput) and chip area (``areas``: per baseline, from its preset)."""
    t = Table(["network", "design", "energy per inference (µJ)", "latency (µs)",
               "throughput (inferences/s)", "average power (W)", "chip area (mm²)"],
              title="absolute figures (as-published policy; RAPIDNN's area from the run, the "
                    "baselines' from their hardware presets)")
    for e in workloads:
        for d in ("rapidnn", *BASELINES):
            if d != "rapidnn" and d not in e["vs"]:
                continue
            a = absolute(e, d)
            area = e["rapidnn"].get("area_mm2") if d == "rapidnn" else areas.get(d)
            t.rows.append([esc(e["name"]), NAMES[d], num(1e6 * a["energy_j"]),
                           num(1e6 * a["latency_s"]), f"{a['throughput_ips']:,.0f}",
                           num(a["power_w"]), "-" if area is None else f"{area:.1f}"])
    return t


def component_table(workloads: Sequence[dict[str, Any]], top: int = 5) -> Table:
    """Per network and design: where the energy per inference goes by hardware component and
    action (``energy_breakdown`` of results.json; the ``top`` largest shares, the rest summed)."""
    t = Table(["network", "design", "energy per inference (µJ)", "largest shares"],
              title="energy per inference by hardware component.action (as-published policy)")
    for e in workloads:
        for d, parts in (e.get("energy_breakdown") or {}).items():
            total = sum(parts.values())
            if total <= 0:
                continue
            ranked = sorted(parts.items(), key=lambda kv: -kv[1])
            shown = [f"{esc(k)} {100 * v / total:.1f} %" for k, v in ranked[:top]]
            rest = sum(v for _, v in ranked[top:])
            if rest > 0:
                n = len(ranked) - top
                shown.append(f"{n} other{'s' if n > 1 else ''} {100 * rest / total:.1f} %")
            t.rows.append([esc(e["name"]), NAMES.get(d, esc(d)), num(1e6 * total),
                           "; ".join(shown)])
    return t


def _pair(r: dict[str, Any] | None) -> list[str]:
    r = r or {}
    return [said(r.get(k), k) for k in _METRICS]


def _ratio_headers(first: list[str]) -> list[str]:
    return first + [ratio_header(b, k) for b in BASELINES for k in _METRICS]


def _paper_ratios() -> list[str]:
    return [said(PAPER[b][k], k) for b in BASELINES for k in _METRICS]


def policy_table(workloads: Sequence[dict[str, Any]], shapes: Sequence[dict[str, Any]],
                 geomean: dict[str, Any]) -> Table:
    """Energy efficiency and speedup over each baseline under every comparison policy."""
    t = Table(_ratio_headers(["network", "policy"]),
              title="RAPIDNN vs each baseline under matched policies (docs/hardware.md §9)")
    for e in [*workloads, *shapes]:
        for p, per in (e.get("policies") or {}).items():
            name = esc(e["name"]) + (" (shape only)" if e in shapes else "")
            t.rows.append([name, esc(p), *(x for b in BASELINES for x in _pair(per.get(b)))])
    for p, per in geomean.items():
        t.rows.append(["**geometric mean (applications)**", esc(p),
                       *(x for b in BASELINES for x in _pair(per.get(b)))])
    t.rows.append(["**paper**", "", *_paper_ratios()])
    return t


def occupancy_table(workloads: Sequence[dict[str, Any]]) -> Table:
    """Row occupancy and throughput before (dense layout) and after the mapper, and the check
    that the simulator and the cost model count the same blocks."""
    t = Table(["network", "blocks used / available", "row occupancy before", "after",
               "bound", "inferences/s before", "after", "at full occupancy",
               "layers with equal blocks (sim = cost model)"],
              title="mapping: row occupancy (fraction of all chip rows busy on average)")
    for e in workloads:
        o, agree = e.get("occupancy"), e.get("blocks_agree")
        if o is None:
            continue
        t.rows.append([esc(e["name"]), f"{o['blocks_used']:,} / {o['blocks_available']:,.0f}",
                       pct(o["before"]), pct(o["after"]), "100.00%",
                       f"{o['throughput_before_ips']:,.0f}", f"{o['throughput_after_ips']:,.0f}",
                       f"{o['throughput_at_full_occupancy_ips']:,.0f}",
                       f"{agree['equal']} / {agree['layers']}" if agree else "-"])
    return t


def audit_table(scenarios: Sequence[dict[str, Any]], title: str) -> Table:
    """Every audit scenario's ratios, with the paper's as the last row."""
    t = Table(_ratio_headers(["scenario", "what it assumes"]), title=title)
    for s in scenarios:
        t.rows.append([esc(s["name"]), esc(s.get("description", "")),
                       *(x for b in BASELINES for x in _pair(s.get(b)))])
    t.rows.append(["**paper**", "", *_paper_ratios()])
    return t


def changes_text(best: dict[str, Any] | None) -> str:
    """An audit change set as text: each change, its factor and plausibility, the ratio."""
    if best is None:
        return "none within the sweep"
    return "; ".join(esc(c["change"]) + (f" x{c['factor']:.3g}" if "factor" in c else "")
                     + (" (plausible)" if c["plausible"] else " (implausible)")
                     for c in best["changes"]) + f" -> {best['ratio']:.3g}x"


def changes_table(audit: dict[str, Any]) -> Table:
    """Per paper ratio: the default, the closest scenario, and the smallest change sets."""
    t = Table(["ratio", "paper", "this reconstruction", "closest scenario",
               "smallest changes (any design)", "smallest changes to RAPIDNN",
               "plausibly reached"],
              title=f"what the paper's ratios would need ({esc(audit['network'])})")
    for key, row in audit["smallest_changes"].items():
        mine = audit["smallest_rapidnn_changes"][key]
        close = audit["closest"][key]
        base, metric = key.split(".")
        t.rows.append([ratio_header(base, metric), f"{row['paper']}x",
                       said(row["default"], metric),
                       f"{esc(close['scenario'])} ({ratio(close['ratio'])})",
                       changes_text(row["smallest"]), changes_text(mine["smallest"]),
                       "yes" if row["plausible"] or mine["plausible"] else "no"])
    return t


def _one_point(c: dict[str, Any]) -> str:
    r = c.get("rate_for_one_point")
    if r is None:
        return "none lost"
    return f"<= {r:.2g}" if c.get("one_point_at_first_rate") else f"{r:.2g}"


def fault_table(workloads: Sequence[dict[str, Any]]) -> Table:
    """Per workload and block kind: the stuck-at rate that costs one point of accuracy."""
    t = Table(["network", "block", "test images", "fault-free", "rate losing 1 point",
               "accuracy at the largest rate"], title="device faults (stuck-at cells)")
    for e in workloads:
        for c in (e.get("faults") or {}).get("curves", []):
            last = c["points"][-1]
            t.rows.append([esc(e["name"]), esc(c["block"]), str(c.get("images", "-")),
                           pct(c.get("clean_accuracy", e["faults"]["clean_accuracy"])),
                           _one_point(c), f"{pct(last['accuracy'])} at {last['rate']:g}"])
    return t


def endurance_table(workloads: Sequence[dict[str, Any]]) -> Table:
    """Per workload: the hottest cell (its layer's copies sharing the writes) and the lifetime
    with and without wear levelling."""
    t = Table(["network", "hottest cell", "copies", "writes / inference", "inferences", "years",
               "levelled inferences", "levelled years"],
              title="lifetime until the first cell wears out")
    for e in workloads:
        life = e.get("endurance")
        if not life:
            continue
        h, lev = life["hottest"], life["with_wear_levelling"]
        t.rows.append([esc(e["name"]), esc(f"{h['layer']} {h['class']}"), str(h.get("copies", 1)),
                       f"{h['writes_per_inference']:.4g}", f"{life['lifetime_inferences']:.3g}",
                       f"{life['lifetime_years']:.3g}", f"{lev['lifetime_inferences']:.3g}",
                       f"{lev['lifetime_years']:.3g}"])
    return t
