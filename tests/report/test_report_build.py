"""The report as a whole (``rapidnn.report.build``): built in a temporary folder and moved into
place, names from the data neither escaping ``--out`` nor injecting markup, plots written
atomically. On a trimmed copy of a real run's results (tests/experiments/data)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from matplotlib.figure import Figure

from rapidnn._files import safe_name
from rapidnn.report import plots
from rapidnn.report.build import write_report

RESULTS = Path(__file__).parents[1] / "experiments" / "data" / "results-two.json"
EVIL = "a|b<script>alert(1)</script> `x` *y* _z_ [l](u) &amp;\nnext # !"


@pytest.fixture
def run() -> dict[str, Any]:
    return json.loads(RESULTS.read_text())


def _renamed(run: dict[str, Any], name: str) -> dict[str, Any]:
    """``run`` with its first workload renamed ``name`` (in its rows and its sweep)."""
    doc = copy.deepcopy(run)
    old = doc["workloads"][0]["name"]
    doc["workloads"][0]["name"] = name
    doc["sweeps"]["points"][name] = doc["sweeps"]["points"].pop(old)
    return doc


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_workload_name_cannot_write_outside_the_report(run, tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "c" / "d" / "out"
    write_report(_renamed(run, "../../../../x"), out)
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and out not in p.parents]
    assert outside == []
    names = sorted(p.name for p in (out / "plots").iterdir())
    assert f"layers_{safe_name('../../../../x')}.png" in names
    assert all(re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*\.png", n) for n in names)
    md = (out / "report.md").read_text()
    assert all((out / link).is_file() for link in re.findall(r"\]\((plots/[^)]+)\)", md))


def _unescaped_pipes(line: str) -> int:
    return len(re.findall(r"(?<!\\)(?:\\\\)*\|", line))


def test_names_are_escaped_in_the_markdown_and_the_html(run, tmp_path: Path) -> None:
    write_report(_renamed(run, EVIL), tmp_path)
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in md and "<script>" not in page
    assert "\nnext" not in md  # the newline did not start a new Markdown line
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| network | (w, u) |"))
    row = next(line for line in lines if line.startswith("| a\\|b"))
    assert _unescaped_pipes(row) == _unescaped_pipes(header)  # the row's cells stay cells
    assert (r"a\|b\<script\>alert(1)\</script\> \`x\` \*y\* \_z\_ \[l\](u) \&amp; next "
            r"\# \!") in md
    assert "<b>y</b>" not in page and "<code>x</code>" not in page
    assert ("a|b&lt;script&gt;alert(1)&lt;/script&gt; `x` *y* _z_ [l](u) &amp;amp; next # !"
            in page)


def _half_savefig(self: Figure, fname: str, **kwargs: Any) -> None:
    """A savefig killed halfway: part of a PNG written, then the interrupt."""
    Path(fname).write_bytes(b"\x89PNG\r\n\x1a\n half")
    raise KeyboardInterrupt


def test_a_kill_during_a_plot_write_keeps_the_old_plot(run, tmp_path: Path,
                                                       monkeypatch) -> None:
    path = plots.accuracy_vs_bits(run["workloads"], tmp_path / "bits.png")
    before = path.read_bytes()
    monkeypatch.setattr(Figure, "savefig", _half_savefig)
    with pytest.raises(KeyboardInterrupt):
        plots.accuracy_vs_bits(run["workloads"], path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["bits.png"]


def test_a_failed_report_keeps_the_old_one_and_leaves_nothing(run, tmp_path: Path,
                                                              monkeypatch) -> None:
    write_report(run, tmp_path)
    before = _tree(tmp_path)
    assert "plots/pareto.png" in before and "report.md" in before
    monkeypatch.setattr(Figure, "savefig", _half_savefig)
    with pytest.raises(KeyboardInterrupt):
        write_report(_renamed(run, "renamed"), tmp_path)
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plots", "report.html", "report.md"]


def test_a_new_report_replaces_the_old_plots_whole(run, tmp_path: Path) -> None:
    write_report(_renamed(run, "first"), tmp_path)
    assert (tmp_path / "plots" / "layers_first.png").is_file()
    write_report(_renamed(run, "second"), tmp_path)
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert "layers_second.png" in names and "layers_first.png" not in names
    assert not list(tmp_path.glob(".*"))
