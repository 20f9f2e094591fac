"""The report's plots (matplotlib, Agg backend), written as PNG files atomically (a kill during
a write leaves the previous file whole). Names from the data are drawn as plain text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rapidnn._files import atomic_write
from rapidnn.selection import TOLERANCE, pareto_front, smallest_within_tolerance


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path | str) -> Path:
    """Lay out ``fig``, write it to ``path`` as PNG through a temporary file (its name ends in
    ``.tmp``, hence the explicit format) and close it, also when the write fails."""
    try:
        fig.tight_layout()
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    finally:
        _plt().close(fig)


def _label(text: Any) -> str:
    """``text`` (a name from the data) as literal plot text: ``$`` would start mathtext (and a
    malformed formula fails the whole plot), a newline would break the layout."""
    return " ".join(str(text).splitlines()).replace("$", r"\$")


def _energy_axis(ax: Any, xs: Sequence[float]) -> None:
    """Log scale when the energies span more than a decade, else linear (readable ticks)."""
    from matplotlib.ticker import NullFormatter

    pos = [x for x in xs if x > 0]
    if pos and max(pos) / min(pos) > 10:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))


def pareto_plot(points: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Energy per inference (log x) against accuracy; the Pareto front joined and highlighted."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    xs = [p["energy_j"] for p in points]
    ys = [100 * p["composed_accuracy"] for p in points]
    ax.scatter(xs, ys, c="tab:gray", label="(w, u) points", zorder=2)
    for p, x, y in zip(points, xs, ys, strict=True):
        ax.annotate(f"{p['weight_clusters']},{p['input_clusters']}", (x, y), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    front = sorted(pareto_front(list(points)), key=lambda i: xs[i])
    if front:
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "o-", c="tab:red",
                label="Pareto front", zorder=3)
    if points:
        ax.axhline(100 * points[0]["float_accuracy"], ls="--", c="tab:blue", lw=1,
                   label="float model")
    _energy_axis(ax, xs)
    ax.set_xlabel("RAPIDNN energy per inference (J)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(_label(title), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def multi_pareto_plot(sweeps: Mapping[str, Sequence[dict[str, Any]]], path: Path,
                      title: str = "") -> Path:
    """One panel per workload: energy vs accuracy with its Pareto front."""
    plt = _plt()
    n = max(1, len(sweeps))
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4), squeeze=False)
    for ax, (name, points) in zip(axes[0], sweeps.items(), strict=False):
        xs = [p["energy_j"] for p in points]
        ys = [100 * p["composed_accuracy"] for p in points]
        ax.scatter(xs, ys, c="tab:gray")
        for p, x, y in zip(points, xs, ys, strict=True):
            ax.annotate(f"{p['weight_clusters']},{p['input_clusters']}", (x, y), fontsize=7)
        front = sorted(pareto_front(list(points)), key=lambda i: xs[i])
        ax.plot([xs[i] for i in front], [ys[i] for i in front], "o-", c="tab:red",
                label="Pareto front")
        _energy_axis(ax, xs)
        ax.set_title(_label(name), fontsize=9)
        ax.set_xlabel("energy per inference (J)")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(_label(title), fontsize=10)
    return _save(fig, path)


def accuracy_grid(sweeps: Mapping[str, Sequence[dict[str, Any]]], path: Path,
                  title: str = "", tolerance: float = TOLERANCE) -> Path:
    """One panel per workload: quality loss over the (w, u) grid as a heat map, each cell
    labelled with its accuracy (``r`` = after retraining); the smallest point within
    ``tolerance`` is boxed."""
    from matplotlib.patches import Rectangle

    plt = _plt()
    n = max(1, len(sweeps))
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (name, points) in zip(axes.flat, sweeps.items(), strict=False):
        ws = sorted({p["weight_clusters"] for p in points})
        us = sorted({p["input_clusters"] for p in points})
        loss = [[float("nan")] * len(us) for _ in ws]
        for p in points:
            i, j = ws.index(p["weight_clusters"]), us.index(p["input_clusters"])
            loss[i][j] = 100 * p["quality_loss"]
            label = f"{100 * p['composed_accuracy']:.1f}{'r' if p.get('retrained') else ''}"
            ax.text(j, i, label, ha="center", va="center", fontsize=7)
        image = ax.imshow(loss, cmap="RdYlGn_r", vmin=0, vmax=max(1.0, 4 * 100 * tolerance),
                          origin="lower")
        best = smallest_within_tolerance(list(points), tolerance)
        if best is not None:
            i, j = ws.index(best["weight_clusters"]), us.index(best["input_clusters"])
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="tab:blue"))
        ax.set_xticks(range(len(us)), [str(u) for u in us])
        ax.set_yticks(range(len(ws)), [str(w) for w in ws])
        ax.set_xlabel("input clusters u")
        ax.set_ylabel("weight clusters w")
        ax.set_title(_label(name), fontsize=9)
        fig.colorbar(image, ax=ax, label="quality loss (points)", shrink=0.8)
    fig.suptitle(_label(title), fontsize=10)
    return _save(fig, path)


def accuracy_vs_bits(entries: Sequence[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Accuracy against the AM bits searched (approximate search); exact as a dashed line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, e in enumerate(entries):
        rows = e["approximation"]["rows"]
        pts = sorted((r["bits"], r["accuracy"]) for r in rows if r["bits"] is not None)
        color = f"C{i % 10}"
        if pts:
            ax.plot([b for b, _ in pts], [100 * a for _, a in pts], "o-", ms=3, c=color,
                    label=_label(e["name"]))
        exact = [r["accuracy"] for r in rows if r["bits"] is None]
        if exact:
            ax.axhline(100 * exact[0], ls="--", lw=0.8, c=color)
    ax.set_xlabel("searched bits k (approximate AM search; dashed: exact)")
    ax.set_ylabel("simulated accuracy (%)")
    ax.set_title(_label(title), fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def layer_energy(entry: dict[str, Any], path: Path, title: str = "") -> Path:
    """Per-layer energy per inference on each architecture (grouped bars, log scale)."""
    plt = _plt()
    archs = list(entry["layer_energy"])
    layers: list[str] = []
    for per in entry["layer_energy"].values():
        layers += [n for n in per if n not in layers]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.5 * len(layers) * len(archs) / 2), 4.2))
    width = 0.8 / max(1, len(archs))
    for i, arch in enumerate(archs):
        per = entry["layer_energy"][arch]
        xs = [j + i * width for j in range(len(layers))]
        ax.bar(xs, [per.get(n, 0.0) or 0.0 for n in layers], width, label=_label(arch))
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(layers))])
    ax.set_xticklabels([_label(n) for n in layers], rotation=60, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("energy per inference (J)")
    ax.set_title(_label(title), fontsize=9)
    ax.legend(fontsize=8)
    return _save(fig, path)


def tornado_plot(audit: Mapping[str, Any], path: Path | str, top: int = 12) -> Path:
    """The audit's tornado: for each headline ratio (energy efficiency and speedup over ISAAC
    and PipeLayer) the range each number or choice spans, widest first, with the paper's ratio
    and the default as vertical lines."""
    plt = _plt()
    keys = [k for k in ("isaac.energy_efficiency", "isaac.speedup",
                        "pipelayer.energy_efficiency", "pipelayer.speedup")
            if audit["tornado"].get(k)]
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 2.2 + 0.32 * top * len(keys)),
                             squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        rows = audit["tornado"][key][:top][::-1]
        base, metric = key.split(".")
        default = audit["smallest_changes"][key]["default"]
        for y, r in enumerate(rows):
            ax.barh(y, r["high"] - r["low"], left=r["low"], color="#4c72b0")
        ax.set_yticks(range(len(rows)), [_label(r["parameter"]) for r in rows], fontsize=7)
        ax.set_xscale("log")
        ax.axvline(default, color="black", lw=1, label=f"default {default:.3g}x")
        paper = audit["paper"][base][metric]
        ax.axvline(paper, color="#c44e52", ls="--", lw=1, label=f"paper {paper}x")
        ax.set_title(f"RAPIDNN {metric.replace('_', ' ')} over {base} "
                     f"({_label(audit['network'])}): range over 10^-3..10^3", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def fault_curves_plot(curves: Mapping[str, Mapping[str, Any]], path: Path | str,
                      title: str = "") -> Path:
    """Accuracy against fault rate (log axis), one panel per network, one line per block kind
    with the spread over trials as error bars; the fault-free accuracy dashed and the
    one-point-loss level dotted. ``curves``: network name -> ``fault_curves`` result."""
    plt = _plt()
    n = max(1, len(curves))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.8), squeeze=False)
    for ax, (name, res) in zip(axes[0], curves.items(), strict=False):
        clean = res["clean_accuracy"]
        for curve in res["curves"]:
            pts = [p for p in curve["points"] if p["rate"] > 0]
            if not pts:
                continue
            ax.errorbar([p["rate"] for p in pts], [p["accuracy"] for p in pts],
                        yerr=[p["std"] for p in pts], marker="o", capsize=3,
                        label=_label(curve["block"]))
        ax.axhline(clean, color="grey", linestyle="--", linewidth=1, label="fault-free")
        ax.axhline(clean - 0.01, color="grey", linestyle=":", linewidth=1, label="-1 point")
        ax.set_xscale("log")
        ax.set_xlabel("fault rate (per cell; per bit per access for flips)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(_label(name))
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(_label(title))
    return _save(fig, path)
