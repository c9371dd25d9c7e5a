"""The server's outer layer (plain ASGI middleware): bearer-token auth, the body-size cap, request metrics.

Auth (only when a token is configured): API paths (``/v1/...``, ``/healthz``, ``/readyz``,
``/metrics``) need ``Authorization: Bearer <token>`` (the scheme in any case, RFC 7235). The
web UI (every other path) also accepts the token as the ``forkpoint_token`` cookie, which any
UI page sets when opened once with ``?token=<token>`` (a browser cannot send a bearer header
by itself), answering with a 303 to the same URL without the token, so the secret leaves the
address bar and the history. The API never reads the cookie, so a page on another site cannot
drive the API with it; the cookie is SameSite=Lax because the redirect after a link from
elsewhere (a chat, a mail) is a cross-site navigation, which a Strict cookie would miss, and
the UI it opens only reads (GET routes only).

The body cap refuses a declared ``Content-Length`` over the limit at once, and stops a
body streamed without one as soon as it passes the limit (HTTP 413 either way).
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, quote, urlencode

from forkpoint.serving.metrics import Metrics

API_PREFIXES = ("/v1/", "/healthz", "/readyz", "/metrics")
COOKIE = "forkpoint_token"
TOKEN_PARAM = "token"
PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # RFC 3986 pchar and "/", with "%" so existing escapes stay as sent
ROUTES = ("/v1/predict", "/v1/tasks", "/healthz", "/readyz", "/metrics")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class BodyTooLarge(Exception):
    """Raised from ``receive`` once a streamed body passes the cap (the predict route turns it into a 413)."""


def is_api(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def route_label(path: str) -> str:
    """A bounded label for metrics: the route, never the raw path (task names would make series unbounded)."""
    if path.startswith("/v1/tasks/"):
        return "/v1/tasks/{name}"
    return path if path in ROUTES else ("ui" if not is_api(path) else "other")


async def send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data})


class Guard:
    """Wraps the FastAPI app: auth, body cap and request metrics, before any route runs."""

    def __init__(self, app: Callable, metrics: Metrics, token: str | None, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.token = token
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, started, status = scope.get("path", ""), time.perf_counter(), [500]

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, sending)
        finally:
            label = route_label(path)
            self.metrics.inc("forkpoint_http_requests_total", "HTTP requests by route and status code.",
                             labels={"route": label, "code": str(status[0])})
            self.metrics.observe("forkpoint_http_request_seconds", "HTTP request latency by route.",
                                 time.perf_counter() - started, labels={"route": label})

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        set_cookie: list[tuple[bytes, bytes]] = []
        if self.token is not None:
            allowed, set_cookie = self._authorised(scope, path)
            if not allowed:
                await send_json(send, 401, {"error": "missing or wrong bearer token: send the header "
                                            "'Authorization: Bearer <token>' (the value of the server's --token-env variable)"},
                                [(b"www-authenticate", b'Bearer realm="forkpoint"')])
                return
            if _token_in_url(scope, path):  # authorised: take the secret out of the URL (the cookie carries it now)
                await _redirect(send, _without_token(scope), set_cookie)
                return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await send_json(send, 413, {"error": f"request body of {int(declared):,} bytes is over the limit of "
                                        f"{self.max_body:,}: send fewer or smaller images"})
            return
        await self.app(scope, self._capped(scope, receive), self._with_cookie(send, set_cookie))

    def _authorised(self, scope: Scope, path: str) -> tuple[bool, list[tuple[bytes, bytes]]]:
        assert self.token is not None
        given = _bearer(_header(scope, b"authorization"))
        if given is not None and _same(given, self.token):
            return True, []
        if is_api(path):
            return False, []
        cookie = _cookies(_header(scope, b"cookie") or "").get(COOKIE)
        if cookie is not None and _same(cookie, self.token):
            return True, []
        given = next((v for k, v in _query(scope) if k == TOKEN_PARAM), None)
        if given is not None and _same(given, self.token):
            return True, [(b"set-cookie", f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Lax".encode())]
        return False, []

    def _capped(self, scope: Scope, receive: Receive) -> Receive:
        seen = [0]

        async def capped() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.max_body:
                    scope["forkpoint.body_too_large"] = True
                    raise BodyTooLarge(f"request body is over the limit of {self.max_body:,} bytes: send fewer or smaller images")
            return message

        return capped

    @staticmethod
    def _with_cookie(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
        if not extra:
            return send

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return sending


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _bearer(header: str | None) -> str | None:
    """The credentials of ``Authorization: Bearer <token>``; the scheme is case-insensitive (RFC 7235 section 2.1)."""
    scheme, _, credentials = (header or "").strip().partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _query(scope: Scope) -> list[tuple[str, str]]:
    return parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def _token_in_url(scope: Scope, path: str) -> bool:
    """A UI page fetched with ``?token=`` (only the UI reads it; a POST is never redirected)."""
    return not is_api(path) and scope.get("method") in ("GET", "HEAD") and any(k == TOKEN_PARAM for k, _ in _query(scope))


def _without_token(scope: Scope) -> str:
    """The request's own path and query, minus every ``token`` parameter: a relative URL on this server
    (one leading slash: ``//host/...`` would send the browser to another site)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope.get("path", "/"))
    path = "/" + quote(path, safe=PATH_SAFE).lstrip("/")  # a backslash or a space is escaped, escapes are kept
    rest = [(k, v) for k, v in _query(scope) if k != TOKEN_PARAM]
    return path + (f"?{urlencode(rest)}" if rest else "")


async def _redirect(send: Send, location: str, headers: list[tuple[bytes, bytes]]) -> None:
    """303 See Other: the browser GETs ``location`` (carrying the cookie just set) and keeps that URL, not this one."""
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0"),
                            (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": b""})


def _cookies(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())
