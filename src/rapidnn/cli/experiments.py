"""The ``train``, ``sweep``, ``reproduce``, ``report`` and ``store`` commands; ``register(app)``
adds them to the ``rapidnn`` typer app (heavy imports happen inside the commands: ``--help`` stays
fast)."""

from __future__ import annotations

from typing import Annotated

import typer

from rapidnn.cli.app import (
    BudgetOption,
    QuickOption,
    busy,
    check_output,
    choose_budget,
    console,
    print_json,
    user_errors,
)
from rapidnn.cli.own import DataOption, ModelOption, TestOption, WeightsOption, user_workload
from rapidnn.workloads import WORKLOADS


def _examples(*commands: str, workloads: bool = True) -> str:
    """A command's help epilog: its example command lines (and the workloads)."""
    lines = "\n\n".join(f"  [cyan]{c}[/cyan]" for c in commands)
    names = "\n\n".join(f"  [b]{name}[/b]: {wl.title}" for name, wl in WORKLOADS.items())
    return f"[b]Examples[/b]\n\n{lines}" + (f"\n\n[b]Workloads[/b]\n\n{names}"
                                             if workloads else "")


def _threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


Threads = Annotated[int | None, typer.Option(min=1, help="torch CPU threads (default: torch's; "
                                                       "with Ray: per task, default 1)")]
ExecutorOption = Annotated[str, typer.Option(help="where the points run: local (this process) "
                                                  "or ray (tasks on a Ray cluster)")]
AddressOption = Annotated[str | None, typer.Option(help="--executor ray: the address of an "
                                                        "existing Ray cluster (default: start "
                                                        "a local one with this machine's CPUs)")]


def _failed(doc: dict) -> None:
    """Exit with status 1, naming them, when points of a Ray run failed (a rerun resumes)."""
    failed = doc.get("failed") or []
    if failed:
        err = console(stderr=True)
        for f in failed:
            err.print(f"failed: w={f['weight_clusters']} u={f['input_clusters']}: {f['error']}")
        err.print(f"{len(failed)} point(s) failed; run the command again to retry them")
        raise typer.Exit(1)


def train_cmd(
    workload: Annotated[str, typer.Argument(help="a workload name (listed below)")],
    quick: QuickOption = False,
    budget: BudgetOption = None,
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the info as JSON")] = False,
) -> None:
    """Train a workload's float model (or load it from the store); print its test accuracy.
    An interrupted training resumes from its last finished epoch when run again."""
    from rapidnn.workloads.store import get_trained

    with user_errors():
        _threads(threads)
        recipes = choose_budget(budget, quick).recipes
        _, info = get_trained(workload, recipes, progress=True, console=console(stderr=True))
    if as_json:
        print_json({k: v for k, v in info.items() if k != "loss_history"})
        return
    out = console()
    out.print(f"{info['workload']}{' (quick recipe)' if recipes == 'quick' else ''}: float test "
              f"accuracy "
              f"{info['test_accuracy']:.4f} (validation {info['val_accuracy']:.4f})")
    out.print(f"cached at {info['path']}")


