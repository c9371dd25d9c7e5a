"""The read-only registry web UI: server-rendered pages under ``/`` and ``/ui/`` (issue 14).

``ui_router(open_home, reports_dir)`` returns a FastAPI router the HTTP server mounts next
to its API (``app.include_router``). Every page opens the home for the request only
(``open_home()`` is a context manager yielding a :class:`Home`), reads the registry, and
renders a Jinja template with autoescape on: a task name, description or actor is text,
never markup. There is no form that writes and no POST route; filters and diffs are GET
query strings, so every view is a link. No JavaScript anywhere.

Pages: ``/`` tasks (live version, branch point, accuracy, cost) · ``/ui/tasks/NAME`` versions,
live pointer moves, diffs, the live profile plot · ``/ui/tasks/NAME/versions/V`` one
version in full · ``/ui/tasks/NAME/diff?v1=&v2=`` · ``/ui/events`` the audit log with
filters · ``/ui/reports`` and ``/ui/reports/RUN`` stream runs with accuracy-matrix heatmaps.
PNGs: ``/ui/tasks/NAME/versions/V/profile.png``, ``/ui/reports/RUN/heatmap-STRATEGY.png``.
An unknown task, version or run is a 404 page with one line; a bad query parameter (``?v1=x``,
``?limit=0``) a 400 page with one line naming it and the fix (:func:`html_errors`; the JSON API
keeps its JSON errors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ContextManager, Coroutine

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute

from forkpoint.registry.errors import InvalidNameError, UnknownTaskError, UnknownVersionError
from forkpoint.serving import ui_pages as pages
from forkpoint.serving import ui_reports as reports
from forkpoint.workflows.home import Home

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
CSS_TYPES = {".css": "text/css; charset=utf-8"}
NOT_FOUND = (UnknownTaskError, UnknownVersionError, InvalidNameError)
# error.html's heading says "Not found"; a bad parameter gets the same page with its own heading.
BAD_REQUEST_PAGE = ('{% extends "base.html" %}{% block title %}bad request{% endblock %}{% block main %}'
                    '<h1>Bad request</h1>\n<p class="error" id="error">{{ message }}</p>\n{% endblock %}')
# How to fix each query parameter the UI validates (a parameter missing here gets its constraint as the fix).
PARAM_FIXES = {
    "v1": "give two version numbers of the task, e.g. ?v1=1&v2=2",
    "v2": "give two version numbers of the task, e.g. ?v1=1&v2=2",
    "limit": "give a whole number of events, 1 or more, e.g. ?limit=200",
}


def environment() -> jinja2.Environment:
    """Templates from the package, autoescaped (every value is escaped unless a template says otherwise)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["nav"] = (("tasks", "/"), ("audit log", "/ui/events"), ("stream reports", "/ui/reports"))
    return env


class NotFound(Exception):
    """An unknown run, strategy or plot: the same one-line 404 page as an unknown task."""


def number(version: str) -> int:
    """A version number from a URL; anything else is the one-line 404, not a validation error in JSON."""
    if not version.isdecimal() or not 0 < int(version) < 2**31:
        raise NotFound(f"no version {version!r}: versions are numbered 1, 2, ...")
    return int(version)


def bad_parameter(exc: RequestValidationError) -> str:
    """One line for the first invalid parameter: which one, what is wrong with it, and the fix."""
    err = next(iter(exc.errors()), {})
    loc = [str(part) for part in err.get("loc", ())]
    where, name = (loc[0] if len(loc) > 1 else "query"), (loc[-1] if loc else "?")
    ctx = err.get("ctx") or {}
    bound = next((f"use a number {op} {ctx[key]}" for key, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                  if key in ctx), "correct it in the address bar")
    fix = PARAM_FIXES.get(name, bound)
    if err.get("type") == "missing":
        return f"the {where} parameter {name} is missing: {fix}"
    given = str(err.get("input", ""))
    given = given if len(given) <= 40 else given[:39] + "…"
    msg = str(err.get("msg") or "is not valid").splitlines()[0]
    return f"bad {where} parameter {name}={given!r} ({msg[:1].lower() + msg[1:]}): {fix}"


def html_errors(page: Callable[[str], Response]) -> type[APIRoute]:
    """A route class whose invalid parameters answer ``page(message)`` (the UI's HTML error page) instead of
    FastAPI's 422 JSON: a person reading a page should get a page. Only the UI's router uses it."""

    class HtmlErrorRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    return page(bad_parameter(exc))

            return handle

    return HtmlErrorRoute


