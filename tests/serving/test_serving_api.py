"""The HTTP API on a real server over loopback: predictions equal `predict --json`, micro-batching changes
no answer, the task routes mirror `tasks --json`/`history --json`, probes and metrics say what is true."""

from __future__ import annotations

import json
import re
import threading


def test_predict_answers_every_live_task_as_predict_json_does(served_home, samples, serve, files, same_answer):
    picks = [samples["digits/3_0.png"], samples["mnist/7_0.png"]]
    want = served_home.json("predict", *map(str, picks), "--top-k", "2")
    live = serve(served_home.home)
    r = live.client.post("/v1/predict", files=files(*picks), data={"top_k": "2"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["backbone_fingerprint"] == want["backbone_fingerprint"]
    assert got["versions"] == want["versions"] == {"digits": 2, "mnist": 1}
    assert [i["path"] for i in got["images"]] == ["3_0.png", "7_0.png"]
    for g, w in zip(got["images"], want["images"]):
        assert len(g["tasks"]["digits"]["top"]) == 2
        same_answer(g, w)

    one = live.client.post("/v1/predict", files=files(picks[1]), data={"tasks": "mnist", "top_k": "2"}).json()
    assert one["versions"] == {"mnist": 1} and list(one["images"][0]["tasks"]) == ["mnist"]
    same_answer(one["images"][0], {"tasks": {"mnist": want["images"][1]["tasks"]["mnist"]}})


def test_concurrent_requests_share_a_pass_and_get_the_unbatched_answer(served_home, samples, serve, files, same_answer):
    live = serve(served_home.home, max_wait_ms=300)  # a long window: the requests below surely meet
    picks = [samples[k] for k in ("digits/0_0.png", "digits/5_0.png", "mnist/1_0.png", "mnist/9_0.png")]
    alone = {p.name: served_home.json("predict", str(p))["images"][0] for p in picks}
    answers: dict[str, dict] = {}

    def ask(p):
        r = live.client.post("/v1/predict", files=files(p))
        answers[p.name] = r.json() if r.status_code == 200 else {"error": r.text}

    threads = [threading.Thread(target=ask, args=(p,)) for p in picks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in picks:
        assert "error" not in answers[p.name], answers[p.name]
        same_answer(answers[p.name]["images"][0], alone[p.name])
    m = live.server.metrics
    passes = m.value("forkpoint_batch_requests")
    assert passes < len(picks), f"{len(picks)} concurrent requests took {passes} passes: nothing was batched"


def test_task_routes_mirror_tasks_and_history_json(served_home, serve):
    live = serve(served_home.home)
    want = served_home.json("tasks")
    got = live.client.get("/v1/tasks").json()
    assert got["backbone_fingerprint"] == want["backbone_fingerprint"]
    assert [{k: v for k, v in t.items() if k != "served_version"} for t in got["tasks"]] == want["tasks"]
    assert {t["name"]: t["served_version"] for t in got["tasks"]} == {"digits": 2, "mnist": 1}
    assert {"name", "live_version", "class_names", "branch", "extra_cost_pct"} <= set(got["tasks"][0])

    h = live.client.get("/v1/tasks/digits").json()
    assert h == {**served_home.json("history", "digits"), "served_version": 2}
    assert [v["version"] for v in h["versions"]] == [1, 2]

    missing = live.client.get("/v1/tasks/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]

    only = serve(served_home.home, tasks=("mnist",))
    assert [t["name"] for t in only.client.get("/v1/tasks").json()["tasks"]] == ["mnist"]
    assert only.client.get("/readyz").json()["versions"] == {"mnist": 1}


def test_probes_and_metrics(served_home, samples, serve, files):
    live = serve(served_home.home)
    assert live.client.get("/healthz").json() == {"status": "ok"}
    ready = live.client.get("/readyz").json()
    fp = served_home.json("info")["fingerprint"]
    assert ready["ready"] is True and ready["backbone_fingerprint"] == fp == ready["fingerprints"]["trunk"]
    assert set(ready["fingerprints"]) == {"trunk", "task:digits", "task:mnist"}
    live.client.post("/v1/predict", files=files(samples["digits/1_0.png"]))
    live.client.post("/v1/predict", files=[("images", ("x.png", b"not a png", "image/png"))])

    text = live.client.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    body = text.text
    assert 'forkpoint_live_version{task="digits"} 2' in body and 'forkpoint_live_version{task="mnist"} 1' in body
    assert 'forkpoint_http_requests_total{code="200",route="/v1/predict"} 1' in body
    assert 'forkpoint_http_requests_total{code="415",route="/v1/predict"} 1' in body
    assert "forkpoint_batch_images_count 1" in body
    buckets = [float(v) for v in re.findall(r'forkpoint_http_request_seconds_bucket\{route="/v1/predict",le="[^"]+"\} (\S+)', body)]
    assert buckets == sorted(buckets) and buckets[-1] == 2  # cumulative, +Inf counts both requests
    for line in body.splitlines():  # every sample line is `name{labels} number`
        assert line.startswith("#") or re.fullmatch(r'[a-z_]+(\{[^}]*\})? [-+0-9.eInf]+', line), line


def test_readyz_is_503_until_a_model_is_loaded(served_home, serve):
    live = serve(served_home.home, ready=False)
    first = live.client.get("/readyz")
    assert first.status_code in (200, 503)
    if first.status_code == 503:
        assert first.json()["ready"] is False and first.headers["retry-after"] == "1"
        r = live.client.post("/v1/predict", files=[("images", ("a.png", b"x", "image/png"))])
        assert r.status_code == 503 and "loading" in r.json()["error"]
    assert live.wait_ready()["ready"] is True


def test_a_task_added_while_serving_is_served(cli, serve, samples, files, build_home):
    cli.ok("init", "--resolution", "32")
    live = serve(cli.home)
    assert live.client.get("/readyz").json()["versions"] == {}
    r = live.client.post("/v1/predict", files=files(samples["digits/2_0.png"]))
    assert r.status_code == 503 and "add-task" in r.json()["error"]
    assert json.loads(r.text).keys() == {"error"}

    cli.ok("-q", "add-task", "digits", "--data", "digits", "--branch", "15:15", *build_home.quick)
    assert live.wait_versions({"digits": 1}) < 5
    r = live.client.post("/v1/predict", files=files(samples["digits/2_0.png"]))
    assert r.status_code == 200 and r.json()["versions"] == {"digits": 1}
