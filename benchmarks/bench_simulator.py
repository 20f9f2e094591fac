"""Benchmark the RNA simulator (rapidnn.accel) against float PyTorch and the per-element reference.

For the trained MNIST MLP 784-512-512-10 (``rapidnn.experiments.demo``; w = u = 16,
composed as in the demo) and a LeNet-5-style CNN (``rapidnn.workloads.models.LeNet5``, random
weights, calibrated on MNIST images; timing only), in one process, with the same torch threads and
batch 256:

* float PyTorch inference of the original model (images/s);
* the simulator in exact mode with a full Trace (images/s), and its result checked bit for bit
  against ``ComposedModel.integer_forward`` on the timed batch;
* the slow per-element reference of ``tests/accel/reference.py`` on a few images, extrapolated
  per image (images/s);
* the whole 10,000-image MNIST test set through ``simulate_dataset`` with a full Trace (s);
* with ``--approx-table``: MNIST-MLP test accuracy against the searched AM bits k, from the full
  word width down to 2 (``rapidnn.accel.approximation_sweep``);
* the Trace of one MNIST-MLP inference, layer by layer.

Timings are the best of ``--repeats`` rounds (rounds interleave the contenders, so a noisy
neighbour slows all of them alike); medians are printed too.

Run: ``.venv/bin/python benchmarks/bench_simulator.py [--threads T] [--batch 256]
[--repeats 30] [--reference-images 2] [--approx-table] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from torch.utils.data import DataLoader, TensorDataset

import rapidnn
from rapidnn import data
from rapidnn.accel import SimConfig, Simulator, approximation_sweep, simulate_dataset
from rapidnn.workloads import get_workload
from rapidnn.workloads.models import LeNet5
from rapidnn.workloads.store import get_trained

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "accel"))
from reference import RefConfig, run_reference


def rounds(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    """Interleaved timing: every round runs each function once; best and median seconds."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for f in fns.values():
        f()  # warm-up
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: {"best": min(v), "median": statistics.median(v)} for k, v in times.items()}


