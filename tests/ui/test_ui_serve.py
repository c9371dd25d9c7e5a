"""The web UI as users get it: the real ``forkpoint serve`` process, its API and the UI on one port."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(importlib.util.find_spec("forkpoint.serving.app") is None, reason="forkpoint serve is not built yet"),
]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"forkpoint serve exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.2)
    raise AssertionError(f"forkpoint serve did not answer on {url} within {timeout:.0f} s")


def test_forkpoint_serve_mounts_the_ui(driver, own_home, shots):
    port = shots.free_port()
    exe = Path(sys.executable).with_name("forkpoint")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORKPOINT_")}
    env.update(OMP_NUM_THREADS="1", FORKPOINT_DATA=str(own_home.data_root))
    proc = subprocess.Popen([str(exe), "--home", str(own_home.home), "--threads", "1", "-q", "serve", "--port", str(port),
                             "--reports", str(own_home.reports)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_up(url, proc)
        driver.get(url + "/")
        assert driver.find_element(By.CSS_SELECTOR, "#tasks tr[data-task='digits'] td.live").text == "v2"
        # the server follows the registry: a rollback made by another process shows on the next page load
        own_home.cli("rollback", "digits", "--to", "1")
        driver.get(url + "/ui/tasks/digits")
        assert driver.find_element(By.ID, "live-version").text == "v1"
        assert driver.find_elements(By.CSS_SELECTOR, "#moves tbody tr")[0].get_attribute("data-action") == "rollback"
        driver.get(url + f"/ui/reports/{own_home.run}")
        assert driver.find_elements(By.CSS_SELECTOR, "img.heatmap")
        driver.get(url + "/ui/tasks/nosuchtask")
        assert "nosuchtask" in driver.find_element(By.ID, "error").text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
