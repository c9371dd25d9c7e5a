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
An unknown task, version or run is a 404 page with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ContextManager

import jinja2
from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from forkpoint.registry.errors import InvalidNameError, UnknownTaskError, UnknownVersionError
from forkpoint.serving import ui_pages as pages
from forkpoint.serving import ui_reports as reports
from forkpoint.workflows.home import Home

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
CSS_TYPES = {".css": "text/css; charset=utf-8"}
NOT_FOUND = (UnknownTaskError, UnknownVersionError, InvalidNameError)


def environment() -> jinja2.Environment:
    """Templates from the package, autoescaped (every value is escaped unless a template says otherwise)."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["nav"] = (("tasks", "/"), ("audit log", "/ui/events"), ("stream reports", "/ui/reports"))
    return env


class NotFound(Exception):
    """An unknown run, strategy or plot: the same one-line 404 page as an unknown task."""


def ui_router(open_home: Callable[[], ContextManager[Home]], reports_dir: Path | None = None) -> APIRouter:
    """``GET /`` and everything under ``/ui/``: pages, PNG plots, static CSS. Read-only."""
    env = environment()
    plots = pages.PngCache()
    router = APIRouter(include_in_schema=False)
    reports_dir = Path(reports_dir).expanduser().resolve() if reports_dir is not None else None

    def render(template: str, active: str, http_status: int = 200, **context: Any) -> HTMLResponse:
        html = env.get_template(template).render(active=active, **context)
        return HTMLResponse(html, status_code=http_status)

    def not_found(message: str) -> HTMLResponse:
        return render("error.html", "", http_status=404, title="not found", message=message)

    def page(template: str, active: str, build: Callable[[Home], dict[str, Any]]) -> HTMLResponse:
        """Open the home, build the page's data, render; registry look-up errors become the one-line 404."""
        try:
            with open_home() as home:
                data = build(home)
        except NOT_FOUND as exc:
            return not_found(str(exc))
        return render(template, active, **data)

    def png(build: Callable[[], bytes | None], what: str) -> Response:
        try:
            data = build()
        except (*NOT_FOUND, NotFound) as exc:
            return not_found(str(exc))
        if data is None:
            return not_found(f"no {what}")
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @router.get("/", response_class=HTMLResponse)
    def tasks() -> HTMLResponse:
        return page("tasks.html", "tasks", pages.tasks_page)

    @router.get("/ui", response_class=HTMLResponse)
    @router.get("/ui/", response_class=HTMLResponse)
    @router.get("/ui/tasks", response_class=HTMLResponse)
    def tasks_alias() -> HTMLResponse:
        return tasks()

    @router.get("/ui/tasks/{name}", response_class=HTMLResponse)
    def task(name: str) -> HTMLResponse:
        return page("task.html", "tasks", lambda home: pages.task_page(home, name))

    @router.get("/ui/tasks/{name}/versions/{version}", response_class=HTMLResponse)
    def version(name: str, version: int) -> HTMLResponse:
        return page("version.html", "tasks", lambda home: pages.version_page(home, name, version))

    @router.get("/ui/tasks/{name}/diff", response_class=HTMLResponse)
    def diff(name: str, v1: int = Query(ge=1), v2: int = Query(ge=1)) -> HTMLResponse:
        def build(home: Home) -> dict[str, Any]:
            numbers = [v.version for v in home.registry.versions(name)]
            return {"name": name, "v1": v1, "v2": v2, "rows": pages.diff_rows(home, name, v1, v2), "numbers": numbers}

        return page("diff.html", "tasks", build)

    @router.get("/ui/tasks/{name}/versions/{version}/profile.png")
    def profile(name: str, version: int) -> Response:
        def build() -> bytes | None:
            with open_home() as home:
                rec = home.registry.show(name, version)
                return plots.get(("profile", rec.task, rec.version, rec.weights_sha256),
                                 lambda: pages.profile_png(home, name, version))

        return png(build, f"profile plot for {name} v{version} (a fixed --branch is not profiled)")

    @router.get("/ui/events", response_class=HTMLResponse)
    def events(task: str | None = None, action: str | None = None, since: str | None = None,
               limit: int | None = Query(default=None, ge=1)) -> HTMLResponse:
        return page("events.html", "audit log", lambda home: pages.events_page(home, task, action, since, limit))

    def run_named(run: str) -> reports.RunFolder:
        found = reports.find_runs(reports_dir).get(run)
        if found is None:
            raise NotFound(f"no stream report named {run!r} under {reports_dir}" if reports_dir else
                           "no reports folder: start the server with --reports DIR")
        return found

    @router.get("/ui/reports", response_class=HTMLResponse)
    def report_list() -> HTMLResponse:
        runs = [reports.summary(r) for r in reports.find_runs(reports_dir).values()]
        return render("reports.html", "stream reports", runs=runs, reports_dir=str(reports_dir) if reports_dir else None)

    @router.get("/ui/reports/{run}", response_class=HTMLResponse)
    def report(run: str) -> HTMLResponse:
        try:
            data = reports.report_page(run_named(run))
        except NotFound as exc:
            return not_found(str(exc))
        return render("report.html", "stream reports", **data)

    @router.get("/ui/reports/{run}/heatmap-{strategy}.png")
    def heatmap(run: str, strategy: str) -> Response:
        return png(lambda: reports.heatmap_png(run_named(run), strategy), f"accuracy matrix for {strategy!r} in {run!r}")

    @router.get("/ui/static/{name}")
    def static(name: str) -> Response:
        files = {p.name: p for p in STATIC.iterdir() if p.suffix in CSS_TYPES}
        if name not in files:
            return not_found(f"no static file {name!r}")
        return Response(files[name].read_bytes(), media_type=CSS_TYPES[files[name].suffix])

    return router


__all__ = ["ui_router"]
