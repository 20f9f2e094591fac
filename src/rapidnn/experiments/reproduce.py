"""``rapidnn reproduce``: the paper's evaluation for every workload, as JSON, Markdown, HTML.

For each workload of :data:`rapidnn.workloads.WORKLOADS`: train or load the float model
(the budget's recipe, :mod:`rapidnn.budget`); sweep its (w, u) grid in search mode
(:mod:`rapidnn.experiments.sweep`: every point composed and measured, then retrained in
ascending memory until one is within 0.3 points), which gives the smallest (w, u) within
tolerance; at that point (or, when no point is within tolerance, at the most accurate one)
measure float and composed test accuracy on the same test examples, run the accelerator
simulator exactly and with approximate AM search, and compare RAPIDNN with ISAAC, PipeLayer
and a GPU on the simulator's trace. The ImageNet-shape networks
(:data:`rapidnn.workloads.SHAPE_NETWORKS`) add hardware-only rows (synthetic traces from
their layer shapes; ImageNet is not available offline, so no accuracy).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from rapidnn._files import locked
from rapidnn.budget import Budget, get_budget
from rapidnn.experiments.common import (
    loader,
    machine,
    retrained,
    write_json,
)
from rapidnn.experiments.executor import Executor
from rapidnn.experiments.summary import FORMAT, audit_geomeans, geomeans, policy_geomeans
from rapidnn.selection import TOLERANCE
from rapidnn.workloads import Workload, get_workload


class SweepPointsFailed(RuntimeError):
    """Points of a workload's sweep failed on the executor (they are retried by a rerun)."""


