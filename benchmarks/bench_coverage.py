"""Coverage of the torchvision classification zoo: which models ``rapidnn.compose`` takes.

Every model is built by torchvision (definitions only: no weights are downloaded), randomly
initialised with a fixed seed, ``num_classes=10``, at a small input size (the smallest of
32, 64, 96, 128, 160, 224 px that the model's float forward accepts; alexnet and vgg11 at both
32 and 64), with non-trivial BatchNorm so that folding is exercised (every BatchNorm's affine
parameters are drawn at random, then its running statistics are the exact average over three
seeded random batches run in train mode). Then, per model:

1. ``rapidnn.compose(model, calib, weight_clusters=16, input_clusters=16,
   calibration_batches=1)`` with one seeded random calibration batch of 8 images;
2. ``rapidnn.simulate(composed, x)`` on 4 seeded random images, and whether
   ``torch.equal(sim.outputs, composed(x))`` (the simulator is bit-exact with the model).

Recorded: composes yes/no; the first line of the error otherwise (the list of supported
operations that rapidnn's messages end with is cut); bytes per neuron
(``composed.memory()["bits_per_neuron"] / 8``); simulate == forward; seconds; peak memory.
Each model runs in its own subprocess (``--worker``) with a time limit, one at a time, with one
torch thread, so that one model's memory is freed before the next and a slow one is stopped.

The table goes to ``docs/coverage.md`` and every field to ``docs/coverage.json`` beside it
(both written atomically). Needs torchvision: the ``.venv-zoo`` environment
(``bash benchmarks/zoo_env.sh``; torchvision is imported through
``benchmarks/_torchvision_shim.py``, which says why).

Run: ``.venv-zoo/bin/python benchmarks/bench_coverage.py [--size 32|64] [--models M ...]
[--timeout 600] [--ref GIT_REF] [--out docs/coverage.md]``. By default the rapidnn of this
working tree is measured (``src/``, uncommitted changes included: the table says so); with
``--ref`` the committed ``src/`` of that revision, exported by ``git archive`` into a temporary
folder put first on the workers' ``PYTHONPATH`` (the working tree is not touched).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]

#: The zoo measured by default (torchvision builder names).
DEFAULT_MODELS = (
    "resnet18", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_0", "densenet121",
    "efficientnet_b0", "shufflenet_v2_x0_5", "googlenet", "regnet_x_400mf", "vgg11", "alexnet",
    "convnext_tiny", "vit_b_16",
)
#: Models measured at both 32 and 64 px by default (the rest at their smallest size).
BOTH_SIZES = ("alexnet", "vgg11")
#: Input sizes tried, smallest first, for a model's smallest size.
SIZES = (32, 64, 96, 128, 160, 224)
#: Builder arguments besides num_classes=10 (ViT's image_size is the input size).
EXTRA_KWARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
SEED = 0
CALIBRATION_IMAGES = 8
TEST_IMAGES = 4
BN_BATCHES = 3
ERROR_CHARS = 160


# Worker: one model at one size, in its own process ----------------------------------------
def build_model(name: str, size: int) -> torch.nn.Module:
    """The torchvision model ``name``, seeded, num_classes=10, for ``size`` px inputs."""
    from _torchvision_shim import import_models

    models = import_models()
    kwargs: dict[str, Any] = {"weights": None, "num_classes": 10, **EXTRA_KWARGS.get(name, {})}
    if name.startswith("vit_"):
        kwargs["image_size"] = size
    torch.manual_seed(SEED)
    return models.get_model(name, **kwargs)


@torch.no_grad()
def settle_batchnorm(model: torch.nn.Module, size: int) -> int:
    """Random affine parameters and data-driven running statistics for every BatchNorm.

    Affine weight ~ U(0.5, 1.5), bias ~ N(0, 0.1) (seeded); the running mean and variance are
    the exact average (momentum None) over ``BN_BATCHES`` seeded random batches in train mode.
    Returns the number of BatchNorm layers.
    """
    gen = torch.Generator().manual_seed(SEED + 1)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        if m.affine:
            m.weight.copy_(torch.rand(m.weight.shape, generator=gen) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.1)
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    if norms:
        model.train()
        for _ in range(BN_BATCHES):
            model(torch.randn(CALIBRATION_IMAGES, 3, size, size, generator=gen))
        for m in norms:
            m.momentum = 0.1
    model.eval()
    return len(norms)


def runs_at(model: torch.nn.Module, size: int) -> str | None:
    """None when the float model accepts ``size`` px inputs (eval mode), else the error."""
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    except Exception as exc:  # any failure of the model's own forward
        return first_line(exc)
    return None


def first_line(exc: BaseException, limit: int = 500) -> str:
    """``Type: first line`` of an exception, without rapidnn's trailing list of supported ops."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text.split(" Supported: ")[0]
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def measure(name: str, size: int) -> dict[str, Any]:
    """Build, compose and simulate one model at one size; every outcome is a field."""
    import rapidnn

    expected = os.environ.get("RAPIDNN_BENCH_SRC")
    if expected and not Path(rapidnn.__file__).resolve().is_relative_to(Path(expected).resolve()):
        raise RuntimeError(f"rapidnn imported from {rapidnn.__file__}, not from {expected}")
    torch.set_num_threads(1)
    row: dict[str, Any] = {"model": name, "size": size, "runs": False, "composes": False,
                           "stage": None, "error": None, "bytes_per_neuron": None,
                           "weighted_layers": None, "sim_equal": None}
    t0 = time.perf_counter()
    try:
        model = build_model(name, size)
    except Exception as exc:
        row.update(stage="build", error=first_line(exc))
        return row
    row["params"] = sum(p.numel() for p in model.parameters())
    why = runs_at(model, size)
    if why is not None:
        row.update(stage="float forward", error=why)
        return row
    row["runs"] = True
    row["batchnorms"] = settle_batchnorm(model, size)
    gen = torch.Generator().manual_seed(SEED + 2)
    calib = torch.randn(CALIBRATION_IMAGES, 3, size, size, generator=gen)
    x = torch.randn(TEST_IMAGES, 3, size, size, generator=gen)
    t1 = time.perf_counter()
    try:
        composed = rapidnn.compose(model, calib, weight_clusters=16, input_clusters=16,
                                   calibration_batches=1)
    except Exception as exc:
        row.update(stage="compose", error=first_line(exc),
                   compose_s=round(time.perf_counter() - t1, 2))
        return row
    row["compose_s"] = round(time.perf_counter() - t1, 2)
    row["composes"] = True
    mem = composed.memory()
    row["bytes_per_neuron"] = round(mem["bits_per_neuron"] / 8, 1)
    row["weighted_layers"] = len(mem["layers"])
    t2 = time.perf_counter()
    try:
        sim = rapidnn.simulate(composed, x)
        with torch.no_grad():
            ref = composed(x)
        row["sim_equal"] = bool(torch.equal(sim.outputs, ref))
    except Exception as exc:
        row.update(stage="simulate", error=first_line(exc))
    row["simulate_s"] = round(time.perf_counter() - t2, 2)
    row["build_s"] = round(t1 - t0, 2)
    return row


