"""One results file from several runs of one clean commit: seeds or sections run as separate processes.

The full CPU benchmark needs hours on one thread; two one-thread processes (one per core)
take half the wall time without slowing each other (results/threads: a second busy core
left one-thread throughput unchanged). Each process still runs every method of a cell side
by side on the same images, so a merge changes no comparison: it only puts the cells in one
file. It refuses anything that would: another commit, a dirty tree, other settings, a seed or
a section measured twice.
"""

from __future__ import annotations

import json
from pathlib import Path

from forkpoint.contract.errors import ConfigError

# settings that may differ between the runs of one merge (the seeds each process ran)
PER_RUN = ("seeds", "regime_seeds")


def _load(path: Path) -> dict:
    try:
        res = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read results {path} ({exc}): pass the results.json a bench run wrote") from exc
    if not isinstance(res, dict) or not {"machine", "settings", "sections"} <= set(res):
        raise ConfigError(f"{path} is not a bench results file (no machine/settings/sections): pass a bench run's results.json")
    return res


def _accuracy_seeds(res: dict) -> set[int]:
    return {r["seed"] for r in res["sections"].get("accuracy", {}).get("rows", [])}


def _check(runs: list[tuple[Path, dict]]) -> None:
    (first_path, first), rest = runs[0], runs[1:]
    commit = first["machine"].get("git_commit")
    for path, res in runs:
        c = res["machine"].get("git_commit")
        if not c or str(c).endswith("-dirty"):
            raise ConfigError(f"{path} was measured on {c or 'an unknown commit'}: merge only runs of a clean commit")
        if c != commit:
            raise ConfigError(f"{path} was measured on {c}, {first_path} on {commit}: merge runs of one commit")
    same = {k: v for k, v in first["settings"].items() if k not in PER_RUN}
    for path, res in rest:
        other = {k: v for k, v in res["settings"].items() if k not in PER_RUN}
        diff = sorted(k for k in set(same) | set(other) if same.get(k) != other.get(k))
        if diff:
            raise ConfigError(f"{path} differs from {first_path} in settings {', '.join(diff)}: merge runs of the same settings")
        if res["machine"].get("device") != first["machine"].get("device"):
            raise ConfigError(f"{path} ran on {res['machine'].get('device')}, {first_path} on {first['machine'].get('device')}")
    seen_sections: dict[str, Path] = {}
    seen_seeds: dict[int, Path] = {}
    for path, res in runs:
        for name in res["sections"]:
            if name == "accuracy":
                for seed in _accuracy_seeds(res):
                    if seed in seen_seeds:
                        raise ConfigError(f"seed {seed} of the accuracy section is in both {seen_seeds[seed]} and {path}: "
                                          "merge runs of disjoint seeds")
                    seen_seeds[seed] = path
            elif name in seen_sections:
                raise ConfigError(f"section {name} is in both {seen_sections[name]} and {path}: merge each section once")
            else:
                seen_sections[name] = path
    tasks = {tuple(res["sections"]["accuracy"]["tasks"]) for _, res in runs if "accuracy" in res["sections"]}
    if len(tasks) > 1:
        raise ConfigError(f"the runs' accuracy sections cover different tasks ({sorted(tasks)}): merge runs of the same tasks")


def merge_results(paths: list[Path]) -> dict:
    """The merged results dict (tables, plots and targets are rebuilt from it by ``runner.rerender``)."""
    from forkpoint.benchmarks.sections.accuracy import summarize
    from forkpoint.benchmarks.settings import SECTIONS

    if len(paths) < 2:
        raise ConfigError("--merge needs at least two results files: one per process")
    runs = [(Path(p), _load(p)) for p in paths]
    _check(runs)
    first = runs[0][1]
    sections: dict[str, dict] = {}
    acc_runs = [res["sections"]["accuracy"] for _, res in runs if "accuracy" in res["sections"]]
    for _, res in runs:
        for name, result in res["sections"].items():
            if name != "accuracy":
                sections[name] = result
    if acc_runs:
        rows = [r for a in acc_runs for r in a["rows"]]
        acc = {**acc_runs[0], "rows": rows, "streams": [s for a in acc_runs for s in a.get("streams", [])],
               "summary": summarize(rows)}
        sections["accuracy"] = acc
    ordered = {name: sections[name] for name in SECTIONS if name in sections}
    durations: dict[str, float] = {}
    loads: dict[str, float] = {}
    for _, res in runs:
        for name, secs in res.get("durations_s", {}).items():
            durations[name] = max(durations.get(name, 0.0), secs)  # side-by-side processes: the longest is the wall time
        for name, load in res.get("load_avg_1m_after", {}).items():
            loads[name] = max(loads.get(name, 0.0), load)
    seeds = sorted(_accuracy_seeds({"sections": ordered})) or list(first["settings"]["seeds"])
    settings = {**first["settings"], "seeds": seeds,
                "regime_seeds": first["settings"].get("regime_seeds", []) if len(runs) == 1 else []}
    machine = {**first["machine"], "load_avg_1m_at_start": max(r["machine"].get("load_avg_1m_at_start", 0.0) for _, r in runs),
               "runs": [{"results": str(p), "date": r["machine"]["date"], "sections": list(r["sections"]),
                         "seeds": sorted(_accuracy_seeds(r)), "durations_s": r.get("durations_s", {})} for p, r in runs]}
    return {"machine": machine, "settings": settings, "backbone": first["backbone"], "sections": ordered,
            "tables": {}, "plots": {}, "durations_s": {n: durations[n] for n in ordered if n in durations},
            "load_avg_1m_after": loads}


def describe_runs(machine: dict) -> str | None:
    """One line for the machine table: how many processes measured these figures, and what each ran."""
    runs = machine.get("runs")
    if not runs:
        return None
    parts = [f"{', '.join(r['sections'])}" + (f" (seeds {', '.join(map(str, r['seeds']))})" if r["seeds"] else "") for r in runs]
    return f"{len(runs)} processes merged by `forkpoint bench --merge`: " + "; ".join(parts)
