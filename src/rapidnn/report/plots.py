"""The report's plots (matplotlib, Agg backend), written as PNG files atomically (a kill during
a write leaves the previous file whole). Names from the data are drawn as plain text.

Every figure is drawn at most :data:`WIDTH_IN` wide at :data:`DPI`, so the report page
(``report.html``, 1200 px wide) shows it at its drawn size, and no text is smaller than
:data:`MIN_FONT_PT` there; several networks are small multiples in a grid of at most
:data:`COLUMNS` columns. Quality loss is in accuracy points everywhere."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rapidnn._files import atomic_write
from rapidnn.report.tables import NAMES, absolute, num, ratio_header
from rapidnn.selection import TOLERANCE, pareto_front, smallest_within_tolerance

#: resolution of the PNG files, and the widest figure (inches): 1100 px, shown unscaled on
#: the report's 1200 px page
DPI = 100
WIDTH_IN = 11.0
#: the smallest text a figure may hold (points, at its displayed size)
MIN_FONT_PT = 9.0
#: columns of a grid of small multiples
COLUMNS = 3
#: per-layer charts show this many layers (the most energy-hungry), the rest summed in one bar
TOP_LAYERS = 14
_STYLE = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10,
          "xtick.labelsize": 9.5, "ytick.labelsize": 9.5, "legend.fontsize": 9.5,
          "figure.titlesize": 12}
_DESIGNS = ("rapidnn", "isaac", "pipelayer", "gpu")
_COLORS = {"rapidnn": "tab:red", "isaac": "tab:blue", "pipelayer": "tab:green",
           "gpu": "tab:gray"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(_STYLE)
    return plt


def _save(fig: Any, path: Path | str, layout: bool = True) -> Path:
    """Lay out ``fig`` (unless ``layout`` is false: laid out already), write it to ``path`` as
    PNG through a temporary file (its name ends in ``.tmp``, hence the explicit format) and
    close it, also when the write fails."""
    try:
        if layout:
            fig.tight_layout()
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    finally:
        _plt().close(fig)


def _label(text: Any) -> str:
    """``text`` (a name from the data) as literal plot text: ``$`` would start mathtext (and a
    malformed formula fails the whole plot), a newline would break the layout."""
    return " ".join(str(text).splitlines()).replace("$", r"\$")


def _grid(n: int, height: float) -> tuple[Any, list[Any]]:
    """A figure of ``n`` panels (at least one), :data:`COLUMNS` per row, each ``height``
    inches tall (narrower with fewer columns); unused panels hidden. Returns the figure and
    the panels in order."""
    plt = _plt()
    n = max(1, n)
    cols = min(n, COLUMNS)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(min(WIDTH_IN, 2.2 + 3.6 * cols),
                                                  height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def _energy_axis(ax: Any, xs: Sequence[float]) -> None:
    """Log scale when the energies span more than a decade, else linear (readable ticks)."""
    from matplotlib.ticker import NullFormatter

    pos = [x for x in xs if x > 0]
    if pos and max(pos) / min(pos) > 10:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))


#: quality-loss ticks (points) on the symmetric log axes and colour bars
_LOSS_TICKS = (-30, -10, -3, -1, -0.3, 0, 0.3, 1, 3, 10, 30, 100)


def _loss_axis(ax: Any, values: Sequence[float], tolerance: float) -> None:
    """Quality loss (points) on a symmetric log axis (linear within one point) with plain
    ticks, the tolerance dotted."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_yscale("symlog", linthresh=1.0, linscale=0.6)
    low, high = min([*values, 0.0]), max([*values, 1.0])
    ax.yaxis.set_major_locator(FixedLocator([t for t in _LOSS_TICKS if low <= t <= high]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.axhline(100 * tolerance, ls=":", c="tab:green", lw=1.5,
               label=f"tolerance {100 * tolerance:.1f}")
    ax.set_ylabel("quality loss (points)")
    ax.grid(alpha=0.3)


def _front_panel(ax: Any, points: Sequence[dict[str, Any]], x: str, tolerance: float) -> None:
    """One network's (w, u) points: ``x`` (energy on a log axis if it spans a decade) against
    quality loss, its Pareto front joined in red and labelled ``w,u`` where labels do not
    collide."""
    xs = [p[x] for p in points]
    ys = [100 * p["quality_loss"] for p in points]
    ax.scatter(xs, ys, c="tab:gray", s=18, label="(w, u) points", zorder=2)
    front = sorted(pareto_front(list(points), x=x), key=lambda i: xs[i])
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "o-", c="tab:red", ms=5,
            label="Pareto front", zorder=3)
    _loss_axis(ax, ys, tolerance)
    if x == "energy_j":
        _energy_axis(ax, xs)
    ax.autoscale_view()
    placed: list[tuple[float, float]] = []
    for i in front:
        px, py = ax.transData.transform((xs[i], ys[i]))
        if any(abs(px - qx) < 40 and abs(py - qy) < 14 for qx, qy in placed):
            continue
        placed.append((px, py))
        p = points[i]
        ax.annotate(f"{p['weight_clusters']},{p['input_clusters']}", (xs[i], ys[i]),
                    fontsize=9, xytext=(4, 4), textcoords="offset points", color="tab:red")


def pareto_plot(points: Sequence[dict[str, Any]], path: Path, title: str = "",
                tolerance: float = TOLERANCE) -> Path:
    """One sweep: energy per inference against quality loss, the Pareto front highlighted."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 5))
    _front_panel(ax, points, "energy_j", tolerance)
    ax.set_xlabel("RAPIDNN energy per inference (J)")
    ax.set_title(_label(title))
    ax.legend()
    return _save(fig, path)


def multi_pareto_plot(sweeps: Mapping[str, Sequence[dict[str, Any]]], path: Path,
                      x: str = "energy_j", title: str = "",
                      tolerance: float = TOLERANCE) -> Path:
    """Small multiples, one per network: ``x`` (``energy_j`` or ``bytes_per_neuron``) against
    quality loss over the (w, u) grid, each with its Pareto front (lower left is better)."""
    fig, axes = _grid(len(sweeps), 3.6)
    for ax, (name, points) in zip(axes, sweeps.items(), strict=False):
        _front_panel(ax, points, x, tolerance)
        ax.set_xlabel("energy per inference (J)" if x == "energy_j" else
                      "memory (bytes per neuron)")
        ax.set_title(_label(name))
    axes[0].legend(loc="upper right")
    if title:
        fig.suptitle(_label(title))
    return _save(fig, path)


def accuracy_grid(sweeps: Mapping[str, Sequence[dict[str, Any]]], path: Path,
                  title: str = "", tolerance: float = TOLERANCE) -> Path:
    """Small multiples, one per network: quality loss (points) over the (w, u) grid as a heat
    map on one symmetric-log colour scale spanning every loss (nothing clipped), each cell
    labelled with that same loss (``r``: after retraining); the smallest point within
    ``tolerance`` is boxed."""
    from matplotlib.colors import SymLogNorm
    from matplotlib.patches import Rectangle

    losses = [100 * p["quality_loss"] for pts in sweeps.values() for p in pts]
    low = min([*losses, -100 * tolerance])
    high = max([*losses, 1.0])
    norm = SymLogNorm(linthresh=100 * tolerance, linscale=0.5, vmin=low, vmax=high, base=10)
    fig, axes = _grid(len(sweeps), 3.5)
    image = None
    for ax, (name, points) in zip(axes, sweeps.items(), strict=False):
        ws = sorted({p["weight_clusters"] for p in points})
        us = sorted({p["input_clusters"] for p in points})
        grid = [[float("nan")] * len(us) for _ in ws]
        for p in points:
            i, j = ws.index(p["weight_clusters"]), us.index(p["input_clusters"])
            value = 100 * p["quality_loss"]
            grid[i][j] = value
            text = f"{value:.{1 if abs(value) >= 10 else 2}f}{'r' if p.get('retrained') else ''}"
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if abs(value) > 10 else "black")
        image = ax.imshow(grid, cmap="RdYlGn_r", norm=norm, origin="lower", aspect="auto")
        best = smallest_within_tolerance(list(points), tolerance)
        if best is not None:
            i, j = ws.index(best["weight_clusters"]), us.index(best["input_clusters"])
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2.5, ec="tab:blue"))
        ax.set_xticks(range(len(us)), [str(u) for u in us])
        ax.set_yticks(range(len(ws)), [str(w) for w in ws])
        ax.set_xlabel("input clusters u")
        ax.set_ylabel("weight clusters w")
        ax.set_title(_label(name))
    if title:
        fig.suptitle(_label(title))
    inch = 1 / fig.get_figwidth()  # one inch as a fraction of the figure's width
    fig.tight_layout(rect=(0, 0, 1 - 1.5 * inch, 1))
    if image is not None:
        bar = fig.colorbar(image, cax=fig.add_axes((1 - 1.3 * inch, 0.08, 0.2 * inch, 0.84)))
        bar.set_label(f"quality loss (points)\nrange {low:.1f} to {high:.1f} (not clipped)\n"
                      f"log scale, linear within ±{100 * tolerance:.1f}")
        bar.set_ticks([t for t in _LOSS_TICKS if low <= t <= high])
        bar.ax.set_yticklabels([f"{t:g}" for t in bar.get_ticks()])
    return _save(fig, path, layout=False)


def _binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` images."""
    return math.sqrt(max(p * (1 - p), 0.0) / n) if n > 0 else 0.0


def accuracy_vs_bits(entries: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Small multiples, one per network: simulated accuracy against the AM bits searched, with
    binomial standard errors on the sweep's images; exact search dashed with its ± one standard
    error band."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = _grid(len(entries), 3.3)
    for ax, e in zip(axes, entries, strict=False):
        n = e["approximation"].get("images", 0)
        rows = e["approximation"]["rows"]
        pts = sorted((r["bits"], 100 * r["accuracy"]) for r in rows if r["bits"] is not None)
        if pts:
            ax.errorbar([b for b, _ in pts], [a for _, a in pts],
                        yerr=[100 * _binomial_se(a / 100, n) for _, a in pts], fmt="o-",
                        ms=4, capsize=3, c="tab:blue", label="approximate search")
        exact = [100 * r["accuracy"] for r in rows if r["bits"] is None]
        if exact:
            se = 100 * _binomial_se(exact[0] / 100, n)
            ax.axhline(exact[0], ls="--", lw=1, c="black", label="exact search")
            ax.axhspan(exact[0] - se, exact[0] + se, color="black", alpha=0.1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("searched AM bits k")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{_label(e['name'])} ({n} images)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    if title:
        fig.suptitle(_label(title))
    return _save(fig, path)


def layer_energy(entry: dict[str, Any], path: Path, title: str = "",
                 top: int = TOP_LAYERS) -> Path:
    """Per-layer energy per inference on each architecture as horizontal grouped bars (log
    scale), layers in network order with their names as recorded; beyond ``top`` layers, the
    ``top`` layers using most energy on RAPIDNN are shown and the rest summed in one bar."""
    plt = _plt()
    per_arch = entry["layer_energy"]
    archs = list(per_arch)
    layers: list[str] = []
    for per in per_arch.values():
        layers += [n for n in per if n not in layers]
    ranked = per_arch.get("rapidnn") or next(iter(per_arch.values()), {})
    hungry = sorted(layers, key=lambda k: -(ranked.get(k) or 0.0))[:top]
    shown = [n for n in layers if n in hungry]
    rest = [n for n in layers if n not in shown]
    labels = [_label(n) for n in shown] + ([f"other {len(rest)} layers"] if rest else [])
    fig, ax = plt.subplots(figsize=(8.5, 1.8 + 0.13 * len(labels) * max(1, len(archs))))
    bar = 0.8 / max(1, len(archs))
    for i, arch in enumerate(archs):
        per = per_arch[arch]
        values = [per.get(n) or 0.0 for n in shown]
        if rest:
            values.append(sum(per.get(n) or 0.0 for n in rest))
        ys = [j + (i - (len(archs) - 1) / 2) * bar for j in range(len(labels))]
        ax.barh(ys, values, bar, label=NAMES.get(arch, _label(arch)),
                color=_COLORS.get(arch, f"C{i}"))
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (J, log scale)")
    ax.set_title(_label(title), pad=28)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=max(1, len(archs)),
              frameon=False)
    return _save(fig, path)


def absolute_plot(entries: Sequence[dict[str, Any]], path: Path) -> Path:
    """Energy per inference, latency and throughput of RAPIDNN and each baseline per network
    (horizontal grouped bars, log scales)."""
    plt = _plt()
    names = [_label(e["name"]) for e in entries]
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH_IN, 1.6 + 0.75 * len(entries)),
                             sharey=True, squeeze=False)
    bar = 0.8 / len(_DESIGNS)
    for ax, (key, label) in zip(axes[0], (("energy_j", "energy per inference (J)"),
                                          ("latency_s", "latency (s)"),
                                          ("throughput_ips", "throughput (inferences/s)")),
                                strict=True):
        for i, d in enumerate(_DESIGNS):
            values = [absolute(e, d)[key] for e in entries]
            ax.barh([j + (i - 1.5) * bar for j in range(len(entries))],
                    [v or 0.0 for v in values], bar, color=_COLORS[d], label=NAMES[d])
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(entries)), names)
    axes[0][0].invert_yaxis()
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(_DESIGNS))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _save(fig, path, layout=False)