def bench_model(name: str, model: torch.nn.Module, composed, x: torch.Tensor, repeats: int,
                ref_images: int, console: Console) -> dict[str, Any]:
    batch = x.shape[0]
    sim = Simulator(composed, SimConfig(record_trace=True))
    with torch.no_grad():
        t = rounds({"float": lambda: model(x), "simulator": lambda: sim.run(x)}, repeats)
        t.update(rounds({"composed": lambda: composed.integer_forward(x)},
                        max(3, repeats // 3)))
        check = Simulator(composed, SimConfig(record_accumulators=True)).run(x)
        ref = composed.integer_forward(x)
        exact = torch.equal(check.outputs, ref.output) and all(
            torch.equal(check.accumulators[k], v) for k, v in ref.accumulators.items())
    xr = x[:ref_images]
    t0 = time.perf_counter()
    run_reference(composed, xr, RefConfig())
    ref_s = (time.perf_counter() - t0) / ref_images
    out = {
        "model": name, "batch": batch,
        "float_img_s": batch / t["float"]["best"],
        "simulator_img_s": batch / t["simulator"]["best"],
        "composed_img_s": batch / t["composed"]["best"],
        "float_img_s_median": batch / t["float"]["median"],
        "simulator_img_s_median": batch / t["simulator"]["median"],
        "reference_img_s": 1.0 / ref_s, "reference_images": ref_images,
        "bit_exact": exact,
    }
    out["simulator_vs_float"] = out["simulator_img_s"] / out["float_img_s"]
    out["simulator_vs_float_median"] = out["simulator_img_s_median"] / out["float_img_s_median"]
    out["simulator_vs_reference"] = out["simulator_img_s"] / out["reference_img_s"]
    console.print(
        f"[bold]{name}[/]: float {out['float_img_s']:,.0f} img/s, simulator "
        f"{out['simulator_img_s']:,.0f} img/s ({out['simulator_vs_float']:.2f}x float; median "
        f"{out['simulator_vs_float_median']:.2f}x), composed integer_forward "
        f"{out['composed_img_s']:,.0f} img/s, reference {out['reference_img_s']:.2f} img/s "
        f"(simulator {out['simulator_vs_reference']:,.0f}x); bit-exact: {exact}")
    return out


def describe_trace(trace) -> list[str]:
    lines = []
    for lt in trace.layers:
        adds = sum(lt.additions.values())
        widths = f"{min(lt.additions)}-{max(lt.additions)} bits" if lt.additions else "-"
        lines.append(
            f"{lt.name:>8} {lt.kind:<12} values {lt.neurons:>6}  lookups {lt.table_lookups:>9,.0f}"
            f"  additions {adds:>9,.0f} ({widths})  NOR cycles {lt.nor_cycles:>12,.0f}"
            f"  AM searches {lt.am_searches:>5,.0f} ({lt.am_rows} rows x {lt.am_bits} bits)"
            f"  moved block/tile {lt.bits_moved_block:>10,.0f}/{lt.bits_moved_tile:>6,.0f}"
            f"  cells written {lt.cells_written:>12,.0f}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--reference-images", type=int, default=2)
    ap.add_argument("--approx-table", action="store_true")
    ap.add_argument("--json", type=str, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    console.print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
                  f"{platform.processor() or platform.machine()}, batch {args.batch}")
    torch.manual_seed(0)
    mlp, _ = get_trained("mnist-mlp", console=console)
    train = get_workload("mnist-mlp").splits().train_loader(augment=False)
    mlp_c = rapidnn.compose(mlp, train, 16, 16, calibration_batches=20)
    xt, yt = data.as_tensors(data.load("mnist", "test"))
    x = xt[: args.batch].contiguous()
    results: dict[str, Any] = {"threads": torch.get_num_threads(), "batch": args.batch}
    results["mlp"] = bench_model("MNIST MLP 784-512-512-10", mlp.eval(), mlp_c, x,
                                 args.repeats, args.reference_images, console)
    lenet = LeNet5().eval()
    cal = [xt[i: i + 256] for i in range(0, 2048, 256)]
    lenet_c = rapidnn.compose(lenet, cal, 16, 16)
    results["lenet"] = bench_model("LeNet-5 (random weights)", lenet, lenet_c, x,
                                   max(5, args.repeats // 3), 1, console)

    loader = DataLoader(TensorDataset(xt, yt), batch_size=args.batch)
    t0 = time.perf_counter()
    full = simulate_dataset(mlp_c, loader, SimConfig(), compare=False)
    wall = time.perf_counter() - t0
    agree = simulate_dataset(mlp_c, loader, SimConfig(record_trace=False))
    results["mnist_10k"] = {"images": full["images"], "seconds": wall,
                            "accuracy": full["accuracy"], "agreement": agree["agreement"],
                            "composed_accuracy": agree["composed_accuracy"],
                            "totals": full["totals"]}
    console.print(f"[bold]10k MNIST test images[/], exact simulation with full Trace: "
                  f"{wall:.2f} s ({full['images'] / wall:,.0f} img/s), accuracy "
                  f"{full['accuracy']:.4f}, agreement with the ComposedModel "
                  f"{agree['agreement']:.4f}")
    from rapidnn.accel.trace import Trace

    trace = Trace.from_dict(full["trace"])
    console.print("[bold]Trace of one MNIST-MLP inference[/] (mean over the test set):")
    for line in describe_trace(trace):
        console.print("  " + line, highlight=False)
    results["mlp_trace"] = trace.to_dict()

    if args.approx_table:
        t0 = time.perf_counter()
        rows = approximation_sweep(mlp_c, loader)
        results["approx_table"] = rows
        widths = Simulator(mlp_c).encoders()
        console.print(f"[bold]Approximate search[/] (AM word widths {widths}; "
                      f"{time.perf_counter() - t0:.0f} s):")
        console.print("| searched bits k | test accuracy | agreement with exact | "
                      "AM row-bits / inference |")
        console.print("|---|---|---|---|")
        for r in rows:
            k = "exact" if r["bits"] is None else str(r["bits"])
            console.print(f"| {k} | {r['accuracy']:.4f} | {r['agreement']:.4f} | "
                          f"{r['am_row_bits']:,.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
