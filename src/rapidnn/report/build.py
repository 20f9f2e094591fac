"""``report.md`` and ``report.html`` (plots embedded) from the content of ``results.json``.

The report is built whole before anything is replaced (:func:`write_report`); plot file names
come from :func:`rapidnn._files.safe_name`, never from the data as it is, and every string from
the data goes into the Markdown escaped (:func:`rapidnn.report.tables.esc`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rapidnn._files import atomic_folder, atomic_write_text, safe_name
from rapidnn.report import plots
from rapidnn.report.html import Document
from rapidnn.report.tables import (
    approx_table,
    audit_table,
    changes_table,
    endurance_table,
    esc,
    fault_table,
    memory_table,
    occupancy_table,
    paper_table,
    policy_table,
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


def build_document(results: dict[str, Any], plot_dir: Path) -> Document:
    """The report of ``results``, its plots written into ``plot_dir``."""
    quick = results["quick"]
    entries = results["workloads"]
    shapes = results["shape_networks"]
    doc = Document("RAPIDNN reproduction" + (" (QUICK MODE)" if quick else ""))
    if quick:
        doc.para("**QUICK MODE** (`rapidnn reproduce --quick`): reduced training recipes, "
                 "reduced retraining and test subsets; the numbers below are a smoke test of "
                 "the pipeline, not the paper-grade evaluation.")
    doc.para(f"{_provenance(results)} Each network runs at the smallest (w, u) of the grid "
             f"{results['sweeps']['values']}² whose retrained quality loss is within "
             f"{100 * results['tolerance']:.1f} points (search sweep below). Data used: "
             f"{_fmt_budget(results['budget'])}.")
    doc.heading("Quality and efficiency (the paper's table)")
    doc.para("Accuracies are top-1 on the same test examples for the float and the composed "
             "(retrained) model; quality loss = float - composed. Energy efficiency = energy "
             "per inference of the baseline / RAPIDNN's; speedup = RAPIDNN's throughput / the "
             "baseline's (cost model of docs/hardware.md on the simulator's trace). Paper: "
             "quality loss < 0.3%; 68.4x / 49.5x energy efficiency and 48.1x / 10.9x speedup "
             "over ISAAC / PipeLayer (arXiv v4); 382.6x / 211.5x over a GPU (arXiv v1).")
    doc.table(paper_table(entries, shapes, results["geomean"],
                          results["geomean_with_shapes"] if shapes else None))
    if shapes:
        doc.para("ImageNet-shape networks (" + ", ".join(esc(s["name"]) for s in shapes) + "): "
                 "ImageNet is not available offline, so their accuracy is not measured; their "
                 "rows are hardware-only estimates from the layer shapes (random weights, "
                 "synthetic RAPIDNN trace).")
    _hardware_sections(doc, results, plot_dir)
    doc.heading("Memory per neuron and per layer")
    doc.table(memory_table(entries))

    doc.heading("Accuracy vs (w, u): the search for the smallest codebooks")
    sw = results["sweeps"]
    points = sw["points"]
    doc.para("Every (w, u) point is composed and measured; then points are retrained in "
             "ascending memory per neuron until one is within tolerance (points losing more "
             f"than {100 * sw['retrain_limit']:.1f} points before retraining are not "
             "retrained). Cells marked r were retrained; the boxed cell is the smallest "
             "within tolerance.")
    doc.table(smallest_table(entries))
    if points:
        _image(doc, plots.accuracy_grid(points, plot_dir / "accuracy_vs_wu.png",
                                      title="test accuracy (%) and quality loss vs (w, u)",
                                      tolerance=results["tolerance"]),
                  "Quality loss over the (w, u) grid per network (cell text: accuracy %).")
        _image(doc, plots.multi_pareto_plot(points, plot_dir / "pareto.png",
                                          title="energy per inference vs accuracy"),
                  "RAPIDNN energy per inference vs accuracy of every (w, u) point, Pareto "
                  "front in red.")
    doc.heading("Approximate associative search")
    _image(doc, plots.accuracy_vs_bits(entries, plot_dir / "accuracy_vs_bits.png",
                                     title="simulated accuracy vs searched AM bits"),
              "Simulated accuracy vs the number of AM bits searched (dashed: exact search).")
    doc.table(approx_table(entries))
    _fault_sections(doc, entries, plot_dir)
    doc.heading("Per-layer energy per architecture")
    for e in entries:
        _image(doc, plots.layer_energy(e, plot_dir / f"layers_{safe_name(e['name'])}.png",
                                       title=f"{e['name']}: energy per layer"),
               f"{esc(e['name'])}: energy per inference of each layer on RAPIDNN, ISAAC, "
                  "PipeLayer, GPU.")
    doc.heading("Per workload")
    for e in entries:
        r = e["retrain"]
        after = ("not retrained: within tolerance as composed" if r is None else
                 f"after {r['rounds']} retraining round(s) (round {r['chosen_round']} kept) "
                 f"{100 * e['composed_accuracy']:.2f}% (converged on validation: "
                 f"{r['converged']})")
        doc.para(f"**{esc(e['name'])}** ({esc(e['title'])}): (w, u) = ({e['weight_clusters']}, "
                 f"{e['input_clusters']}), {esc(e['selection'])}; {e['test_images']} test images; "
                 "composed "
                 f"before retraining {100 * e['composed_accuracy_before_retraining']:.2f}%, "
                 f"{after}; quality loss {100 * e['quality_loss']:.2f} ± "
                 f"{100 * e['quality_loss_se']:.2f} points; simulator agreement "
                 f"{100 * e['simulation']['agreement']:.1f}% on {e['simulation']['images']} "
                 f"images; {e['seconds']:.0f} s.")
    return doc


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
             "(precision-matched); definitions in docs/hardware.md §9.")
    doc.table(policy_table(entries, shapes, results.get("policy_geomean", {})))
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
        doc.table(audit_table(results["audit_geomean"], "audit scenarios: geometric mean "
                                                         "over the workloads"))
    first = audited[0]
    doc.table(audit_table(first["audit"]["scenarios"],
                          f"audit scenarios: {esc(first['name'])}"))
    for e in audited:
        doc.table(changes_table(e["audit"]))
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