def breakdown_plot(entries: Sequence[dict[str, Any]], path: Path) -> Path:
    """Small multiples, one per network: the share of each design's energy per inference spent
    in each kind of layer (from the per-layer energies), the total written at the bar's end."""
    kinds: list[str] = []
    shares: list[dict[str, dict[str, float]]] = []
    totals: list[dict[str, float]] = []
    for e in entries:
        kind_of = {layer["name"]: layer["kind"] for layer in e["rapidnn"].get("layers", [])}
        share, total = {}, {}
        for d, per in e["layer_energy"].items():
            by_kind: dict[str, float] = {}
            for name, joules in per.items():
                k = kind_of.get(name, "other")
                by_kind[k] = by_kind.get(k, 0.0) + (joules or 0.0)
                if k not in kinds:
                    kinds.append(k)
            total[d] = sum(by_kind.values())
            share[d] = {k: 100 * v / total[d] if total[d] else 0.0 for k, v in by_kind.items()}
        shares.append(share)
        totals.append(total)
    fig, axes = _grid(len(entries), 2.6)
    for ax, e, share, total in zip(axes, entries, shares, totals, strict=False):
        designs = list(share)
        left = [0.0] * len(designs)
        for c, k in enumerate(kinds):
            widths = [share[d].get(k, 0.0) for d in designs]
            ax.barh(range(len(designs)), widths, left=left, color=f"C{c}", label=_label(k))
            left = [a + b for a, b in zip(left, widths, strict=True)]
        for y, d in enumerate(designs):
            ax.text(102, y, f"{num(1e6 * total[d])} µJ", va="center", fontsize=9)
        ax.set_yticks(range(len(designs)), [NAMES.get(d, _label(d)) for d in designs])
        ax.invert_yaxis()
        ax.set_xlim(0, 145)
        ax.set_xticks([0, 25, 50, 75, 100])
        ax.set_xlabel("share of energy per inference (%)")
        ax.set_title(_label(e["name"]))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(kinds), 6),
               title="layer kind")
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return _save(fig, path, layout=False)


