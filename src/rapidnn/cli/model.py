"""The model commands: ``demo``, ``compose``, ``simulate``, ``estimate``, ``compare``, ``audit`` and
``hardware show`` (heavy imports happen inside the commands: ``--help`` stays fast).
``simulate``, ``estimate`` and ``compare`` take a ``.rapidnn`` file or the user's own model and
data (:mod:`rapidnn.cli.own`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from rapidnn.accel.config import SimConfig
from rapidnn.cli.app import (
    BudgetOption,
    app,
    busy,
    check_output,
    choose_budget,
    console,
    print_json,
    progress,
    user_errors,
)
from rapidnn.cli.own import (
    DataOption,
    ModelOption,
    TestOption,
    WeightsOption,
    compose_user_model,
    describe_test,
    user_workload,
)
from rapidnn.hardware.estimate import EstimateOptions

if TYPE_CHECKING:
    from rapidnn.composer.composed import ComposedModel


def _examples(*commands: str, note: str = "") -> str:
    """A command's help epilog: its example command lines (and a note)."""
    lines = "\n\n".join(f"  [cyan]{c}[/cyan]" for c in commands)
    return f"[b]Examples[/b]\n\n{lines}" + (f"\n\n{note}" if note else "")


#: the keys of an estimate-options YAML (``--config``), listed in the help of its commands
CONFIG_KEYS = ("[b]--config[/b] YAML keys (rapidnn.hardware.EstimateOptions): "
               + ", ".join(EstimateOptions.model_fields)
               + "; and a [b]simulator:[/b] mapping of SimConfig keys: "
               + ", ".join(SimConfig.model_fields)
               + ". Example file: 'objective: energy' and 'replication: balanced', one per "
                 "line; docs/hardware.md describes each.")

WeightClusters = Annotated[int, typer.Option(
    "-w", "--weight-clusters", min=2, max=256, help="--model: weight clusters w",
    rich_help_panel="Your own model and data")]
InputClusters = Annotated[int, typer.Option(
    "-u", "--input-clusters", min=2, max=256, help="--model: input clusters u",
    rich_help_panel="Your own model and data")]
ModelFile = Annotated[str | None, typer.Argument(
    help="a .rapidnn file (or leave it out and give --model)", show_default=False)]


@app.command(epilog=_examples(
    "rapidnn demo", "rapidnn demo -w 8 -u 8 --save small.rapidnn",
    "rapidnn demo --json > demo.json",
    note="The float model is the shipped pretrained/mnist-mlp-<key>.safetensors when its key "
         "matches (else from the store, else trained, about a minute)."))
