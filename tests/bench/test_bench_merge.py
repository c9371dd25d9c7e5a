"""`bench --merge`: runs of one clean commit, split by seed or section, become one results file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from forkpoint.benchmarks.commands import bench_command
from forkpoint.benchmarks.merge import merge_results
from forkpoint.contract.errors import ConfigError

COMMIT = "0123abc"  # both runs come from this checkout; a clean commit is what a real merge needs


@pytest.fixture(scope="module")
def two_runs(smoke_run, tmp_path_factory):
    """The session's smoke run (every section, seed 0) and a second process: the accuracy section at seed 1."""
    out, first, _ = smoke_run
    other_out = tmp_path_factory.mktemp("bench-seed1")
    r = CliRunner().invoke(bench_command, ["--smoke", "--device", "cpu", "--only", "accuracy", "--seeds", "1", "--out", str(other_out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    second = json.loads((other_out / "results.json").read_text())
    folder = tmp_path_factory.mktemp("merge-in")
    paths = []
    for name, res in (("a.json", first), ("b.json", second)):
        res = {**res, "machine": {**res["machine"], "git_commit": COMMIT}}
        (folder / name).write_text(json.dumps(res))
        paths.append(folder / name)
    return paths, first, second


def _variant(path, tmp_path, change):
    res = json.loads(path.read_text())
    change(res)
    bad = tmp_path / f"changed-{path.name}"
    bad.write_text(json.dumps(res))
    return bad


def test_merged_seeds_keep_every_row_and_recompute_the_summary(two_runs, tmp_path):
    paths, first, second = two_runs
    out = tmp_path / "merged"
    r = CliRunner().invoke(bench_command, ["--merge", str(paths[0]), "--merge", str(paths[1]), "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    merged = json.loads((out / "results.json").read_text())
    rows = merged["sections"]["accuracy"]["rows"]
    assert len(rows) == len(first["sections"]["accuracy"]["rows"]) + len(second["sections"]["accuracy"]["rows"])
    assert {row["seed"] for row in rows} == {0, 1} and merged["settings"]["seeds"] == [0, 1]
    cell = next(s for s in merged["sections"]["accuracy"]["summary"] if s["task"] != "mean")
    assert cell["n"] == 2  # each (task, regime, method) now averages over both seeds
    assert set(merged["sections"]) == set(first["sections"])  # the other sections come from the run that had them
    assert [run["seeds"] for run in merged["machine"]["runs"]] == [[0], [1]]
    assert merged["targets"] and "processes merged" in (out / "results.md").read_text()


def test_a_merge_refuses_what_would_change_a_comparison(two_runs, tmp_path):
    paths, _, _ = two_runs
    cases = {
        "clean commit": lambda res: res["machine"].__setitem__("git_commit", COMMIT + "-dirty"),
        "one commit": lambda res: res["machine"].__setitem__("git_commit", "fedcba9"),
        "same settings": lambda res: res["settings"].__setitem__("train_epochs", res["settings"]["train_epochs"] + 1),
    }
    for words, change in cases.items():
        with pytest.raises(ConfigError, match=words):
            merge_results([paths[0], _variant(paths[1], tmp_path, change)])
    with pytest.raises(ConfigError, match="disjoint seeds"):
        merge_results([paths[1], paths[1]])
    with pytest.raises(ConfigError, match="section cost"):
        merge_results([paths[0], _variant(paths[0], tmp_path, lambda res: res["sections"].pop("accuracy"))])
    with pytest.raises(ConfigError, match="at least two"):
        merge_results([paths[0]])
    from forkpoint.cli import main

    r = CliRunner().invoke(main, ["bench", "--merge", str(paths[0]), "--merge", str(paths[1]), "--from-results", str(paths[0])])
    assert r.exit_code == 2 and "pass one of them" in r.output
