"""The UI's routes over plain HTTP (no browser needed): read-only, safe with run names, drawing what a run lacks."""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from forkpoint.serving.ui import ui_router

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def client(built, shots, tmp_path):
    """The UI over the shared home, and a reports folder holding its run plus an unfinished copy of it."""
    reports = tmp_path / "reports"
    shutil.copytree(built.reports / built.run, reports / built.run)
    partial = reports / "unfinished"
    shutil.copytree(built.reports / built.run, partial)
    for name in ["report.json", "report.md", *(p.name for p in partial.glob("heatmap-*.png"))]:
        (partial / name).unlink()
    with TestClient(shots.ui_app(built.home, reports)) as c:
        yield c


def test_every_route_is_a_get_and_a_post_is_refused(client):
    router = ui_router(lambda: None)  # type: ignore[arg-type,return-value]  # routes only: nothing is opened
    assert {m for r in router.routes for m in r.methods} <= {"GET", "HEAD"}  # type: ignore[attr-defined]
    for path in ("/", "/ui/tasks/digits", "/ui/events"):
        assert client.post(path, data={"x": "1"}).status_code == 405


def test_an_unfinished_run_shows_its_strategies_and_a_heatmap_drawn_from_the_matrix(client, built):
    page = client.get("/ui/reports/unfinished")
    assert page.status_code == 200 and "has not finished" in page.text and "strategy-linear" in page.text
    png = client.get("/ui/reports/unfinished/heatmap-linear.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png" and png.content.startswith(PNG_MAGIC)
    written = (built.reports / built.run / "heatmap-linear.png").read_bytes()
    assert client.get(f"/ui/reports/{built.run}/heatmap-linear.png").content == written  # the run's own file, as written


@pytest.mark.parametrize("path", [
    "/ui/reports/%2e%2e", "/ui/reports/%2e%2e%2fhome", "/ui/reports/unfinished/heatmap-..%2f..%2freport.png",
    "/ui/reports/unfinished/heatmap-nosuch.png", "/ui/static/..%2fui.py", "/ui/tasks/..%2f..", "/ui/tasks/digits/versions/1/profile.png",
    "/ui/tasks/digits/versions/x", "/ui/tasks/digits/versions/0/profile.png", "/ui/tasks/NoSuch",
])
def test_names_outside_what_the_ui_found_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    if r.headers["content-type"].startswith("text/html"):  # the UI's own 404 (a path no route matches is the app's)
        assert r.text.count('class="error"') == 1