def sweep_cmd(
    workload: Annotated[str | None, typer.Argument(
        help="a workload name (listed below), or leave it out and give --model",
        show_default=False)] = None,
    weight_clusters: Annotated[str, typer.Option(help="comma-separated w values")]
    = "4,8,16,32,64",
    input_clusters: Annotated[str, typer.Option(help="comma-separated u values")]
    = "4,8,16,32,64",
    retrain: Annotated[bool, typer.Option("--retrain", help="retrain every point to 0.3 "
                                                             "points")] = False,
    search: Annotated[bool, typer.Option("--search", help="find the smallest (w, u) within 0.3 "
                                                           "points: retrain in ascending memory "
                                                           "until one is within 0.3 points")]
    = False,
    retrain_limit: Annotated[float, typer.Option(min=0.0, max=100.0, help="--search: do not "
                                                 "retrain points losing more than this many "
                                                 "points before retraining")] = 1.5,
    max_rounds: Annotated[int | None, typer.Option(min=0, help="retraining rounds at most")]
    = None,
    quick: QuickOption = False,
    budget: BudgetOption = None,
    out: Annotated[str, typer.Option(help="output folder (sweep.json, pareto.png)")] = "sweep",
    restart: Annotated[bool, typer.Option("--restart", help="discard an existing sweep.json")]
    = False,
    threads: Threads = None,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    user_model: ModelOption = None,
    weights: WeightsOption = None,
    data: DataOption = None,
    test: TestOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print sweep.json")] = False,
) -> None:
    """Accuracy, memory per neuron and energy per inference over a (w, u) grid (resumable), of
    a workload or of your own model and data (its store: <out>/store)."""
    from pathlib import Path

    from rapidnn.experiments.common import parse_int_list
    from rapidnn.experiments.executor import get_executor
    from rapidnn.experiments.sweep import run_sweep
    from rapidnn.report.tables import sweep_table, to_rich

    with user_errors():
        check_output(out, "folder")
        if retrain and search:
            raise ValueError("--retrain and --search exclude each other: --retrain retrains "
                             "every point, --search only until the smallest one within 0.3 "
                             "points is found")
        ws = parse_int_list(weight_clusters, "--weight-clusters")
        us = parse_int_list(input_clusters, "--input-clusters")
        mode = "all" if retrain else "search" if search else "none"
        chosen = choose_budget(budget, quick)
        err = console(stderr=True)
        if workload is not None and user_model is not None:  # before --model's own checks
            raise ValueError(f"give a workload ({', '.join(WORKLOADS)}) or --model (your own "
                             f"model with --data), not both")
        own = user_workload(user_model, weights, data, test, err, as_json)
        if (workload is None) == (own is None):
            raise ValueError(f"give a workload ({', '.join(WORKLOADS)}) or --model (your own "
                             f"model with --data), not both" if workload is not None else
                             f"give a workload ({', '.join(WORKLOADS)}) or --model (your own "
                             f"model with --data)")
        root = None if own is None else Path(out) / "store"
        if own is not None:
            from rapidnn.workloads.custom import install_float_model

            info = install_float_model(own, root)
            err.print(f"your model {own.model_spec}: float test accuracy "
                      f"{info['test_accuracy']:.4f} on {info['sizes']['test']} examples "
                      f"({own.classes} classes; store {root})", markup=False, highlight=False)
        pool = get_executor(executor, address, threads)
        if executor == "local":
            _threads(threads)
        try:
            doc = run_sweep(own or workload, ws, us, mode=mode, max_rounds=max_rounds,
                            budget=chosen, out=out, restart=restart, console=err,
                            retrain_limit=retrain_limit / 100, executor=pool, root=root)
        finally:
            pool.close()
    _failed(doc)
    if as_json:
        print_json(doc)
        return
    name = workload if own is None else own.name
    out_console = console(width=110)
    table = sweep_table(doc["points"], title=f"sweep {name}{' (quick)' if chosen.quick else ''}, "
                                             f"float accuracy {100 * doc['float_accuracy']:.2f}%")
    # the front is over energy per inference and quality loss (rapidnn.selection.pareto_front)
    table.headers = [PARETO_HEADER if h == "pareto" else h for h in table.headers]
    out_console.print(to_rich(table))
    best = doc["smallest_within_tolerance"]
    if best is None:
        out_console.print("no (w, u) point is within 0.3 points of the float model")
    else:
        out_console.print(f"smallest (w, u) within 0.3 points: w={best['weight_clusters']}, "
                          f"u={best['input_clusters']} ({best['bytes_per_neuron']:.1f} bytes "
                          f"per neuron, quality loss {100 * best['quality_loss']:.2f} points)")
    out_console.print(f"written: {out}/sweep.json, {out}/sweep.txt, {out}/pareto.png",
                      markup=False, highlight=False)


#: the sweep table's Pareto column, naming the axes of the front
PARETO_HEADER = "Pareto (energy, loss)"


def _print_results(results: dict, out: str, lead: str = "") -> None:
    """The paper's table of a results document, then where its files were written."""
    from rapidnn.report.tables import paper_table, to_rich

    out_console = console(width=160)
    out_console.print(to_rich(paper_table(results["workloads"], results["shape_networks"],
                                          results["geomean"], results["geomean_with_shapes"])))
    out_console.print(f"{lead}written: {out}/results.json, {out}/report.md, {out}/report.html",
                      markup=False, highlight=False)


