"""Running the suite: set up once, run the chosen sections in order, write every output."""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from forkpoint.benchmarks.backbones import build_backbone
from forkpoint.benchmarks.context import BenchContext
from forkpoint.benchmarks.machine import machine_info
from forkpoint.benchmarks.plots import plot_section
from forkpoint.benchmarks.report import publish, write_json, write_markdown
from forkpoint.benchmarks.settings import SECTIONS, BenchSettings
from forkpoint.benchmarks.tables import to_rich
from forkpoint.benchmarks.targets import evaluate, table as targets_table
from forkpoint.contract.errors import ConfigError
from forkpoint.learner.device import resolve_device


def section_module(name: str):
    if name not in SECTIONS:
        raise ConfigError(f"unknown benchmark section '{name}': use one of {', '.join(SECTIONS)}")
    return importlib.import_module(f"forkpoint.benchmarks.sections.{name}")


def run_suite(
    settings: BenchSettings,
    out: Path,
    only: tuple[str, ...] = (),
    console: Console | None = None,
    data_root: Path = Path("data"),
    publish_results: bool = False,
    show_progress: bool = True,
) -> dict:
    """Run ``only`` (default: every section) and write results.json, results.md and bench-*.png under ``out``."""
    console = console or Console()
    sections = [s for s in SECTIONS if not only or s in only]
    for name in only:
        section_module(name)  # unknown names fail before any work
    device = resolve_device(settings.device)
    settings = replace(settings, device=str(device))
    if device.type == "cpu":
        torch.set_num_threads(settings.threads)
    backbone = build_backbone(settings.arch, settings.weights, settings.resolution).to(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine_info(device), "settings": settings.to_dict(), "backbone": {
        k: v for k, v in backbone.describe().items() if k != "block_names"} | {"num_blocks": backbone.num_blocks},
        "sections": {}, "tables": {}, "plots": {}, "durations_s": {}}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, transient=True, disable=not show_progress)
    ctx = BenchContext(settings, backbone, device, out, console, progress, Path(data_root))
    with progress:
        for name in sections:
            mod = section_module(name)
            t0 = time.perf_counter()
            result = mod.run(ctx)
            results["durations_s"][name] = time.perf_counter() - t0
            results.setdefault("load_avg_1m_after", {})[name] = round(os.getloadavg()[0], 2)
            ctx.results[name] = result
            results["sections"][name] = result
            specs = mod.tables(result)
            results["tables"][name] = [t.to_dict() for t in specs]
            results["plots"][name] = str(plot_section(name, result, out))
            for spec in specs:
                progress.console.print(to_rich(spec))
            write_json(results, out / "results.json")  # partial results survive a later failure
    _finish(results, out, publish_results, console)
    console.print(f"results: {out / 'results.json'}, {out / 'results.md'}, {len(results['plots'])} PNG(s) in {out}")
    return results


def rerender(results_path: Path, out: Path | None = None, publish_results: bool = False, console: Console | None = None) -> dict:
    """Rebuild tables, targets, PNGs and markdown from a results.json (after a presentation fix, without re-measuring)."""
    import json

    console = console or Console()
    results_path = Path(results_path)
    results = json.loads(results_path.read_text())
    out = Path(out or results_path.parent)
    out.mkdir(parents=True, exist_ok=True)
    for name, result in results["sections"].items():
        mod = section_module(name)
        results["tables"][name] = [t.to_dict() for t in mod.tables(result)]
        results["plots"][name] = str(plot_section(name, result, out))
    _finish(results, out, publish_results, console)
    return results


def _finish(results: dict, out: Path, publish_results: bool, console: Console) -> None:
    """Judge the targets, write results.json/.md, and publish when asked (shared by run and rerender)."""
    results["targets"] = evaluate(results["sections"])
    console.print(to_rich(targets_table(results["targets"])))
    write_json(results, out / "results.json")
    write_markdown(results, out / "results.md")
    if publish_results:
        for path in publish(results, out):
            console.print(f"published {path}")