def tornado_plot(audit: Mapping[str, Any], path: Path | str, top: int = 12) -> Path:
    """The audit's tornado: for each headline ratio (energy efficiency and speedup over ISAAC
    and PipeLayer) the range each number or choice spans, widest first, with the paper's ratio
    and the default as vertical lines."""
    plt = _plt()
    keys = [k for k in ("isaac.energy_efficiency", "isaac.speedup",
                        "pipelayer.energy_efficiency", "pipelayer.speedup")
            if audit["tornado"].get(k)]
    fig, axes = plt.subplots(len(keys), 1, figsize=(WIDTH_IN, 1.2 + 0.34 * top * len(keys)),
                             squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        rows = audit["tornado"][key][:top][::-1]
        base, metric = key.split(".")
        default = audit["smallest_changes"][key]["default"]
        for y, r in enumerate(rows):
            ax.barh(y, r["high"] - r["low"], left=r["low"], color="#4c72b0")
        ax.set_yticks(range(len(rows)), [_label(r["parameter"]) for r in rows])
        ax.set_xscale("log")
        ax.axvline(default, color="black", lw=1, label=f"default {default:.3g}x")
        paper = audit["paper"][base][metric]
        ax.axvline(paper, color="#c44e52", ls="--", lw=1, label=f"paper {paper}x")
        ax.set_title(f"{ratio_header(base, metric)} ({_label(audit['network'])}): range "
                     "over 10^-3..10^3")
        ax.legend(loc="lower right")
    return _save(fig, path)


def fault_curves_plot(curves: Mapping[str, Mapping[str, Any]], path: Path | str,
                      title: str = "") -> Path:
    """Accuracy against fault rate (log axis), one panel per network, one line per block kind
    with the spread over trials as error bars; the fault-free accuracy dashed and the
    one-point-loss level dotted. ``curves``: network name -> ``fault_curves`` result."""
    fig, axes = _grid(len(curves), 3.8)
    for ax, (name, res) in zip(axes, curves.items(), strict=False):
        clean = 100 * res["clean_accuracy"]
        for curve in res["curves"]:
            pts = [p for p in curve["points"] if p["rate"] > 0]
            if not pts:
                continue
            ax.errorbar([p["rate"] for p in pts], [100 * p["accuracy"] for p in pts],
                        yerr=[100 * p["std"] for p in pts], marker="o", capsize=3,
                        label=_label(curve["block"]))
        ax.axhline(clean, color="grey", linestyle="--", linewidth=1, label="fault-free")
        ax.axhline(clean - 1, color="grey", linestyle=":", linewidth=1, label="-1 point")
        ax.set_xscale("log")
        ax.set_xlabel("fault rate (per cell; flips: per bit per access)")
        ax.set_ylabel("accuracy (%)")
        ax.set_ylim(0, 102)
        ax.set_title(_label(name))
        ax.legend(loc="lower left")
    if title:
        fig.suptitle(_label(title))
    return _save(fig, path)
