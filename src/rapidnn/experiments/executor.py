"""Where the independent points of an experiment run: in this process, or as Ray tasks.

``LocalExecutor`` (the default) runs the tasks one after another in the calling process, in
order; an exception propagates (the run stops; a rerun resumes). ``RayExecutor`` submits
every task to a Ray cluster (``address``, or a local Ray instance started with the machine's
CPUs) and yields the results as they finish: a worker that dies is retried (``max_retries``
system failures), a task that raises is reported as a failed :class:`TaskResult` and the
others go on. Each task runs with ``threads`` torch threads and asks Ray for as many CPUs, so
that results do not depend on how many tasks share a machine. The driver alone writes files
(``docs/ray.md``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

EXECUTORS = ("local", "ray")
#: environment variables that tell a worker where the data, the store and the cache are
ENV_PREFIX = "RAPIDNN_"


@dataclass
class TaskResult:
    """The outcome of one task: its ``key``, and its ``value`` or the ``error`` it raised."""

    key: Any
    value: Any = None
    error: str | None = None


def run_task(fn: Callable[..., Any], args: tuple[Any, ...], threads: int | None) -> Any:
    """``fn(*args)`` with ``threads`` torch threads (None: torch's default)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    return fn(*args)


def _ray_task(fn: Callable[..., Any], threads: int | None, *args: Any) -> Any:
    """:func:`run_task` with the arguments spread out, so that Ray resolves the object
    references among them (it resolves top-level arguments only)."""
    return run_task(fn, args, threads)


class LocalExecutor:
    """Tasks in this process, in order (today's behaviour)."""

    name = "local"
    parallelism = 1

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def share(self, obj: Any) -> Any:
        """``obj`` as task arguments reference it (here: itself)."""
        return obj

    def run(self, fn: Callable[..., Any], tasks: Iterable[tuple[Any, tuple[Any, ...]]]
            ) -> Iterator[TaskResult]:
        for key, args in tasks:
            yield TaskResult(key, run_task(fn, args, self.threads))

    def close(self) -> None:
        """Nothing to release."""


class RayExecutor:
    """Tasks on a Ray cluster (module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None, threads: int | None = None,
                 max_retries: int = 3) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ValueError("--executor ray needs Ray: pip install 'rapidnn[ray]'") from exc
        self.ray = ray
        self.threads = threads or 1
        self.started = not ray.is_initialized()
        if self.started:
            env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
            try:
                ray.init(address=address, num_cpus=None if address else os.cpu_count(),
                         include_dashboard=False, logging_level=logging.WARNING,
                         log_to_driver=False, runtime_env={"env_vars": env})
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray instance"
                raise ValueError(f"cannot start or reach {where}: {exc}") from exc
        self.remote = ray.remote(num_cpus=self.threads, max_retries=max_retries)(_ray_task)

    @property
    def parallelism(self) -> int:
        """Tasks the cluster runs at once."""
        cpus = self.ray.cluster_resources().get("CPU", 1)
        return max(1, int(cpus // self.threads))

    def share(self, obj: Any) -> Any:
        """``obj`` in the object store, sent once to the workers however many tasks use it."""
        return self.ray.put(obj)

    def run(self, fn: Callable[..., Any], tasks: Iterable[tuple[Any, tuple[Any, ...]]]
            ) -> Iterator[TaskResult]:
        ray = self.ray
        refs = {self.remote.remote(fn, self.threads, *args): key for key, args in tasks}
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                key = refs.pop(ref)
                try:
                    yield TaskResult(key, ray.get(ref))
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.cause if exc.cause is not None else exc
                    yield TaskResult(key, error=f"{type(cause).__name__}: {cause}")
                except ray.exceptions.RayError as exc:  # the worker died beyond the retries
                    yield TaskResult(key, error=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Shut down the local Ray instance this executor started (a cluster stays up)."""
        if self.started:
            self.ray.shutdown()


Executor = LocalExecutor | RayExecutor


def get_executor(name: str = "local", address: str | None = None,
                 threads: int | None = None) -> Executor:
    """The executor called ``name`` (:data:`EXECUTORS`); ``address`` only with Ray."""
    if name not in EXECUTORS:
        raise ValueError(f"--executor must be one of {', '.join(EXECUTORS)}, not {name!r}")
    if name == "local":
        if address is not None:
            raise ValueError("--address names a Ray cluster: it needs --executor ray")
        return LocalExecutor(threads)
    return RayExecutor(address, threads)
