"""Is the thread count add-task picks right? One add-task-shaped workload at 1 and 2 threads, idle and busy.

``python -m forkpoint.benchmarks.threads_check [--out FILE]``: on this machine's cores, times
(a) a branch training step on cached activations (batch 64, units 13:16 of Lite0 at 64 px) and
(b) a trunk forward over 256 images, at 1 and 2 torch threads, first on idle cores, then
with one busy-looping process per core but one (a second job on a 2-core machine). Each
cell is a child process, so OpenMP's pool is fresh. Prints what ``workflows.threads``
would pick in each state and which thread count was faster.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import click

CHILD = r"""
import json, sys, time, torch
threads = int(sys.argv[1]); torch.set_num_threads(threads)
from forkpoint.learner import Branch, load_backbone
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.train import TrainConfig, fit
bb = load_backbone(resolution=64)
g = torch.Generator().manual_seed(0)
x = torch.randn(256, 3, 64, 64, generator=g); y = torch.arange(256) % 10
with torch.inference_mode():
    bb(x[:64])
    t0 = time.perf_counter(); bb(x); fwd = time.perf_counter() - t0
train, val = PrefixCache(bb, x, torch.device("cpu")), PrefixCache(bb, x[:64], torch.device("cpu"))
train.warm([13]); val.warm([13])
cfg = TrainConfig(epochs=1, batch_size=64, min_steps=12, max_evals=1, bn_adapt=True)
branch = Branch.new(bb, 13, 16, 10)
r = fit(bb, branch, train, y, val, y[:64], cfg)
print(json.dumps({"threads": threads, "forward_images_per_s": 256 / fwd, "train_step_s": r.seconds / r.steps}))
"""


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def _cell(threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads)], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(busy: int) -> dict:
    from forkpoint.workflows.threads import pick_threads

    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        if busy:
            time.sleep(20)  # let the 1-minute load average see the busy cores
        picked = pick_threads()
        load = os.getloadavg()[0]
        cells = [_cell(t) for t in (1, 2)]
    finally:
        stop.set()
        for p in spinners:
            p.join(5)
    return {"busy_processes": busy, "load_1m": round(load, 2), "picked": picked, "cells": cells}


@click.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the results JSON here.")
def main(out: Path | None) -> None:
    from forkpoint.contract.atomic import write_text
    from forkpoint.contract.docblock import git_describe

    cores = os.cpu_count() or 1
    states = [measure(0), measure(max(1, cores - 1))]
    rec = {"cores": cores, "git_commit": git_describe(), "states": states}
    for s in states:
        by = {c["threads"]: c for c in s["cells"]}
        best = min(by, key=lambda t: by[t]["train_step_s"])
        click.echo(f"busy processes {s['busy_processes']} (load {s['load_1m']}): picks {s['picked']} thread(s); "
                   + "; ".join(f"{t} thread(s): step {by[t]['train_step_s'] * 1000:.0f} ms, forward {by[t]['forward_images_per_s']:.0f} img/s"
                               for t in sorted(by)) + f"; fastest step: {best}")
    if out is not None:
        write_text(out, json.dumps(rec, indent=1) + "\n")


if __name__ == "__main__":
    main()
