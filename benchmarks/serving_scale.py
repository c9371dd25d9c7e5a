"""Serving many tasks: `forkpoint serve` with 1, 10, 100 and 1,000 live tasks (docs/serving.md, issue 27).

``python -m forkpoint.benchmarks.serving_scale [--counts 1,10,100,1000] [--publish]``

The home (real, built cheaply): the embedded Lite0 at 32 px; five real trainings through
``add_task_version`` (as ``forkpoint add-task``: fixed branches, one short epoch on a few
images per class): ``mnist`` v1 (15:15) and v2 (14:15, live: a rollback target), ``fashion``
13:15, ``digits`` probe, ``animals`` 14:15. Every further task is a copy of one of the four
live trained branches (rotating, so the forks are 15, 13, probe and 14), registered through
``Registry.add_version`` with a real row, seal, audit event and its own weights file (the
file names its task, so no two tasks share one). The home grows 1 -> 10 -> 100 -> 1,000.

Per N, a real ``forkpoint serve`` process (``--threads 1``, ``--cache-mb``) on loopback:
process start to ``/readyz`` 200, resident memory (ready; after the one-task requests;
after the all-task ones; peak), one-task requests (each for another task, rotating through
all of them) and all-task requests at concurrency 1 and 16 (p50/p99; a closed loop,
fixed request counts), the time from ``rollback mnist`` in another handle to ``/readyz``
serving v1, and ``forkpoint tasks --json`` / ``audit --no-data`` wall times. In process:
the N=8 shared pass against 8 separate models (each its own trunk) at batch 1 and 64, and
per N the stacked same-range tails against the per-task loop (CPU time, min of repeats).
``--publish`` writes ``benchmarks/results/serving/scale.json``, the block in
docs/serving.md and ``benchmarks/results/serving/scale.png``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click

from forkpoint.benchmarks.serving_bench import SeparateModels, _free_port

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results" / "serving" / "scale.json"
PLOT = REPO / "benchmarks" / "results" / "serving" / "scale.png"
DOC = REPO / "docs" / "serving.md"
BEGIN = "<!-- serving-scale:figures:begin (written by `python -m forkpoint.benchmarks.serving_scale --publish`; do not edit) -->"
END = "<!-- serving-scale:figures:end -->"
FORKPOINT = Path(sys.executable).parent / "forkpoint"
FIRST = (("mnist", "mnist", (14, 15)), ("mnist", "mnist", (15, 15)))  # name, data, --branch (inclusive): v2 live
THEN = (("fashion", "fashion", (13, 15)), ("digits", "digits", "probe"), ("animals", "animals", (14, 15)))


def train(home: Path, data_root: Path, plan, limit: int = 6) -> list[tuple[str, object, dict]]:
    """Real trainings (``forkpoint add-task``'s path) in ``home`` (created on first use); (task, report, weights) of each."""
    from forkpoint.contract.branch import UnitRange
    from forkpoint.learner import add_task_config
    from forkpoint.workflows.datasets import load_task_data
    from forkpoint.workflows.home import init_home
    from forkpoint.workflows.tasks import add_task_version

    live: dict[str, tuple[object, dict, object]] = {}
    with init_home(home, resolution=32).home as h:
        for name, ds, branch in plan:
            data = load_task_data(ds, data_root, limit=limit, seed=0, resolution=32, val_limit=3)
            rng = UnitRange.probe(h.backbone.num_blocks) if branch == "probe" else UnitRange(branch[0], branch[1] + 1)
            cfg = add_task_config(epochs=1, min_steps=5, patience=0, augment_views=0, branch=rng, device="cpu")
            added = add_task_version(h, name, data, cfg, description="serving scale benchmark")
            live[name] = (added.report, added.live.model.branches[name].tensors(), data)
            click.echo(f"  trained {name} v{added.version.version} ({added.version.branch_start}:{added.version.branch_stop})",
                       err=True)
    return [(n, rep, {"tensors": t, "data_md5": d.md5, "data_path": d.path}) for n, (rep, t, d) in live.items()]


def grow(home: Path, base: list, n: int) -> float:
    """Register copies until ``n`` tasks are live; seconds spent."""
    from forkpoint.workflows.home import open_home

    t0 = time.perf_counter()
    with open_home(home) as h:
        have = len(h.registry.live_versions())
        for i in range(have, n):
            task, report, src = base[i % len(base)]
            draft = report.draft(h.fingerprint, src["tensors"], data_md5=src["data_md5"], data_path=src["data_path"],
                                 description=f"serving scale benchmark: a copy of {task}'s trained branch")
            h.registry.add_version(f"copy-{i:04d}", draft, actor="bench")
    return time.perf_counter() - t0


# ---- the server under test ------------------------------------------------------------------------


def _rss_mb(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return out


def _requests(url: str, image: bytes, task_lists: list[str | None], concurrency: int) -> dict:
    """Closed loop: ``concurrency`` clients send the requests in order (``tasks`` field per request); p50/p99 ms."""
    import httpx
    import numpy as np

    lock, lat, errors, todo = threading.Lock(), [], [0], list(enumerate(task_lists))

    def client() -> None:
        with httpx.Client(base_url=url, timeout=600) as c:
            while True:
                with lock:
                    if not todo:
                        return
                    n, tasks = todo.pop(0)
                data = {"tasks": tasks} if tasks else {}
                t0 = time.perf_counter()
                r = c.post("/v1/predict", files=[("images", (f"{n}.png", image, "image/png"))], data=data)
                with lock:
                    (lat.append(time.perf_counter() - t0) if r.status_code == 200 else errors.__setitem__(0, errors[0] + 1))

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = np.array(lat) * 1000
    return {"requests": len(lat), "errors": errors[0], "seconds": round(time.perf_counter() - t0, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None}


def measure_server(home: Path, names: list[str], image: bytes, cache_mb: float, counts: dict[str, int]) -> dict:
    import httpx

    from forkpoint.registry import Registry

    port = _free_port()
    env = {**os.environ, "FORKPOINT_HOME": str(home)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(FORKPOINT), "--threads", "1", "-q", "serve", "--port", str(port), "--cache-mb", str(cache_mb),
                             "--poll-s", "0.1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    row: dict = {}
    try:
        with httpx.Client(base_url=url, timeout=60) as c:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"forkpoint serve exited: {proc.stderr.read()[-2000:]}")
                try:
                    if c.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            row["start_s"] = round(time.perf_counter() - t0, 2)
            row["rss_ready_mb"] = _rss_mb(proc.pid)["VmRSS"]
            n = len(names)
            stride = 7 if n % 7 else 1  # rotate through the tasks in an order that mixes fork points
            for conc in (1, 16):
                k = counts["one"] * (1 if conc == 1 else 2)
                row[f"one_c{conc}"] = _requests(url, image, [names[(i * stride) % n] for i in range(k)], conc)
            row["rss_after_one_mb"] = _rss_mb(proc.pid)["VmRSS"]
            for conc in (1, 16):
                row[f"all_c{conc}"] = _requests(url, image, [None] * (counts["all"] * (1 if conc == 1 else 2)), conc)
            mem = _rss_mb(proc.pid)
            row["rss_after_all_mb"], row["rss_peak_mb"] = mem["VmRSS"], mem["VmHWM"]
            with Registry.open(home) as reg:
                reg.rollback("mnist", to=1, actor="bench")
                t1 = time.perf_counter()
                while c.get("/readyz").json()["versions"].get("mnist") != 1:
                    time.sleep(0.01)
                row["reload_after_rollback_s"] = round(time.perf_counter() - t1, 3)
                reg.promote("mnist", 2, actor="bench")
                while c.get("/readyz").json()["versions"].get("mnist") != 2:
                    time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return row


def cli_times(home: Path) -> dict:
    env = {**os.environ, "FORKPOINT_HOME": str(home)}
    out = {}
    for key, args in (("tasks_s", ["tasks", "--json"]), ("audit_s", ["audit", "--no-data", "--json"])):
        t0 = time.perf_counter()
        r = subprocess.run([str(FORKPOINT), "--threads", "1", *args], env=env, capture_output=True, text=True, timeout=900)
        out[key] = round(time.perf_counter() - t0, 2)
        out[key.replace("_s", "_exit")] = r.returncode
    return out


# ---- in process: the shared pass against separate models, and stacked against the loop -------------------


def _cpu_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        c = time.process_time()
        fn()
        best = min(best, time.process_time() - c)
    return round(best * 1000, 2)


def compute_figures(home: Path, n: int, repeats: int, separate: bool) -> dict:
    import torch

    from forkpoint.learner.forkpass import shared_pass
    from forkpoint.workflows.branch_cache import BranchCache
    from forkpoint.workflows.home import open_home
    from forkpoint.workflows.live import LiveSet, live_records, load_live_model

    out: dict = {}
    with open_home(home) as h:
        versions = live_records(h)
        live = LiveSet.of(h, versions, BranchCache(h))
        branches = live.branches(live.tasks)
        x1 = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        out["all_tasks_batch1_ms"] = {"stacked": _cpu_ms(lambda: live(x1), repeats),
                                      "loop": _cpu_ms(lambda: shared_pass(h.backbone, branches, x1, None), repeats)}
        if separate:
            names = live.tasks[:8]
            sep = SeparateModels(load_live_model(h, tasks=names).model)
            for b in (1, 64):
                x = torch.randn(b, 3, 32, 32, generator=torch.Generator().manual_seed(b))
                shared, alone = _cpu_ms(lambda: live(x, names), repeats), _cpu_ms(lambda: sep(x), repeats)
                out[f"eight_batch{b}_ms"] = {"shared": shared, "separate": alone, "speedup": round(alone / shared, 2)}
    return out


# ---- figures ------------------------------------------------------------------------------------------


def render(rec: dict) -> str:
    m = rec["machine"]
    lines = [
        f"Measured by `python -m forkpoint.benchmarks.serving_scale --publish` on {m['cpu_count']} CPU cores ({m['host_cpu']}), "
        f"{m['date'][:10]}, commit {m['git_commit']}; load average {m['load_avg_1m_at_start']} at start, "
        f"{m['load_avg_1m_at_end']} at end (other jobs shared the machine: compare ratios, not absolute times). "
        f"32 px, server `--threads 1 --cache-mb {rec['cache_mb']:g}`, one image per request. "
        f"Figures: [benchmarks/results/serving/scale.json](../benchmarks/results/serving/scale.json), "
        f"plot: [scale.png](../benchmarks/results/serving/scale.png).",
        "",
        "| live tasks | start to ready s | RSS ready / after one-task / after all-task MB | one task p50 / p99 ms (c=1) | (c=16) | all tasks p50 / p99 ms (c=1) | (c=16) | reload after a rollback s | `tasks` s | `audit --no-data` s | all tasks, CPU ms: stacked / loop |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rec["results"]:
        pq = lambda k: f"{r[k]['p50_ms']} / {r[k]['p99_ms']}"  # noqa: E731
        cpu = r["compute"]["all_tasks_batch1_ms"]
        lines.append(f"| {r['tasks']} | {r['start_s']} | {r['rss_ready_mb']:.0f} / {r['rss_after_one_mb']:.0f} / "
                     f"{r['rss_after_all_mb']:.0f} | {pq('one_c1')} | {pq('one_c16')} | {pq('all_c1')} | {pq('all_c16')} | "
                     f"{r['reload_after_rollback_s']} | {r['tasks_s']} | {r['audit_s']} | "
                     f"{cpu['stacked']} / {cpu['loop']} ({cpu['loop'] / cpu['stacked']:.1f}x) |")
    eight = rec.get("eight") or {}
    if eight:
        lines += ["", "Eight tasks in one shared pass against 8 separate models (each its own trunk), CPU ms per pass: " + ", ".join(
            f"batch {b}: {eight[f'eight_batch{b}_ms']['shared']} vs {eight[f'eight_batch{b}_ms']['separate']} "
            f"(**{eight[f'eight_batch{b}_ms']['speedup']}x**)" for b in (1, 64)) + "."]
    lines += ["", "One-task requests each name another task, rotating through all of them (24 at c=1, 48 at c=16): "
              "with 100 or more tasks every one is the first request for its task, so its latency includes reading, "
              "verifying and building that branch (cold); with 1 or 10 most are warm. The all-task p99 is the first, "
              "cold request (every branch read and verified, the stacked groups built); p50 the warm ones. "
              "RSS includes the Python process (torch, FastAPI: about 0.9 GB before any branch)."]
    if (re := rec.get("reload_in_process")) is not None:
        lines += ["", f"After this run the follower stopped re-checking unchanged rows on a reload (only moved tasks' rows "
                  f"are read): measured in process on a fresh 1,000-task home ({re['commit']}, load {re['load_avg_1m']}), "
                  f"a reload after one rollback took {re['reload_after_rollback_s']} s (checking all 1,000 rows alone: "
                  f"{re['all_rows_checked_s']} s), the first load {re['first_load_s']} s (imports excluded)."]
    lines += ["", f"Failed requests: {sum(r[k]['errors'] for r in rec['results'] for k in ('one_c1', 'one_c16', 'all_c1', 'all_c16'))}. "
              f"Registering the copies took {rec['grow_s']} s in all."]
    return "\n".join(lines)


def plot(rec: dict, path: Path = PLOT) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["tasks"] for r in rec["results"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("one_c1", "one task, c=1"), ("one_c16", "one task, c=16"), ("all_c1", "all tasks, c=1"),
                       ("all_c16", "all tasks, c=16")):
        a.plot(ns, [r[key]["p50_ms"] for r in rec["results"]], marker="o", label=f"{label} (p50)")
    a.set(xscale="log", yscale="log", xlabel="live tasks", ylabel="latency ms", title="request latency")
    a.legend(fontsize=8)
    for key, label in (("rss_ready_mb", "ready"), ("rss_after_one_mb", "after one-task requests"),
                       ("rss_after_all_mb", "after all-task requests")):
        b.plot(ns, [r[key] for r in rec["results"]], marker="o", label=label)
    b.axhline(rec["cache_mb"], color="grey", ls="--", lw=1, label=f"--cache-mb {rec['cache_mb']:g}")
    b.set(xscale="log", xlabel="live tasks", ylabel="resident MB", title="server memory")
    b.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)


def publish(rec: dict) -> None:
    from forkpoint.contract.atomic import write_text
    from forkpoint.contract.docblock import publish_block

    write_text(RESULTS, json.dumps(rec, indent=1) + "\n")
    saved = json.loads(RESULTS.read_text())
    plot(saved)
    publish_block(DOC, BEGIN, END, render(saved))


def run(counts: list[int], data_root: Path, cache_mb: float, repeats: int) -> dict:
    import torch

    from forkpoint.benchmarks.machine import machine_info
    from forkpoint.workflows.home import open_home
    from forkpoint.workflows.samples import write_samples

    torch.set_num_threads(1)
    info = machine_info(torch.device("cpu"))
    started = time.perf_counter()
    results, grow_s = [], 0.0
    with tempfile.TemporaryDirectory(prefix="forkpoint-serving-scale-") as tmp:
        home = Path(tmp) / "home"
        base = train(home, data_root, FIRST)  # mnist v1, v2: the one-task home
        image = write_samples("mnist", Path(tmp) / "samples", data_root=data_root)[0].read_bytes()
        for n in sorted(counts):
            if n > 1 and len(base) == 1:
                base += train(home, data_root, THEN)
            grow_s += grow(home, base, n)
            with open_home(home) as h:
                names = list(h.registry.live_versions())
            reqs = {"one": 24, "all": 12 if n <= 10 else (6 if n <= 100 else 3)}
            click.echo(f"N={n}: serving ...", err=True)
            row = {"tasks": n, **measure_server(home, names, image, cache_mb, reqs), **cli_times(home)}
            row["compute"] = compute_figures(home, n, repeats if n < 1000 else 1, separate=False)
            results.append(row)
            click.echo(f"  {json.dumps(row)}", err=True)
        if len(base) == 1:
            base += train(home, data_root, THEN)
        grow_s += grow(home, base, 8)
        eight = compute_eight(home, repeats)
    return {"machine": {**{k: info.get(k) for k in ("date", "host_cpu", "cpu_count", "torch", "git_commit", "load_avg_1m_at_start")},
                        "load_avg_1m_at_end": round(os.getloadavg()[0], 2), "server_torch_threads": 1},
            "cache_mb": cache_mb, "resolution": 32, "repeats": repeats, "grow_s": round(grow_s, 1),
            "trained": [t for t, _, _ in base], "results": results, "eight": eight,
            "total_seconds": round(time.perf_counter() - started, 1)}


def compute_eight(home: Path, repeats: int) -> dict:
    """N=8: the first eight live tasks (forks 15, 13, probe, 14, then copies of the same) shared vs separate."""
    return {k: v for k, v in compute_figures(home, 8, repeats, separate=True).items() if k.startswith("eight")}


@click.command()
@click.option("--counts", default="1,10,100,1000", show_default=True, help="Live-task counts to measure (comma-separated).")
@click.option("--cache-mb", type=float, default=8192, show_default=True, help="The server's --cache-mb.")
@click.option("--repeats", type=int, default=3, show_default=True, help="Repeats of each in-process CPU timing (min).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"),
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("serving-scale.json"), show_default=True)
@click.option("--publish", "do_publish", is_flag=True, help="Write the committed JSON, the docs block and the plot.")
@click.option("--from-json", "from_json", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Do not measure: render (with --publish, publish) this earlier results file.")
def serving_scale(counts: str, cache_mb: float, repeats: int, data_root: Path, out: Path, do_publish: bool,
                  from_json: Path | None) -> None:
    """Server start, memory, latency, reload and listing times for 1 to 1,000 live tasks."""
    rec = json.loads(from_json.read_text()) if from_json else run([int(c) for c in counts.split(",")], data_root, cache_mb, repeats)
    if from_json is None:
        out.write_text(json.dumps(rec, indent=1) + "\n")
    if do_publish:
        publish(rec)
    click.echo(render(rec))


if __name__ == "__main__":
    serving_scale()
