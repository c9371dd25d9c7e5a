"""``forkpoint serve``: the HTTP API over the live tasks (FastAPI; uvicorn runs it).

Routes: ``POST /v1/predict`` (every selected live task for every uploaded image, one
shared forward pass, micro-batched across requests; the JSON of ``predict --json``),
``GET /v1/tasks`` and ``GET /v1/tasks/{name}`` (``tasks --json`` / ``history --json``
plus the version this server answers with), ``GET /healthz`` (the process is up),
``GET /readyz`` (a verified model is loaded; ``status`` says whether it is the one the live pointers
name, ``refused`` which pointers it would not serve) and ``GET /metrics`` (Prometheus text).
The web UI (``serving.ui``, when present) is mounted at ``/`` and ``/ui/``.

Errors are one-line JSON ``{"error": "..."}`` with a 4xx for the client's faults and
503 while the model loads or the queue is full.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from forkpoint.contract.errors import ConfigError, DataError, ForkpointError
from forkpoint.contract.names import InvalidNameError
from forkpoint.registry import UnknownTaskError, UnknownVersionError
from forkpoint.registry.errors import DatabaseUnavailableError
from forkpoint.serving.batcher import Answer, MicroBatcher, QueueFullError, UnknownServedTaskError
from forkpoint.serving.follow import POLL_S, Follower
from forkpoint.serving.guard import BodyTooLarge, Guard
from forkpoint.serving.metrics import Metrics
from forkpoint.serving.uploads import BadImageError, BadRequestError, Limits, TooLargeError, Upload, decode_uploads
from forkpoint.workflows.home import Home

log = logging.getLogger("forkpoint.serving")


@dataclass(frozen=True)
class ServeConfig:
    """How the server runs; every field has a safe default (see ``forkpoint serve --help``)."""

    tasks: tuple[str, ...] = ()  # empty: every live task, including tasks added while serving
    token: str | None = None
    reports_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    poll_s: float = POLL_S
    max_batch_images: int = 32
    max_wait_ms: float = 4.0
    max_queue: int = 64
    device: str = "cpu"
    cache_mb: float | None = None  # bound on the branches kept in memory (None: no bound); they load on first use


class NotReadyError(ForkpointError):
    """No verified model is loaded yet, or no task is live (HTTP 503)."""


STATUS: list[tuple[type[BaseException], int]] = [
    (QueueFullError, 503), (NotReadyError, 503), (DatabaseUnavailableError, 503), (TooLargeError, 413),
    (BadImageError, 415), (UnknownServedTaskError, 404), (UnknownTaskError, 404), (UnknownVersionError, 404),
    (BadRequestError, 400), (DataError, 400), (ConfigError, 400), (InvalidNameError, 400),
]  # any other ForkpointError is the server's problem (a failed check): 500


def status_of(e: BaseException) -> int:
    return next((code for kind, code in STATUS if isinstance(e, kind)), 500)


def error(e: BaseException) -> JSONResponse:
    code = status_of(e)
    headers = {"Retry-After": "1"} if code == 503 else None
    return JSONResponse({"error": str(e).splitlines()[0] if str(e) else type(e).__name__}, status_code=code, headers=headers)


def readiness(follower: Follower | None) -> tuple[dict, int]:
    """``/readyz``: 503 until a verified model is loaded, then 200 with what is served and ``status``:
    ``ok`` (the registry's live pointers are served), ``stale`` (a live pointer failed its checks:
    ``refused`` names each such task with the version it points at, ``follow.error`` says why; the
    previous verified version keeps answering) or ``degraded`` (the last poll failed: ``follow.error``)."""
    st = follower.status() if follower else None
    follow = None if st is None else {"polls": st.polls, "swaps": st.swaps, "last_poll_at": st.last_poll_at,
                                      "last_swap_at": st.last_swap_at, "error": st.error}
    if follower is None or not follower.ready:
        return {"ready": False, "status": "loading", "follow": follow}, 503
    served = follower.current
    refused = [{"task": t, "live_version": v, "served_version": served.versions.get(t), "error": st.error}
               for t, v in sorted(st.refused.items())]
    status = "stale" if refused else "ok" if st.error is None else "degraded"
    return {"ready": True, "status": status, "refused": refused, "backbone_fingerprint": served.fingerprint,
            "versions": served.versions, "fingerprints": served.fingerprints, "loaded_at": served.loaded_at,
            "follow": follow}, 200


class Server:
    """The app's state: the home, the metrics, the follower (which model) and the batcher (which pass)."""

    def __init__(self, open_home: Callable[[], Home], config: ServeConfig) -> None:
        self.open_home = open_home
        self.config = config
        self.metrics = Metrics()
        self.home: Home | None = None
        self.follower: Follower | None = None
        self.batcher: MicroBatcher | None = None

    def start(self) -> None:
        self.home = self.open_home()
        self.follower = Follower(self.home, list(self.config.tasks) or None, self.metrics,
                                 poll_s=self.config.poll_s, device=self.config.device,
                                 cache_bytes=None if self.config.cache_mb is None else int(self.config.cache_mb * 2**20))
        self.batcher = MicroBatcher(self.served, self.metrics, max_images=self.config.max_batch_images,
                                    max_wait_s=self.config.max_wait_ms / 1000, max_queue=self.config.max_queue)
        self.batcher.start()
        self.follower.start()  # loads the model in the background: /healthz answers meanwhile, /readyz says 503

    def stop(self) -> None:
        for part in (self.follower, self.batcher):
            if part is not None:
                part.stop()
        home, self.home = self.home, None
        if home is not None:
            home.close()

    @contextmanager
    def shared_home(self) -> Iterator[Home]:
        """The server's open home for readers (the web UI): one engine, the trunk built once; never closed
        by them. Before the server has started (or after it stopped) a fresh home is opened and closed."""
        if self.home is not None:
            yield self.home
            return
        with self.open_home() as home:
            yield home

    def served(self):
        if self.follower is None or not self.follower.ready:
            raise NotReadyError("the model is still loading: retry in a moment (GET /readyz says when it is ready)")
        return self.follower.current