def reproduce_cmd(
    quick: QuickOption = False,
    budget: BudgetOption = None,
    out: Annotated[str, typer.Option(help="output folder")] = "results",
    workload: Annotated[list[str] | None, typer.Option(help="only these workloads "
                                                              "(repeatable)")] = None,
    pretrained: Annotated[list[str] | None, typer.Option(help="import the trained float models "
                                                             "in this folder or file into the "
                                                             "store first, as `rapidnn store "
                                                             "import` does (repeatable)")]
    = None,
    threads: Threads = None,
    executor: ExecutorOption = "local",
    address: AddressOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print results.json")] = False,
) -> None:
    """The paper's evaluation: results.json, report.md and report.html (plots embedded)."""
    from rapidnn.experiments.executor import get_executor
    from rapidnn.experiments.reproduce import run_reproduce
    from rapidnn.workloads.transfer import import_trained

    err = console(stderr=True)
    with user_errors():
        check_output(out, "folder")
        for r in import_trained(pretrained) if pretrained else []:
            err.print(f"pretrained {r.workload}{_recipes_label(r.recipes)}: {r.status} "
                          f"({r.key})")
        chosen = choose_budget(budget, quick)
        pool = get_executor(executor, address, threads)
        if executor == "local":
            _threads(threads)
        try:
            results = run_reproduce(chosen, out, workloads=workload or None, console=err,
                                    executor=pool)
        finally:
            pool.close()
    if as_json:
        print_json(results)
        return
    _print_results(results, out, f"{chosen.name} budget; wall time "
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

    with user_errors():
        check_output(out, "folder")
        merged = merge_results([load_results(r) for r in results], sources=results)
        with busy(console(stderr=True), f"writing the report into {out}", as_json):
            write_results(merged, out)
    if as_json:
        print_json(merged)
        return
    _print_results(merged, out)


store_app = typer.Typer(no_args_is_help=True,
                        help="The model store: list, export and import trained float models.")


@store_app.command("list")
def store_list_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the entries as JSON")] = False,
) -> None:
    """The trained float models in the store (stale: trained with a recipe that changed;
    unreadable: a mistyped info file, with the reason below the table)."""
    from rich.table import Table

    from rapidnn.workloads.store import store_root
    from rapidnn.workloads.transfer import list_trained

    with user_errors():
        rows = list_trained()
    if as_json:
        print_json({"store": str(store_root()), "entries": rows})
        return
    out = console()
    out.print(f"float models in {store_root()}", markup=False, highlight=False)
    table = Table()
    for column in ("workload", "key", "recipe", "test acc.", "val. acc.", "train s"):
        table.add_column(column)

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.2f} %"

    for r in rows:
        state = "unreadable" if r["problem"] else "current" if r["current"] else "stale"
        table.add_row(str(r["workload"]), r["key"], state,
                      pct(r["test_accuracy"]), pct(r["val_accuracy"]),
                      "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}")
    out.print(table)
    for r in rows:
        if r["problem"]:
            out.print(f"unreadable: {r['problem']}", markup=False, highlight=False)


@store_app.command("export")
def store_export_cmd(
    workloads: Annotated[list[str], typer.Argument(help="workload names")],
    out: Annotated[str, typer.Option(help="output folder")] = "pretrained",
    quick: Annotated[bool, typer.Option("--quick", help="the quick recipes' models")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print what was written as JSON")]
    = False,
) -> None:
    """Copy stored float models (the current recipes') into a folder, to import elsewhere."""
    from rapidnn.workloads.transfer import export_trained

    with user_errors():
        check_output(out, "folder")
        results = export_trained(workloads, out, "quick" if quick else "full")
    _print_transfer(results, as_json)


@store_app.command("import")
def store_import_cmd(
    sources: Annotated[list[str], typer.Argument(help="exported .safetensors files or folders "
                                                      "of them")],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace entries the store "
                                                                  "already holds")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print what was done as JSON")]
    = False,
) -> None:
    """Check exported float models and copy them into the store, so `train`, `sweep` and
    `reproduce` use them instead of training; files of a changed recipe are skipped (stale)."""
    from rapidnn.workloads.transfer import import_trained

    with user_errors():
        results = import_trained(sources, overwrite=overwrite)
    _print_transfer(results, as_json)


def _print_transfer(results: list, as_json: bool) -> None:
    if as_json:
        print_json([r.to_dict() for r in results])
        return
    out = console()
    for r in results:
        acc = "" if r.test_accuracy is None else f", test accuracy {r.test_accuracy:.4f}"
        out.print(f"{r.status}: {r.workload}{_recipes_label(r.recipes)} {r.key}{acc} "
                  f"({r.path})", markup=False, highlight=False)


def _recipes_label(recipes: str | None) -> str:
    return " (quick)" if recipes == "quick" else ""


def register(app: typer.Typer) -> None:
    """Add ``train``, ``sweep``, ``reproduce``, ``report`` and ``store`` to ``app``."""
    app.command("train", epilog=_examples(
        "rapidnn train mnist-mlp", "rapidnn train cifar10-vgg --quick --threads 4"))(train_cmd)
    app.command("sweep", epilog=_examples(
        "rapidnn sweep mnist-mlp --weight-clusters 4,16 --input-clusters 4,16 --quick",
        "rapidnn sweep fashion-lenet5 --search --out sweep-fashion",
        "rapidnn sweep mnist-mlp --quick --executor ray",
        "rapidnn sweep --model tinynet.py:make_net --weights net.safetensors --data "
        "train.npz --test test.npz --weight-clusters 4,16 --input-clusters 4,16 --out "
        "sweep-tiny",
        "rapidnn sweep --model net.onnx --data images/ --search"))(sweep_cmd)
    app.command("reproduce", epilog=_examples(
        "rapidnn reproduce --quick --pretrained pretrained/ --out results-quick",
        "rapidnn reproduce --workload mnist-mlp --workload har-cnn --out results-two",
        "rapidnn reproduce --executor ray --address auto"))(reproduce_cmd)
    app.command("report", epilog=_examples(
        "rapidnn report results-a results-b --out results", workloads=False))(report_cmd)
    app.add_typer(store_app, name="store")
