"""What the report says and shows (issue 23): every sentence from the data, ratios whose direction
cannot be misread, the paper gap explained from the audit, absolute figures, one unit for
quality loss, honest colour scales, legible small multiples, the quick banner styled. On the
trimmed real run of tests/experiments/data (the audit part on the full run's results)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.text import Text

from rapidnn.report import plots
from rapidnn.report.build import _paper_gap, retraining_reason, write_report
from rapidnn.report.html import Document
from rapidnn.report.tables import paper_table, ratio_header, said

ROOT = Path(__file__).parents[2]
RESULTS = ROOT / "tests" / "experiments" / "data" / "results-two.json"
FULL = ROOT / "docs" / "results" / "full-run" / "results.json"
#: the report page's content width (html.py: 1200 px less the padding)
PAGE_PX = 1168


@pytest.fixture(scope="module")
def run() -> dict[str, Any]:
    return json.loads(RESULTS.read_text())


@pytest.fixture(scope="module")
def drawn(run, tmp_path_factory) -> dict[str, Any]:
    """The report of ``run`` (made quick), with every figure it drew kept by plot name."""
    figures: dict[str, Any] = {}
    original = plots._save
    mp = pytest.MonkeyPatch()

    def keep(fig: Any, path: Path | str, layout: bool = True) -> Path:
        if layout:
            fig.tight_layout()
        figures[Path(path).name] = _facts(fig)
        return original(fig, path, layout=False)

    mp.setattr(plots, "_save", keep)
    out = tmp_path_factory.mktemp("report")
    try:
        write_report({**copy.deepcopy(run), "quick": True}, out)
    finally:
        mp.undo()
    return {"figures": figures, "md": (out / "report.md").read_text(),
            "html": (out / "report.html").read_text()}


def _facts(fig: Any) -> dict[str, Any]:
    """What a test needs of a figure before it is closed."""
    texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return {"width_px": fig.get_figwidth() * plots.DPI,
            "smallest_pt": min(t.get_fontsize() for t in texts),
            "axes": [{"xlabel": ax.get_xlabel(), "images": [(im.norm, im.get_array())
                                                            for im in ax.images],
                      "texts": [t.get_text() for t in ax.texts],
                      "errorbars": sum(isinstance(c, ErrorbarContainer) for c in ax.containers),
                      "xticks": list(ax.get_xticks()), "yticklabels":
                      [t.get_text() for t in ax.get_yticklabels()],
                      "hbars": sum(1 for p in ax.patches if p.get_width() > 0)}
                     for ax in fig.axes]}


def _entry(run: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(run["workloads"][0]), **changes}


def test_the_retraining_sentence_gives_the_actual_reason(run) -> None:
    e = run["workloads"][0]
    over = _entry(run, retrain=None,
                  composed_accuracy_before_retraining=e["float_accuracy"] - 0.04)
    text = retraining_reason(over, 0.003, 0.015)
    assert "4.00 points" in text and "above the 1.50-point retrain limit" in text
    assert "within" not in text
    within = _entry(run, retrain=None,
                    composed_accuracy_before_retraining=e["float_accuracy"] - 0.001)
    assert "within the 0.30-point tolerance" in retraining_reason(within, 0.003, 0.015)
    between = _entry(run, retrain=None,
                     composed_accuracy_before_retraining=e["float_accuracy"] - 0.01)
    failed = retraining_reason(between, 0.003, 0.015, {"search": "retraining failed: boom"})
    assert "retraining failed: boom" in failed and "tolerance" not in failed
    retrained = _entry(run, retrain={"rounds": 2, "chosen_round": 1, "converged": False},
                       composed_accuracy_before_retraining=e["float_accuracy"] - 0.01)
    assert retraining_reason(retrained, 0.003, 0.015).startswith(
        "retrained, its loss as composed (1.00 points) being above the 0.30-point tolerance")


def test_the_report_prints_the_limit_reason_for_a_point_over_it(run, tmp_path: Path) -> None:
    doc = copy.deepcopy(run)
    e = doc["workloads"][0]
    e["retrain"] = None
    e["composed_accuracy_before_retraining"] = e["float_accuracy"] - 0.04
    write_report(doc, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "within tolerance as composed" not in md
    limit = 100 * doc["sweeps"]["retrain_limit"]
    assert f"4.00 points, is above the {limit:.2f}-point retrain limit" in md


def test_ratios_say_which_way_they_go(run) -> None:
    assert said(0.4, "energy_efficiency") == "0.4x (RAPIDNN uses 2.5x more)"
    assert said(8.0, "energy_efficiency") == "8x (RAPIDNN uses 8x less)"
    assert said(0.05, "speedup") == "0.05x (RAPIDNN 20x slower)"
    assert said(1520.0, "speedup") == "1,520x (RAPIDNN 1,520x faster)"
    assert ratio_header("isaac", "energy_efficiency") == "energy efficiency, RAPIDNN ÷ ISAAC"
    t = paper_table(run["workloads"], [], run["geomean"])
    assert "speed, RAPIDNN ÷ PipeLayer" in t.headers
    assert not any(h.endswith((" energy", " speed")) for h in t.headers)


def test_the_paper_gap_is_explained_from_the_audit() -> None:
    full = json.loads(FULL.read_text())
    doc = Document("t")
    _paper_gap(doc, full)
    text = doc.to_markdown()
    assert "68.4x" in text and "most favourable audit scenario" in text
    best = max(full["audit_geomean"], key=lambda s: s["isaac"]["speedup"])
    assert f"{best['name']}: {said(best['isaac']['speedup'], 'speedup')}" in text
    variant = max((s for s in full["audit_geomean"] if s["name"].startswith("variant:")),
                  key=lambda s: s["isaac"]["energy_efficiency"])
    assert f"{variant['isaac']['energy_efficiency']:.3g}x with {variant['name']}" in text
    none = Document("t")
    _paper_gap(none, {**full, "workloads": [{k: v for k, v in e.items() if k != "audit"}
                                            for e in full["workloads"]]})
    assert "hold no cost-model audit" in none.to_markdown()


def test_quality_loss_is_in_points_everywhere(drawn) -> None:
    md = drawn["md"]
    assert not re.search(r"loss[^|\n]{0,30}?-?\d+\.\d+ ?%", md)
    for block in re.findall(r"(?m)^\| network \| \(w, u\) .*\n\|.*\n((?:\|.*\n)+)", md):
        for row in block.splitlines():
            assert "%" not in row.split(" | ")[4]  # the quality-loss column
    assert "quality loss (points)" in md


def test_absolute_figures_are_reported(drawn, run) -> None:
    md = drawn["md"]
    assert "| network | design | energy per inference (µJ) | latency (µs) |" in md
    e = run["workloads"][0]
    assert f"| {e['name']} | ISAAC | " in md and f"| {e['name']} | GPU | " in md
    assert {"absolute.png", "energy_breakdown.png"} <= set(drawn["figures"])


def test_every_figure_is_legible_at_its_displayed_size(drawn) -> None:
    assert len(drawn["figures"]) >= 8
    for name, fig in drawn["figures"].items():
        assert fig["width_px"] <= PAGE_PX, name
        assert fig["smallest_pt"] >= plots.MIN_FONT_PT, name


def test_memory_and_energy_fronts_side_by_side(drawn) -> None:
    labels = {ax["xlabel"] for ax in drawn["figures"]["pareto_memory.png"]["axes"]}
    assert labels == {"memory (bytes per neuron)"}
    labels = {ax["xlabel"] for ax in drawn["figures"]["pareto.png"]["axes"]}
    assert labels == {"energy per inference (J)"}


def test_the_heat_map_colours_what_it_prints_on_an_unclipped_scale(drawn, run) -> None:
    panels = [ax for ax in drawn["figures"]["accuracy_vs_wu.png"]["axes"] if ax["images"]]
    worst = max(100 * p["quality_loss"] for pts in run["sweeps"]["points"].values()
                for p in pts)
    for ax in panels:
        norm, grid = ax["images"][0]
        assert norm.vmax >= worst
        printed = sorted(float(t.rstrip("r")) for t in ax["texts"])
        coloured = sorted(float(v) for v in grid.compressed())
        assert printed == pytest.approx(coloured, abs=0.006)


def test_approximate_search_has_error_bars_integer_ticks_and_a_folded_table(drawn) -> None:
    axes = [ax for ax in drawn["figures"]["accuracy_vs_bits.png"]["axes"] if ax["xlabel"]]
    assert axes and all(ax["errorbars"] == 1 for ax in axes)
    assert all(float(t).is_integer() for ax in axes for t in ax["xticks"])
    assert "<details><summary>All approximate-search rows" in drawn["md"]
    assert "<details><summary>All approximate-search rows" in drawn["html"]


def test_a_deep_network_gets_a_readable_layer_chart(run, tmp_path: Path, monkeypatch) -> None:
    names = [f"stages.{i // 3}.{i % 3}.conv" for i in range(30)]
    entry = _entry(run, layer_energy={d: {n: 1e-6 * (i + 1) for i, n in enumerate(names)}
                                      for d in ("rapidnn", "isaac")})
    seen: dict[str, Any] = {}
    original = plots._save

    def keep(fig: Any, path: Path | str, layout: bool = True) -> Path:
        seen.update(_facts(fig))
        return original(fig, path, layout)

    monkeypatch.setattr(plots, "_save", keep)
    plots.layer_energy(entry, tmp_path / "layers.png")
    ax = seen["axes"][0]
    assert ax["yticklabels"] == [*names[-plots.TOP_LAYERS:],
                                 f"other {30 - plots.TOP_LAYERS} layers"]
    assert ax["hbars"] == 2 * (plots.TOP_LAYERS + 1)
    assert seen["smallest_pt"] >= plots.MIN_FONT_PT


def test_the_quick_banner_is_styled(drawn) -> None:
    page = drawn["html"]
    assert '<div class="quick"><b>QUICK MODE</b>' in page
    assert re.search(r"\.quick\{[^}]*background", page)
    assert drawn["md"].splitlines()[2].startswith("> **QUICK MODE**")


def test_the_energy_split_by_component_and_action_is_tabled(run, tmp_path: Path) -> None:
    doc = copy.deepcopy(run)
    split = {"rapidnn": {"rna_block.nor_cycle": 3e-6, "rna_block.table_read": 1e-6,
                         "static": 1e-6},
             "isaac": {"adc.convert": 2e-6, "crossbar.read": 2e-6}}
    doc["workloads"][0]["energy_breakdown"] = split
    write_report(doc, tmp_path)
    md = (tmp_path / "report.md").read_text().replace("\\_", "_")
    assert "rna_block.nor_cycle 60.0 %" in md and "adc.convert 50.0 %" in md
    old = tmp_path / "old"
    write_report(copy.deepcopy(run), old)  # a run from before the split was recorded says so
    assert "not in this run's results.json" in (old / "report.md").read_text()


def test_the_memory_table_sums_the_tables_of_all_layers(run) -> None:
    from rapidnn.report.tables import memory_table

    e = run["workloads"][0]
    rows = memory_table([e]).rows
    total = sum(m["table_bits"] for m in e["memory"]["layers"].values()) / 8192
    assert rows[-1][1] == "**all layers**" and rows[-1][4] == f"{total:.1f}"
