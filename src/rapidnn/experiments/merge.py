"""Combine ``rapidnn reproduce`` runs into one ``results.json`` and report (``rapidnn report``).

A study is often run in parts: one workload rerun with ``--workload`` after its recipe changed,
or workloads spread over several machines. :func:`merge_results` puts the parts together: a
workload of a later part replaces the workload of the same name in an earlier one, the
shape-network rows come from the last part that has them, and the geometric means are computed
again over the merged rows. Parts must share what makes their numbers comparable (format, quick
mode, data budget, tolerance, the sweep's grid and mode); the merged document records each
part's source, wall time, machine and what was taken from it (``parts``), so the report says
that it was merged and from what. With one part it simply rebuilds the report.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rapidnn._files import locked
from rapidnn.experiments.schema import ResultsFile, check_shape
from rapidnn.experiments.summary import FORMAT, audit_geomeans, geomeans, policy_geomeans

_SAME = ("quick", "budget", "tolerance")
_SAME_SWEEP = ("values", "mode", "retrain_limit")


def load_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``results.json`` written by ``rapidnn reproduce`` (a folder holding one is
    accepted); a missing, unreadable, foreign or incomplete file (a key missing or of the
    wrong type, :mod:`rapidnn.experiments.schema`) is a :class:`ValueError` naming it."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such results file")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{p}: not a JSON results file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{p}: not a rapidnn reproduce results file (format "
                         f"{doc.get('format') if isinstance(doc, dict) else None!r}, "
                         f"expected {FORMAT!r})")
    check_shape(ResultsFile, doc, p)
    return doc


def _parts_of(doc: dict[str, Any], source: str) -> list[dict[str, Any]]:
    """The runs a document came from: its own ``parts`` if it was merged, else itself."""
    if "parts" in doc:
        return [dict(p) for p in doc["parts"]]
    return [{"source": source, "seconds": doc["seconds"], "machine": doc["machine"],
             "workloads": [e["name"] for e in doc["workloads"]],
             "shape_networks": [s["name"] for s in doc["shape_networks"]], "complete": True}]


def _check_alike(docs: Sequence[dict[str, Any]], sources: Sequence[str]) -> None:
    first = docs[0]
    for doc, src in zip(docs[1:], sources[1:], strict=True):
        for where, key in [("", k) for k in _SAME] + [("sweep ", k) for k in _SAME_SWEEP]:
            mine = doc["sweeps"][key] if where else doc[key]
            theirs = first["sweeps"][key] if where else first[key]
            if mine != theirs:
                raise ValueError(f"{src}: its {where}{key} differs from {sources[0]}'s: runs "
                                 "made with different settings cannot be merged")


def merge_results(docs: Sequence[dict[str, Any]],
                  sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Merge reproduction results (module docstring); ``sources`` name the parts (paths).

    ``seconds`` of the merged document is the time it took to produce what it holds: the wall
    time of each part whose rows are all kept, the sum of the kept rows' own times for a part
    that is only partly kept. One complete part gives back that document unchanged."""
    if not docs:
        raise ValueError("nothing to merge: give at least one results.json")
    sources = list(sources) if sources is not None else [f"part {i + 1}"
                                                         for i in range(len(docs))]
    _check_alike(docs, sources)
    entries: dict[str, dict[str, Any]] = {}
    points: dict[str, list[dict[str, Any]]] = {}
    origin: dict[str, int] = {}
    shapes: list[dict[str, Any]] = []
    shapes_from: int | None = None
    for i, doc in enumerate(docs):
        for e in doc["workloads"]:
            entries[e["name"]], origin[e["name"]] = e, i
            points[e["name"]] = doc["sweeps"]["points"].get(e["name"], [])
        if doc["shape_networks"]:
            shapes, shapes_from = doc["shape_networks"], i
    rows = list(entries.values())
    row_seconds = {e["name"]: e["seconds"] for e in rows} | {s["name"]: s["seconds"]
                                                             for s in shapes}
    kept: list[dict[str, Any]] = []
    kept_from: list[int] = []
    for i, (doc, src) in enumerate(zip(docs, sources, strict=True)):
        for part in _parts_of(doc, src):
            names = [n for n in part["workloads"] if origin.get(n) == i]
            shape_names = part["shape_networks"] if shapes_from == i else []
            complete = part["complete"] and (names, shape_names) == (
                part["workloads"], part["shape_networks"])
            if names or shape_names:
                kept.append({**part, "workloads": names, "shape_networks": shape_names,
                             "complete": complete})
                kept_from.append(i)
    if len(kept) == 1 and kept[0]["complete"] and "parts" not in docs[kept_from[0]]:
        return dict(docs[kept_from[0]])

    geomean, geomean_all = geomeans(rows, shapes)
    machines = [p["machine"] for p in kept]
    first = docs[0]
    return {
        "format": FORMAT, "quick": first["quick"], "budget": first["budget"],
        "tolerance": first["tolerance"], "workloads": rows, "shape_networks": shapes,
        "geomean": geomean, "geomean_with_shapes": geomean_all,
        "policy_geomean": policy_geomeans(rows), "audit_geomean": audit_geomeans(rows),
        "sweeps": {**{k: first["sweeps"][k] for k in _SAME_SWEEP}, "points": points},
        "machine": machines[0] if all(m == machines[0] for m in machines) else None,
        "seconds": round(sum(p["seconds"] if p["complete"] else
                             sum(row_seconds[n] for n in p["workloads"] + p["shape_networks"])
                             for p in kept), 2),
        "parts": kept,
    }


def write_results(results: dict[str, Any], out: str | os.PathLike[str]) -> Path:
    """Write ``results.json``, ``report.md``, ``report.html`` and the plots into ``out``,
    holding its lock (another run writing there is an error)."""
    from rapidnn.experiments.common import write_json
    from rapidnn.report.build import write_report

    with locked(out) as folder:
        write_report(results, folder)
        return write_json(folder / "results.json", results)
