"""``report.md`` and ``report.html`` (plots embedded) from the content of ``results.json``.

The report is built whole before anything is replaced (:func:`write_report`); plot file names
come from :func:`rapidnn._files.safe_name`, never from the data as it is, and every string from
the data goes into the Markdown escaped (:func:`rapidnn.report.tables.esc`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from rapidnn._files import atomic_folder, atomic_write_text, safe_name
from rapidnn.report import plots
from rapidnn.report.html import Document
from rapidnn.report.tables import (
    BASELINES,
    PAPER,
    Table,
    absolute_table,
    approx_table,
    audit_table,
    changes_table,
    changes_text,
    component_table,
    endurance_table,
    esc,
    fault_table,
    memory_table,
    occupancy_table,
    paper_table,
    policy_table,
    ratio,
    ratio_header,
    said,
    smallest_table,
)


def _fmt_budget(b: dict[str, Any]) -> str:
    def n(v: Any, what: str) -> str:
        return f"all {what}" if v is None else f"{v} {what}"

    return (f"{n(b['test_images'], 'test images')} for accuracy, "
            f"{n(b['val_images'], 'validation images')} and "
            f"{n(b['train_batches'], 'training batches')} per round (at least "
            f"{b['min_rounds']}, at most {b['max_rounds']} round(s); all training batches: one "
            f"epoch) for retraining, {n(b['sim_images'], 'test images')} "
            f"simulated exactly, {n(b['approx_images'], 'test images')} in the "
            f"approximate-search sweep")


def _machine(m: dict[str, Any]) -> str:
    return (f"{esc(m['platform'])}, {m['cpu_count']} CPU(s), torch {esc(m['torch'])} "
            f"({m['torch_threads']} thread(s))")


def _provenance(results: dict[str, Any]) -> str:
    """Where and how long the numbers were measured; for merged results, every run."""
    parts = results.get("parts")
    if not parts:
        return (f"Machine: {_machine(results['machine'])}. "
                f"Wall time: {results['seconds']:.0f} s.")
    runs = []
    for p in parts:
        rows = ", ".join([esc(n) for n in p["workloads"]]
                         + [f"{esc(s)} (shape only)" for s in p["shape_networks"]])
        where = "" if results["machine"] is not None else f" on {_machine(p['machine'])}"
        whole = "" if p["complete"] else " (the whole run; only these rows are kept)"
        runs.append(f"{esc(p['source'])}{where}: {rows}; wall time {p['seconds']:.0f} s{whole}")
    machine = ("" if results["machine"] is None else
               f" Machine: {_machine(results['machine'])}.")
    return (f"Merged from {len(parts)} runs (`rapidnn report`; a later run's workload replaces "
            f"an earlier run's of the same name): " + "; ".join(runs) + f".{machine} Time to "
            f"produce these rows: {results['seconds']:.0f} s.")


#: the report's plot folder, next to ``report.md``
PLOTS = "plots"


def _image(doc: Document, path: Path, caption: str) -> None:
    """Add the plot written at ``path`` (in the plot folder), linked from the Markdown."""
    doc.image(path, caption, f"{PLOTS}/{path.name}")


def _pts(x: float) -> str:
    """A fraction as accuracy points (the report's one unit for losses and tolerances)."""
    return f"{100 * x:.2f}"


def selected_point(results: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any] | None:
    """The sweep point at the (w, u) an entry runs at, if the sweep recorded it."""
    for p in results["sweeps"]["points"].get(entry["name"], []):
        if (p["weight_clusters"], p["input_clusters"]) == (entry["weight_clusters"],
                                                           entry["input_clusters"]):
            return p
    return None


def retraining_reason(entry: dict[str, Any], tolerance: float, retrain_limit: float | None,
                      point: dict[str, Any] | None = None) -> str:
    """Why the entry's point was or was not retrained, from its own numbers: its loss as
    composed against the tolerance and the search's retrain limit (``point``: its sweep
    point, whose ``search`` status names any other reason)."""
    before = entry["float_accuracy"] - entry["composed_accuracy_before_retraining"]
    r = entry["retrain"]
    if r is not None:
        why = "above" if before > tolerance + 1e-12 else "within"
        return (f"retrained, its loss as composed ({_pts(before)} points) being {why} the "
                f"{_pts(tolerance)}-point tolerance: after {r['rounds']} round(s) (round "
                f"{r['chosen_round']} kept) {100 * entry['composed_accuracy']:.2f}% (converged "
                f"on validation: {'yes' if r['converged'] else 'no'})")
    if before <= tolerance + 1e-12:
        return (f"not retrained: its loss as composed, {_pts(before)} points, is within the "
                f"{_pts(tolerance)}-point tolerance")
    if retrain_limit is not None and before > retrain_limit + 1e-12:
        return (f"not retrained: its loss as composed, {_pts(before)} points, is above the "
                f"{_pts(retrain_limit)}-point retrain limit (the search retrains only points "
                "losing at most that much)")
    status = (point or {}).get("search")
    return (f"not retrained (loss as composed {_pts(before)} points; search: {esc(status)})"
            if status else f"not retrained (loss as composed {_pts(before)} points; the "
            "results do not record why)")


def _selection(results: dict[str, Any]) -> str:
    """How each network's (w, u) was chosen, and which networks have none within tolerance."""
    entries, tol = results["workloads"], results["tolerance"]
    missing = [esc(e["name"]) for e in entries if e.get("smallest_within_tolerance") is None]
    text = (f"Each network runs at the smallest (w, u) of the grid "
            f"{results['sweeps']['values']}² whose quality loss is within {_pts(tol)} points "
            "(search sweep below)")
    if not missing:
        return text + f"; all {len(entries)} networks have one."
    return (text + f"; {len(entries) - len(missing)} of {len(entries)} networks have one, "
            f"and for {', '.join(missing)}, which have none, the most accurate (w, u) is "
            "shown instead.")


def build_document(results: dict[str, Any], plot_dir: Path) -> Document:
    """The report of ``results``, its plots written into ``plot_dir``."""
    quick = results["quick"]
    entries = results["workloads"]
    shapes = results["shape_networks"]
    tol = results["tolerance"]
    doc = Document("RAPIDNN reproduction" + (" (QUICK MODE)" if quick else ""))
    if quick:
        doc.banner("**QUICK MODE** (`rapidnn reproduce --quick`): reduced training recipes, "
                   "reduced retraining and test subsets; the numbers below are a smoke test "
                   "of the pipeline, not the paper-grade evaluation.")
    doc.para(f"{_provenance(results)} {_selection(results)} Data used: "
             f"{_fmt_budget(results['budget'])}. Quality loss = float accuracy - composed "
             "accuracy, in accuracy points throughout.")
    doc.heading("Quality and efficiency (the paper's table)")
    doc.para("Accuracies are top-1 on the same test examples for the float and the composed "
             "(retrained) model. Every ratio is RAPIDNN ÷ the baseline, so above 1x favours "
             "RAPIDNN: energy efficiency = the baseline's energy per inference / RAPIDNN's, "
             "speed = RAPIDNN's throughput / the baseline's (cost model of docs/hardware.md "
             "on the simulator's trace); each cell says in words what the ratio means. Paper: "
             "quality loss < 0.3 points; 68.4x / 49.5x energy efficiency and 48.1x / 10.9x "
             "speed over ISAAC / PipeLayer (arXiv v4); 382.6x / 211.5x over a GPU (arXiv v1).")
    doc.table(paper_table(entries, shapes, results["geomean"],
                          results["geomean_with_shapes"] if shapes else None, tolerance=tol))
    if shapes:
        doc.para("ImageNet-shape networks (" + ", ".join(esc(s["name"]) for s in shapes) + "): "
                 "ImageNet is not available offline, so their accuracy is not measured; their "
                 "rows are hardware-only estimates from the layer shapes (random weights, "
                 "synthetic RAPIDNN trace).")
    _paper_gap(doc, results)
    _absolute_sections(doc, entries, plot_dir)
    _hardware_sections(doc, results, plot_dir)
    doc.heading("Memory per neuron and per layer")
    memory = memory_table(entries)
    doc.table(Table(memory.headers, [r for r in memory.rows if r[1] == "**all layers**"],
                    title="memory per neuron (whole network, at each network's (w, u))"))
    doc.details("Memory of every layer", memory)
    _search_sections(doc, results, plot_dir)
    _approx_sections(doc, entries, plot_dir)
    _fault_sections(doc, entries, plot_dir)
    doc.heading("Per-layer energy per architecture")
    doc.para(f"Layers in network order, named as the results record them; networks with more "
             f"than {plots.TOP_LAYERS} layers show their {plots.TOP_LAYERS} most energy-hungry "
             "layers (by RAPIDNN energy) and the rest summed in one bar.")
    for e in entries:
        _image(doc, plots.layer_energy(e, plot_dir / f"layers_{safe_name(e['name'])}.png",
                                       title=f"{e['name']}: energy per inference per layer"),
               f"{esc(e['name'])}: energy per inference of each layer on RAPIDNN, ISAAC, "
               "PipeLayer, GPU (log scale).")
    doc.heading("Per workload")
    limit = results["sweeps"].get("retrain_limit")
    for e in entries:
        reason = retraining_reason(e, tol, limit, selected_point(results, e))
        doc.para(f"**{esc(e['name'])}** ({esc(e['title'])}): (w, u) = ({e['weight_clusters']}, "
                 f"{e['input_clusters']}), {esc(e['selection'])}; {e['test_images']} test images; "
                 f"float {100 * e['float_accuracy']:.2f}%, composed before retraining "
                 f"{100 * e['composed_accuracy_before_retraining']:.2f}%, {reason}; quality "
                 f"loss {_pts(e['quality_loss'])} ± {_pts(e['quality_loss_se'])} points; "
                 f"simulator agreement {100 * e['simulation']['agreement']:.1f}% on "
                 f"{e['simulation']['images']} images; {e['seconds']:.0f} s.")
    return doc


#: the headline ratios the paper claims, in the order the report discusses them
_HEADLINE = tuple((b, m) for b in ("isaac", "pipelayer", "gpu")
                  for m in ("energy_efficiency", "speedup"))


def _paper_gap(doc: Document, results: dict[str, Any]) -> None:
    """Why this run's ratios differ from the paper's, from the cost-model audit's data."""
    doc.heading("Why these ratios differ from the paper's")
    audited = [e for e in results["workloads"] if e.get("audit")]
    if not audited:
        doc.para("These results hold no cost-model audit (the `audit` section, absent from "
                 "quick runs and from results before cost model v2), so the report cannot "
                 "say from the data why its ratios differ from the paper's; `rapidnn audit` "
                 'computes it, and README.md ("RAPIDNN vs the baselines") gives the '
                 "full run's account.")
        return
    first = audited[0]
    scenarios = results.get("audit_geomean") or first["audit"]["scenarios"]
    over = "geometric mean over the networks" if results.get("audit_geomean") else esc(
        first["name"])
    doc.para("The ratios above come from this project's reconstruction of the paper's "
             "hardware (docs/hardware.md), the paper's from its own model, which it does not "
             f"publish. The audit recomputed them under {len(scenarios)} scenarios (every "
             "comparison policy, accounting choice and structural choice, alone and combined) "
             "and searched, per network, the smallest set of changes to the cost model's "
             "numbers that reaches each paper ratio, judging each change physically plausible "
             "or not. Per headline ratio: this run, the paper, the most favourable scenario "
             f"({over}) and what reaching the paper would take on {esc(first['name'])}:")
    t = Table(["ratio", "this run (geometric mean)", "paper", "apart", "most favourable "
               "audit scenario", f"reaching the paper on {esc(first['name'])} needs (any "
               "design)", "... (changes to RAPIDNN only)",
               "networks where a plausible change set reaches it"])
    reached = 0
    for b, m in _HEADLINE:
        key = f"{b}.{m}"
        ours, paper = results["geomean"].get(b, {}).get(m), PAPER[b][m]
        best = max(scenarios, key=lambda s: s.get(b, {}).get(m, 0.0))
        plausible = [esc(e["name"]) for e in audited
                     if e["audit"]["smallest_changes"].get(key, {}).get("plausible")
                     or e["audit"]["smallest_rapidnn_changes"].get(key, {}).get("plausible")]
        reached += bool(plausible)
        need = first["audit"]["smallest_changes"].get(key, {}).get("smallest")
        mine = first["audit"]["smallest_rapidnn_changes"].get(key, {}).get("smallest")
        t.rows.append([ratio_header(b, m), said(ours, m), f"{paper}x",
                       "-" if not ours else ratio(paper / ours),
                       f"{esc(best['name'])}: {said(best.get(b, {}).get(m), m)}",
                       changes_text(need), changes_text(mine),
                       f"{len(plausible)} of {len(audited)}"
                       + (f" ({', '.join(plausible)})" if plausible else "")])
    doc.table(t)
    doc.para(_single_choices(scenarios, over))
    n = len(_HEADLINE)
    summary = (f"None of the {n} paper ratios is reached by a physically plausible set of "
               "changes on any network: within this reconstruction no plausible change "
               "closes the gap" if not reached else
               f"{reached} of the {n} paper ratios {'is' if reached == 1 else 'are'} reached "
               "by a physically plausible set of changes on at least one network (last column)")
    doc.para(f"In words: {summary}. No number was tuned toward the paper (docs/hardware.md "
             "§10-§11; the audit tables below).")


def _single_choices(scenarios: list[dict[str, Any]], over: str, top: int = 3) -> str:
    """The single accounting or structural choices (not policies, not combinations) that
    raise the ISAAC energy efficiency and speed most, each with what it assumes."""
    default = next((s for s in scenarios if s["name"] == "default"), None)
    single = [s for s in scenarios if s["name"].split(":")[0] in ("variant", "structure")]
    if default is None or not single:
        return "The audit records no single accounting or structural choice."
    parts = []
    for m in ("energy_efficiency", "speedup"):
        base = default["isaac"][m]
        moved = [s for s in single if s["isaac"][m] > 1.01 * base]
        ranked = sorted(moved, key=lambda s: -s["isaac"][m])[:top]
        parts.append(f"For {ratio_header('isaac', m)} ({ratio(base)} by default): "
                     + ("; ".join(f"{ratio(s['isaac'][m])} with {esc(s['name'])} "
                                  f"({esc(s.get('description', ''))})" for s in ranked)
                        if ranked else "no single choice raises it"))
    return (f"The single accounting or structural choices that raise a ratio most ({over}). "
            + ". ".join(parts) + ".")


@lru_cache(maxsize=1)
def _baseline_areas() -> dict[str, float | None]:
    """Chip area of each baseline from its hardware preset (results record RAPIDNN's only)."""
    from rapidnn.hardware import chip_summary

    return {b: chip_summary(b)["area_mm2"] for b in BASELINES}


def _absolute_sections(doc: Document, entries: list[dict[str, Any]], plot_dir: Path) -> None:
    """Energy, latency, throughput, power and area in their own units, and where the energy
    goes."""
    doc.heading("Absolute energy, latency, throughput, power and area")
    doc.para("The ratios above as absolute figures, per network and design (as-published "
             "policy). Average power = energy per inference x throughput; the baselines' chip "
             "areas come from their hardware presets (`rapidnn hardware show`), the GPU's is "
             "not modelled.")
    doc.table(absolute_table(entries, _baseline_areas()))
    _image(doc, plots.absolute_plot(entries, plot_dir / "absolute.png"),
           "Energy per inference, latency and throughput per network and design (log scales).")
    _image(doc, plots.breakdown_plot(entries, plot_dir / "energy_breakdown.png"),
           "Where the energy goes: share of each design's energy per inference per kind of "
           "layer (from the per-layer energies), the total at the end of each bar.")
    if any(e.get("energy_breakdown") for e in entries):
        doc.para("The same energy split by hardware component and action (the cost model's "
                 "events × energy per event, docs/hardware.md; `static` = leakage and idle "
                 "power over the pipeline period).")
        doc.table(component_table(entries))
    else:
        doc.para("The split by hardware component is not in this run's results.json (runs "
                 "before it was recorded).")


def _search_sections(doc: Document, results: dict[str, Any], plot_dir: Path) -> None:
    """The (w, u) search: its rule, the smallest points, the loss grid and both fronts."""
    entries, tol = results["workloads"], results["tolerance"]
    sw = results["sweeps"]
    points = sw["points"]
    doc.heading("Accuracy vs (w, u): the search for the smallest codebooks")
    limit = sw.get("retrain_limit")
    rule = ("" if limit is None else f" (points losing more than {_pts(limit)} points before "
            "retraining are not retrained)")
    doc.para("Every (w, u) point is composed and measured; then points are retrained in "
             f"ascending memory per neuron until one is within {_pts(tol)} points{rule}. In "
             "the heat map, cells show the quality loss their colour encodes; r marks a "
             "retrained point and the boxed cell is the smallest within tolerance.")
    doc.table(smallest_table(entries))
    if not points:
        return
    _image(doc, plots.accuracy_grid(points, plot_dir / "accuracy_vs_wu.png", tolerance=tol),
           "Quality loss (points) over the (w, u) grid per network, on one symmetric log "
           "colour scale covering every loss.")
    _image(doc, plots.multi_pareto_plot(points, plot_dir / "pareto.png", x="energy_j",
                                        tolerance=tol),
           "Energy per inference vs quality loss of every (w, u) point, Pareto front in red "
           "(labels: w,u; lower left is better; dotted: tolerance).")
    _image(doc, plots.multi_pareto_plot(points, plot_dir / "pareto_memory.png",
                                        x="bytes_per_neuron", tolerance=tol),
           "Memory per neuron vs quality loss of every (w, u) point, Pareto front in red "
           "(labels: w,u; lower left is better; dotted: tolerance).")


def _approx_sections(doc: Document, entries: list[dict[str, Any]], plot_dir: Path) -> None:
    """The approximate-search sweep as a plot with error bars, its table folded away."""
    doc.heading("Approximate associative search")
    _image(doc, plots.accuracy_vs_bits(entries, plot_dir / "accuracy_vs_bits.png"),
           "Simulated accuracy vs the number of AM bits searched, ± one binomial standard "
           "error on the sweep's test images (dashed, with its band: exact search).")
    doc.details("All approximate-search rows (the plot's numbers)", approx_table(entries))


def _fault_sections(doc: Document, entries: list[dict[str, Any]], plot_dir: Path) -> None:
    """Accuracy under stuck-at faults and the lifetime (absent from results before them)."""
    faulty = {e["name"]: e["faults"] for e in entries if e.get("faults")}
    if not faulty:
        return
    doc.heading("Device faults and endurance")
    doc.para("Stuck-at cells (half at 0, half at 1) in the product-table crossbars, the "
             "processing crossbars and the encoder AMs, one block kind at a time, seeded "
             "trials (docs/faults.md; our fault model, the paper has none). Processing-crossbar "
             "faults are simulated product by product, on fewer test images (the table's "
             "column). Lifetime: writes per cell per inference from the Trace, at the preset's "
             "endurance and the cost model's throughput, without and with ideal wear "
             "levelling (docs/hardware.md, Endurance).")
    _image(doc, plots.fault_curves_plot(faulty, plot_dir / "faults.png"),
           "Accuracy against stuck-at rate per block kind (error bars: spread over trials; "
           "dashed: fault-free, dotted: one point lost).")
    doc.table(fault_table(entries))
    doc.table(endurance_table(entries))


def _hardware_sections(doc: Document, results: dict[str, Any], plot_dir: Path) -> None:
    """Policies, mapping/occupancy and the audit (absent from results before cost model v2)."""
    entries, shapes = results["workloads"], results["shape_networks"]
    if not any(e.get("policies") for e in entries):
        return
    doc.heading("Under matched policies")
    doc.para("The table above is the as-published policy (each chip at its own size, "
             "replication and precision). Here every design is also compared at equal silicon "
             "area (iso-area), at equal power (iso-power), replicated over its whole chip "
             "(filled) and with the baselines at the composed model's operand widths "
             "(precision-matched); definitions in docs/hardware.md §9. Geometric means here, "
             "every network's rows folded below.")
    doc.table(policy_table([], [], results.get("policy_geomean", {})))
    doc.details("Every network under every policy", policy_table(entries, shapes, {}))
    doc.heading("Mapping and row occupancy")
    doc.para("RAPIDNN's mapper (docs/hardware.md §7.6) chooses each layer's values per row, "
             "values per column, row split and copies within the chip's blocks (objective: "
             "energy-delay product). 'Before' is the dense layout (every row slot filled, "
             "copies only as the policy replicates). Row occupancy = busy row-seconds / (chip "
             "rows x pipeline period); 'at full occupancy' is the throughput if every row were "
             "busy (the bound). The last column checks the simulator's Trace and the cost "
             "model count the same blocks for every layer.")
    doc.table(occupancy_table(entries))
    audited = [e for e in entries if e.get("audit")]
    if not audited:
        return
    doc.heading("Audit of the paper's ratios")
    doc.para("Every policy, accounting variant and structural choice alone and combined "
             "(docs/hardware.md §10): what RAPIDNN's reconstruction gives under each, and the "
             "smallest set of changes that would reach each of the paper's ratios, each judged "
             "physically plausible or not. No number was tuned toward the paper.")
    if results.get("audit_geomean"):
        doc.details("Every audit scenario, geometric mean over the networks",
                    audit_table(results["audit_geomean"], "audit scenarios: geometric mean "
                                                          "over the workloads"))
    first = audited[0]
    doc.details(f"Every audit scenario on {esc(first['name'])}",
                audit_table(first["audit"]["scenarios"],
                            f"audit scenarios: {esc(first['name'])}"))
    for e in audited:
        doc.details(f"What the paper's ratios would need on {esc(e['name'])}",
                    changes_table(e["audit"]))
    _image(doc, plots.tornado_plot(first["audit"],
                                   plot_dir / f"tornado_{safe_name(first['name'])}.png"),
           f"{esc(first['name'])}: range of each ratio when one number is scaled over "
              "10^-3..10^3 or one choice is switched (black: default, red: the paper).")


def write_report(results: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``plots/`` into ``folder``: the plots are drawn
    in a temporary folder and both pages rendered before anything is replaced, so a failure
    leaves the old report as it was and nothing new behind; then the plot folder is swapped in
    and each page renamed into place."""
    folder = Path(folder)
    with atomic_folder(folder / PLOTS) as plot_dir:
        doc = build_document(results, plot_dir)
        md, page = doc.to_markdown(), doc.to_html()
    return (atomic_write_text(folder / "report.md", md),
            atomic_write_text(folder / "report.html", page))