def worker(name: str, sizes: list[int], result: Path) -> None:
    """Measure ``name`` at the first of ``sizes`` where its float forward runs (or at each
    size when ``--each``); write the rows as JSON to ``result``."""
    rows = []
    for size in sizes:
        t0 = time.perf_counter()
        row = measure(name, size)
        row["seconds"] = round(time.perf_counter() - t0, 2)
        row["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        rows.append(row)
        if row["runs"]:
            break
    result.write_text(json.dumps(rows))


# Driver ------------------------------------------------------------------------------------
def plan(models: list[str], size: int | None) -> list[tuple[str, list[int]]]:
    """(model, sizes to try in order) per row: the first size in the list where the model runs
    is measured; a one-size list is measured (or fails) at that size."""
    jobs: list[tuple[str, list[int]]] = []
    for name in models:
        if size is not None:
            jobs.append((name, [size]))
        elif name in BOTH_SIZES:
            jobs.extend([(name, [32]), (name, [64])])
        else:
            jobs.append((name, list(SIZES)))
    return jobs


def run_job(name: str, sizes: list[int], timeout: float,
            src: Path | None = None) -> list[dict[str, Any]]:
    """One worker subprocess; a time-out or crash is a row with the reason."""
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name,
               "--sizes", ",".join(map(str, sizes)), "--result", str(result)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if src is not None:
            env["RAPIDNN_BENCH_SRC"] = str(src)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(src), os.environ.get("PYTHONPATH")) if p)
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                                  check=False)
        except subprocess.TimeoutExpired:
            return [failed(name, sizes, "timeout", f"time limit of {timeout:g} s reached",
                           time.perf_counter() - t0)]
        if proc.returncode != 0 or not result.exists():
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return [failed(name, sizes, "crash", f"worker exited {proc.returncode}: {tail}",
                           time.perf_counter() - t0)]
        return json.loads(result.read_text())


