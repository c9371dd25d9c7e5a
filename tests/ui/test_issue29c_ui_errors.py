"""Issue 29c (b): a bad query parameter on a UI page is an HTML page with one line naming it and the fix;
the JSON API keeps its JSON errors.

No home is needed: parameters are checked before a page opens one (``open_home`` would fail the test).
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from forkpoint.serving.ui import ui_router

ERROR_RE = re.compile(r'<p class="error" id="error">(.*?)</p>', re.S)


def _never_opened():
    raise AssertionError("a page with a bad parameter must not open the home")


@pytest.fixture
def ui() -> TestClient:
    app = FastAPI()
    app.include_router(ui_router(_never_opened))
    return TestClient(app)


def _one_line(r) -> str:
    assert r.status_code == 400, (r.status_code, r.text[:200])
    assert r.headers["content-type"].startswith("text/html")
    lines = ERROR_RE.findall(r.text)
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "<h1>Bad request</h1>" in r.text and 'href="/ui/events"' in r.text  # the UI's page, with its navigation
    return lines[0]


@pytest.mark.parametrize("query, name, fix", [
    ("v1=abc&v2=2", "v1", "?v1=1&amp;v2=2"),
    ("v1=1&v2=0", "v2", "?v1=1&amp;v2=2"),
    ("v2=2", "v1", "?v1=1&amp;v2=2"),
    ("v1=1", "v2", "?v1=1&amp;v2=2"),
])
def test_a_bad_diff_parameter_is_an_html_page_naming_it(ui, query, name, fix):
    line = _one_line(ui.get(f"/ui/tasks/digits/diff?{query}"))
    assert f"parameter {name}" in line and fix in line


@pytest.mark.parametrize("limit", ["0", "-5", "lots"])
def test_a_bad_event_limit_is_an_html_page_naming_it(ui, limit):
    line = _one_line(ui.get(f"/ui/events?limit={limit}"))
    assert f"limit='{limit}'" in line.replace("&#39;", "'") and "?limit=200" in line


def test_the_bad_value_is_shown_as_text_never_markup(ui):
    r = ui.get("/ui/events", params={"limit": "<script>x</script>"})
    assert "<script>" not in r.text and "&lt;script&gt;" in _one_line(r)


def test_the_json_api_keeps_json_errors():
    from forkpoint.serving.app import create_app

    guard = create_app(_never_opened)  # no lifespan: nothing starts
    api = guard.app  # the FastAPI app inside the guard

    @api.get("/v1/probe")
    def probe(n: int) -> dict:
        return {"n": n}

    c = TestClient(guard)
    r = c.get("/v1/probe?n=x")
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/json")
    page = c.get("/ui/tasks/digits/diff?v1=x&v2=1")  # the same app's UI route: the HTML page
    assert page.status_code == 400 and "parameter v1" in _one_line(page)
