#!/usr/bin/env python
"""Regenerate the registry web UI's screenshots in docs/img/ (``ui-tasks.png``, ``ui-task.png``,
``ui-audit.png``, ``ui-report.png``).

Builds a small real home in a temp folder (the embedded Lite0 trunk at 32 px, three real
tasks on 20 images per class, one epoch: digits gets a fixed-branch v1, a profiled v2, a
rollback and a promote; plus a short real stream run), serves the UI on a loopback port
and photographs four pages in headless chromium (Debian's ``chromium`` +
``chromium-driver``, driven by selenium). A few minutes on two CPU cores, offline.

    .venv/bin/python scripts/ui-screenshots.py                 # writes docs/img/ui-*.png
    .venv/bin/python scripts/ui-screenshots.py --workdir /tmp/ui-home     # keep the home: a rerun only photographs
    .venv/bin/python scripts/ui-screenshots.py --out /tmp/shots --home ~/forkpoint-tutorial --reports runs --run NAME

``tests/ui`` imports :func:`capture`, :func:`headless_chrome` and :func:`serve` from here, so
the test suite runs the same code on its own home.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
WIDTH, MAX_HEIGHT = 1280, 1900
SHOTS = {  # file name -> (what, path template)
    "ui-tasks.png": ("tasks", "/"),
    "ui-task.png": ("task", "/ui/tasks/{task}"),
    "ui-audit.png": ("audit log", "/ui/events"),
    "ui-report.png": ("stream report", "/ui/reports/{run}"),
}


def browser_paths() -> tuple[str | None, str | None]:
    """Chromium and its driver, from $PATH (Debian: /usr/bin/chromium, /usr/bin/chromedriver)."""
    browser = next((p for name in CHROMIUM if (p := shutil.which(name))), None)
    return browser, shutil.which("chromedriver")


def headless_chrome(width: int = WIDTH, height: int = 900):
    """A headless chromium under selenium, with the local driver (no download: selenium-manager never runs)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = browser_paths()
    if browser is None or driver is None:
        raise RuntimeError("chromium and chromedriver are needed: apt-get install chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--hide-scrollbars",
                f"--window-size={width},{height}", "--force-device-scale-factor=1", "--lang=en-US"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(app, port: int | None = None) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a thread on a loopback port; yields its base URL."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def ui_app(home: Path, reports: Path | None):
    """A FastAPI app holding only the UI router over ``home`` (what ``forkpoint serve`` mounts next to its API)."""
    from fastapi import FastAPI

    from forkpoint.serving.ui import ui_router
    from forkpoint.workflows.home import open_home

    app = FastAPI()
    app.include_router(ui_router(lambda: open_home(home), reports))
    return app


def screenshot(driver, url: str, path: Path, max_height: int = MAX_HEIGHT) -> Path:
    """The page at ``url``, as tall as its content (up to ``max_height`` px), as a PNG."""
    driver.set_window_size(WIDTH, 900)
    driver.get(url)
    driver.execute_script("return document.readyState")
    wait_for_images(driver)
    height, chrome = driver.execute_script(
        "return [Math.ceil(document.body.getBoundingClientRect().height), window.outerHeight - window.innerHeight]")
    driver.set_window_size(WIDTH, max(300, min(int(height) + int(chrome), max_height)))
    path.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"chromium could not write {path}")
    return path


def wait_for_images(driver, timeout: float = 30.0) -> None:
    """Plots are drawn on first request (matplotlib): wait until every <img> has loaded or failed."""
    deadline = time.monotonic() + timeout
    while not driver.execute_script("return Array.from(document.images).every(i => i.complete)"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"images still loading after {timeout:.0f} s on {driver.current_url}")
        time.sleep(0.1)


def capture(base_url: str, out: Path, task: str, run: str, driver=None) -> dict[str, Path]:
    """The four screenshots the docs show, written to ``out``; returns them by file name."""
    own = driver is None
    driver = driver or headless_chrome()
    try:
        return {name: screenshot(driver, base_url + path.format(task=task, run=run), out / name)
                for name, (_, path) in SHOTS.items()}
    finally:
        if own:
            driver.quit()


# ---- the small real home the committed screenshots show ----------------------------------------


def forkpoint(home: Path | None, *args: str) -> None:
    exe = Path(sys.executable).with_name("forkpoint")
    cmd = [str(exe) if exe.exists() else "forkpoint", *(["--home", str(home)] if home else []), "-q", *args]
    print("+", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


RUN = "stream-domains"


def build_home(home: Path, reports: Path) -> None:
    """Three real tasks (digits twice, with a rollback and a promote) and one stream run (``reports/RUN``)."""
    quick = ["--limit-per-class", "20", "--val-limit-per-class", "10", "--epochs", "1", "--patience", "0"]
    forkpoint(home, "init", "--resolution", "32")
    forkpoint(home, "add-task", "mnist", "--data", "mnist", "--branch", "14:15", *quick, "--description", "handwritten digits (MNIST)")
    forkpoint(home, "add-task", "animals", "--data", "animals", "--branch", "15:15", *quick, "--description", "animal silhouettes")
    forkpoint(home, "add-task", "digits", "--data", "digits", "--branch", "15:15", *quick, "--description", "scikit-learn 8x8 digits")
    forkpoint(home, "add-task", "digits", "--data", "digits", "--candidates", "12:16", "--profile-epochs", "1",
              "--budget-blocks", "2", "--no-probe", "--seed", "1", *quick, "--description", "profiled blocks 12-15")
    forkpoint(home, "rollback", "digits", "--to", "1")
    forkpoint(home, "promote", "digits", "2")
    forkpoint(None, "stream", "run", "-b", "domains", "--tasks", "3", "--strategy", "subtuning,linear", "--candidates", "15:16",
              "--per-class", "10", "--test-per-class", "10", "--epochs", "1", "--resolution", "32", "--out", str(reports / RUN))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="where the PNGs go (default: docs/img)")
    ap.add_argument("--workdir", type=Path, help="build the home and the stream run here and keep them; reused when "
                    "already built (default: a temporary folder)")
    ap.add_argument("--home", type=Path, help="photograph this existing home instead (with --reports, --task, --run)")
    ap.add_argument("--reports", type=Path, help="its stream-run reports folder")
    ap.add_argument("--task", default="digits", help="the task page to photograph (with --home)")
    ap.add_argument("--run", default="", help="the stream run to photograph (a folder name under --reports)")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="forkpoint-ui-") as tmp:
        work = (args.workdir or Path(tmp)).resolve()
        os.environ.setdefault("FORKPOINT_DATA", str(work / "data"))
        if args.home is not None:
            home, reports, task, run = args.home, args.reports, args.task, args.run
        else:
            home, reports = work / "home", work / "runs"
            task, run = "digits", RUN
            if not (work / "built").is_file():
                shutil.rmtree(home, ignore_errors=True)
                shutil.rmtree(reports, ignore_errors=True)
                build_home(home, reports)
                (work / "built").write_text("ok\n")
        with serve(ui_app(home, reports)) as url:
            written = capture(url, args.out, task, run)
    for path in written.values():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
