"""Serving figures: requests/s and p50/p99 latency of ``forkpoint serve`` on loopback (docs/serving.md).

``python -m forkpoint.benchmarks.serving_bench [--quick] [--out DIR] [--publish]``

Setup (real, nothing synthetic): a fresh home with the embedded Lite0 at 64 px and 8 tasks
on the four built-in datasets (each twice, other seed), registered through the same
``add_task_version`` as ``forkpoint add-task`` with fixed late branches (13:16, 14:16,
15:16) and one short epoch, so setup takes about a minute. Requests carry one real test
image each (PNG bytes, decoded by the server like any upload).

For 1, 4 and 8 live tasks, two real uvicorn servers run side by side, each in its own
process with one torch thread: ``shared`` (the server as shipped: one forked pass over
every task, micro-batched) and ``separate`` (the same tasks as N separate full models,
each its own trunk copy, run one after another on the same micro-batches). Cells
alternate between the two, so a change in the machine's load hits both modes alike. The load generator is closed-loop and bounded: ``concurrency``
clients, each sending its next request when the previous answer arrives, for a fixed
time (after a warm-up), and at most ``max_requests`` requests; it always stops by itself.

``--publish`` writes ``benchmarks/results/serving/cpu.json`` and regenerates the table in
``docs/serving.md`` between its markers from that JSON (never edit the table by hand);
``--from-json FILE --publish`` regenerates them from an earlier run without measuring.
"""

from __future__ import annotations

import copy
import itertools
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import click

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "serving" / "cpu.json"
DOC = REPO / "docs" / "serving.md"
BEGIN = "<!-- serving:figures:begin (written by `python -m forkpoint.benchmarks.serving_bench --publish`; do not edit) -->"
END = "<!-- serving:figures:end -->"

DATASETS = ("mnist", "fashion", "digits", "animals")
BRANCHES = ((15, 16), (14, 16), (13, 16))
MODES = ("shared", "separate")  # half-open unit ranges of Lite0's 16 blocks: late forks


def task_plan(n: int) -> list[tuple[str, str, tuple[int, int], int]]:
    """(name, dataset, branch, seed) for the first ``n`` tasks: every dataset once, then again with seed 1."""
    plan = []
    for i in range(n):
        ds, again = DATASETS[i % len(DATASETS)], i >= len(DATASETS)
        plan.append((f"{ds}-b" if again else ds, ds, BRANCHES[i % len(BRANCHES)], int(again)))
    return plan


