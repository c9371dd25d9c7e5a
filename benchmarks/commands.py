"""``forkpoint bench``: the benchmark suite's command line (also ``python -m forkpoint.benchmarks``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import click

from forkpoint.benchmarks.settings import SECTIONS, preset
from forkpoint.commands._shared import device_option
from forkpoint.contract.errors import ConfigError


def _int_list(value: str | None, what: str) -> tuple[int, ...] | None:
    if not value:
        return None
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise ConfigError(f"--{what} '{value}' is not a comma-separated list of integers: e.g. --{what} 0,1,2") from exc


@click.command("bench")
@click.option("--quick", is_flag=True, help="Minutes on 2 CPU cores: 2 tasks, 1 seed, 32 px, few epochs.")
@click.option("--smoke", is_flag=True, hidden=True, help="Seconds: a tiny slice of --quick (the test suite's smoke run).")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-results"), show_default=True,
              help="Folder for results.json, results.md and bench-*.png.")
@device_option("auto", "cuda runs the GPU variant: 224 px, bf16 autocast.")
@click.option("--only", multiple=True, type=click.Choice(SECTIONS), help="Run only these sections (repeatable).")
@click.option("--seeds", default=None, help="Comma-separated seeds, e.g. 0,1,2 (default: the mode's).")
@click.option("--tasks", default=None, help="Comma-separated stream datasets (default: the mode's).")
@click.option("--resolution", type=int, default=None, help="Input size in px (default: the mode's).")
@click.option("--threads", type=int, default=None, help="CPU threads for torch (default 1: robust on a shared machine).")
@click.option("--arch", default=None, help="timm architecture (default: the embedded EfficientNet-Lite0).")
@click.option("--weights", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Local weights file for --arch (nothing is downloaded).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"), show_default=True,
              help="Where built-in datasets are prepared (env FORKPOINT_DATA).")
@click.option("--publish", is_flag=True, help="Also copy the results into benchmarks/results/ and docs/ (docs/benchmarks.md, docs/img/).")
@click.option("--from-results", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="Measure nothing: rebuild tables, targets and PNGs from an earlier results.json (into --out).")
@click.option("--merge", "merge", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Measure nothing: merge the results.json of runs of one clean commit (seeds or sections run as "
                   "separate processes) into --out (repeatable; benchmarks/merge.py says what is refused).")
def bench_command(quick, smoke, out, device, only, seeds, tasks, resolution, threads, arch, weights, data_root, publish, from_results,
                  merge) -> None:
    """Measure SubTuning against linear probe, full finetuning and LoRA: accuracy, cost, throughput, storage, forgetting."""
    from forkpoint.benchmarks.runner import rerender, run_suite
    from forkpoint.learner.device import resolve_device

    if merge and from_results is not None:
        raise ConfigError("--merge and --from-results both rebuild from files: pass one of them")
    if merge:
        from forkpoint.benchmarks.merge import merge_results
        from forkpoint.benchmarks.report import write_json

        merged = merge_results(list(merge))
        Path(out).mkdir(parents=True, exist_ok=True)
        rerender(write_json(merged, Path(out) / "results.json"), out, publish_results=publish)
        return
    if from_results is not None:
        rerender(from_results, out, publish_results=publish)
        return
    dev = resolve_device(device)
    mode = "smoke" if smoke else "quick" if quick else "full"
    s = preset(mode, str(dev))
    overrides = {}
    if (v := _int_list(seeds, "seeds")) is not None:
        overrides["seeds"] = v
        overrides["regime_seeds"] = ()  # explicit seeds run at every regime
    if tasks:
        overrides["tasks"] = tuple(t.strip() for t in tasks.split(",") if t.strip())
    if resolution is not None:
        overrides["resolution"] = resolution
    if threads is not None:
        overrides["threads"] = threads
    if arch:
        overrides["arch"] = arch
    if weights is not None:
        overrides["weights"] = str(weights)
    if dev.type == "cuda" and not arch and weights is None:
        from forkpoint.benchmarks.backbones import pick_gpu_backbone

        overrides["arch"], overrides["weights"], overrides["backbone_note"] = pick_gpu_backbone()
    if arch and arch != s.arch and weights is None:
        raise ConfigError(f"--arch {arch} needs --weights PATH to local pretrained weights: benchmarks never download weights, and random weights measure nothing")
    s = replace(s, **overrides)
    run_suite(s, out, tuple(only), data_root=data_root, publish_results=publish)
