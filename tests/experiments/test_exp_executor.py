"""Executors (issue 22): Ray sweeps equal local ones point for point, a killed worker is
retried, a failed point is reported while the others finish, the driver alone writes."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

import rapidnn.experiments.sweep as sweep
from rapidnn.budget import QUICK
from rapidnn.experiments.executor import (
    LocalExecutor,
    RayExecutor,
    TaskResult,
    get_executor,
    run_task,
)

TINY = QUICK.replace(name="tiny", test_images=200, val_images=52, train_batches=2,
                     sim_images=16, approx_images=16, max_rounds=1, sweep_values=(4, 8))
VOLATILE = ("seconds",)


def _strip(p: dict | None) -> dict | None:
    return None if p is None else {k: v for k, v in p.items() if k not in VOLATILE}


def _points(doc: dict) -> list[dict]:
    return [_strip(p) for p in doc["points"]]


def test_local_executor_runs_in_order_and_rejects_an_address():
    ex = LocalExecutor()
    assert [r.value for r in ex.run(lambda a, b: a + b, [("x", (1, 2)), ("y", (3, 4))])] == [3, 7]
    with pytest.raises(ValueError, match="needs --executor ray"):
        get_executor("local", address="ray://x:10001")
    with pytest.raises(ValueError, match="one of local, ray"):
        get_executor("dask")


class _FailingExecutor:
    """Runs tasks in process, like Ray would, but one point raises."""

    name, parallelism = "fake", 2

    def __init__(self, bad: tuple[int, int]) -> None:
        self.bad = bad

    def share(self, obj):
        return obj

    def run(self, fn, tasks):
        for key, args in tasks:
            if key == self.bad:
                yield TaskResult(key, error="RuntimeError: boom")
            else:
                yield TaskResult(key, run_task(fn, args, 1))

    def close(self):
        pass


def test_a_failed_point_is_reported_and_the_others_finish(tiny, tmp_path: Path):
    out = tmp_path / "sw"
    doc = sweep.run_sweep("isolet-mlp", [4, 8], [4], out=out, budget=TINY, progress=False,
                          executor=_FailingExecutor((8, 4)))
    assert [(p["weight_clusters"], p["input_clusters"]) for p in doc["points"]] == [(4, 4)]
    assert doc["failed"] == [{"weight_clusters": 8, "input_clusters": 4,
                              "error": "RuntimeError: boom"}]
    assert doc["complete"] is False
    on_disk = json.loads((out / "sweep.json").read_text())
    assert on_disk["failed"] == doc["failed"]
    again = sweep.run_sweep("isolet-mlp", [4, 8], [4], out=out, budget=TINY, progress=False)
    assert again["complete"] is True and "failed" not in again  # the rerun measured (8, 4)
    assert len(again["points"]) == 2


ray = pytest.importorskip("ray", reason="Ray is not installed (the rapidnn[ray] extra)")


@pytest.fixture
def local_ray(tiny):
    """A local Ray instance of 2 CPUs (started after the tiny store's environment is set, so
    the workers see it)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items()
                                       if k.startswith("RAPIDNN_")}})
    try:
        yield RayExecutor(threads=1)  # joins the running instance
    finally:
        ray.shutdown()


def test_ray_sweep_equals_the_local_sweep_point_for_point(local_ray, tmp_path: Path):
    # separate stores: each run trains, composes and retrains everything itself
    local = sweep.run_sweep("isolet-mlp", [4, 8], [4, 8], mode="search", out=tmp_path / "a",
                            budget=TINY, progress=False, root=tmp_path / "store-a")
    remote = sweep.run_sweep("isolet-mlp", [4, 8], [4, 8], mode="search",
                             out=tmp_path / "b", budget=TINY, progress=False,
                             executor=local_ray, root=tmp_path / "store-b")
    assert local_ray.parallelism == 2
    assert _points(remote) == _points(local)
    best = [_strip(d["smallest_within_tolerance"]) for d in (remote, local)]
    assert best[0] == best[1]
    assert remote["complete"] and "failed" not in remote


def _task_pids() -> list[int]:
    """Ray worker processes running a task (their title is ``ray::_ray_task``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::_ray_task"):
                pids.append(int(entry))
    return pids


def test_a_worker_killed_mid_task_is_retried_and_the_sweep_completes(local_ray, tmp_path):
    result: dict = {}

    def run() -> None:
        result["doc"] = sweep.run_sweep("isolet-mlp", [4, 8], [4, 8], out=tmp_path / "k",
                                        budget=TINY, progress=False, executor=local_ray)

    thread = threading.Thread(target=run)
    thread.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        pids = _task_pids()
        if pids:
            killed = pids[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.02)
    thread.join(timeout=300)
    assert killed is not None, "no task was seen running"
    doc = result["doc"]
    assert doc["complete"] and "failed" not in doc
    assert sorted((p["weight_clusters"], p["input_clusters"]) for p in doc["points"]) == [
        (4, 4), (4, 8), (8, 4), (8, 8)]