def build_home(home: Path, data_root: Path, n_tasks: int, limit: int, resolution: int = 64) -> list[dict]:
    """A fresh home with ``n_tasks`` real tasks (fixed branches, short training); what was registered."""
    from forkpoint.contract.branch import UnitRange
    from forkpoint.learner import add_task_config
    from forkpoint.workflows.datasets import load_task_data
    from forkpoint.workflows.home import init_home
    from forkpoint.workflows.render import branch_label
    from forkpoint.workflows.tasks import add_task_version

    made = []
    with init_home(home, resolution=resolution).home as h:
        for name, ds, (start, stop), seed in task_plan(n_tasks):
            t0 = time.perf_counter()
            data = load_task_data(ds, data_root, limit=limit, seed=seed, resolution=resolution, val_limit=max(2, limit // 2))
            cfg = add_task_config(epochs=1, min_steps=20, patience=0, augment_views=0, branch=UnitRange(start, stop),
                                  device="cpu", seed=seed)
            added = add_task_version(h, name, data, cfg, description="serving benchmark")
            made.append({"task": name, "data": ds, "branch": branch_label(added.version),
                         "test_acc": added.report.test_acc, "seconds": round(time.perf_counter() - t0, 1)})
            click.echo(f"  {name}: {made[-1]['branch']}, test acc {added.report.test_acc:.1%}, {made[-1]['seconds']} s", err=True)
    return made


# ---- the server under test (a child process) -----------------------------------------------------


class SeparateModels:
    """The same tasks as N separate full models: each task its own deep copy of the trunk and its branch.

    Duck-types what the batcher uses of a MultiTaskModel (``forward(x, tasks)``, ``backbone``,
    ``class_names``, ``tasks``); a pass over N tasks is N full passes, one per model."""

    def __init__(self, shared, versions: dict | None = None) -> None:
        from forkpoint.learner import MultiTaskModel

        self.versions = dict(versions or {})
        self.models = {}
        for t in shared.tasks:
            one = MultiTaskModel(shared.backbone)
            one.add(t, shared.branches[t], shared.class_names[t])
            self.models[t] = copy.deepcopy(one).eval()  # its own trunk and branch tensors
        self.class_names = dict(shared.class_names)
        self.backbone = next(iter(self.models.values())).backbone

    @property
    def tasks(self) -> list[str]:
        return list(self.models)

    def __call__(self, x, tasks=None, rows=None):
        return {t: self.models[t](x, tasks=[t])[t] for t in (tasks or self.tasks)}


def _serve(home: str, tasks: list[str], mode: str, port: int, ready, stop) -> None:
    """Child process: serve ``tasks`` from ``home`` on ``port`` until ``stop`` is set."""
    import torch
    import uvicorn

    from forkpoint.serving.app import ServeConfig, create_app
    from forkpoint.serving.model import Served
    from forkpoint.workflows.home import open_home
    from forkpoint.workflows.live import load_live_model

    torch.set_num_threads(1)
    app = create_app(lambda: open_home(home), ServeConfig(tasks=tuple(tasks), poll_s=1.0))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    follower = None
    while follower is None or not follower.ready:
        time.sleep(0.05)
        follower = getattr(app.state.server, "follower", None)
    if mode == "separate":
        shared = follower.current
        with open_home(home) as h:
            sep = SeparateModels(load_live_model(h, tasks=tasks).model, shared.live.versions)
        res = sep.backbone.preprocessing.resolution
        sep(torch.zeros(1, 3, res, res))  # warm the kernels, as load_served's probe does
        follower.replace(Served(sep, shared.fingerprint, shared.fingerprints))
    ready.set()
    stop.wait()
    server.should_exit = True
    thread.join(30)


# ---- the load generator ----------------------------------------------------------------------------


def _batch_stats(client) -> tuple[float, float]:
    text = client.get("/metrics").text
    values = {}
    for line in text.splitlines():
        if line.startswith(("forkpoint_batch_images_sum", "forkpoint_batch_images_count")):
            key, value = line.split()
            values[key] = float(value)
    return values.get("forkpoint_batch_images_sum", 0.0), values.get("forkpoint_batch_images_count", 0.0)


def drive(url: str, images: list[bytes], concurrency: int, seconds: float, warmup: float, max_requests: int) -> dict:
    """Closed-loop load: ``concurrency`` clients for ``seconds`` (after ``warmup``), at most ``max_requests``."""
    import httpx
    import numpy as np

    lock, latencies, errors = threading.Lock(), [], [0]
    counter = itertools.count()
    start = time.perf_counter() + warmup
    deadline = start + seconds

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while time.perf_counter() < deadline:
                n = next(counter)
                if n >= max_requests:
                    return
                t0 = time.perf_counter()
                r = c.post("/v1/predict", files=[("images", (f"{n}.png", images[n % len(images)], "image/png"))])
                dt = time.perf_counter() - t0
                if t0 >= start:
                    with lock:
                        if r.status_code == 200:
                            latencies.append(dt)
                        else:
                            errors[0] += 1

    with httpx.Client(base_url=url, timeout=60) as probe:
        threads = [threading.Thread(target=client) for _ in range(concurrency)]
        for t in threads:
            t.start()
        time.sleep(warmup)
        s0, c0 = _batch_stats(probe)
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        s1, c1 = _batch_stats(probe)
    lat = np.array(latencies) * 1000
    return {"requests": len(latencies), "errors": errors[0], "seconds": round(elapsed, 2),
            "rps": round(len(latencies) / elapsed, 2) if elapsed > 0 else None,
            "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
            "mean_batch_images": round((s1 - s0) / (c1 - c0), 2) if c1 > c0 else None}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(home: Path, tasks: list[str], images: list[bytes], concurrencies: tuple[int, ...],
            seconds: float, warmup: float, max_requests: int) -> list[dict]:
    """Both servers for ``tasks`` (shared, separate) side by side; cells alternate between them, so a
    change in the machine's load hits both modes alike."""
    ctx = mp.get_context("spawn")
    stop, servers = ctx.Event(), {}
    for mode in MODES:
        ready, port = ctx.Event(), _free_port()
        child = ctx.Process(target=_serve, args=(str(home), tasks, mode, port, ready, stop), daemon=True)
        child.start()
        servers[mode] = (child, ready, port)
    try:
        for mode, (child, ready, _) in servers.items():
            if not ready.wait(300):
                raise RuntimeError(f"the {mode} server for {len(tasks)} task(s) did not start in 300 s")
        rows = []
        for c in concurrencies:
            for mode, (_, _, port) in servers.items():
                row = {"tasks": len(tasks), "mode": mode, "concurrency": c,
                       **drive(f"http://127.0.0.1:{port}", images, c, seconds, warmup, max_requests)}
                click.echo(f"  {len(tasks)} task(s), {mode}, concurrency {c}: {row['rps']} req/s, "
                           f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, batch {row['mean_batch_images']}", err=True)
                rows.append(row)
        return rows
    finally:
        stop.set()
        for child, _, _ in servers.values():
            child.join(60)
            if child.is_alive():
                child.kill()


# ---- figures --------------------------------------------------------------------------------------


def render(rec: dict) -> str:
    """The docs table for one results record (the only way the table is written)."""
    m = rec["machine"]
    lines = [
        f"Measured by `python -m forkpoint.benchmarks.serving_bench{' --quick' if rec['quick'] else ''} --publish` on "
        f"{m['cpu_count']} CPU cores ({m['host_cpu']}), server with 1 torch thread, load generator on the same machine; "
        f"{m['date'][:10]}, commit {m['git_commit']}; load average {m['load_avg_1m_at_start']} at start, "
        f"{m['load_avg_1m_at_end']} at end (other jobs shared the machine). {rec['resolution']} px, one image per request, "
        f"{rec['seconds_per_cell']} s per cell after {rec['warmup_s']} s warm-up. "
        f"Figures: [benchmarks/results/serving/cpu.json](../benchmarks/results/serving/cpu.json).",
        "",
        "| live tasks | concurrency | shared: req/s | p50 ms | p99 ms | images/pass | N separate models: req/s | p50 ms | p99 ms | shared / separate req/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(r["tasks"], r["mode"], r["concurrency"]): r for r in rec["results"]}
    for n, c in sorted({(r["tasks"], r["concurrency"]) for r in rec["results"]}):
        s, p = by.get((n, "shared", c), {}), by.get((n, "separate", c), {})
        ratio = f"{s['rps'] / p['rps']:.2f}x" if s.get("rps") and p.get("rps") else "-"
        cells = [str(n), str(c), *(_fmt(s.get(k)) for k in ("rps", "p50_ms", "p99_ms", "mean_batch_images")),
                 *(_fmt(p.get(k)) for k in ("rps", "p50_ms", "p99_ms")), ratio]
        lines.append("| " + " | ".join(cells) + " |")
    costs = ", ".join(f"{n} task(s): {c['shared']:.0f}% vs {c['separate']:.0f}%" for n, c in sorted(
        ((int(k), v) for k, v in rec["cost_pct"].items())))
    errors = sum(r["errors"] for r in rec["results"])
    lines += ["", f"Compute per image (% of one trunk pass, shared pass vs N separate models): {costs}. "
              f"Failed requests: {errors}."]
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.1f}" if isinstance(v, float) else str(v))


def publish_figures(rec: dict, results: Path = RESULTS, doc: Path = DOC) -> None:
    """Write the record, then regenerate the docs table from the written JSON."""
    from forkpoint.contract.atomic import write_text
    from forkpoint.contract.docblock import publish_block

    write_text(results, json.dumps(rec, indent=1) + "\n")
    publish_block(doc, BEGIN, END, render(json.loads(results.read_text())))


def run(quick: bool, out: Path, data_root: Path) -> dict:
    import torch

    from forkpoint.benchmarks.machine import machine_info
    from forkpoint.workflows.home import open_home
    from forkpoint.workflows.live import load_live_model
    from forkpoint.workflows.samples import write_samples

    counts = (1, 4) if quick else (1, 4, 8)
    concurrencies = (1, 16)
    seconds, warmup, max_requests = (2.0, 0.5, 2000) if quick else (6.0, 1.0, 20000)
    torch.set_num_threads(1)
    info = machine_info(torch.device("cpu"))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="forkpoint-serving-bench-") as tmp:
        home = Path(tmp) / "home"
        click.echo(f"registering {max(counts)} tasks in {home}", err=True)
        made = build_home(home, data_root, max(counts), limit=10 if quick else 20)
        names = [m["task"] for m in made]
        images = [p.read_bytes() for ds in DATASETS for p in write_samples(ds, Path(tmp) / "samples" / ds, data_root=data_root)[:4]]
        with open_home(home) as h:
            live = load_live_model(h)
            cost = {str(n): {"shared": round(live.model.total_cost_pct(names[:n]), 1), "separate": 100.0 * n} for n in counts}
        results = []
        for n in counts:
            results += measure(home, names[:n], images, concurrencies, seconds, warmup, max_requests)
    try:
        load_end = round(os.getloadavg()[0], 2)
    except OSError:
        load_end = None
    rec = {"machine": {**{k: info.get(k) for k in ("date", "host_cpu", "cpu_count", "torch", "git_commit", "load_avg_1m_at_start")},
                       "load_avg_1m_at_end": load_end, "server_torch_threads": 1},
           "quick": quick, "resolution": 64, "seconds_per_cell": seconds, "warmup_s": warmup, "max_requests": max_requests,
           "request": "POST /v1/predict, one real test image (PNG), every live task", "tasks": made,
           "cost_pct": cost, "results": results, "total_seconds": round(time.perf_counter() - started, 1)}
    out.mkdir(parents=True, exist_ok=True)
    (out / ("cpu-quick.json" if quick else "cpu.json")).write_text(json.dumps(rec, indent=1) + "\n")
    return rec


@click.command()
@click.option("--quick", is_flag=True, help="1 and 4 tasks, 2 s per cell (about 2 minutes).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("serving-bench"), show_default=True,
              help="Where the results JSON is written.")
@click.option("--publish", is_flag=True, help="Also write benchmarks/results/serving/cpu.json and the table in docs/serving.md.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"),
              show_default=True)
@click.option("--from-json", "from_json", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Do not measure: render (and with --publish, publish) this earlier results file.")
def serving_bench(quick: bool, out: Path, publish: bool, data_root: Path, from_json: Path | None) -> None:
    """Requests/s and p50/p99 latency of `forkpoint serve` for 1, 4, 8 tasks vs N separate models."""
    rec = json.loads(from_json.read_text()) if from_json is not None else run(quick, out, data_root)
    if publish:
        publish_figures(rec)
    click.echo(render(rec))


def main(argv: list[str] | None = None) -> None:
    """The entry point, with the CLI's error contract: a ForkpointError is one line and its exit code."""
    from forkpoint.contract.errors import ForkpointError

    try:
        serving_bench.main(args=sys.argv[1:] if argv is None else argv, prog_name="serving_bench", standalone_mode=False)
    except ForkpointError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)


if __name__ == "__main__":
    main()
