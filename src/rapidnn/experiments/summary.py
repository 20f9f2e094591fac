"""Cross-workload summaries of a reproduction (shared by ``reproduce`` and ``merge``): the
results format tag and the geometric means of the hardware ratios over workloads (decision E2:
per-network ratios, then their geometric mean)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rapidnn.hardware import summarize_comparisons

FORMAT = "rapidnn-reproduce-v2"


def policy_geomeans(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Geometric mean over workloads of each policy's ratios (rows that have policies)."""
    rows = [e for e in entries if e.get("policies")]
    if not rows:
        return {}
    return {p: summarize_comparisons([e["policies"][p] for e in rows if p in e["policies"]])
            for p in rows[0]["policies"]}


def audit_geomeans(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Geometric mean over workloads of every audit scenario's ratios."""
    rows = [e["audit"]["scenarios"] for e in entries if e.get("audit")]
    if not rows:
        return []
    out = []
    for i, sc in enumerate(rows[0]):
        same = [r[i] for r in rows if len(r) > i and r[i]["name"] == sc["name"]]
        mean = summarize_comparisons([{b: s[b] for b in ("isaac", "pipelayer", "gpu")}
                                      for s in same])
        out.append({"name": sc["name"], "description": sc["description"],
                    "networks": len(same), **mean})
    return out


def geomeans(entries: Sequence[dict[str, Any]], shape_rows: Sequence[dict[str, Any]]
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Geometric means of the energy efficiency and speedup over each baseline: over the
    workloads, and over the workloads with the shape-only networks."""
    pick = ("energy_efficiency", "speedup")

    def mean(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return summarize_comparisons([{b: {k: v[k] for k in pick} for b, v in r["vs"].items()}
                                      for r in rows]) if rows else {}

    return mean(entries), mean([*entries, *shape_rows])
