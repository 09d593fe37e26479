"""Where the tiles of a tiled reconstruction run: in this process, or as Ray tasks.

Both executors have one interface: ``run(fn, jobs, tick)`` calls ``fn(job)`` for every job (an iterable, consumed
lazily, each job with an ``index``) and yields ``(job.index, result)`` as the jobs finish, in any order (``tick()``
is called about every second while none finishes);
``running`` and ``retried`` say how many jobs are in flight and how many attempts were repeated (for progress);
``close()`` releases what the executor started. ``make_executor(name, ...)`` builds one by name.

Ray is an optional extra (``pip install geomprior[distributed]``); ``RayExecutor`` joins a cluster (``address``)
or starts a local one, runs one task per job with Ray's own retries for lost workers (``max_retries``) and, when
the cluster has GPUs, a fraction of a GPU per task.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import InputError

log = logging.getLogger(__name__)

EXECUTORS = ("local", "ray")
INSTALL_RAY = "the ray executor needs Ray: pip install 'geomprior[distributed]' (or: pip install 'ray[client]')"
# Test hook: "TILE:MARKER" makes the first Ray attempt of job TILE kill its worker process (creating the file MARKER),
# as a lost worker would; Ray then retries the task.
CRASH_ONCE_ENV = "GEOMPRIOR_CRASH_ONCE"


class LocalExecutor:
    """Runs the jobs one after another in this process (the default)."""

    name = "local"

    def __init__(self) -> None:
        self.running = 0
        self.retried = 0

    def run(self, fn: Callable[[Any], Any], jobs: Iterable[Any],
            tick: Callable[[], None] | None = None) -> Iterator[tuple[int, Any]]:
        for job in jobs:
            self.running = 1
            if tick is not None:
                tick()
            try:
                result = fn(job)
            finally:
                self.running = 0
            yield job.index, result

    def close(self) -> None:
        pass


def import_ray():
    """The ray module, or InputError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(INSTALL_RAY) from None
    return ray


def runtime_env() -> dict:
    """Ray runtime environment shipping this process's geomprior to the workers (whatever version, if any, the
    cluster's nodes have installed). Pass it to ``ray.init`` when starting Ray yourself."""
    return {"py_modules": [str(Path(__file__).resolve().parent)]}


def _ray_task(fn, job, attempts, crash_once):
    """One attempt of one job on a Ray worker."""
    import ray

    ray.get(attempts.start.remote(job.index))
    if crash_once:
        tile, marker = crash_once.split(":", 1)
        if int(tile) == job.index and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker dies mid-task, as on a lost node or an out-of-memory kill
    return fn(job)


class _Attempts:
    """Ray actor counting the attempts of each job (Ray does not tell the driver when it retries a task)."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def start(self, index: int) -> int:
        self.counts[index] = self.counts.get(index, 0) + 1
        return self.counts[index]

    def snapshot(self) -> dict[int, int]:
        return dict(self.counts)


class RayExecutor:
    """One Ray task per job, on a Ray cluster (``address``) or a local Ray started here (and stopped by ``close``).

    address       : a cluster to join ("ray://head:10001", "head:6379", "auto"); None starts a local Ray unless
                    this process already runs one (started with ``runtime_env()``, or with geomprior installed)
    num_cpus      : CPUs of the local Ray (default: all); ignored when joining a cluster
    cpus_per_task : CPUs each task reserves (and the torch threads it gets, through OMP_NUM_THREADS)
    gpus_per_task : share of a GPU each task reserves; None: 0.25 when the cluster has GPUs, else 0
    max_retries   : Ray retries a task this many times when its worker dies (lost node, out of memory)
    max_in_flight : jobs submitted at a time (default: 2 × the cluster's CPUs), so that the object store holds
                    the inputs of a few tiles, not of the whole scan
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, cpus_per_task: float = 1,
                 gpus_per_task: float | None = None, max_retries: int = 3, max_in_flight: int | None = None):
        ray = import_ray()
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs = {"address": address, "include_dashboard": False, "logging_level": logging.WARNING,
                      "runtime_env": runtime_env()}
            if address is None:
                kwargs["num_cpus"] = num_cpus
            try:
                ray.init(**kwargs)
            except ConnectionError as e:
                raise InputError(f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0]}") from None
            self._started = True
        resources = ray.cluster_resources()
        if gpus_per_task is None:
            gpus_per_task = 0.25 if resources.get("GPU", 0) > 0 else 0
        self._remote = ray.remote(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries)(_ray_task)
        self._attempts = ray.remote(num_cpus=0)(_Attempts).remote()
        self._max_in_flight = max_in_flight or max(2, 2 * int(resources.get("CPU", 1)))
        self.running = 0
        self.retried = 0
        log.info("ray: %s, %g CPUs, %g GPUs; %g CPUs and %g GPUs per task", "joined " + address if address else
                 "local", resources.get("CPU", 0), resources.get("GPU", 0), cpus_per_task, gpus_per_task)

    def _count(self, finished: int) -> None:
        counts = self._ray.get(self._attempts.snapshot.remote())
        self.retried = sum(c - 1 for c in counts.values())
        self.running = max(0, len(counts) - finished)

    def run(self, fn: Callable[[Any], Any], jobs: Iterable[Any],
            tick: Callable[[], None] | None = None) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        crash_once = os.environ.get(CRASH_ONCE_ENV, "")
        pending: dict[Any, int] = {}
        jobs = iter(jobs)
        finished = 0
        try:
            while True:
                while len(pending) < self._max_in_flight:
                    job = next(jobs, None)
                    if job is None:
                        break
                    pending[self._remote.remote(fn, job, self._attempts, crash_once)] = job.index
                if not pending:
                    return
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in done:
                    index = pending.pop(ref)
                    result = ray.get(ref)
                    finished += 1
                    self._count(finished)
                    yield index, result
                if not done and tick is not None:
                    self._count(finished)
                    tick()
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


def make_executor(name: str, *, address: str | None = None, **ray_options) -> LocalExecutor | RayExecutor:
    """``"local"`` or ``"ray"`` (``address`` and ``ray_options`` go to ``RayExecutor``)."""
    if name == "local":
        if address is not None:
            raise InputError("an address is for the ray executor only")
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, **ray_options)
    raise InputError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")
