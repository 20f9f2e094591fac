"""Device faults and endurance on the shipped workloads (issue 21 acceptance experiment).

For each of the six workloads, the shipped float model (``pretrained/``, imported into the model
store) is composed at w = u = 16; its lifetime until the first cell wears out is computed with
and without wear levelling (``rapidnn.hardware.endurance.lifetime``, the preset's endurance of
1e9 writes per cell; the lifetime scales linearly with it). For the MNIST MLP and the
Fashion-MNIST LeNet-5, accuracy against fault rate per block kind (``fault_curves``: table,
processing, am, read and search flips) on evenly spread test images, seeded trials, and the
table/processing/AM curves again with each mitigation (16 spare rows; TMR and parity tables),
with the mitigations' cost. Writes ``<out>.json``, ``<out>.md`` and ``<out>.png`` atomically.
Not a test: about 20 minutes on 2 cores. ``--lifetime-only`` recomputes the lifetimes alone
and keeps the curves of an earlier ``<out>.json`` (a minute).

    RAPIDNN_DATA=../shared/datasets .venv/bin/python benchmarks/bench_faults.py \
        [--images 1000] [--trials 3] [--out docs/results/faults] [--lifetime-only]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from rapidnn import data
from rapidnn._files import atomic_write_text
from rapidnn.accel.config import FaultConfig
from rapidnn.experiments.faults import fault_curves
from rapidnn.hardware.endurance import SECONDS_PER_YEAR, duration, lifetime
from rapidnn.hardware.mitigation import mitigation_cost
from rapidnn.report.plots import fault_curves_plot
from rapidnn.workloads import WORKLOADS, get_workload
from rapidnn.workloads.store import get_composed
from rapidnn.workloads.transfer import import_trained

RATES = (0.0, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
KINDS = ("table", "processing", "am", "read_flips", "search_flips")
CURVES = ("mnist-mlp", "fashion-lenet5")
MITIGATIONS = {"16 spare rows": {"spare_rows": 16}, "TMR table": {"table_protection": "tmr"},
               "parity table": {"table_protection": "parity"}}


def _test_data(composed, images: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = data.as_tensors(data.load(composed.metadata["dataset"], "test"))
    x = x.reshape(x.shape[0], *composed.source.input.shape)
    n = len(x)
    pick = [i * n // images for i in range(min(images, n))]
    return x[pick], y[pick]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--pretrained", default="pretrained")
    ap.add_argument("--out", default="docs/results/faults")
    ap.add_argument("--lifetime-only", action="store_true",
                    help="recompute the lifetimes, keep the curves of <out>.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    base = Path(args.out)
    import_trained([args.pretrained])
    out: dict = {"rates": list(RATES), "images": args.images, "trials": args.trials,
                 "endurance": {}, "curves": {}, "mitigated": {}, "costs": {},
                 "machine": {"platform": platform.platform(), "torch": torch.__version__,
                             "threads": torch.get_num_threads()}}
    if args.lifetime_only:
        out = json.loads(base.with_suffix(".json").read_text()) | {"endurance": {}}
    for name in WORKLOADS:
        composed, _ = get_composed(get_workload(name), 16, 16, "full", progress=False)
        life = lifetime(composed).to_dict()
        out["endurance"][name] = {k: life[k] for k in (
            "endurance_writes", "throughput_ips", "hottest", "lifetime_inferences",
            "lifetime_years", "with_wear_levelling", "levelling_gain",
            "lifetime_one_copy_inferences")}
        print(f"[{time.perf_counter() - t0:7.1f} s] {name}: {life['lifetime_inferences']:.3g} "
              f"inferences ({life['lifetime_years']:.3g} y), levelled "
              f"{life['with_wear_levelling']['lifetime_inferences']:.3g}", flush=True)
        if name not in CURVES or args.lifetime_only:
            continue
        x, y = _test_data(composed, args.images)

        def say(text: str, name: str = name) -> None:
            print(f"[{time.perf_counter() - t0:7.1f} s] {name} {text}", flush=True)

        out["curves"][name] = fault_curves(composed, x, y, rates=RATES, kinds=KINDS,
                                           trials=args.trials, progress=say)
        out["mitigated"][name], out["costs"][name] = {}, {}
        for label, mitigation in MITIGATIONS.items():
            kinds = ("table",) if "table" in label else ("table", "processing", "am")
            say(f"with {label}")
            out["mitigated"][name][label] = fault_curves(
                composed, x, y, rates=RATES, kinds=kinds, trials=args.trials,
                mitigation=mitigation, progress=say)
            out["costs"][name][label] = mitigation_cost(composed, FaultConfig(**mitigation))
    if not args.lifetime_only:
        out["seconds"] = round(time.perf_counter() - t0, 1)
        fault_curves_plot(out["curves"], base.with_suffix(".png"),
                          title="accuracy under device faults (w = u = 16)")
    atomic_write_text(base.with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    atomic_write_text(base.with_suffix(".md"), _markdown(out))
    print(f"wrote {base}.json/.md/.png in {out['seconds']} s")


def _rate(c: dict) -> str:
    r = c["rate_for_one_point"]
    if r is None:
        return "none lost"
    return f"<= {r:.2g}" if c["one_point_at_first_rate"] else f"{r:.2g}"


def _span(years: float | None) -> str:
    """A lifetime in the unit that reads best (seconds to years)."""
    return "-" if years is None else duration(years * SECONDS_PER_YEAR)


def _markdown(out: dict) -> str:
    lines = ["# Device faults and endurance (issue 21)", "",
             f"`benchmarks/bench_faults.py`, {out['images']} evenly spread test images, "
             f"{out['trials']} seeded trials per rate, w = u = 16, {out['seconds']:.0f} s on "
             f"{out['machine']['platform']} ({out['machine']['threads']} threads). Models: "
             f"[`../faults.md`](../faults.md).", ""]
    for name, res in out["curves"].items():
        lines += [f"## {name}: accuracy against fault rate", "",
                  f"Fault-free accuracy {res['clean_accuracy']:.4f}. Mean ± standard deviation "
                  f"over trials.", "",
                  "| block | " + " | ".join(f"{r:g}" for r in out["rates"]) +
                  " | rate losing 1 point |",
                  "|---" * (len(out["rates"]) + 2) + "|"]
        for c in res["curves"]:
            cells = [f"{p['accuracy']:.4f}" + (f" ± {p['std']:.4f}" if p["std"] else "")
                     for p in c["points"]]
            lines.append(f"| {c['block']} | " + " | ".join(cells) + f" | {_rate(c)} |")
        lines += ["", "With mitigations (rate losing 1 point; cost from the cost model):", "",
                  "| mitigation | block | rate losing 1 point | area | energy |",
                  "|---|---|---|---|---|"]
        for label, mres in out["mitigated"][name].items():
            cost = out["costs"][name][label]
            for c in mres["curves"]:
                lines.append(f"| {label} | {c['block']} | {_rate(c)} | "
                             f"x{cost['area_ratio']:.4f} | x{cost['energy_ratio']:.4f} |")
        lines.append("")
    lines += ["## Lifetime until the first cell wears out", "",
              "Endurance 1e9 writes per cell (assumed; ReRAM 1e6..1e12: the lifetime scales "
              "linearly), at the cost model's throughput, with the mapper's copies of each layer "
              "sharing its writes (the last column: one copy taking every inference).", "",
              "| workload | hottest cell | copies | writes/inference | inferences | time | "
              "levelled inferences | levelled time | gain | one copy |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in out["endurance"].items():
        h, lev = e["hottest"], e["with_wear_levelling"]
        lines.append(f"| {name} | {h['layer']} {h['class']} | {h['copies']} | "
                     f"{h['writes_per_inference']:.4g} | "
                     f"{e['lifetime_inferences']:.3g} | {_span(e['lifetime_years'])} | "
                     f"{lev['lifetime_inferences']:.3g} | {_span(lev['lifetime_years'])} | "
                     f"{e['levelling_gain']:.3g}x | {e['lifetime_one_copy_inferences']:.3g} |")
    lines += ["", "The hottest cell is a NOR scratch cell of row 0 of a slot, which every level of "
              "the adder tree writes (13 cycles per added bit, one cell write per cycle, 12 of "
              "13 on the slot row's 5 scratch cells), at every output position of a "
              "convolution. Levelling spreads a layer's writes over its own blocks (all its "
              "copies) only; the per-cell model is the dense layout's, divided among the "
              "copies (docs/hardware.md, Endurance)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
