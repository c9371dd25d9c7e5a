"""The server follows the registry: a live pointer moved by another handle or process is served within
seconds, requests running during the swaps all succeed and each gets one whole model's answer, and a
model that fails its checks is never swapped in."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from forkpoint.registry import Registry


FORKPOINT = Path(sys.executable).parent / "forkpoint"


def reference(cli, image: Path, db: str | None) -> dict[int, dict]:
    """digits' answer for ``image`` under v2 and v1 from `predict --json` (the pointer ends back on v2)."""
    extra = ["--db", db] if db else []
    out = {2: cli.json(*extra, "predict", str(image), "--task", "digits")["images"][0]}
    cli.ok(*extra, "rollback", "digits", "--to", "1")
    out[1] = cli.json(*extra, "predict", str(image), "--task", "digits")["images"][0]
    cli.ok(*extra, "promote", "digits", "2")
    return out


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_swaps_under_concurrent_load_fail_no_request(backend, request, make_cli, build_home, tmp_path, samples, serve,
                                                     files, same_answer):
    if backend == "postgres":
        db, cli = request.getfixturevalue("pg_url"), make_cli(tmp_path / "home")
        build_home(cli, db)
    else:  # the shared home: every move below ends back on digits v2
        db, cli = None, request.getfixturevalue("served_home")
    image = samples["digits/4_0.png"]
    ref = reference(cli, image, db)
    assert ref[1] != ref[2]  # two different branches: an answer shows which model gave it

    live = serve(cli.home, db=db, poll_s=0.1)
    other = Registry.open(cli.home, db)  # a second handle, as another process would hold
    stop, results, errors = threading.Event(), [], []

    def hammer() -> None:
        with httpx.Client(base_url=live.url, timeout=60) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/predict", files=files(image), data={"tasks": "digits"})
                    results.append((r.status_code, r.json()))
                except Exception as e:  # noqa: BLE001 - a dropped connection is a failure too
                    errors.append(repr(e))

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for w in workers:
        w.start()
    lags = []
    try:
        for _ in range(2):
            other.rollback("digits", to=1, actor="test")
            lags.append(live.wait_versions({"digits": 1, "mnist": 1}))
            time.sleep(0.2)
            other.promote("digits", 2, actor="test")
            lags.append(live.wait_versions({"digits": 2, "mnist": 1}))
            time.sleep(0.2)
    finally:
        stop.set()
        for w in workers:
            w.join(60)
        other.close()
    assert not errors, errors[:3]
    assert len(results) > 20 and all(code == 200 for code, _ in results), [r for r in results if r[0] != 200][:3]
    seen = {body["versions"]["digits"] for _, body in results}
    assert seen == {1, 2}
    for _, body in results:  # every answer is exactly its version's model: never a mix
        same_answer(body["images"][0], ref[body["versions"]["digits"]])
    assert max(lags) < 5, lags
    assert live.server.metrics.value("forkpoint_model_swaps_total") == 5  # the first load, then four moves


def test_a_model_failing_its_checks_is_not_swapped_in(served_home, samples, serve, files):
    with Registry.open(served_home.home) as reg:
        v1 = reg.show("digits", 1)
        weights = reg.store.path(v1.weights_sha256)
        original = weights.read_bytes()
        live = serve(served_home.home, poll_s=0.1)
        try:
            os.chmod(weights, 0o644)
            weights.write_bytes(original[:-8] + bytes(8))  # the stored file no longer matches its sha256
            with reg.engine.begin() as c:  # promote/rollback refuse such a version (issue 29): move the row itself
                c.exec_driver_sql("UPDATE task SET live_version = 1 WHERE name = 'digits'")
            deadline = time.monotonic() + 10
            while live.server.metrics.value("forkpoint_reload_failures_total") < 1:
                assert time.monotonic() < deadline, "the tampered version was never tried"
                time.sleep(0.05)
            ready = live.client.get("/readyz").json()
            assert ready["versions"] == {"digits": 2, "mnist": 1}  # still the verified model
            assert "digits" in ready["follow"]["error"]
            assert ready["status"] == "stale" and [(r["task"], r["live_version"]) for r in ready["refused"]] == [("digits", 1)]
            r = live.client.post("/v1/predict", files=files(samples["digits/6_0.png"]))
            assert r.status_code == 200 and r.json()["versions"] == {"digits": 2, "mnist": 1}
        finally:
            weights.write_bytes(original)
            reg.promote("digits", 2, actor="test")
        live.wait_versions({"digits": 2, "mnist": 1})
        deadline = time.monotonic() + 5
        while live.client.get("/readyz").json()["follow"]["error"] is not None:
            assert time.monotonic() < deadline, "the failure is still reported after the pointer came back"
            time.sleep(0.05)


def test_forkpoint_serve_follows_a_rollback_made_by_another_process(served_home, samples, clean_env, files, free_port):
    """The issue's done-when: `forkpoint serve`, POST an image, `forkpoint rollback` in another process, see it follow."""
    port = free_port()
    env = {**clean_env, "FORKPOINT_HOME": str(served_home.home), "FORKPOINT_DATA": str(served_home.data_root),
           "FP_TOKEN": "tok-123"}
    server = subprocess.Popen([str(FORKPOINT), "-q", "serve", "--port", str(port), "--token-env", "FP_TOKEN", "--poll-s", "0.5"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    c = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer tok-123"}, timeout=60)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.communicate()[1]
            try:
                if c.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "forkpoint serve never became ready"
            time.sleep(0.2)
        first = c.post("/v1/predict", files=files(samples["mnist/3_0.png"]))
        assert first.status_code == 200 and first.json()["versions"] == {"digits": 2, "mnist": 1}
        assert set(first.json()["images"][0]["tasks"]) == {"digits", "mnist"}

        moved = subprocess.run([str(FORKPOINT), "rollback", "digits"], env=env, capture_output=True, text=True, timeout=120)
        assert moved.returncode == 0, moved.stderr
        start = time.monotonic()
        while c.get("/readyz").json()["versions"] != {"digits": 1, "mnist": 1}:
            assert time.monotonic() - start < 5, "the server did not follow the rollback within 5 s"
            time.sleep(0.1)
        after = c.post("/v1/predict", files=files(samples["mnist/3_0.png"]))
        assert after.status_code == 200 and after.json()["versions"] == {"digits": 1, "mnist": 1}
    finally:
        c.close()
        served_home.ok("promote", "digits", "2")
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""
