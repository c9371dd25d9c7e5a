"""Object-store figures: S3 requests and bytes per command, counted by the server.

    .venv/bin/python -m forkpoint.benchmarks.store_bench [--publish] [--out PATH]

Starts moto's S3 server on loopback with a counting WSGI layer in front of it (every HTTP
request the server answers, classified into S3 operations from its method, query and
``x-amz-copy-source`` header, with bytes in and out), then runs the real ``forkpoint``
executable against a home whose weights live there: ``init --store``, three ``add-task``
(a new task, a second version of it, another task; fixed late branch, 1 epoch, 5 images
per class), ``predict``, ``audit``, ``gc --dry-run``. Each command is a fresh process, as
a user runs it; between commands the bucket is listed with counting paused. Nothing in
forkpoint is mocked or patched: the counting sits in the server.

``--publish`` writes benchmarks/results/store/cpu.json and regenerates the table between
the ``store-bench`` markers in docs/scale.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from forkpoint.contract.atomic import write_text
from forkpoint.contract.docblock import publish_block

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "store" / "cpu.json"
DOC = REPO / "docs" / "scale.md"
BEGIN, END = "<!-- store-bench:begin -->", "<!-- store-bench:end -->"
QUICK = ["--epochs", "1", "--limit-per-class", "5", "--patience", "0"]
OPS = ("PutObject", "CopyObject", "GetObject", "HeadObject", "ListObjectsV2", "DeleteObject", "other")


def classify(environ: dict[str, Any]) -> str:
    """The S3 operation a request is (path-style addressing: /bucket or /bucket/key)."""
    method = environ["REQUEST_METHOD"]
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    has_key = len([p for p in environ.get("PATH_INFO", "/").split("/") if p]) >= 2
    if method == "GET" and not has_key and ("list-type" in query or "prefix" in query or not query):
        return "ListObjectsV2"
    if has_key and not query.keys() - {"x-id"}:
        if method == "PUT":
            return "CopyObject" if environ.get("HTTP_X_AMZ_COPY_SOURCE") else "PutObject"
        return {"GET": "GetObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(method, "other")
    return "other"


class CountingS3Server:
    """moto's S3 server (the app ThreadedMotoServer runs) behind a WSGI layer that counts every request."""

    def __init__(self) -> None:
        self.ops: Counter[str] = Counter()
        self.bytes_in = self.bytes_out = 0
        self.counting = True
        self._lock = threading.Lock()

    def _app(self, app):
        def counted(environ, start_response):
            op = classify(environ)
            body = list(app(environ, start_response))
            with self._lock:
                if self.counting:
                    self.ops[op] += 1
                    self.bytes_in += int(environ.get("CONTENT_LENGTH") or 0)
                    self.bytes_out += sum(len(b) for b in body)
            return body

        return counted

    def __enter__(self) -> "CountingS3Server":
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access-log line per request

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self._server = make_server("127.0.0.1", port, self._app(DomainDispatcherApplication(create_backend_app)),
                                   threaded=True, request_handler=MotoRequestHandler)
        self.endpoint = f"http://127.0.0.1:{port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"ops": dict(self.ops), "bytes_in": self.bytes_in, "bytes_out": self.bytes_out}


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    ops = {op: after["ops"].get(op, 0) - before["ops"].get(op, 0) for op in OPS}
    return {"requests": sum(ops.values()), "ops": {k: v for k, v in ops.items() if v},
            "bytes_uploaded": after["bytes_in"] - before["bytes_in"],
            "bytes_downloaded": after["bytes_out"] - before["bytes_out"]}


def _bucket(server: CountingS3Server, client: Any, bucket: str) -> tuple[int, int]:
    """(objects, bytes) in the bucket, listed with counting paused."""
    server.counting = False
    try:
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return len(listed), sum(o["Size"] for o in listed)
    finally:
        server.counting = True


