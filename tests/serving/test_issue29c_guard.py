"""Issue 29c (d, e): the bearer scheme in any case, and ``?token=`` taken out of the URL by a 303.

The real :class:`Guard` around a two-route app (no home, no model): auth happens before any route runs.
"""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from forkpoint.serving.guard import COOKIE, Guard
from forkpoint.serving.metrics import Metrics

TOKEN = "s3cret-token"


@pytest.fixture
def guarded() -> Guard:
    app = FastAPI()

    @app.get("/v1/tasks")
    def tasks() -> dict:
        return {"tasks": []}

    @app.get("/ui/tasks/{name}/diff", response_class=HTMLResponse)
    def diff(name: str) -> str:
        return f"<p>{name}</p>"

    @app.get("/", response_class=HTMLResponse)
    def home() -> str:
        return "<p>tasks</p>"

    return Guard(app, Metrics(), TOKEN, max_body=10_000)


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(guarded, scheme):
    c = TestClient(guarded)
    assert c.get("/v1/tasks", headers={"Authorization": f"{scheme} {TOKEN}"}).status_code == 200


@pytest.mark.parametrize("value", ["bearer wrong", f"Basic {TOKEN}", f"bearer{TOKEN}", "bearer ", TOKEN])
def test_a_wrong_token_or_scheme_is_still_refused(guarded, value):
    r = TestClient(guarded).get("/v1/tasks", headers={"Authorization": value})
    assert r.status_code == 401 and "bearer token" in r.json()["error"]


def test_a_ui_url_with_the_token_redirects_to_itself_without_it(guarded):
    c = TestClient(guarded, follow_redirects=False)
    r = c.get(f"/ui/tasks/digits/diff?v1=1&token={TOKEN}&v2=2")
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/tasks/digits/diff?v1=1&v2=2"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert TOKEN not in r.headers["location"]
    assert c.get(f"/?token={TOKEN}").headers["location"] == "/"
    fresh = TestClient(guarded, follow_redirects=False)  # no cookie from the answers above
    assert fresh.get("/?token=wrong").status_code == 401  # a wrong token is neither redirected nor remembered


def test_a_browser_lands_on_the_page_without_the_token_and_stays_signed_in(guarded):
    c = TestClient(guarded)  # follows redirects and keeps cookies, as a browser does
    r = c.get(f"/ui/tasks/digits/diff?token={TOKEN}&v1=1")
    assert r.status_code == 200 and "<p>digits</p>" in r.text
    assert [h.status_code for h in r.history] == [303] and TOKEN not in str(r.url) and str(r.url).endswith("?v1=1")
    assert c.get("/").status_code == 200  # the cookie carries the token from now on


def test_the_redirect_never_leaves_the_server(guarded):
    c = TestClient(guarded, follow_redirects=False)
    for path in ("//evil.example/x", "/\\evil.example"):
        location = c.get(f"{path}?token={TOKEN}").headers.get("location", "")
        assert location.startswith("/") and not location.startswith(("//", "/\\")), (path, location)


def test_the_api_never_takes_the_token_from_the_url(guarded):
    c = TestClient(guarded, follow_redirects=False)
    assert c.get(f"/v1/tasks?token={TOKEN}").status_code == 401
    r = c.get(f"/v1/tasks?token={TOKEN}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json() == {"tasks": []}  # the header authorises; the API is never redirected
