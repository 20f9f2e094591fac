"""The ``train``, ``sweep``, ``reproduce`` and ``report`` commands; ``register(app)`` adds
them to the ``rapidnn`` typer app (heavy imports happen inside the commands: ``--help`` stays
fast)."""

from __future__ import annotations

from typing import Annotated

import typer


def _errors():
    from rapidnn.cli import user_errors

    return user_errors()


def _json(obj) -> None:
    from rapidnn.cli import print_json

    print_json(obj)


def _threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


Threads = Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default: torch's)")]


def train_cmd(
    workload: Annotated[str, typer.Argument(help="a workload name (rapidnn.workloads)")],
    quick: Annotated[bool, typer.Option("--quick", help="the reduced quick recipe")] = False,
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the info as JSON")] = False,
) -> None:
    """Train a workload's float model (or load it from the store); print its test accuracy.
    An interrupted training resumes from its last finished epoch when run again."""
    from rich.console import Console

    from rapidnn.workloads.store import get_trained

    with _errors():
        _threads(threads)
        console = Console(stderr=True)
        _, info = get_trained(workload, quick, progress=True, console=console)
    if as_json:
        _json({k: v for k, v in info.items() if k != "loss_history"})
        return
    out = Console()
    out.print(f"{info['workload']}{' (quick recipe)' if quick else ''}: float test accuracy "
              f"{info['test_accuracy']:.4f} (validation {info['val_accuracy']:.4f})")
    out.print(f"cached at {info['path']}")


def sweep_cmd(
    workload: Annotated[str, typer.Argument(help="a workload name")],
    weight_clusters: Annotated[str, typer.Option(help="comma-separated w values")]
    = "4,8,16,32,64",
    input_clusters: Annotated[str, typer.Option(help="comma-separated u values")]
    = "4,8,16,32,64",
    retrain: Annotated[bool, typer.Option("--retrain", help="retrain every point to 0.3 "
                                                             "points")] = False,
    search: Annotated[bool, typer.Option("--search", help="find the smallest (w, u) within 0.3 "
                                                           "points: retrain in ascending memory "
                                                           "until one is within")] = False,
    retrain_limit: Annotated[float, typer.Option(min=0.0, max=100.0, help="--search: do not "
                                                 "retrain points losing more than this many "
                                                 "points before retraining")] = 1.2,
    max_rounds: Annotated[int | None, typer.Option(min=0, help="retraining rounds at most")]
    = None,
    quick: Annotated[bool, typer.Option("--quick", help="quick recipe and data subsets")]
    = False,
    out: Annotated[str, typer.Option(help="output folder (sweep.json, pareto.png)")] = "sweep",
    restart: Annotated[bool, typer.Option("--restart", help="discard an existing sweep.json")]
    = False,
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="print sweep.json")] = False,
) -> None:
    """Accuracy, memory per neuron and energy per inference over a (w, u) grid (resumable)."""
    from rich.console import Console

    from rapidnn.experiments.common import parse_int_list
    from rapidnn.experiments.sweep import run_sweep
    from rapidnn.report.tables import sweep_table, to_rich

    with _errors():
        if retrain and search:
            raise ValueError("--retrain and --search exclude each other: --retrain retrains "
                             "every point, --search only until the smallest one within 0.3 "
                             "points is found")
        ws = parse_int_list(weight_clusters, "--weight-clusters")
        us = parse_int_list(input_clusters, "--input-clusters")
        _threads(threads)
        mode = "all" if retrain else "search" if search else "none"
        doc = run_sweep(workload, ws, us, mode=mode, max_rounds=max_rounds, quick=quick,
                        out=out, restart=restart, console=Console(stderr=True),
                        retrain_limit=retrain_limit / 100)
    if as_json:
        _json(doc)
        return
    console = Console(width=max(Console().width, 110))
    console.print(to_rich(sweep_table(doc["points"], title=f"sweep {workload}"
                                      f"{' (quick)' if quick else ''}, float accuracy "
                                      f"{100 * doc['float_accuracy']:.2f}%")))
    best = doc["smallest_within_tolerance"]
    if best is None:
        console.print("no (w, u) point is within 0.3 points of the float model")
    else:
        console.print(f"smallest (w, u) within 0.3 points: w={best['weight_clusters']}, "
                      f"u={best['input_clusters']} ({best['bytes_per_neuron']:.1f} bytes per "
                      f"neuron, quality loss {100 * best['quality_loss']:.2f} points)")
    console.print(f"written: {out}/sweep.json, {out}/sweep.txt, {out}/pareto.png")


def _print_results(results: dict, out: str, lead: str = "") -> None:
    """The paper's table of a results document, then where its files were written."""
    from rich.console import Console

    from rapidnn.report.tables import paper_table, to_rich

    console = Console(width=max(Console().width, 160))
    console.print(to_rich(paper_table(results["workloads"], results["shape_networks"],
                                      results["geomean"], results["geomean_with_shapes"])))
    console.print(f"{lead}written: {out}/results.json, {out}/report.md, {out}/report.html")


def reproduce_cmd(
    quick: Annotated[bool, typer.Option("--quick", help="quick recipes and data subsets")]
    = False,
    out: Annotated[str, typer.Option(help="output folder")] = "results",
    workload: Annotated[list[str] | None, typer.Option(help="only these workloads "
                                                              "(repeatable)")] = None,
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="print results.json")] = False,
) -> None:
    """The paper's evaluation: results.json, report.md and report.html (plots embedded)."""
    from rich.console import Console

    from rapidnn.experiments.reproduce import run_reproduce

    with _errors():
        _threads(threads)
        results = run_reproduce(quick, out, workloads=workload or None,
                                console=Console(stderr=True))
    if as_json:
        _json(results)
        return
    _print_results(results, out, f"{'quick mode; ' if quick else ''}wall time "
                                 f"{results['seconds']:.0f} s; ")


def report_cmd(
    results: Annotated[list[str], typer.Argument(help="results.json files of `rapidnn "
                                                      "reproduce` (or their folders), earliest "
                                                      "first")],
    out: Annotated[str, typer.Option(help="output folder")] = "results",
    as_json: Annotated[bool, typer.Option("--json", help="print the merged results.json")]
    = False,
) -> None:
    """Rebuild results.json, report.md and report.html from reproduce runs, merging several (a
    later run's workload replaces an earlier run's of the same name)."""
    from rapidnn.experiments.merge import load_results, merge_results, write_results

    with _errors():
        merged = merge_results([load_results(r) for r in results], sources=results)
        write_results(merged, out)
    if as_json:
        _json(merged)
        return
    _print_results(merged, out)


def register(app: typer.Typer) -> None:
    """Add ``train``, ``sweep``, ``reproduce`` and ``report`` to ``app``."""
    app.command("train")(train_cmd)
    app.command("sweep")(sweep_cmd)
    app.command("reproduce")(reproduce_cmd)
    app.command("report")(report_cmd)
