"""The README tutorial, run as written and timed, so the README's duration is a measurement.

``python -m forkpoint.workflows.tutorial_timing [--publish]`` reads the tutorial's code
block from README.md, runs every command in a fresh temporary HOME and working folder
(``forkpoint`` is the venv's; a line ending in ``&`` starts in the background and the run
waits for the server's /readyz before the next line), stops at the first command that
fails (exit 1), and writes the per-command seconds. ``--publish`` writes
``benchmarks/results/tutorial/cpu.json`` and regenerates the README's ``tutorial:timing``
block from it (clean commits only, as every publisher).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import click

from forkpoint.contract.atomic import write_text
from forkpoint.contract.docblock import REPO, git_describe, publish_results, require_publishable
from forkpoint.contract.errors import ConfigError

README = REPO / "README.md"
RESULTS = REPO / "benchmarks" / "results" / "tutorial" / "cpu.json"
HEADING = "## Tutorial"
BEGIN, END = ("<!-- tutorial:timing:begin (written by `python -m forkpoint.workflows.tutorial_timing --publish`; do not edit) -->",
              "<!-- tutorial:timing:end -->")
READY_TIMEOUT_S = 300


def tutorial_commands(readme: str) -> list[str]:
    """The shell commands of the README's first code block under the tutorial heading, comments dropped."""
    if HEADING not in readme:
        raise ConfigError(f"README.md has no '{HEADING}' section: restore the heading")
    section = readme.split(HEADING, 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    if match is None:
        raise ConfigError("the README tutorial has no ```bash block")
    out = []
    for line in match.group(1).splitlines():
        code = _strip_comment(line).strip()
        if code:
            out.append(code)
    return out


def _strip_comment(line: str) -> str:
    """``line`` without its shell comment: a ``#`` that starts a word, outside quotes."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _wait_ready(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the background server exited with {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"the server was not ready within {READY_TIMEOUT_S} s")


def run_tutorial(commands: list[str], venv_bin: Path, echo=print) -> dict:
    """Run ``commands`` in a fresh HOME and folder; per-command seconds, or the first failure."""
    steps, background = [], []
    with tempfile.TemporaryDirectory(prefix="forkpoint-tutorial-") as tmp:
        env = {**os.environ, "HOME": tmp, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
               "FORKPOINT_TUTORIAL_RUN": "1"}
        env.pop("FORKPOINT_HOME", None)
        t_all = time.perf_counter()
        try:
            for i, cmd in enumerate(commands, 1):
                echo(f"[{i}/{len(commands)}] {cmd}")
                t0 = time.perf_counter()
                if cmd.startswith("export ") and "=" in cmd:
                    name, value = cmd[len("export "):].split("=", 1)
                    value = value.strip()
                    env[name.strip()] = tmp + value[1:] if value.startswith("~") else value  # ~ is the fresh HOME
                    rc, why = 0, ""
                elif cmd.endswith("&"):
                    proc = subprocess.Popen(["bash", "-c", "exec " + cmd[:-1].strip()], cwd=tmp, env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    background.append(proc)
                    _wait_ready(8000, proc)
                    rc, why = 0, ""
                else:
                    done = subprocess.run(["bash", "-c", cmd], cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True)
                    rc, why = done.returncode, (done.stderr.strip().splitlines() or [""])[-1]
                steps.append({"command": cmd, "seconds": round(time.perf_counter() - t0, 2), "exit_code": rc})
                if rc != 0:
                    raise RuntimeError(f"tutorial command {i} failed with exit {rc}: {cmd} ({why})")
        finally:
            for proc in background:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        total = time.perf_counter() - t_all
    return {"steps": steps, "seconds": round(total, 1)}


def record(result: dict) -> dict:
    import torch

    from forkpoint.benchmarks.machine import machine_info

    info = machine_info(torch.device("cpu"))
    machine = {k: info.get(k) for k in ("date", "host_cpu", "cpu_count", "torch")}
    machine["git_commit"] = git_describe()
    machine["load_avg_1m_at_start"] = result.pop("load_at_start")
    return {"machine": machine, **result}


def render(rec: dict) -> str:
    """The README line for one timed tutorial run."""
    m = rec["machine"]
    slowest = sorted(rec["steps"], key=lambda s: -s["seconds"])[:3]
    top = "; ".join(f"`{' '.join(s['command'].split()).split(' --')[0]}` {s['seconds']:.0f} s" for s in slowest)
    return (f"Measured by `python -m forkpoint.workflows.tutorial_timing --publish` on {m['cpu_count']} CPU cores "
            f"({m['host_cpu']}, load {m['load_avg_1m_at_start']:.1f} at start, {m['date'][:10]}, commit {m['git_commit']}): "
            f"the {len(rec['steps'])} commands below took **{rec['seconds'] / 60:.1f} minutes** in all, run as written in a "
            f"fresh home; slowest: {top}. Figures: [benchmarks/results/tutorial/cpu.json](benchmarks/results/tutorial/cpu.json).")


@click.command()
@click.option("--publish", is_flag=True, help="Write benchmarks/results/tutorial/cpu.json and regenerate the README line.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Also write the record here.")
def main(publish: bool, out: Path | None) -> None:
    if publish:
        require_publishable()  # before the run: figures only from a clean commit
    commands = tutorial_commands(README.read_text())
    load = os.getloadavg()[0]
    try:
        result = run_tutorial(commands, Path(sys.executable).parent, echo=lambda s: click.echo(s, err=True))
    except RuntimeError as exc:
        raise SystemExit(f"error: {exc}")
    rec = record({**result, "load_at_start": round(load, 2)})
    text = json.dumps(rec, indent=1) + "\n"
    if out is not None:
        write_text(out, text)
    if publish:
        publish_results(RESULTS, text, README, BEGIN, END, render(rec))
    click.echo(render(rec))


if __name__ == "__main__":
    main()
