"""Where independent pieces of work run: here, one after another, or as Ray tasks.

Profiling trains every candidate unit alone and each greedy step scores one or two
growths; none depends on another, so they can run side by side. An executor takes a
list of :class:`Call` and returns their results in the order given:

* :class:`SerialExecutor` is today's loop, in this process (the default, ``workers=1``).
* :class:`RayExecutor` runs each call as a Ray task: one GPU per task when the cluster has
  GPUs and the caller's device allows it, else the CPU threads split between ``workers``
  tasks. Big inputs go into Ray's object store once (:meth:`share`) and every task reads
  them from there. A worker process that dies is retried (Ray's ``max_retries``); when
  retries run out the call raises :class:`WorkerError` and nothing was changed.

What a caller may rely on: results come back in the order of ``calls``; a task runs the
same function on the same arguments with the thread count it is told, so on the same
device type it does the same arithmetic as the serial loop with that thread count.
Ray is imported only by :class:`RayExecutor`, so the serial path and ``--help`` never
load it. Workers never touch the registry: they return results, the driver records them.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from forkpoint.contract.errors import ConfigError, ForkpointError, WorkerError

log = logging.getLogger("forkpoint.parallel")

DEFAULT_RETRIES = 2  # a task whose worker process dies runs at most 1 + this many times
DEFAULT_OBJECT_STORE_MB = 256  # local clusters only: the prefix activations of a small task fit many times over
SHARE_FRACTION = 0.7  # of the object store that shared inputs may fill before callers fall back to recomputing
# Test seam (like registry.crashpoints): ``KEY`` kills the worker that runs the call named KEY
# every time; ``KEY@PATH`` only while PATH does not exist (it is created first: "once").
KILL_ENV = "FORKPOINT_RAY_KILL"


@dataclass(frozen=True)
class Call:
    """One piece of work: ``fn(*args)``; ``key`` names it in errors, logs and the kill seam.

    ``here``: run it in this process even on a Ray executor (work that writes the registry,
    or holds objects that cannot travel); it runs while the other calls are in flight.
    """

    key: str
    fn: Callable[..., Any]
    args: tuple = ()
    here: bool = False


class Executor(Protocol):
    workers: int
    local: bool  # True: calls run in this process on the caller's objects

    def share(self, value: Any, nbytes: int = 0, key: Any = None) -> Any: ...
    def can_share(self, nbytes: int) -> bool: ...
    def shared(self, key: Any) -> bool: ...
    def task_device(self, device: str) -> str: ...
    def map(self, calls: Sequence[Call], on_result: Callable[[Any], None] | None = None) -> list: ...
    def close(self) -> None: ...


class SerialExecutor:
    """The calls one after another in this process: exactly the loop the learner always ran."""

    workers = 1
    local = True

    def share(self, value: Any, nbytes: int = 0, key: Any = None) -> Any:
        return value

    def can_share(self, nbytes: int) -> bool:
        return True

    def shared(self, key: Any) -> bool:
        return False

    def task_device(self, device: str) -> str:
        return device

    def map(self, calls: Sequence[Call], on_result: Callable[[Any], None] | None = None) -> list:
        out = []
        for call in calls:
            result = call.fn(*call.args)
            out.append(result)
            if on_result is not None:
                on_result(result)
        return out

    def close(self) -> None:
        pass

    def __enter__(self) -> "SerialExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


SERIAL = SerialExecutor()


def fetch(value: Any) -> Any:
    """On a worker: the value behind a handle from :meth:`RayExecutor.share` (anything else as is)."""
    if type(value).__name__ == "ObjectRef":
        import ray

        return ray.get(value)
    return value


def _kill_point(spec: str | None, key: str) -> None:
    """The test seam: SIGKILL this worker process when ``spec`` names ``key`` (see KILL_ENV)."""
    if not spec:
        return
    name, _, once = spec.partition("@")
    if name != key:
        return
    if once:
        marker = Path(once)
        if marker.exists():
            return
        marker.touch()
    os.kill(os.getpid(), signal.SIGKILL)


def _on_worker(fn: Callable[..., Any], threads: int, kill: str | None, key: str, *args: Any) -> Any:
    """What a Ray task runs: pin torch's threads (same arithmetic as a serial run with that count), then ``fn``."""
    import torch

    torch.set_num_threads(threads)
    _kill_point(kill, key)
    return fn(*args)