def run(tmp: Path) -> dict[str, Any]:
    import boto3

    from forkpoint.workflows.samples import write_samples

    with CountingS3Server() as server:
        creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FORKPOINT_", "AWS_"))}
        env.update(creds, FORKPOINT_S3_ENDPOINT=server.endpoint, FORKPOINT_HOME=str(tmp / "home"),
                   FORKPOINT_DATA=str(tmp / "data"), OMP_NUM_THREADS="1", COLUMNS="200")
        server.counting = False
        client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                              aws_access_key_id="bench", aws_secret_access_key="bench")
        client.create_bucket(Bucket="forkpoint-bench")
        server.counting = True
        url = "s3://forkpoint-bench/weights"
        samples = tmp / "samples"
        steps: list[tuple[str, list[str]]] = [
            ("init --store", ["init", "--resolution", "32", "--store", url]),
            ("add-task digits (new task, v1)", ["add-task", "digits", "--data", "digits", "--branch", "15:15", *QUICK, "--json"]),
            ("add-task digits (v2, same task)", ["add-task", "digits", "--data", "digits", "--branch", "14:15", "--seed", "1", *QUICK, "--json"]),
            ("add-task mnist (another task, v1)", ["add-task", "mnist", "--data", "mnist", "--branch", "15:15", *QUICK, "--json"]),
            ("predict 1 image (2 tasks live)", ["predict", str(samples / "3_0.png")]),
            ("audit --no-data", ["audit", "--no-data"]),
            ("gc --dry-run", ["gc", "--dry-run"]),
        ]
        forkpoint = str(Path(sys.executable).parent / "forkpoint")
        rows = []
        for name, args in steps:
            if args[0] == "predict" and not samples.exists():
                write_samples("digits", samples, data_root=tmp / "data")
            before = server.snapshot()
            done = subprocess.run([forkpoint, "-q", *args], env=env, capture_output=True, text=True, timeout=600)
            after = server.snapshot()
            if done.returncode != 0:
                raise SystemExit(f"forkpoint {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
            n, size = _bucket(server, client, "forkpoint-bench")
            row = {"step": name, **_delta(before, after), "bucket_objects": n, "bucket_bytes": size,
                   "bucket_bytes_added": size - (rows[-1]["bucket_bytes"] if rows else 0)}
            if args[0] == "add-task":
                row["weights_sha256"] = json.loads(done.stdout)["weights_sha256"]
            rows.append(row)
    return {"store": "moto S3 server (loopback), counted in the server", "url": url, "steps": rows}


def table(results: dict[str, Any]) -> str:
    lines = ["| command | S3 requests | by operation | uploaded | downloaded | storage added | bucket after |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for r in results["steps"]:
        ops = ", ".join(f"{k} {v}" for k, v in r["ops"].items())
        lines.append(f"| `{r['step']}` | {r['requests']} | {ops} | {_kb(r['bytes_uploaded'])} | "
                     f"{_kb(r['bytes_downloaded'])} | {_kb(r['bucket_bytes_added'])} | {_count(r['bucket_objects'], 'object')}, {_kb(r['bucket_bytes'])} |")
    m = results.get("machine", {})
    lines.append("")
    lines.append(f"Measured {m.get('date', '?')} on {m.get('host_cpu', '?')} ({m.get('cpu_count', '?')} cores), "
                 f"commit {m.get('git_commit', '?')}; results: `benchmarks/results/store/cpu.json`.")
    return "\n".join(lines)


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _kb(n: int) -> str:
    return f"{n / 1024:,.1f} KiB" if n >= 1024 else f"{n} B"


def publish(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(results, indent=2) + "\n")
    publish_block(DOC, BEGIN, END, table(results))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publish", action="store_true", help=f"write {RESULTS.relative_to(REPO)} and the table in docs/scale.md")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    import torch

    from forkpoint.benchmarks.machine import machine_info

    with tempfile.TemporaryDirectory(prefix="forkpoint-store-bench-") as tmp:
        results = {"machine": machine_info(torch.device("cpu")), **run(Path(tmp))}
    print(table(results))
    if args.publish:
        publish(results, args.out)


if __name__ == "__main__":
    main()
