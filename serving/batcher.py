"""Micro-batching: requests that arrive within a few milliseconds share one forward pass.

One worker thread owns the model's forward pass. It takes the oldest waiting request,
waits up to ``max_wait_s`` for more (never past ``max_images`` images in a batch),
stacks their images, takes the served model's reference once (so a batch meets one
model even while the follower swaps), runs one shared pass (the trunk once on every
image; each task's branch only on the images of the requests that asked for it), and
hands each request its own rows. Rows are independent in eval mode,
so a request's labels and top-k are what an unbatched pass gives; the probabilities
agree to float32 rounding (CPU kernels pick their blocking by batch size, ~1e-6).

The queue is bounded (``max_queue`` requests, ``serve --queue``): a full queue refuses at once
(:class:`QueueFullError`, HTTP 503) rather than let latency grow without end.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

import torch

from forkpoint.contract.errors import ForkpointError
from forkpoint.serving.metrics import BATCH_BUCKETS, Metrics
from forkpoint.serving.model import Served


class QueueFullError(ForkpointError):
    """Too many requests are waiting: the client should retry shortly (HTTP 503)."""


class UnknownServedTaskError(ForkpointError):
    """A request named a task the served model does not have (HTTP 404)."""


@dataclass(frozen=True)
class Answer:
    """One request's rows: softmax probabilities per task, and the versions and trunk that computed them."""

    probs: dict[str, torch.Tensor]  # task -> (n_images, n_classes), float32 on CPU
    versions: dict[str, int]
    class_names: dict[str, list[str]]
    fingerprint: str
    batch_images: int  # how many images shared the pass (this request's included)


@dataclass
class _Job:
    x: torch.Tensor
    tasks: list[str] | None  # None: every served task
    future: Future = field(default_factory=Future)
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """``submit(x, tasks) -> Future[Answer]``; one daemon worker runs the shared passes."""

    def __init__(self, served: Callable[[], Served], metrics: Metrics | None = None, max_images: int = 32,
                 max_wait_s: float = 0.004, max_queue: int = 64) -> None:
        self.served = served
        self.metrics = metrics or Metrics()
        self.max_images = max_images
        self.max_wait_s = max_wait_s
        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=max_queue)
        self._held: _Job | None = None  # taken from the queue but left for the next batch (it did not fit)
        self._thread: threading.Thread | None = None

    def submit(self, x: torch.Tensor, tasks: list[str] | None = None) -> Future:
        job = _Job(x, tasks)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.metrics.inc("forkpoint_rejected_total", "Requests refused because the batch queue was full.")
            raise QueueFullError(f"the server is busy ({self._queue.maxsize} requests waiting): retry in a moment") from None
        self.metrics.set("forkpoint_queue_depth", "Requests waiting for a forward pass.", self._queue.qsize())
        return job.future

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="forkpoint-batcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    # ---- the worker ----------------------------------------------------------------

    def _collect(self) -> list[_Job] | None:
        """The next batch: the oldest job, then whatever arrives within max_wait_s and fits."""
        first = self._held or self._queue.get()
        self._held = None
        if first is None:
            return None
        batch, images = [first], first.x.shape[0]
        deadline = time.perf_counter() + self.max_wait_s
        while images < self.max_images:
            left = deadline - time.perf_counter()
            try:
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._queue.put(None)  # stop after this batch
                break
            if images + job.x.shape[0] > self.max_images:
                self._held = job
                break
            batch.append(job)
            images += job.x.shape[0]
        return batch

    def _run(self) -> None:
        while (batch := self._collect()) is not None:
            self.metrics.set("forkpoint_queue_depth", "Requests waiting for a forward pass.", self._queue.qsize())
            try:
                self._answer(batch)
            except BaseException as e:  # never leave a caller waiting
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(e)

    def _answer(self, batch: list[_Job]) -> None:
        served = self.served()  # one reference for the whole batch: one model answers it
        runnable = []
        for job in batch:
            unknown = [t for t in (job.tasks or []) if t not in served.tasks]
            if unknown:
                job.future.set_exception(UnknownServedTaskError(
                    f"task {unknown[0]!r} is not served here (serving: {', '.join(served.tasks) or 'none'}): "
                    "GET /v1/tasks lists them"))
            else:
                runnable.append(job)
        runnable = self._loadable(served, runnable)
        if not runnable:
            return
        wanted = [t for t in served.tasks if any(job.tasks is None or t in job.tasks for job in runnable)]
        rows, where = _rows(runnable, wanted)
        x = torch.cat([job.x for job in runnable]) if len(runnable) > 1 else runnable[0].x
        device = next(served.model.backbone.parameters()).device
        with torch.inference_mode():
            logits = served.model(x.to(device), tasks=wanted, rows=rows)
            probs = {t: torch.softmax(v.float(), dim=1).cpu() for t, v in logits.items()}
        n = x.shape[0]
        self.metrics.observe("forkpoint_batch_images", "Images per shared forward pass.", n, BATCH_BUCKETS)
        self.metrics.observe("forkpoint_batch_requests", "Requests per shared forward pass.", len(runnable), BATCH_BUCKETS)
        for j, job in enumerate(runnable):
            k = job.x.shape[0]
            names = job.tasks or served.tasks
            job.future.set_result(Answer(
                {t: probs[t][where[t][j]:where[t][j] + k] for t in names}, {t: served.versions[t] for t in names},
                {t: served.model.class_names[t] for t in names}, served.fingerprint, n))


    @staticmethod
    def _loadable(served: Served, jobs: list[_Job]) -> list[_Job]:
        """Load the branches the jobs need (lazily, verified); a job needing one that fails gets that error,
        the other jobs of the batch are still answered."""
        live = served.model
        load = getattr(live, "branches", None)
        if not callable(load):
            return jobs
        needed = list(dict.fromkeys(t for job in jobs for t in (job.tasks or served.tasks)))
        budget = live.cache.budget_bytes
        if budget is not None and sum(int(live.versions[t].weights_bytes) for t in needed) > budget // 2:
            return jobs  # more than the cache holds at once: the pass loads them chunk by chunk (a failure fails the batch)
        failed: dict[str, BaseException] = {}
        for t in needed:
            try:
                load([t])
            except ForkpointError as e:
                failed[t] = e
        ok = []
        for job in jobs:
            bad = next((failed[t] for t in (job.tasks or served.tasks) if t in failed), None)
            if bad is None:
                ok.append(job)
            else:
                job.future.set_exception(bad)
        return ok


def _rows(jobs: list[_Job], tasks: list[str]) -> tuple[dict[str, tuple[int, ...] | None] | None, dict[str, dict[int, int]]]:
    """Which rows of the stacked batch each task answers (None: all), and where job j's rows start in its output.

    A task runs only on the images of the requests that asked for it: a batch of requests for
    different tasks costs one trunk pass plus each task's branch on its own images, not the union."""
    starts, at = [], 0
    for job in jobs:
        starts.append(at)
        at += job.x.shape[0]
    rows: dict[str, tuple[int, ...] | None] = {}
    where: dict[str, dict[int, int]] = {}
    for t in tasks:
        asked = [j for j, job in enumerate(jobs) if job.tasks is None or t in job.tasks]
        if len(asked) == len(jobs):
            rows[t], where[t] = None, {j: starts[j] for j in asked}
            continue
        sel, where[t] = [], {}
        for j in asked:
            where[t][j] = len(sel)
            sel.extend(range(starts[j], starts[j] + jobs[j].x.shape[0]))
        rows[t] = tuple(sel)
    return (rows if any(v is not None for v in rows.values()) else None), where