@dataclass
class RayExecutor:
    """Calls as Ray tasks, at most ``workers`` in flight.

    ``address`` joins a running cluster (``RAY_ADDRESS`` is honoured by Ray itself when
    None); otherwise, if Ray is not running in this process yet, a local one is started
    with ``workers x threads`` CPUs and shut down again by :meth:`close`. A Ray already
    initialised by the caller (tests, a stream run) is used as it is and left running.
    """

    workers: int
    address: str | None = None
    threads: int | None = None  # torch threads per task; None: the driver's threads split over the workers
    gpu: bool = False  # one GPU per task (the driver trains on CUDA); granted only when the cluster has GPUs
    max_retries: int = DEFAULT_RETRIES
    object_store_mb: int = DEFAULT_OBJECT_STORE_MB
    local: bool = field(default=False, init=False)
    _started: bool = field(default=False, init=False)
    _shared: dict = field(default_factory=dict, init=False, repr=False)
    _shared_bytes: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        import ray
        import torch

        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers} must be >= 1")
        if self.threads is None:
            self.threads = max(1, torch.get_num_threads() // self.workers)
        if not ray.is_initialized():
            try:
                if self.address or os.environ.get("RAY_ADDRESS"):
                    ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
                else:
                    ray.init(num_cpus=self.workers * self.threads, num_gpus=torch.cuda.device_count(),
                             object_store_memory=self.object_store_mb * 2**20, include_dashboard=False,
                             logging_level=logging.WARNING, log_to_driver=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or os.environ.get("RAY_ADDRESS") or "a local Ray"
                raise WorkerError(f"could not start or join {where}: {exc}") from exc
            self._started = True
        resources = ray.cluster_resources()
        self.gpu = self.gpu and resources.get("GPU", 0) > 0
        self._store = resources.get("object_store_memory", self.object_store_mb * 2**20)
        self._remote = ray.remote(_on_worker)
        log.info("ray: %d workers, %d thread(s) per task, gpu=%s, cluster %s", self.workers, self.threads, self.gpu, resources)

    def task_device(self, device: str) -> str:
        """The device a task trains on: the driver's device type when the task can have it, else the CPU."""
        return "cuda" if self.gpu and device == "cuda" else "cpu"

    def can_share(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more fit the object store (beyond that, callers recompute on the workers)."""
        return self._shared_bytes + nbytes <= SHARE_FRACTION * self._store

    def shared(self, key: Any) -> bool:
        return id(key) in self._shared

    def share(self, value: Any, nbytes: int = 0, key: Any = None) -> Any:
        """Put ``value`` in the object store once per ``key`` (default: the value itself) and return its handle.

        ``key`` names what ``value`` was made from (a tensor converted for the store), so
        the next call with the same key reuses the handle instead of putting it again.
        """
        import ray

        key = value if key is None else key
        if id(key) not in self._shared:
            self._shared[id(key)] = (key, value, ray.put(value))  # both kept alive: an id is never reused meanwhile
            self._shared_bytes += nbytes
        return self._shared[id(key)][2]

    def map(self, calls: Sequence[Call], on_result: Callable[[Any], None] | None = None) -> list:
        import ray

        kill = os.environ.get(KILL_ENV)
        options = dict(num_cpus=self.threads, num_gpus=1 if self.gpu else 0, max_retries=self.max_retries)
        results: list = [None] * len(calls)
        pending: dict = {}
        todo = [(i, c) for i, c in enumerate(calls) if not c.here]

        def submit() -> None:
            while todo and len(pending) < self.workers:
                i, call = todo.pop(0)
                ref = self._remote.options(**options, name=call.key).remote(call.fn, self.threads, kill, call.key, *call.args)
                pending[ref] = i

        submit()
        try:
            for i, call in enumerate(calls):
                if call.here:
                    results[i] = call.fn(*call.args)
                    if on_result is not None:
                        on_result(results[i])
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                results[i] = self._get(done[0], calls[i])
                if on_result is not None:
                    on_result(results[i])
                submit()
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        return results

    def _get(self, ref, call: Call) -> Any:
        import ray
        from ray.exceptions import RayError, RayTaskError

        try:
            return ray.get(ref)
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if isinstance(cause, ForkpointError):
                raise cause from None  # the learner's own error, as a serial run raises it
            raise WorkerError(f"{call.key} failed on a Ray worker: {cause or exc}") from exc
        except RayError as exc:
            raise WorkerError(
                f"the Ray worker running {call.key} died {1 + self.max_retries} time(s) "
                f"({type(exc).__name__}); nothing was registered: rerun, or drop --workers to run serially"
            ) from exc

    def close(self) -> None:
        self._shared.clear()
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self) -> "RayExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_executor(workers: int = 1, address: str | None = None, **options: Any) -> Executor:
    """The serial loop for one worker and no cluster address; otherwise a :class:`RayExecutor` (``options``: its fields).

    ``address`` (or ``RAY_ADDRESS`` in the environment) joins that cluster. Use it as a
    context manager: a Ray it started is shut down when the block ends.
    """
    if workers <= 1 and not (address or os.environ.get("RAY_ADDRESS")):
        return SERIAL
    return RayExecutor(max(1, workers), address, **options)


__all__ = ["Call", "Executor", "KILL_ENV", "RayExecutor", "SERIAL", "SerialExecutor", "fetch", "open_executor"]