def evaluate_workload(wl: Workload, budget: Budget, w: int = 16, u: int = 16, *,
                      point: dict[str, Any] | None = None, progress: bool = True,
                      console: Console | None = None,
                      root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """One row of the evaluation at ``(w, u)`` (module docstring); accuracies are fractions.
    ``point`` is the sweep's row of ``(w, u)``: if it was retrained, its test accuracies and
    the standard error of the quality loss (same test examples, same stored models) are reused
    instead of measured again; if not, the composed model is evaluated as it is (the search
    found it within tolerance before retraining)."""
    from rapidnn.accel.simulator import approximation_sweep, simulate_dataset
    from rapidnn.accel.trace import Trace
    from rapidnn.composer.quality import paired_loss, predictions
    from rapidnn.composer.retrain import accuracy
    from rapidnn.hardware.costs import compare
    from rapidnn.hardware.endurance import lifetime
    from rapidnn.workloads.store import get_composed, get_trained

    t0 = time.perf_counter()
    model, info = get_trained(wl, budget.recipes, progress, root=root, console=console)
    splits = wl.splits(budget.recipes)
    test = loader(splits.test, budget.test_images)
    if point is not None and not point.get("retrained"):  # the search took it as it is
        composed, _ = get_composed(wl, w, u, budget.recipes, progress, root=root, console=console)
        final, rinfo = composed, {"retrain": None, "cached": None, "path": None}
    else:
        composed, final, rinfo = retrained(wl, w, u, splits, budget, progress=progress,
                                           console=console, root=root)
    with torch.no_grad():
        if point is not None and point.get("retrained") and "quality_loss_se" in point:
            float_acc, se = point["float_accuracy"], point["quality_loss_se"]
            before, after = point["accuracy_before_retraining"], point["composed_accuracy"]
        else:
            float_pred, labels = predictions(model, test)
            paired = paired_loss(float_pred, predictions(final, test)[0], labels)
            float_acc, after, se = (paired.float_accuracy, paired.composed_accuracy,
                                    paired.standard_error)
            before = accuracy(composed, test) if final is not composed else after
        sim = simulate_dataset(final, loader(splits.test, budget.sim_images, batch=128))
        approx = approximation_sweep(final, loader(splits.test, budget.approx_images,
                                                   batch=128))
    trace = Trace.from_dict(sim["trace"])
    faults = device_faults(final, splits.test, budget)
    life = lifetime(trace).to_dict()
    cmp = compare(final, trace=trace, name=wl.name)
    data = cmp.to_dict()
    hw = hardware_summary(data, trace, budget)
    layer_energy = {"rapidnn": {lay.name: lay.energy_j for lay in cmp.rapidnn.layers}}
    for b, est in cmp.baselines.items():
        layer_energy[b] = {lay.name: lay.energy_j for lay in est.layers}
    energy_breakdown = {d: est.breakdown("action")
                        for d, est in {"rapidnn": cmp.rapidnn, **cmp.baselines}.items()}
    mem = final.memory()
    return {
        "name": wl.name, "title": wl.title, "dataset": wl.dataset, "quick": budget.quick,
        "float_model": info.get("path"), "float_key": wl.key(budget.recipes),
        "test_images": len(test.dataset),
        "float_accuracy": float_acc,
        "composed_accuracy_before_retraining": before,
        "composed_accuracy": after,
        "quality_loss": float_acc - after,
        "quality_loss_se": se,
        "within_tolerance": float_acc - after <= TOLERANCE,
        "weight_clusters": w, "input_clusters": u,
        "retrain": (None if rinfo["retrain"] is None else
                    {**rinfo["retrain"], "cached": rinfo["cached"], "path": rinfo["path"]}),
        "simulation": {k: sim[k] for k in ("images", "accuracy", "agreement",
                                           "composed_accuracy", "totals", "seconds")},
        "approximation": {"images": len(loader(splits.test, budget.approx_images).dataset),
                          "rows": [{k: r[k] for k in ("bits", "accuracy", "agreement",
                                                      "am_row_bits")} for r in approx]},
        "rapidnn": data["rapidnn"],
        "vs": {b: {"energy_efficiency": r["energy_efficiency"], "speedup": r["speedup"],
                   "latency_ratio": r["latency_ratio"], "energy_j": r["energy_j"],
                   "throughput_ips": r["throughput_ips"]}
               for b, r in data["baselines"].items()},
        **hw,
        "layer_energy": layer_energy,
        "energy_breakdown": energy_breakdown,
        "faults": faults,
        "endurance": {k: life[k] for k in ("endurance_writes", "throughput_ips", "hottest",
                                           "lifetime_inferences", "lifetime_years",
                                           "with_wear_levelling", "levelling_gain",
                                           "lifetime_one_copy_inferences")},
        "memory": {"bits_per_neuron": mem["bits_per_neuron"],
                   "bytes_per_neuron": mem["bits_per_neuron"] / 8,
                   "total_bits": mem["total_bits"], "neurons": mem["neurons"],
                   "layers": mem["layers"]},
        "seconds": round(time.perf_counter() - t0, 2),
    }


def device_faults(composed: Any, test: Any, budget: Budget) -> dict[str, Any]:
    """Accuracy against stuck-at rate in tables, processing crossbars and AMs (one curve
    each; the processing curve on ``fault_processing_images`` examples, the others on
    ``fault_images``: the former is simulated product by product)."""
    from rapidnn.experiments.faults import fault_curves

    def tensors(limit: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*[(x, y) for x, y in loader(test, limit, batch=256)], strict=True)
        return torch.cat(xs), torch.cat(ys)

    opts = {"rates": budget.fault_rates, "trials": budget.fault_trials}
    x, y = tensors(budget.fault_images)
    main = fault_curves(composed, x, y, kinds=("table", "am"), **opts)
    px, py = tensors(budget.fault_processing_images)
    proc = fault_curves(composed, px, py, kinds=("processing",), **opts)
    curves = main["curves"][:1] + proc["curves"] + main["curves"][1:]
    for c in curves:
        c["images"] = proc["images"] if c["block"] == "processing" else main["images"]
        c["clean_accuracy"] = (proc if c["block"] == "processing" else main)["clean_accuracy"]
    return {"clean_accuracy": main["clean_accuracy"], "images": main["images"],
            "trials": budget.fault_trials, "curves": curves,
            "seconds": round(main["seconds"] + proc["seconds"], 2)}


def hardware_summary(data: dict[str, Any], trace: Any, budget: Budget) -> dict[str, Any]:
    """The policy ratios, row occupancy before/after the mapper, the simulator-vs-cost-model
    block check and the audit of one network (``data``: ``Comparison.to_dict()``)."""
    from rapidnn.hardware import NetworkShape, estimate_network
    from rapidnn.hardware.audit import FACTORS, audit

    mine = data["rapidnn"]
    blocks = {lay["name"]: lay["blocks"] for lay in mine["layers"]}
    traced = {lt.name: lt.blocks for lt in trace.layers if lt.name in blocks}
    shape = NetworkShape.from_trace(trace, name=data["network"])
    full = audit(trace, shape, estimate_network, factors=FACTORS[::budget.audit_stride])
    keep = ("network", "paper", "scenarios", "closest", "tornado", "smallest_changes",
            "smallest_rapidnn_changes")
    return {
        "policies": {p: {b: {k: r[k] for k in ("energy_efficiency", "speedup",
                                               "latency_ratio")}
                         for b, r in per.items()} for p, per in data["policies"].items()},
        "occupancy": {"before": mine["before"]["row_occupancy"],
                      "after": mine["row_occupancy"],
                      "throughput_before_ips": mine["before"]["throughput_ips"],
                      "throughput_after_ips": mine["throughput_ips"],
                      "throughput_at_full_occupancy_ips":
                          mine["throughput_at_full_occupancy_ips"],
                      "blocks_used": mine["blocks_used"],
                      "blocks_available": mine["blocks_available"]},
        "blocks_agree": {"layers": len(traced),
                         "equal": sum(traced[k] == blocks[k] for k in traced)},
        "audit": {k: full[k] for k in keep},
    }


def evaluate_shape(name: str) -> dict[str, Any]:
    """Hardware-only row of an ImageNet-shape network (random weights, synthetic trace)."""
    from rapidnn.hardware import (
        compare_estimates,
        estimate_network,
        load_hardware,
        network_from_module,
        synthetic_trace,
    )
    from rapidnn.hardware.costs import BASELINES
    from rapidnn.hardware.policies import evaluate_all
    from rapidnn.workloads import SHAPE_NETWORKS

    t0 = time.perf_counter()
    sn = SHAPE_NETWORKS[name]
    with torch.no_grad():
        shape = network_from_module(sn.build(seed=0).eval(), sn.example_input(1), name=name)
    trace = synthetic_trace(shape)
    mine = estimate_network(trace, "rapidnn")
    others = {b: estimate_network(shape, b) for b in BASELINES}
    ratios = compare_estimates(mine, others)
    per_policy = evaluate_all(trace, shape, estimate_network,
                              rapidnn_spec=load_hardware("rapidnn"))
    return {"name": name, "description": sn.description, "accuracy": None,
            "note": "ImageNet is not available offline: network shape only, no accuracy",
            "rapidnn": {"energy_j": mine.energy_j, "throughput_ips": mine.throughput_ips,
                        "row_occupancy": mine.row_occupancy},
            "vs": {b: {**ratios[b], "energy_j": others[b].energy_j,
                       "throughput_ips": others[b].throughput_ips} for b in BASELINES},
            "policies": {p: {b: {k: m.ratios[k] for k in ("energy_efficiency", "speedup",
                                                         "latency_ratio")}
                             for b, m in per.items()} for p, per in per_policy.items()},
            "seconds": round(time.perf_counter() - t0, 2)}


def _point(p: dict[str, Any] | None) -> dict[str, Any] | None:
    keys = ("weight_clusters", "input_clusters", "composed_accuracy", "quality_loss",
            "bytes_per_neuron", "retrain_rounds")
    return None if p is None else {k: p.get(k) for k in keys}


def run_reproduce(budget: Budget | str = "full", out: str | os.PathLike[str] = "results", *,
                  workloads: Sequence[str] | None = None,
                  shape_networks: Sequence[str] | None = None, progress: bool = True,
                  console: Console | None = None,
                  root: str | os.PathLike[str] | None = None,
                  executor: Executor | None = None) -> dict[str, Any]:
    """Run the evaluation and write ``results.json``, ``report.md``, ``report.html`` and the
    plots (``plots/*.png``) into ``out``; returns the content of ``results.json``. The sweep
    of each workload is kept in ``out/sweeps/<workload>/sweep.json`` (a rerun resumes it).
    ``out`` is locked for the whole run: a second run into it fails at once. ``executor``
    runs the sweeps' points (``rapidnn.experiments.executor``; the evaluation of each
    workload's chosen point stays in this process); a workload whose sweep had failed points
    raises once every sweep is done (a rerun resumes)."""
    with locked(out) as folder:
        return _reproduce(budget, folder, workloads, shape_networks, progress, console, root,
                          executor)


def _reproduce(budget: Budget | str, folder: Path, workloads: Sequence[str] | None,
               shape_networks: Sequence[str] | None, progress: bool, console: Console | None,
               root: str | os.PathLike[str] | None,
               executor: Executor | None = None) -> dict[str, Any]:
    """:func:`run_reproduce` in the locked folder ``folder``."""
    from rich.progress import Progress

    from rapidnn import workloads as registry
    from rapidnn.experiments.sweep import RETRAIN_LIMIT, run_sweep

    t0 = time.perf_counter()
    console = console or Console(stderr=True)
    budget = get_budget(budget)
    names = list(workloads) if workloads is not None else list(registry.WORKLOADS)
    wls = [get_workload(n) for n in names]
    shapes = list(shape_networks) if shape_networks is not None else list(
        registry.SHAPE_NETWORKS)
    values = list(budget.sweep_values)

    entries: list[dict[str, Any]] = []
    sweeps: dict[str, list[dict[str, Any]]] = {}
    with Progress(console=console, transient=True, disable=not progress) as bar:
        task = bar.add_task("reproduce", total=len(wls) + len(shapes))
        for wl in wls:
            bar.update(task, description=f"reproduce: {wl.name}")
            t1 = time.perf_counter()
            doc = run_sweep(wl, values, values, mode="search",
                            out=folder / "sweeps" / wl.name, budget=budget, progress=progress,
                            console=console, root=root, plot=False, executor=executor)
            if doc.get("failed"):
                raise SweepPointsFailed(f"{wl.name}: {len(doc['failed'])} sweep point(s) "
                                        f"failed ({doc['failed'][0]['error']}); run again to "
                                        f"retry them")
            sweeps[wl.name] = doc["points"]
            smallest = doc["smallest_within_tolerance"]
            chosen = smallest or doc["most_accurate"]
            e = evaluate_workload(wl, budget, chosen["weight_clusters"],
                                  chosen["input_clusters"], point=chosen, progress=progress,
                                  console=console, root=root)
            e["selection"] = ("smallest (w, u) within tolerance" if smallest is not None
                              else "most accurate (w, u): none within tolerance")
            e["smallest_within_tolerance"] = _point(smallest)
            e["sweep_seconds"] = doc["seconds_this_run"]
            e["seconds"] = round(time.perf_counter() - t1, 2)
            entries.append(e)
            console.print(f"{wl.name}: (w, u) = ({e['weight_clusters']}, "
                          f"{e['input_clusters']}), float {e['float_accuracy']:.4f}, composed "
                          f"{e['composed_accuracy']:.4f} (loss {100 * e['quality_loss']:+.2f} "
                          f"± {100 * e['quality_loss_se']:.2f} points), {e['seconds']:.0f} s")
            bar.advance(task)
        shape_rows = []
        for name in shapes:
            bar.update(task, description=f"reproduce: {name} (shape only)")
            shape_rows.append(evaluate_shape(name))
            bar.advance(task)

    geomean, geomean_all = geomeans(entries, shape_rows)
    results = {
        "format": FORMAT, "quick": budget.quick, "budget": budget.to_dict(),
        "tolerance": TOLERANCE,
        "workloads": entries, "shape_networks": shape_rows,
        "geomean": geomean, "geomean_with_shapes": geomean_all,
        "policy_geomean": policy_geomeans(entries),
        "audit_geomean": audit_geomeans(entries),
        "sweeps": {"values": values, "mode": "search", "retrain_limit": RETRAIN_LIMIT,
                   "points": sweeps},
        "machine": machine(), "seconds": None,
    }
    from rapidnn.report.build import write_report

    results["seconds"] = round(time.perf_counter() - t0, 2)
    write_report(results, folder)
    results["seconds"] = round(time.perf_counter() - t0, 2)
    write_json(folder / "results.json", results)
    return results