class UiViews:
    """The UI's views over one home and one reports folder; every method is a GET endpoint."""

    def __init__(self, open_home: Callable[[], ContextManager[Home]], reports_dir: Path | None) -> None:
        self.open_home = open_home
        self.reports_dir = Path(reports_dir).expanduser().resolve() if reports_dir is not None else None
        self.env = environment()
        self.plots = pages.PngCache()

    # ---- rendering -------------------------------------------------------------------------

    def render(self, template: str, active: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(active=active, **context)
        return HTMLResponse(html, status_code=http_status)

    def not_found(self, message: str) -> HTMLResponse:
        return self.render("error.html", "", http_status=404, title="not found", message=message)

    def bad_request(self, message: str) -> HTMLResponse:
        return HTMLResponse(self.env.from_string(BAD_REQUEST_PAGE).render(active="", message=message), status_code=400)

    def page(self, template: str, active: str, build: Callable[[Home], dict[str, Any]]) -> HTMLResponse:
        """Open the home, build the page's data, render; registry look-up errors become the one-line 404."""
        try:
            with self.open_home() as home:
                data = build(home)
        except (*NOT_FOUND, NotFound) as exc:
            return self.not_found(str(exc))
        return self.render(template, active, **data)

    def png(self, build: Callable[[], bytes | None], what: str) -> Response:
        try:
            data = build()
        except (*NOT_FOUND, NotFound) as exc:
            return self.not_found(str(exc))
        if data is None:
            return self.not_found(f"no {what}")
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

    # ---- registry pages ----------------------------------------------------------------------

    def tasks(self) -> HTMLResponse:
        return self.page("tasks.html", "tasks", pages.tasks_page)

    def task(self, name: str) -> HTMLResponse:
        return self.page("task.html", "tasks", lambda home: pages.task_page(home, name))

    def version(self, name: str, version: str) -> HTMLResponse:
        return self.page("version.html", "tasks", lambda home: pages.version_page(home, name, number(version)))

    def diff(self, name: str, v1: int = Query(ge=1), v2: int = Query(ge=1)) -> HTMLResponse:
        def build(home: Home) -> dict[str, Any]:
            numbers = [v.version for v in home.registry.versions(name)]
            return {"name": name, "v1": v1, "v2": v2, "rows": pages.diff_rows(home, name, v1, v2), "numbers": numbers}

        return self.page("diff.html", "tasks", build)

    def profile(self, name: str, version: str) -> Response:
        def build() -> bytes | None:
            with self.open_home() as home:
                rec = home.registry.show(name, number(version))
                return self.plots.get(("profile", rec.task, rec.version, rec.weights_sha256),
                                      lambda: pages.profile_png(home, rec.task, rec.version))

        return self.png(build, f"profile plot for {name} v{version} (a fixed --branch is not profiled)")

    def events(self, task: str | None = None, action: str | None = None, since: str | None = None,
               limit: int | None = Query(default=None, ge=1)) -> HTMLResponse:
        return self.page("events.html", "audit log", lambda home: pages.events_page(home, task, action, since, limit))

    # ---- stream reports ----------------------------------------------------------------------

    def run_named(self, run: str) -> reports.RunFolder:
        found = reports.find_runs(self.reports_dir).get(run)
        if found is None:
            raise NotFound(f"no stream report named {run!r} under {self.reports_dir}" if self.reports_dir else
                           "no reports folder: start the server with --reports DIR")
        return found

    def report_list(self) -> HTMLResponse:
        runs = [reports.summary(r) for r in reports.find_runs(self.reports_dir).values()]
        return self.render("reports.html", "stream reports", runs=runs,
                           reports_dir=str(self.reports_dir) if self.reports_dir else None)

    def report(self, run: str) -> HTMLResponse:
        try:
            data = reports.report_page(self.run_named(run))
        except NotFound as exc:
            return self.not_found(str(exc))
        return self.render("report.html", "stream reports", **data)

    def heatmap(self, run: str, strategy: str) -> Response:
        return self.png(lambda: reports.heatmap_png(self.run_named(run), strategy), f"accuracy matrix for {strategy!r} in {run!r}")

    def static(self, name: str) -> Response:
        files = {p.name: p for p in STATIC.iterdir() if p.suffix in CSS_TYPES}
        if name not in files:
            return self.not_found(f"no static file {name!r}")
        return Response(files[name].read_bytes(), media_type=CSS_TYPES[files[name].suffix])


def ui_router(open_home: Callable[[], ContextManager[Home]], reports_dir: Path | None = None) -> APIRouter:
    """``GET /`` and everything under ``/ui/``: pages, PNG plots, static CSS. Read-only: GET routes only."""
    ui = UiViews(open_home, reports_dir)
    router = APIRouter(include_in_schema=False, route_class=html_errors(ui.bad_request))
    routes: list[tuple[str, Callable[..., Response]]] = [
        ("/", ui.tasks), ("/ui", ui.tasks), ("/ui/", ui.tasks), ("/ui/tasks", ui.tasks),
        ("/ui/tasks/{name}", ui.task), ("/ui/tasks/{name}/versions/{version}", ui.version),
        ("/ui/tasks/{name}/diff", ui.diff), ("/ui/tasks/{name}/versions/{version}/profile.png", ui.profile),
        ("/ui/events", ui.events), ("/ui/reports", ui.report_list), ("/ui/reports/{run}", ui.report),
        ("/ui/reports/{run}/heatmap-{strategy}.png", ui.heatmap), ("/ui/static/{name}", ui.static),
    ]
    for path, endpoint in routes:
        router.add_api_route(path, endpoint, methods=["GET"], response_class=HTMLResponse)
    return router


__all__ = ["ui_router"]
