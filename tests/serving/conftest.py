"""Fixtures for the serving suite: a real trained home, a real uvicorn server on loopback, real HTTP.

Reused, not copied: the CLI suite's fixtures (``data_root``, ``make_cli``, ``clean_env``; a
real home built through the in-process CLI) and the registry suite's throwaway
PostgreSQL (``pg_cluster``, ``pg_url``), loaded from their conftest files (tests run with
--import-mode=importlib, so they are not importable as a package).

The home: the embedded Lite0 at 32 px, ``digits`` v1 (branch 15:15) and v2 (14:15,
another seed; live), ``mnist`` v1 (15:15); 5 images per class, one epoch.
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest
import uvicorn

TESTS = Path(__file__).resolve().parent.parent


def _conftest(package: str):
    spec = importlib.util.spec_from_file_location(f"forkpoint_serving_tests_{package}_conftest", TESTS / package / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_cli = _conftest("cli")
_registry = _conftest("registry")
data_root = _cli.data_root
make_cli = _cli.make_cli
cli = _cli.cli
one_line_error = _cli.one_line_error
clean_env = _cli.clean_env
pg_cluster = _registry.pg_cluster
pg_url = _registry.pg_url
QUICK = [*_cli.QUICK, "--min-steps", "5", "--augment-views", "0"]


def _build_home(cli, db: str | None = None) -> None:
    """digits v1 (15:15), digits v2 (14:15, seed 1: live), mnist v1: a home whose pointers can move."""
    extra = ["--db", db] if db else []
    cli.ok(*extra, "init", "--resolution", "32")
    cli.ok(*extra, "-q", "add-task", "digits", "--data", "digits", "--branch", "15:15", *QUICK)
    cli.ok(*extra, "-q", "add-task", "digits", "--data", "digits", "--branch", "14:15", "--seed", "1", *QUICK)
    cli.ok(*extra, "-q", "add-task", "mnist", "--data", "mnist", "--branch", "15:15", *QUICK)


@pytest.fixture(scope="session")
def served_home(tmp_path_factory, make_cli):
    """A shared home for tests that only read (each test that moves pointers builds its own or restores them)."""
    cli = make_cli(tmp_path_factory.mktemp("served") / "home")
    _build_home(cli)
    return cli


@pytest.fixture(scope="session")
def build_home():
    """``build_home(cli, db=None)``: the suite's home (digits v1, v2 live, mnist v1) in ``cli.home`` (and ``db``);
    ``build_home.quick``: the quick training options it uses."""
    _build_home.quick = QUICK  # type: ignore[attr-defined]
    return _build_home


TOL = 1e-5  # float32 rounding: CPU kernels block differently by batch size (labels and order are exact)


def _same_answer(got: dict, want: dict) -> None:
    """Two `predict --json`-shaped image answers agree: labels, indices and top-k order exactly, probabilities to TOL."""
    assert got["tasks"].keys() == want["tasks"].keys()
    for t, g in got["tasks"].items():
        w = want["tasks"][t]
        assert (g["label"], g["index"]) == (w["label"], w["index"]), t
        assert [x["label"] for x in g["top"]] == [x["label"] for x in w["top"]], t
        assert g["probability"] == pytest.approx(w["probability"], abs=TOL)
        assert [x["probability"] for x in g["top"]] == pytest.approx([x["probability"] for x in w["top"]], abs=TOL)


@pytest.fixture(scope="session")
def same_answer():
    """``same_answer(got, want)``: asserts two image answers agree (labels exactly, probabilities to float32 rounding)."""
    return _same_answer


@pytest.fixture(scope="session")
def files():
    """``files(*paths)``: the multipart ``images`` field for httpx."""
    return lambda *paths: [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]


@pytest.fixture(scope="session")
def samples(tmp_path_factory, data_root) -> dict[str, Path]:
    """Real test images as PNG files: a few digits and a few MNIST digits."""
    from forkpoint.workflows.samples import write_samples

    root = tmp_path_factory.mktemp("samples")
    write_samples("digits", root / "digits", data_root=data_root)
    write_samples("mnist", root / "mnist", data_root=data_root)
    return {f"{d}/{p.name}": p for d in ("digits", "mnist") for p in sorted((root / d).glob("*.png"))}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def free_port():
    return _free_port


@dataclass
class LiveServer:
    """A real uvicorn server in a thread of this process; ``client`` talks to it over loopback HTTP."""

    url: str
    app: object
    client: httpx.Client

    @property
    def server(self):
        return self.app.state.server  # type: ignore[attr-defined]

    def wait_ready(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.client.get("/readyz")
            if r.status_code == 200:
                return r.json()
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s: {r.text}")

    def wait_versions(self, want: dict[str, int], timeout: float = 10.0) -> float:
        """Seconds until /readyz reports ``want`` (fails after ``timeout``)."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            got = self.client.get("/readyz").json().get("versions")
            if got == want:
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"server still serves {got}, not {want}, after {timeout} s")


@pytest.fixture
def serve() -> Iterator[Callable[..., LiveServer]]:
    """``serve(home, db=None, headers=None, **ServeConfig fields) -> LiveServer`` (ready); stopped after the test."""
    from forkpoint.serving.app import ServeConfig, create_app
    from forkpoint.workflows.home import open_home

    started: list[tuple[uvicorn.Server, threading.Thread, httpx.Client]] = []

    def start(home: Path, db: str | None = None, headers: dict | None = None, ready: bool = True, **fields) -> LiveServer:
        fields.setdefault("poll_s", 0.2)
        app = create_app(lambda: open_home(home, db), ServeConfig(**fields))
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=url, headers=headers or {}, timeout=60)
        started.append((server, thread, client))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        live = LiveServer(url, app, client)
        if ready:
            live.wait_ready()
        return live

    yield start
    for server, thread, client in started:
        client.close()
        server.should_exit = True
        thread.join(30)
