"""Writing results: JSON (the record), markdown (the tables), and the published docs page.

``docs/benchmarks.md`` keeps hand-written prose around a generated region; publishing
rewrites only that region, from every committed results file in ``benchmarks/results``.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

from forkpoint.benchmarks.history import load_runs, runs_table
from forkpoint.benchmarks.tables import TableSpec, to_markdown
from forkpoint.contract import atomic
from forkpoint.contract.docblock import replace_block

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
DOCS_PAGE = REPO / "docs" / "benchmarks.md"
DOCS_IMG = REPO / "docs" / "img"
BEGIN, END = "<!-- bench:generated:begin -->", "<!-- bench:generated:end -->"


def clean(obj):
    """JSON-safe copy: NaN/inf become None, tuples lists, paths strings."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(results: dict, path: Path) -> Path:
    return atomic.write_json(path, clean(results), indent=1, allow_nan=False)


def machine_table(results: dict) -> TableSpec:
    m, s = results["machine"], results["settings"]
    rows = [
        ["date (UTC)", m["date"]],
        ["machine", f"{m['host_cpu']} ({m['cpu_count']} cores), {m['platform']}"],
        ["device", f"{m['device']} ({m['device_name']})" + (", bf16 autocast" if s["bf16"] else ", fp32")],
        ["torch threads", str(m["torch_threads"])],
        ["load average at start (1 min)", str(m.get("load_avg_1m_at_start", "–"))],
        ["torch / timm / python", f"{m['torch']} / {m.get('timm', '–')} / {m['python']}"],
        ["backbone", f"{results['backbone']['arch']} ({results['backbone']['weights_source']}), {s['resolution']} px"],
        ["mode", f"{s['mode']}: seeds {', '.join(str(x) for x in s['seeds'])}; {s['profile_epochs']} profile / {s['train_epochs']} training epochs"],
        ["git commit", str(m.get("git_commit"))],
        ["wall time", f"{sum(results['durations_s'].values()):.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in results["durations_s"].items()) + ")"],
    ]
    from forkpoint.benchmarks.merge import describe_runs

    if (runs := describe_runs(m)) is not None:
        rows.append(["processes", runs + " (all methods of a cell ran in the same process)"])
    return TableSpec("Where these figures were measured", ["", ""], rows, align_left=2)


def markdown(results: dict, img_prefix: str = "", level: int = 3) -> str:
    """All tables of one results dict, the targets first."""
    from forkpoint.benchmarks.targets import table as targets_table

    parts = [to_markdown(machine_table(results), level), to_markdown(targets_table(results["targets"]), level)]
    for section, specs in results["tables"].items():
        parts.append(f"{'#' * level} {section.capitalize()}\n")
        if section in results.get("plots", {}):
            parts.append(f"![{section}]({img_prefix}{Path(results['plots'][section]).name})\n")
        parts += [to_markdown(TableSpec.from_dict(t), level + 1) for t in specs]
    return "\n".join(parts)


def write_markdown(results: dict, path: Path) -> Path:
    tag = "GPU figures" if results["machine"]["device"].startswith("cuda") else "CPU figures"
    return atomic.write_text(path, f"# forkpoint benchmark results ({tag}, {results['settings']['mode']} mode)\n\n" + markdown(results) + "\n")


def result_tag(results: dict) -> str:
    return ("gpu" if results["machine"]["device"].startswith("cuda") else "cpu") + ("" if results["settings"]["mode"] == "full" else f"-{results['settings']['mode']}")


def publish(results: dict, out_dir: Path, results_dir: Path = RESULTS_DIR, img_dir: Path = DOCS_IMG, page: Path = DOCS_PAGE) -> list[Path]:
    """Copy this run's JSON and PNGs into the repo and regenerate the docs page's generated region."""
    if Path(page).resolve().is_relative_to(REPO):  # figures only from clean commits (FORKPOINT_ALLOW_DIRTY=1 to override)
        from forkpoint.contract.docblock import require_publishable

        require_publishable()
    tag = result_tag(results)
    written = [write_json(results, Path(results_dir) / f"{tag}.json")]
    img_dir = Path(img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    for section, png in results.get("plots", {}).items():
        dst = img_dir / f"bench-{tag}-{section}.png"
        shutil.copyfile(Path(out_dir) / Path(png).name, dst)
        written.append(dst)
    written.append(regenerate_docs(page, results_dir))
    return written


def regenerate_docs(page: Path = DOCS_PAGE, results_dir: Path = RESULTS_DIR) -> Path:
    """Rewrite the generated region of the docs page from every results file in ``results_dir``."""
    blocks = []
    for path in sorted(Path(results_dir).glob("*.json"), key=lambda p: (not p.stem.startswith("cpu"), p.stem)):
        res = json.loads(path.read_text())
        tag = path.stem
        kind = "GPU figures" if tag.startswith("gpu") else "CPU figures"
        plots = {k: f"bench-{tag}-{k}.png" for k in res.get("plots", {})}
        res = {**res, "plots": plots}
        blocks.append(f"## Results: {kind} ({tag}, `benchmarks/results/{path.name}`)\n\n" + markdown(res, img_prefix="img/", level=3))
    runs = load_runs(results_dir)
    if len(runs) > 1 and (side := runs_table(runs)) is not None:  # a rerun is read against the runs it replaced
        blocks.insert(0, to_markdown(side, 2))
    body = "\n".join(blocks) if blocks else "_No results committed yet: run `forkpoint bench --publish`._\n"
    text = page.read_text() if page.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    return atomic.write_text(page, replace_block(text, BEGIN, END, body))
