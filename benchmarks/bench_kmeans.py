"""Benchmark rapidnn.composer.kmeans.kmeans1d against scikit-learn's KMeans on 1-D data.

Data: 10^6 seeded values shaped like a layer's activations/weights: a 4-component Gaussian mixture
with a heavy ReLU-like spike at exactly 0 (30 % of the values). For each k both methods run in the
same process under the same thread settings; the best of ``--repeats`` wall-clock times is
reported. Both SSEs are computed the same way (nearest-centroid,
:func:`rapidnn.composer.kmeans.sse`).

Run: ``.venv/bin/python benchmarks/bench_kmeans.py [--n N] [--ks 16 64] [--repeats 3]
[--threads T] [--optimal] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np

from rapidnn.composer.kmeans import kmeans1d, optimal_sse, sse


def make_data(n: int, seed: int = 0) -> np.ndarray:
    """Gaussian mixture + ReLU-like spike at 0, shuffled (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    comps = [(0.0, 0.05, 0.5), (0.3, 0.1, 0.2), (-0.4, 0.2, 0.2), (1.5, 0.5, 0.1)]
    counts = rng.multinomial(n, [p for _, _, p in comps])
    x = np.concatenate([rng.normal(m, s, c) for (m, s, _), c in zip(comps, counts, strict=True)])
    x[rng.random(n) < 0.3] = 0.0
    return rng.permutation(x)


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def thread_info() -> dict[str, Any]:
    info: dict[str, Any] = {"cpu_count": os.cpu_count()}
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "prefix", "num_threads")}
            for p in threadpool_info()
        ]
    except ImportError:  # pragma: no cover
        info["threadpools"] = "threadpoolctl not installed"
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover
        info["torch_threads"] = None
    return info


def run(n: int, ks: list[int], repeats: int, seed: int, optimal: bool) -> list[dict[str, Any]]:
    from sklearn.cluster import KMeans

    x = make_data(n, seed)
    x2d = x.reshape(-1, 1)
    rows = []
    for k in ks:
        t_ours, (cent, _codes) = best_of(lambda k=k: kmeans1d(x, k, seed=0), repeats)

        def fit_sklearn(k: int = k) -> KMeans:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return KMeans(n_clusters=k, n_init=1, random_state=0).fit(x2d)

        t_sk, model = best_of(fit_sklearn, repeats)
        sse_ours = sse(x, cent)
        sse_sk = sse(x, model.cluster_centers_.ravel())
        row = {
            "n": n,
            "k": k,
            "time_ours_s": t_ours,
            "time_sklearn_s": t_sk,
            "speedup": t_sk / t_ours,
            "sse_ours": sse_ours,
            "sse_sklearn": sse_sk,
            "sse_ratio_ours_over_sklearn": sse_ours / sse_sk,
            "sklearn_inertia": float(model.inertia_),
            "sklearn_n_iter": int(model.n_iter_),
            "n_centroids_ours": int(cent.size),
        }
        if optimal:
            t_opt, opt = best_of(lambda k=k: optimal_sse(x, k), 1)
            row.update(sse_optimal=opt, time_optimal_s=t_opt)
            row["sse_ratio_ours_over_optimal"] = sse_ours / opt
        rows.append(row)
        print_row(row, header=len(rows) == 1, optimal=optimal)
    return rows


def print_row(r: dict[str, Any], header: bool, optimal: bool) -> None:
    cols = ["k", "ours [s]", "sklearn [s]", "speedup", "SSE ours", "SSE sklearn", "SSE ratio"]
    if optimal:
        cols += ["SSE optimal", "ours/opt"]
    fmt = "{:>4} {:>10} {:>12} {:>8} {:>14} {:>14} {:>10}" + (" {:>14} {:>10}" if optimal else "")
    if header:
        print(fmt.format(*cols))
    vals = [
        r["k"],
        f"{r['time_ours_s']:.4f}",
        f"{r['time_sklearn_s']:.4f}",
        f"{r['speedup']:.1f}x",
        f"{r['sse_ours']:.6g}",
        f"{r['sse_sklearn']:.6g}",
        f"{r['sse_ratio_ours_over_sklearn']:.5f}",
    ]
    if optimal:
        vals += [f"{r['sse_optimal']:.6g}", f"{r['sse_ratio_ours_over_optimal']:.7f}"]
    print(fmt.format(*vals), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="number of values (default 1e6)")
    ap.add_argument("--ks", type=int, nargs="+", default=[16, 64], help="cluster counts")
    ap.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    ap.add_argument("--seed", type=int, default=0, help="data seed")
    ap.add_argument(
        "--threads", type=int, default=None, help="limit BLAS/OpenMP/torch threads for both methods"
    )
    ap.add_argument(
        "--optimal", action="store_true", help="also compute the exact optimum (slow: minutes)"
    )
    ap.add_argument("--json", metavar="PATH", help="write results as JSON")
    args = ap.parse_args(argv)

    import sklearn.cluster  # noqa: F401  (load its OpenMP runtime before limiting/reporting)

    limit: Any = nullcontext()
    if args.threads is not None:
        from threadpoolctl import threadpool_limits

        limit = threadpool_limits(limits=args.threads)
        import torch

        torch.set_num_threads(args.threads)
    with limit:
        info = thread_info()
        print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {platform.platform()}")
        pools = info["threadpools"]
        if isinstance(pools, list):
            pools = ", ".join(f"{p['prefix']}({p['user_api']})={p['num_threads']}" for p in pools)
        print(f"cpus={info['cpu_count']} torch_threads={info['torch_threads']}")
        print(f"threadpools: {pools}")
        print(f"n={args.n}, best of {args.repeats}; kmeans1d is single-threaded numpy")
        rows = run(args.n, args.ks, args.repeats, args.seed, args.optimal)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": info, "args": vars(args), "results": rows}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