def run_jobs(jobs: list[tuple[str, list[int]]], timeout: float,
             src: Path | None) -> list[dict[str, Any]]:
    """Every job in turn, one line of progress each."""
    rows: list[dict[str, Any]] = []
    for i, (name, sizes) in enumerate(jobs, 1):
        new = run_job(name, sizes, timeout, src)
        rows.extend(new)
        for r in new:
            if r["composes"]:
                verdict = f"composes, simulate == forward: {r['sim_equal']}"
                if r["stage"]:
                    verdict += f" ({r['stage']}: {(r['error'] or '')[:90]})"
            else:
                verdict = f"{r['stage']}: {(r['error'] or '')[:110]}"
            print(f"[{i}/{len(jobs)}] {name} @ {r['size']} px: {verdict} ({r['seconds']} s)",
                  flush=True)
    return rows


def failed(name: str, sizes: list[int], stage: str, error: str, seconds: float) -> dict[str, Any]:
    return {"model": name, "size": sizes[0] if len(sizes) == 1 else None, "runs": None,
            "composes": False, "stage": stage, "error": error[:500], "bytes_per_neuron": None,
            "weighted_layers": None, "sim_equal": None, "seconds": round(seconds, 2)}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A model composes when it composes in at least one of its rows."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    composing = [m for m in models if any(r["composes"] for r in rows if r["model"] == m)]
    exact = [r for r in rows if r["composes"]]
    return {"models": len(models), "composing": len(composing),
            "fraction": round(len(composing) / len(models), 3) if models else None,
            "composing_models": composing, "rows": len(rows),
            "rows_composing": sum(bool(r["composes"]) for r in rows),
            "rows_sim_equal": sum(r["sim_equal"] is True for r in exact),
            "seconds": round(sum(r.get("seconds") or 0 for r in rows), 1)}


