"""Safe by default: bad or oversized input gets a 4xx with a one-line JSON error, the token guards every
request, the CLI refuses a bad setup (exit 2, one line) before it binds a port."""

from __future__ import annotations

import io

import httpx
from PIL import Image

from forkpoint.serving.uploads import Limits


def one_line(r, code: int) -> str:
    assert r.status_code == code, (r.status_code, r.text)
    body = r.json()
    assert list(body) == ["error"] and "\n" not in body["error"] and body["error"]
    return body["error"]


def png(size: tuple[int, int] = (40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 128).save(buf, format="PNG")
    return buf.getvalue()


def test_bad_requests_get_one_line_4xx(served_home, serve, png_bomb):
    limits = Limits(max_request_bytes=300_000, max_images=3, max_pixels=1_000_000)
    c = serve(served_home.home, limits=limits).client
    post = lambda **kw: c.post("/v1/predict", **kw)  # noqa: E731

    assert "'notes.txt'" in one_line(post(files=[("images", ("notes.txt", b"hello", "text/plain"))]), 415)
    truncated = png()[:30]
    assert "'cut.png'" in one_line(post(files=[("images", ("cut.png", truncated, "image/png"))]), 415)
    assert "images" in one_line(post(data={"top_k": "2"}), 400)
    assert "images" in one_line(post(files=[("other", ("a.png", png(), "image/png"))]), 400)
    assert "top_k" in one_line(post(files=[("images", ("a.png", png(), "image/png"))], data={"top_k": "0"}), 400)
    assert "top_k" in one_line(post(files=[("images", ("a.png", png(), "image/png"))], data={"top_k": "x"}), 400)
    assert "'nope'" in one_line(post(files=[("images", ("a.png", png(), "image/png"))], data={"tasks": "digits,nope"}), 404)
    assert "limit of 3" in one_line(post(files=[("images", (f"{i}.png", png(), "image/png")) for i in range(4)]), 413)
    assert "limit of 3" in one_line(post(files=[("images", (f"{i}.png", b"x", "image/png")) for i in range(9)]), 413)
    assert "task name" in one_line(c.get("/v1/tasks/..."), 400)
    assert "1,000,000-pixel" in one_line(post(files=[("images", ("big.png", png((1200, 1000)), "image/png"))]), 413)
    bomb = png_bomb(15000, 15000).read_bytes()  # ~220 KB on disk, 225 MP declared
    assert len(bomb) < 300_000
    assert "pixel" in one_line(post(files=[("images", ("bomb.png", bomb, "image/png"))]), 413)
    assert "300,000" in one_line(post(files=[("images", ("pad.png", png() + bytes(350_000), "image/png"))]), 413)

    def chunks():  # no Content-Length: the cap is enforced while the body streams in
        yield b"--b\r\nContent-Disposition: form-data; name=\"images\"; filename=\"s.png\"\r\n\r\n"
        for _ in range(40):
            yield bytes(10_000)

    streamed = c.post("/v1/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert "limit" in one_line(streamed, 413)
    assert c.post("/v1/predict", files=[("images", ("ok.png", png(), "image/png"))]).status_code == 200  # still serving


def test_the_token_guards_the_api_and_the_ui_takes_it_once(served_home, serve, monkeypatch):
    live = serve(served_home.home, token="s3cret-token", ready=False)
    c = live.client
    for path in ("/healthz", "/readyz", "/metrics", "/v1/tasks"):
        assert "bearer token" in one_line(c.get(path), 401)
        assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert c.get("/healthz", headers=good).status_code == 200
    c.headers.update(good)
    live.wait_ready()
    r = c.post("/v1/predict", files=[("images", ("a.png", png(), "image/png"))])
    assert r.status_code == 200 and set(r.json()["versions"]) == {"digits", "mnist"}

    def get(path: str, cookie: str | None = None):  # a client without a cookie jar: nothing carries over
        return httpx.get(live.url + path, headers={"Cookie": f"forkpoint_token={cookie}"} if cookie else {})

    assert get("/v1/tasks", cookie="s3cret-token").status_code == 401  # the API never reads the cookie
    page = get("/?token=s3cret-token")
    assert page.status_code != 404, "serve mounts the web UI, whose pages take the token as a cookie"
    assert "forkpoint_token=s3cret-token" in page.headers["set-cookie"] and "HttpOnly" in page.headers["set-cookie"]
    assert get("/", cookie="s3cret-token").status_code == 200
    assert get("/").status_code == 401 and get("/", cookie="nope").status_code == 401
    assert get("/?token=wrong").status_code == 401


def test_serve_refuses_a_bad_setup_before_binding(served_home, one_line_error, monkeypatch):
    monkeypatch.delenv("FP_TEST_TOKEN", raising=False)
    err = one_line_error(served_home("serve", "--token-env", "FP_TEST_TOKEN"))
    assert "FP_TEST_TOKEN" in err and "export" in err
    assert "nope" in one_line_error(served_home("serve", "--task", "nope"))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = str(s.getsockname()[1])
        assert "--port" in one_line_error(served_home("serve", "--port", port))
    assert "serve" in served_home.ok("serve", "--help").stdout