def create_app(open_home: Callable[[], Home], config: ServeConfig | None = None) -> Guard:
    """The ASGI app. ``open_home()`` returns an open :class:`Home` (a context manager); the server
    keeps one open while it runs, and the web UI reads through that same one."""
    config = config or ServeConfig()
    server = Server(open_home, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(server.start)
        try:
            yield
        finally:
            await run_in_threadpool(server.stop)

    app = FastAPI(title="forkpoint", lifespan=lifespan, docs_url="/v1/docs", redoc_url=None, openapi_url="/v1/openapi.json")
    app.state.server = server
    _api_routes(app, server)
    _mount_ui(app, server.shared_home, config.reports_dir)
    guard = Guard(app, server.metrics, config.token, config.limits.max_request_bytes)
    guard.state = app.state  # type: ignore[attr-defined]  # tests and the CLI reach the server through it
    return guard


def _mount_ui(app: FastAPI, open_home: Callable[[], AbstractContextManager[Home]], reports_dir: Path | None) -> None:
    """Mount the web UI if its module is installed (it owns ``/`` and ``/ui/``; the API never does)."""
    try:
        from forkpoint.serving.ui import ui_router
    except ModuleNotFoundError as e:
        if e.name != "forkpoint.serving.ui":
            raise
        log.info("no web UI module (forkpoint.serving.ui): serving the API only")
        return
    app.include_router(ui_router(open_home, reports_dir))


def _api_routes(app: FastAPI, server: Server) -> None:
    limits = server.config.limits

    @app.exception_handler(ForkpointError)
    async def forkpoint_error(request: Request, e: ForkpointError) -> JSONResponse:
        return error(e)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception) -> JSONResponse:
        log.exception("internal error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(e).__name__}): see the server log and report it"}, status_code=500)

    @app.post("/v1/predict")
    async def predict(request: Request) -> JSONResponse:
        """Multipart: files in ``images`` (repeat the field), optional ``tasks`` (names, comma-separated or
        repeated) and ``top_k``. Answers every selected live task per image, from one shared pass."""
        served = server.served()
        if not served.tasks:
            raise NotReadyError("no task is live: add one with `forkpoint add-task NAME --data ...`; the server follows")
        uploads, tasks, top_k = await _read_form(request, limits)
        x = await run_in_threadpool(decode_uploads, uploads, served.model.backbone.preprocessing, limits)
        answer: Answer = await asyncio.wrap_future(server.batcher.submit(x, tasks))
        server.metrics.inc("forkpoint_images_total", "Images answered.", len(uploads))
        return JSONResponse(_predictions(answer, [u.name for u in uploads], top_k))

    @app.get("/v1/tasks")
    def tasks() -> dict:
        from forkpoint.workflows.render import task_summary

        served = server.follower.current.versions if server.follower and server.follower.ready else {}
        rows = []
        with server.shared_home() as home:
            live = home.registry.live_versions()  # one query for every row, not four per task
            for t in home.registry.list_tasks():
                if t.backbone_fingerprint != home.fingerprint or (server.config.tasks and t.name not in server.config.tasks):
                    continue
                rows.append({**task_summary(t, live.get(t.name)), "served_version": served.get(t.name)})
            return {"backbone_fingerprint": home.fingerprint, "tasks": rows}

    @app.get("/v1/tasks/{name}")
    def task(name: str) -> dict:
        from forkpoint.workflows.render import history_dict

        with server.shared_home() as home:
            h = home.registry.history(name)
        served = server.follower.current.versions if server.follower and server.follower.ready else {}
        return {**history_dict(h), "served_version": served.get(h.task.name)}

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        body, code = readiness(server.follower)
        return JSONResponse(body, status_code=code, headers={"Retry-After": "1"} if code == 503 else None)

    @app.get("/metrics")
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(server.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def _read_form(request: Request, limits: Limits) -> tuple[list[Upload], list[str] | None, int]:
    """The multipart form's uploads, task selection and top-k (bounded: the body cap, image count, fields)."""
    try:
        form = await request.form(max_files=limits.max_images + 1, max_fields=32)
    except BodyTooLarge as e:
        raise TooLargeError(str(e)) from None
    except Exception as e:  # malformed multipart, too many parts, ...
        if request.scope.get("forkpoint.body_too_large"):
            raise TooLargeError(f"request body is over the limit of {limits.max_request_bytes:,} bytes") from None
        if "too many files" in str(e).lower():
            raise TooLargeError(f"too many files in one request, over the limit of {limits.max_images}: split the request") from None
        raise BadRequestError(f"cannot read the request as multipart/form-data ({str(e) or type(e).__name__}): "
                              "send files in the field 'images', e.g. curl -F images=@x.png") from None
    try:
        files = form.getlist("images")
        if not files or not all(isinstance(f, UploadFile) for f in files):
            raise BadRequestError("no image files in the field 'images': send e.g. curl -F images=@x.png .../v1/predict")
        if len(files) > limits.max_images:
            raise TooLargeError(f"{len(files)} images in one request, over the limit of {limits.max_images}: split the request")
        uploads = [Upload(f.filename or f"image {i + 1}", await f.read()) for i, f in enumerate(files)]
        names = [n.strip() for raw in form.getlist("tasks") if isinstance(raw, str) for n in raw.split(",") if n.strip()]
        top_k = _top_k(form.get("top_k"), limits.max_top_k)
    finally:
        await form.close()
    return uploads, list(dict.fromkeys(names)) or None, top_k


def _top_k(raw: object, cap: int) -> int:
    if raw is None or raw == "":
        return 3
    if not isinstance(raw, str) or not raw.strip().isdigit() or not 1 <= int(raw) <= cap:
        raise BadRequestError(f"top_k must be a whole number from 1 to {cap}, not {raw!r}")
    return int(raw)


def _predictions(answer: Answer, names: list[str], top_k: int) -> dict:
    """``predict --json``'s shape: the trunk, the versions that answered, and per image every task's answer."""
    from forkpoint.workflows.predict import ImagePrediction, top_prediction

    images = [ImagePrediction(name, {t: top_prediction(p[row], answer.class_names[t], top_k) for t, p in answer.probs.items()})
              for row, name in enumerate(names)]
    return {"backbone_fingerprint": answer.fingerprint, "versions": answer.versions,
            "images": [im.to_dict() for im in images]}