def demo(
    weight_clusters: Annotated[int, typer.Option("-w", "--weight-clusters", min=2, max=256,
                                                 help="w")] = 16,
    input_clusters: Annotated[int, typer.Option("-u", "--input-clusters", min=2, max=256,
                                                help="u")] = 16,
    max_rounds: Annotated[int, typer.Option(min=0, help="retraining rounds (of one epoch) at "
                                                       "most")] = 5,
    save: Annotated[str, typer.Option(help="where to write the composed model (.rapidnn)")]
    = "mlp.rapidnn",
    pretrained: Annotated[list[str] | None, typer.Option(
        help="folders of shipped float models (default: pretrained/ here, then the source "
             "checkout's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Load (or train) the MNIST MLP, compose it, retrain it, print quality and memory, and
    write the composed model (mlp.rapidnn) that the tour's later commands use."""
    from rapidnn.experiments.demo import run_demo

    with user_errors():
        if not save.endswith(".rapidnn"):
            raise ValueError(f"--save {save}: a composed model is written as a .rapidnn file")
        check_output(save)
        out = console(stderr=as_json)
        err = console(stderr=True)
        figures = run_demo(weight_clusters, input_clusters, max_rounds, console=out,
                           save=save, pretrained=None if pretrained is None else
                           [Path(p) for p in pretrained],
                           busy=lambda what: busy(err, what, as_json))
    if as_json:
        print_json(figures)


def _load_model(path: str):
    from rapidnn.composer.composed import load

    return load(path)


def _load_config(path: str | None) -> tuple[dict[str, Any], Any]:
    """A YAML file of estimate options, with an optional ``simulator:`` section (SimConfig)."""
    import yaml
    from pydantic import ValidationError

    if path is None:
        return {}, SimConfig()
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of options at the top level")
    sim = raw.pop("simulator", {}) or {}
    try:
        options = EstimateOptions.model_validate(raw).model_dump()
        return options, SimConfig.model_validate(sim)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: option {key!r}: {first['msg']}") from exc


def _test_data(composed: Any, model: str, dataset: str | None, limit: int | None,
               spread: bool = False) -> tuple[str, Any, Any]:
    """The test set a command runs a composed model on: ``--dataset`` or the model's own,
    reshaped to the model's input; the first ``limit`` images (evenly spread ones with
    ``spread``: some test sets are sorted by class)."""
    import torch

    from rapidnn import data
    from rapidnn.workloads.custom import read_data

    if dataset is not None and not dataset.strip():
        raise ValueError("--dataset is empty; name a dataset or leave the option out (the "
                         "model's own)")
    name = dataset or composed.metadata.get("dataset")
    if name is None:
        raise ValueError(f"{model}: the model names no dataset; pass --dataset")
    if name not in data.DATASETS and (name.lower().endswith(".npz") or Path(name).is_dir()):
        arrays, labels, _ = read_data(name)
        x, y = torch.from_numpy(arrays), torch.from_numpy(labels)
    else:
        x, y = data.as_tensors(data.load(name, "test"))
    # a workload may feed the network another layout of the same data (HAR: 6x1x128)
    shape = composed.source.input.shape
    if x[0].numel() != math.prod(shape):
        where = f"{name} test" if name in data.DATASETS else f"{name}:"
        raise ValueError(f"{where} inputs of shape {tuple(x.shape[1:])} do not fit the "
                         f"model's input {shape}")
    return name, *_first(x.reshape(x.shape[0], *shape), y, limit, spread)


def _unit(shape: Any) -> str:
    """What a model's inputs are called in counts: ``images`` for a (channels, height, width)
    input of 1 or 3 channels, else ``examples``."""
    shape = tuple(shape)
    is_image = len(shape) == 3 and shape[0] in (1, 3) and min(shape[1:]) > 1
    return "images" if is_image else "examples"


def _first(x: Any, y: Any, limit: int | None, spread: bool) -> tuple[Any, Any]:
    """The first ``limit`` examples (evenly spread ones with ``spread``)."""
    if limit is not None and limit < len(x):
        n = len(x)
        pick = [i * n // limit for i in range(limit)] if spread else list(range(limit))
        x, y = x[pick], y[pick]
    return x, y


def _model_source(model: str | None, user_model: str | None, weights: str | None,
                  data: str | None, test: str | None, w: int, u: int, out: Console,
                  quiet: bool) -> tuple[str, ComposedModel, Any]:
    """``(label, composed model, workload or None)``: the .rapidnn file ``model``, or the
    user's ``--model`` composed at ``(w, u)`` (exactly one of them)."""
    if model is not None and user_model is not None:  # before --model's own checks (--data)
        raise ValueError("give a .rapidnn file or --model (your own model), not both")
    wl = user_workload(user_model, weights, data, test, out, quiet)
    if model is None and wl is None:
        raise ValueError("give a .rapidnn file or --model (your own model with --data)")
    if wl is None:
        return model, _load_model(model), None
    return wl.model_spec, compose_user_model(wl, w, u, out, quiet), wl


@app.command("simulate", epilog=_examples(
    "rapidnn simulate mlp.rapidnn --limit 1000",
    "rapidnn simulate mlp.rapidnn --strategy counting --approx-bits 4 --limit 500 --json",
    "rapidnn simulate mlp.rapidnn --dataset my_test.npz",
    "rapidnn simulate --model tinynet.py:make_net --weights net.safetensors --data train.npz "
    "--test test.npz -w 16 -u 16"))
def simulate_cmd(
    model: ModelFile = None,
    approx_bits: Annotated[int | None, typer.Option(min=1, help="AM searched bits (approximate)")]
    = None,
    strategy: Annotated[str, typer.Option(help="accumulation: tree or counting (counting "
                                               "is much slower: it counts per bit; use "
                                               "--limit)")] = "tree",
    dataset: Annotated[str | None, typer.Option(help="test set: a dataset name, a .npz file "
                                                     "(arrays x, y) or an image folder "
                                                     "(default: the model's)")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="simulate the first N test "
                                                          "examples")] = None,
    user_model: ModelOption = None,
    weights: WeightsOption = None,
    data: DataOption = None,
    test: TestOption = None,
    weight_clusters: WeightClusters = 16,
    input_clusters: InputClusters = 16,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Run a composed model (or your own, composed here) on the RNA accelerator simulator over
    its test set."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from rapidnn.accel.simulator import simulate_dataset

    err = console(stderr=True)
    with user_errors():
        if strategy not in ("tree", "counting"):
            raise ValueError(f"--strategy must be 'tree' or 'counting', not {strategy!r}")
        if user_model is not None and dataset is not None:
            raise ValueError("--model takes its test data from --test (or --data), not "
                             "--dataset")
        label, composed, wl = _model_source(model, user_model, weights, data, test,
                                            weight_clusters, input_clusters, err, as_json)
        if wl is None:
            name, x, y = _test_data(composed, label, dataset, limit)
        else:
            name = wl.test or f"{wl.data} (20% held out)"
            x, y = _first(*wl.splits().test.tensors, limit, False)
        unit = _unit(composed.source.input.shape)
        loader = DataLoader(TensorDataset(x, y), batch_size=256)
        cfg = SimConfig(strategy=strategy, approx_bits=approx_bits)
        with torch.no_grad(), progress(err, as_json) as bar:
            task = bar.add_task(f"simulating {len(x)} {unit} ({strategy})", total=len(x))

            def batches() -> Any:
                for batch in loader:
                    yield batch
                    bar.advance(task, len(batch[0]))

            result = simulate_dataset(composed, batches(), cfg)
    trace = result.pop("trace", None)
    result.update({"model": label, "dataset": name, "approx_bits": approx_bits,
                   "strategy": strategy})
    if wl is not None:
        result.update({"weight_clusters": weight_clusters, "input_clusters": input_clusters})
    if as_json:
        print_json({**result, "trace": trace})
        return
    out = console()
    if wl is None:
        where = f"{label} on {name} test ({result['images']} {unit})"
    else:
        where = (f"{label} composed at w={weight_clusters}, u={input_clusters}, "
                 f"{describe_test(wl, result['images'], unit)}")
    out.print(f"{where}, strategy {strategy}, "
              f"{'exact' if approx_bits is None else f'{approx_bits}-bit approximate'} search",
              markup=False, highlight=False)
    out.print(f"  accuracy                       {result['accuracy']:.4f}")
    out.print(f"  agreement with ComposedModel   {result['agreement']:.4f}")
    out.print(f"  simulation time                {result['seconds']:.2f} s")
    out.print("  per inference:")
    for key, value in result["totals"].items():
        out.print(f"    {key:<22} {value:,.0f}")


@app.command("compose", epilog=_examples(
    "rapidnn compose net.onnx --calibration calib.npz -w 16 -u 16 --out net.rapidnn",
    "rapidnn compose net.onnx --calibration calib.npz --json"))
def compose_cmd(
    model: Annotated[str, typer.Argument(help="an .onnx file (one float input, batch first)")],
    calibration: Annotated[str, typer.Option(help="a .npz file: inputs as array 'x' (or its "
                                                  "only array), batch first")],
    out: Annotated[str | None, typer.Option(help="the .rapidnn file to write (default: the "
                                                 "model's name with .rapidnn, here)")] = None,
    weight_clusters: Annotated[int, typer.Option("-w", "--weight-clusters", min=2, max=256,
                                                 help="w")] = 16,
    input_clusters: Annotated[int, typer.Option("-u", "--input-clusters", min=2, max=256,
                                                help="u")] = 16,
    seed: Annotated[int, typer.Option(min=0, help="seed of sampling and k-means")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Compose an ONNX model into a .rapidnn file, clustering inputs on the calibration data."""
    from pathlib import Path

    import torch

    from rapidnn.composer.compose import compose
    from rapidnn.data.arrays import read_npz

    with user_errors():
        target = out if out is not None else Path(model).with_suffix(".rapidnn").name
        if not target.endswith(".rapidnn"):
            raise ValueError(f"--out {target}: a composed model is written as a .rapidnn file")
        check_output(target)
        x, _ = read_npz(calibration)
        with busy(console(stderr=True), f"composing {model}", as_json):
            composed = compose(model, list(torch.from_numpy(x).split(256)), weight_clusters,
                               input_clusters, seed=seed)
        composed.metadata.update({"onnx": Path(model).name,
                                  "calibration": Path(calibration).name})
        composed.save(target)
    memory = composed.memory()
    figures = {"model": model, "out": target, "layers": composed.layer_names(),
               "weight_clusters": weight_clusters, "input_clusters": input_clusters,
               "calibration_inputs": len(x), "total_bits": memory["total_bits"],
               "bits_per_neuron": memory["bits_per_neuron"]}
    if as_json:
        print_json(figures)
        return
    console().print(
        f"composed {model} (w={weight_clusters}, u={input_clusters}, {len(x)} calibration "
        f"inputs): {len(figures['layers'])} weighted layers, "
        f"{memory['total_bits'] / 8 / 1024:.1f} KiB, {memory['bits_per_neuron'] / 8:.1f} "
        f"bytes/neuron -> {target}")


def _float_list(text: str, option: str) -> list[float]:
    """``"0,1e-4,0.1"`` -> rates in [0, 1] (sorted, unique); a ValueError names ``option``."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            v = float(part)
        except ValueError:
            raise ValueError(f"{option}: {part!r} is not a number (in {text!r})") from None
        if not 0 <= v <= 1:
            raise ValueError(f"{option}: {part} is not a rate in [0, 1]")
        values.append(v)
    if not values:
        raise ValueError(f"{option}: expected a comma-separated list of rates, got {text!r}")
    return sorted(set(values))


@app.command("faults", epilog=_examples(
    "rapidnn faults mlp.rapidnn --rates 0,1e-4,1e-3,1e-2 --blocks table,am --trials 5",
    "rapidnn faults mlp.rapidnn --spare-rows 2 --protection parity --plot faults.png",
    "rapidnn faults mlp.rapidnn --limit 200 --trials 1",
    note="Processing-crossbar faults are simulated product by product and dominate the time "
         "(the default settings take about 20 minutes): start with [cyan]--limit 200 --trials "
         "1[/cyan], or leave processing out of --blocks."))
def faults_cmd(
    model: Annotated[str, typer.Argument(help="a .rapidnn file")],
    rates: Annotated[str, typer.Option(help="fault rates: per cell (stuck-at), per bit per "
                                            "access (flips)")] = "0,1e-4,1e-3,1e-2,0.1",
    blocks: Annotated[str, typer.Option(help="block kinds: table, processing, am, read_flips, "
                                             "search_flips")] = "table,processing,am",
    trials: Annotated[int, typer.Option(min=1, help="seeded samplings per rate")] = 3,
    limit: Annotated[int | None, typer.Option(min=1, help="test images (evenly spread)")]
    = 1000,
    dataset: Annotated[str | None, typer.Option(help="test set (default: the model's)")] = None,
    seed: Annotated[int, typer.Option(min=0, help="seed of the first trial")] = 0,
    spare_rows: Annotated[int, typer.Option(min=0, help="spare rows per block and memory")]
    = 0,
    protection: Annotated[str, typer.Option(help="table protection: none, parity or tmr")]
    = "none",
    endurance: Annotated[float | None, typer.Option(min=1, help="writes a cell endures "
                                                             "(default: the preset's)")] = None,
    plot: Annotated[str | None, typer.Option(help="write the curves as a PNG")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Accuracy against device-fault rate per block kind, the mitigation's cost, and the
    lifetime until the first cell wears out (with and without wear levelling)."""
    from rapidnn.accel.config import FaultConfig
    from rapidnn.experiments.faults import KINDS, fault_curves
    from rapidnn.hardware.endurance import lifetime
    from rapidnn.hardware.mitigation import mitigation_cost

    with user_errors():
        grid = _float_list(rates, "--rates")
        kinds = [k.strip() for k in blocks.split(",") if k.strip()]
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not kinds:
            raise ValueError(f"--blocks: unknown kinds {unknown or blocks!r}; known: "
                             f"{', '.join(KINDS)}")
        if protection not in ("none", "parity", "tmr"):
            raise ValueError(f"--protection must be 'none', 'parity' or 'tmr', not "
                             f"{protection!r}")
        mitigation = {"spare_rows": spare_rows, "table_protection": protection}
        check_output(plot)
        composed = _load_model(model)
        name, x, y = _test_data(composed, model, dataset, limit, spread=True)
        unit = _unit(composed.source.input.shape)
        steps = len(kinds) * sum(1 for r in grid if r > 0)
        if "processing" in kinds and len(x) * trials > SLOW_PROCESSING_RUNS:
            console(stderr=True).print(
                f"note: processing-crossbar faults are simulated product by product "
                f"({len(x)} {unit} x {trials} "
                f"{_plural(trials, 'trial')} per rate): this takes long; try --limit 200 "
                f"--trials 1", markup=False, highlight=False)
        with progress(console(stderr=True), as_json) as bar:
            task = bar.add_task(f"faults on {name}", total=steps)
            result = fault_curves(composed, x, y, rates=grid, kinds=kinds, trials=trials,
                                  seed=seed, mitigation=mitigation,
                                  progress=lambda _: bar.advance(task))
        result["cost"] = mitigation_cost(composed, FaultConfig(**mitigation))
        result["endurance"] = lifetime(composed, endurance_writes=endurance).to_dict()
        result.update({"model": model, "dataset": name})
        if plot is not None:
            from rapidnn.report.plots import fault_curves_plot

            fault_curves_plot({name: result}, plot, title=f"{model}: accuracy under faults")
    if as_json:
        print_json(result)
        return
    _print_faults(result, unit)


#: images x trials above which ``faults`` notes that processing faults take long
SLOW_PROCESSING_RUNS = 500


def _plural(n: int, word: str) -> str:
    """``word`` for one, ``word + "s"`` otherwise (``1 trial``, ``3 trials``)."""
    return word if n == 1 else f"{word}s"


def _lifetime(inferences: float | None, throughput_ips: float) -> str:
    """``1.76e+06 inferences (5.6 s at the design's throughput)``; None: no cell is written."""
    from rapidnn.hardware.endurance import duration

    if inferences is None or not math.isfinite(inferences):
        return "unbounded (no cell is written)"
    text = f"{inferences:.3g} inferences"
    if throughput_ips and throughput_ips > 0:
        text += f" ({duration(inferences / throughput_ips)} at the design's throughput)"
    return text


def _print_faults(result: dict[str, Any], unit: str = "images") -> None:
    from rich.table import Table

    out = console()
    out.print(f"{result['model']} on {result['dataset']} ({result['images']} {unit}, "
              f"{result['trials']} {_plural(result['trials'], 'trial')}; fault-free "
              f"{result['clean_accuracy']:.4f})",
              markup=False, highlight=False)
    table = Table()
    table.add_column("block")
    rates = [p["rate"] for p in result["curves"][0]["points"]]
    for r in rates:
        table.add_column(f"{r:g}", justify="right")
    table.add_column("rate losing 1 point", justify="right")
    for c in result["curves"]:
        cells = [f"{p['accuracy']:.4f}" + (f" ±{p['std']:.4f}" if p["std"] else "")
                 for p in c["points"]]
        one = c["rate_for_one_point"]
        shown = "none lost" if one is None else (
            f"<= {one:.2g}" if c["one_point_at_first_rate"] else f"{one:.2g}")
        table.add_row(c["block"], *cells, shown)
    out.print(table)
    cost = result["cost"]
    out.print(f"mitigation: {cost['spare_rows']} spare rows, table protection "
                  f"{cost['table_protection']}: area x{cost['area_ratio']:.4f}, energy "
                  f"x{cost['energy_ratio']:.4f}, latency x{cost['latency_ratio']:.4f}")
    e = result["endurance"]
    ips = e.get("throughput_ips") or 0.0
    out.print(f"lifetime at {e['endurance_writes']['value']:.3g} writes per cell "
              f"({e['endurance_writes']['tag']}): "
              f"{_lifetime(e['lifetime_inferences'], ips)} without wear levelling, "
              f"{_lifetime(e['with_wear_levelling']['lifetime_inferences'], ips)} with it",
              markup=False, highlight=False)


ConfigOption = Annotated[str | None, typer.Option(help="YAML of estimate options (keys below)")]


@app.command("estimate", epilog=_examples(
    "rapidnn estimate mlp.rapidnn --hardware isaac",
    "rapidnn estimate mlp.rapidnn --config options.yaml --json",
    "rapidnn estimate --model net.onnx --data calib.npz -w 16 -u 16", note=CONFIG_KEYS))
def estimate_cmd(
    model: ModelFile = None,
    hardware: Annotated[str, typer.Option(help="rapidnn, isaac, pipelayer, gpu or a YAML file")]
    = "rapidnn",
    config: ConfigOption = None,
    user_model: ModelOption = None,
    weights: WeightsOption = None,
    data: DataOption = None,
    weight_clusters: WeightClusters = 16,
    input_clusters: InputClusters = 16,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Energy, latency, throughput, area and power of a composed model (or your own, composed
    here) on one architecture."""
    from rapidnn.hardware.costs import estimate, model_trace

    err = console(stderr=True)
    with user_errors():
        options, sim = _load_config(config)
        label, composed, _ = _model_source(model, user_model, weights, data, None,
                                           weight_clusters, input_clusters, err, as_json)
        with busy(err, f"estimating {label} on {hardware}", as_json):
            est = estimate(composed, hardware, trace=model_trace(composed, sim_config=sim),
                           config=options)
    if as_json:
        print_json(est.to_dict())
        return
    from rich.table import Table

    table = Table(title=f"{Path(label).name} on {est.hardware}")
    for col in ("layer", "energy (J)", "stage time (s)", "units", "replicas"):
        table.add_column(col, justify="right" if col != "layer" else "left")
    for layer in est.layers:
        table.add_row(layer.name, f"{layer.energy_j:.3e}", f"{layer.stage_time_s:.3e}",
                      str(layer.units), str(layer.replicas))
    out = console()
    out.print(table)
    out.print(f"energy {est.energy_j:.3e} J/inference, latency {est.latency_s:.3e} s, "
              f"throughput {est.throughput_ips:,.0f} inferences/s, power {est.power_w:.3g} W"
              + ("" if est.area_mm2 is None else f", area {est.area_mm2:.2f} mm^2"))


@app.command("compare", epilog=_examples(
    "rapidnn compare mlp.rapidnn", "rapidnn compare mlp.rapidnn --objective energy --json",
    "rapidnn compare --model tinynet.py:make_net --weights net.safetensors --data train.npz "
    "-w 16 -u 16", note=CONFIG_KEYS))
def compare_cmd(
    model: ModelFile = None,
    config: ConfigOption = None,
    objective: Annotated[str | None, typer.Option(
        help="what the RAPIDNN mapper minimises: latency, energy or edp (default edp)")] = None,
    user_model: ModelOption = None,
    weights: WeightsOption = None,
    data: DataOption = None,
    weight_clusters: WeightClusters = 16,
    input_clusters: InputClusters = 16,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """RAPIDNN's energy efficiency and speedup over ISAAC, PipeLayer and a GPU under every
    comparison policy (as-published, iso-area, iso-power, filled, precision-matched), for a
    composed model or your own (composed here)."""
    from rapidnn.hardware.costs import compare, model_trace

    err = console(stderr=True)
    with user_errors():
        options, sim = _load_config(config)
        if objective is not None:
            if objective not in ("latency", "energy", "edp"):
                raise ValueError(f"--objective must be latency, energy or edp, not "
                                 f"{objective!r}")
            options = {**options, "objective": objective}
        label, composed, _ = _model_source(model, user_model, weights, data, None,
                                           weight_clusters, input_clusters, err, as_json)
        with busy(err, f"comparing {label} with ISAAC, PipeLayer and a GPU", as_json):
            result = compare(composed, trace=model_trace(composed, sim_config=sim),
                             config=options, name=composed.metadata.get("workload", label))
    data_out = result.to_dict()
    if as_json:
        print_json(data_out)
        return
    from rich.table import Table

    out = console(width=130)
    table = Table(title=f"RAPIDNN vs baselines on {result.network}: energy efficiency / "
                        "speedup (above 1 favours RAPIDNN)")
    table.add_column("policy")
    baselines = list(result.baselines)
    for name in baselines:
        table.add_column(name, justify="right")
    for policy, per in data_out["policies"].items():
        table.add_row(policy, *(f"{per[b]['energy_efficiency']:.3g}x / {per[b]['speedup']:.3g}x"
                                for b in baselines))
    out.print(table)
    mine = data_out["rapidnn"]
    out.print(f"RAPIDNN (as published): {mine['energy_j']:.3e} J/inference, "
              f"{mine['throughput_ips']:,.0f} inferences/s, {mine['blocks_used']:,} of "
              f"{mine['blocks_available']:,.0f} blocks, row occupancy "
              f"{mine['row_occupancy']:.3%} (dense layout before the mapper: "
              f"{mine['before']['row_occupancy']:.3%}; bound 100% = "
              f"{mine['throughput_at_full_occupancy_ips']:,.0f} inferences/s)")


@app.command("audit", epilog=_examples(
    "rapidnn audit mlp.rapidnn --quick", "rapidnn audit mlp.rapidnn --plot tornado.png --json",
    note=CONFIG_KEYS))
def audit_cmd(
    model: Annotated[str, typer.Argument(help="a .rapidnn file")],
    config: ConfigOption = None,
    plot: Annotated[str | None, typer.Option(help="write the tornado plot (PNG) here")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="short for --budget quick: five factors "
                                                        "(10^-3, 10^-1.5, 1, 10^1.5, 10^3) "
                                                        "instead of thirteen")] = False,
    budget: BudgetOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """What the paper's ratios (68.4x / 48.1x vs ISAAC, 49.5x / 10.9x vs PipeLayer) would need:
    every scenario, a sweep of every number over 10^-3..10^3, the smallest changes."""
    from rapidnn.hardware.audit import FACTORS
    from rapidnn.hardware.costs import audit, model_trace

    with user_errors():
        check_output(plot)
        options, sim = _load_config(config)
        composed = _load_model(model)
        factors = FACTORS[::choose_budget(budget, quick).audit_stride]
        with busy(console(stderr=True), f"auditing {model} ({len(factors)} factors)", as_json):
            result = audit(composed, trace=model_trace(composed, sim_config=sim),
                           config=options, name=composed.metadata.get("workload", model),
                           factors=factors)
        if plot is not None:
            from rapidnn.report.plots import tornado_plot

            tornado_plot(result, plot)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    out = console(width=140)
    table = Table(title=f"audit of the paper's ratios on {result['network']}: energy "
                        "efficiency / speedup")
    table.add_column("scenario")
    for b in ("isaac", "pipelayer", "gpu"):
        table.add_column(b, justify="right")
    paper = result["paper"]
    table.add_row("[b]paper[/b]", *(f"{paper[b]['energy_efficiency']}x / {paper[b]['speedup']}x"
                                    for b in ("isaac", "pipelayer", "gpu")))
    for sc in result["scenarios"]:
        table.add_row(sc["name"], *(f"{sc[b]['energy_efficiency']:.3g}x / "
                                    f"{sc[b]['speedup']:.3g}x" for b in ("isaac", "pipelayer",
                                                                          "gpu")))
    out.print(table)
    for title, key in (("smallest changes (any design)", "smallest_changes"),
                       ("smallest changes to RAPIDNN", "smallest_rapidnn_changes")):
        out.print(f"[b]{title}[/b]")
        for ratio, row in result[key].items():
            best = row["smallest_plausible"] or row["smallest"]
            if best is None:
                text = "none within the sweep"
            else:
                text = ", ".join(c["change"] + (f" x{c['factor']:.3g}" if "factor" in c else "")
                                 for c in best["changes"])
                text += f" ({'plausible' if row['plausible'] else 'not plausible'})"
            out.print(f"  {ratio}: paper {row['paper']}x, default {row['default']:.3g}x; "
                      f"{text}")
    if plot is not None:
        out.print(f"tornado plot: {plot}")


hardware_app = typer.Typer(no_args_is_help=True, help="Hardware descriptions of the cost model.")
app.add_typer(hardware_app, name="hardware")


@hardware_app.command("show", epilog=_examples(
    "rapidnn hardware show rapidnn", "rapidnn hardware show isaac --json",
    "rapidnn hardware show my_chip.yaml"))
def hardware_show(
    name: Annotated[str, typer.Argument(help="preset (rapidnn, isaac, pipelayer, gpu) or YAML")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Chip-level peak throughput, area, power, GOPS/s/mm^2 and GOPS/s/W of an architecture."""
    from rich.table import Table

    from rapidnn.hardware import chip_summary, load_hardware

    with user_errors():
        summary = chip_summary(load_hardware(name))
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"hardware {summary['name']}")
    table.add_column("figure")
    table.add_column("modelled", justify="right")
    table.add_column("published", justify="right")
    published = summary.get("published", {})
    for key, unit in (("peak_gops", "GOPS/s"), ("area_mm2", "mm^2"), ("power_w", "W"),
                      ("gops_per_mm2", "GOPS/s/mm^2"), ("gops_per_w", "GOPS/s/W")):
        value = summary.get(key)
        pub = published.get(key.removesuffix("_mm2").removesuffix("_w")) or published.get(key)
        table.add_row(f"{key} ({unit})", "-" if value is None else f"{value:,.1f}",
                      "-" if not pub else f"{pub['value']:,}")
    out = console()
    out.print(table)
    out.print(f"power basis: {summary.get('power_basis')}")