def git(*args: str) -> str:
    out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def export_src(ref: str, into: Path) -> Path:
    """The committed ``src/`` of ``ref``, extracted under ``into`` (git archive | tar)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "src"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def environment(ref: str | None) -> dict[str, Any]:
    from _torchvision_shim import import_models

    import_models()
    import torchvision

    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), no GPU, "
                   f"{platform.python_implementation()} {platform.python_version()}",
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "rapidnn_commit": git("rev-parse", "--short", ref or "HEAD"),
        "rapidnn_source": f"git archive {ref}" if ref else "working tree",
        "rapidnn_tree_dirty": False if ref else bool(git("status", "--porcelain", "--", "src")),
        "torch_threads": 1,
        "settings": {"weight_clusters": 16, "input_clusters": 16, "calibration_batches": 1,
                     "calibration_images": CALIBRATION_IMAGES, "test_images": TEST_IMAGES,
                     "seed": SEED, "num_classes": 10, "batchnorm_batches": BN_BATCHES},
    }


def _cell(v: Any) -> str:
    return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")


def markdown(env: dict[str, Any], rows: list[dict[str, Any]], summ: dict[str, Any],
             command: str, wall: float) -> str:
    if env["rapidnn_source"] != "working tree":
        source = f"the committed code of `{env['rapidnn_commit']}`"
    else:
        source = f"the working tree at commit `{env['rapidnn_commit']}`" + (
            " with uncommitted changes under src/" if env["rapidnn_tree_dirty"] else "")
    lines = [
        "# Coverage: the torchvision classification zoo through `rapidnn.compose`",
        "",
        f"Measured {env['date']} on the development machine: {env['machine']}; torch "
        f"{env['torch']}, torchvision {env['torchvision']} (model definitions only, through "
        f"`benchmarks/_torchvision_shim.py`); rapidnn: {source}; "
        f"one torch thread; {wall:.0f} s wall time in all.",
        "",
        f"**{summ['composing']} of {summ['models']} models compose "
        f"({100 * (summ['fraction'] or 0):.0f} %)**"
        + (f": {', '.join(summ['composing_models'])}" if summ["composing_models"] else "")
        + f". Of the {summ['rows_composing']} composed rows, {summ['rows_sim_equal']} simulate "
        f"bit-exactly (`torch.equal(rapidnn.simulate(composed, x).outputs, composed(x))`).",
        "",
        "Each model: torchvision's definition, random weights (`torch.manual_seed(0)`), "
        "`num_classes=10`, eval mode, every BatchNorm with random affine parameters and running "
        "statistics averaged over 3 random batches in train mode (so folding is not trivial); "
        "`rapidnn.compose(model, calib, weight_clusters=16, input_clusters=16, "
        "calibration_batches=1)` with 8 random calibration images, then `rapidnn.simulate` on "
        "4 random images. Size: the smallest input (px) the float model accepts (alexnet and "
        "vgg11 at 32 and 64). A model counts as composing when it composes at one of its sizes. "
        "*error* is the first line of the first failure (rapidnn's list of supported operations "
        "cut); *stage*: where it failed.",
        "",
        "Run (after `bash benchmarks/zoo_env.sh` once):",
        "",
        "```sh",
        command,
        "```",
        "",
        "| model | px | params | composes | stage | error | bytes/neuron | weighted layers "
        "| simulate == forward | seconds | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        err = r["error"] or ""
        if len(err) > ERROR_CHARS:
            err = err[: ERROR_CHARS - 3] + "..."
        params = f"{r['params'] / 1e6:.1f} M" if r.get("params") else ""
        sim = {True: "yes", False: "**no**", None: ""}[r["sim_equal"]]
        lines.append("| " + " | ".join(_cell(v) for v in (
            r["model"], r["size"], params, "yes" if r["composes"] else "no",
            r["stage"] if not r["composes"] or r["stage"] else "", err, r["bytes_per_neuron"],
            r["weighted_layers"], sim, r.get("seconds"), r.get("peak_rss_mib"))) + " |")
    lines += ["", "Every field of every row: [`coverage.json`](coverage.json).", ""]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, choices=(32, 64), default=None,
                    help="every model at this size only (default: each at its smallest, "
                         "alexnet and vgg11 at 32 and 64)")
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS),
                    help="torchvision classification builders (default: the 13 of the zoo)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per model (600)")
    ap.add_argument("--ref", default=None,
                    help="measure the committed src/ of this git revision (default: the "
                         "working tree)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "coverage.md",
                    help="markdown table; the JSON goes beside it (.json)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--sizes", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.worker, [int(s) for s in args.sizes.split(",")], args.result)
        return 0

    torch.set_num_threads(1)
    env = environment(args.ref)
    from _torchvision_shim import import_models

    known = set(import_models().list_models(module=import_models()))
    unknown = [m for m in args.models if m not in known]
    if unknown:
        ap.error(f"not torchvision classification models: {', '.join(unknown)}")
    command = ".venv-zoo/bin/python benchmarks/bench_coverage.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    jobs = plan(args.models, args.size)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rapidnn-src-") as tmp:
        src = export_src(args.ref, Path(tmp)) if args.ref else None
        rows = run_jobs(jobs, args.timeout, src)
    wall = time.perf_counter() - t0
    summ = summary(rows)
    out = args.out
    write_atomic(out.with_suffix(".json"), json.dumps(
        {**env, "command": command, "wall_seconds": round(wall, 1), "summary": summ,
         "rows": rows}, indent=1) + "\n")
    write_atomic(out, markdown(env, rows, summ, command, wall))
    print(f"{summ['composing']}/{summ['models']} models compose; {wall:.0f} s; wrote {out} and "
          f"{out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
