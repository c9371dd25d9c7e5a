"""reproduce, audit --report and add-task --track-data on real homes (Lite0 at 32 px, real digits).

One home is trained per module (a profiled digits version, so the profile, the selection
and the weights are all compared); the planted changes go through the reproduce workflow
with an edited copy of the stored record, since the registry itself refuses edited rows.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from forkpoint.workflows.home import open_home
from forkpoint.workflows.recorded import config_from_dict, missing
from forkpoint.workflows.report import profile_png
from forkpoint.workflows.reproduce import reproduce_version

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # from DVC internals
DVC = str(Path(sys.executable).with_name("dvc"))
QUICK = ["--limit-per-class", "5", "--epochs", "1", "--patience", "0"]  # as tests/cli/conftest.py


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, make_cli):
    """digits v1: two profiled candidates, the trained branch always served (so lr and seed matter)."""
    c = make_cli(tmp_path_factory.mktemp("repro") / "home")
    c.ok("init", "--resolution", "32")
    c.added = c.json("-q", "add-task", "digits", "--data", "digits", "--candidates", "14:16", "--profile-epochs", "1",
                     "--budget-blocks", "1", "--no-probe", *QUICK)
    return c


def _digit_folder(folder: Path, per_class: int = 8, classes=(0, 1, 2)) -> Path:
    """An ImageFolder of real sklearn digits as 8x8 PNGs."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.round(d.images * (255 / 16)), 0, 255).astype(np.uint8)
    for c in classes:
        (folder / f"d{c}").mkdir(parents=True, exist_ok=True)
        for i, idx in enumerate(np.nonzero(d.target == c)[0][:per_class]):
            Image.fromarray(images[idx]).save(folder / f"d{c}" / f"{i}.png")
    return folder


def test_a_fresh_version_records_what_it_needs_and_reproduces_identically(profiled):
    version = profiled.json("show", "digits")
    cfg = version["config"]
    assert missing(cfg) == []
    rep = cfg["reproduce"]
    assert rep["profile_units"] == [14, 15] and rep["device"] == "cpu" and rep["torch_threads"] >= 1
    assert rep["forkpoint"] and rep["torch"] and rep["timm"] and "deterministic_algorithms" in rep
    assert rep["git_commit"] is None or len(rep["git_commit"].split("+")[0]) == 40
    data = cfg["data"]
    assert (data["seed"], data["test_fraction"], data["limit_per_class"], data["builtin"]) == (0, 0.0, 5, True)
    assert len(data["splits_sha256"]) == 64
    rebuilt = config_from_dict(cfg).to_dict()  # the inverse of AddTaskConfig.to_dict (other keys are provenance)
    assert rebuilt == {k: v for k, v in cfg.items() if k in rebuilt} and "data" not in rebuilt

    out = profiled.json("reproduce", "digits")
    assert out["verdict"] == "identical" and out["first_divergence"] is None
    assert [s["name"] for s in out["steps"]] == ["data", "profile", "selection", "weights", "predictions"]
    assert all(s["same"] for s in out["steps"]) and out["max_abs_logit_diff"] == 0.0
    assert out["rebuilt_sha256"] == out["weights_sha256"] == version["weights_sha256"]
    human = profiled.ok("reproduce", "digits", "--version", "1").stdout
    assert "digits@1: IDENTICAL" in human and "as recorded" in human
    events = profiled.json("events", "--task", "digits")["events"]
    logged = [e for e in events if e["action"] == "reproduce"]
    assert len(logged) == 2 and logged[0]["details"]["verdict"] == "identical" and logged[0]["version"] == 1
    assert profiled.json("show", "digits")["version"] == 1  # nothing else was written
    assert profiled.json("audit", "--no-data")["ok"]  # the event keeps the hash chain intact


def _planted(home, change) -> dict:
    rec = home.registry.show("digits", 1)
    config = json.loads(json.dumps(rec.config))
    change(config, rec)
    return dataclasses.replace(rec, config=config)


def test_a_planted_change_is_reported_different_at_the_step_that_diverged(profiled):
    with open_home(profiled.home) as home:
        def other_candidate(config, rec):  # profile only the unit that was not chosen
            other = 15 if rec.branch_start == 14 else 14
            config["candidates"] = [other, other + 1]

        res = reproduce_version(home, "digits", record=_planted(home, other_candidate), log=False)
        assert (res.verdict, res.first_divergence, res.exit_code) == ("different", "profile", 1)
        by = {s.name: s for s in res.steps}
        assert not by["selection"].same and "recorded units" in by["selection"].detail
        rec = home.registry.show("digits", 1)  # printed as the CLI's inclusive START:END, like every other command
        assert f"recorded units {rec.branch_start}:{rec.branch_stop - 1}" in by["selection"].detail

        def fewer_images(config, rec):
            config["data"]["limit_per_class"] = config["data"]["val_limit_per_class"] = 4

        res = reproduce_version(home, "digits", record=_planted(home, fewer_images), log=False)
        assert (res.verdict, res.first_divergence) == ("different", "data")

        def other_lr(config, rec):
            config["train"]["lr"] = config["train"]["lr"] * 10

        res = reproduce_version(home, "digits", record=_planted(home, other_lr), log=False)
        by = {s.name: s for s in res.steps}
        assert by["data"].same and by["profile"].same and by["selection"].same
        assert not by["weights"].same and "max |Δw|" in by["weights"].detail
        assert res.first_divergence == "weights" and res.verdict in ("equivalent", "different")

        def before_records(config, rec):  # a version made before this change recorded these
            del config["reproduce"], config["data"]["seed"], config["data"]["splits_sha256"]

        res = reproduce_version(home, "digits", record=_planted(home, before_records), log=False)
        assert res.verdict == "identical"
        assert any("config.reproduce" in lack for lack in res.lacks) and any("splits_sha256" in lack for lack in res.lacks)
        assert any("lacks" in line for line in res.lines())
    assert [e for e in profiled.json("events")["events"] if e["action"] == "reproduce"
            and e["details"]["verdict"] == "different"] == []  # log=False wrote nothing


def test_audit_report_html_and_markdown(profiled, tmp_path, one_line_error):
    profiled.ok("reproduce", "digits")
    md, page = tmp_path / "audit.md", tmp_path / "audit.html"
    profiled.ok("audit", "--report", str(md))
    profiled.ok("audit", "--no-data", "--report", str(page), "--task", "digits", "--since", "2020-01-01")
    version = profiled.json("show", "digits")
    for text in (md.read_text(), page.read_text()):
        assert "digits" in text and "Lineage" in text and version["data_md5"] in text
        assert "identical" in text and "data:image/png;base64," in text and "result: OK" in text
        assert "hash chain: intact" in text
    assert "| v1 | - | yes |" in md.read_text() and page.read_text().startswith("<!doctype html>")
    later = tmp_path / "later.md"
    profiled.ok("audit", "--no-data", "--report", str(later), "--since", "2999-01-01")
    assert "| v1 |" not in later.read_text()
    assert ".html or .md" in one_line_error(profiled("audit", "--report", str(tmp_path / "audit.txt")))
    assert "unknown task" in one_line_error(profiled("audit", "--report", str(md), "--task", "nope"))
    assert "--report" in one_line_error(profiled("audit", "--task", "digits"))
    with open_home(profiled.home) as home:  # no plot file kept: the report draws one from the stored scores
        rec = home.registry.show("digits", 1)
        drawn = profile_png(dataclasses.replace(rec, config={**rec.config, "profile_plot": None}))
    assert drawn.startswith(b"\x89PNG") and drawn != Path(rec.config["profile_plot"]).read_bytes()


def test_tracked_user_data_and_a_changed_image(cli, tmp_path, one_line_error):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([DVC, "init", "--no-scm", "-q"], cwd=repo, check=True, timeout=120)
    folder = _digit_folder(repo / "digits3")
    pristine = shutil.copytree(folder, tmp_path / "pristine")
    outside = _digit_folder(tmp_path / "outside")
    cli.ok("init", "--resolution", "32")
    err = one_line_error(cli("-q", "add-task", "d3", "--data", str(outside), "--track-data", "--branch", "probe"))
    assert "not inside a DVC repository" in err and "dvc init" in err

    added = cli.json("-q", "add-task", "d3", "--data", str(folder), "--track-data", "--branch", "probe", *QUICK)
    from forkpoint.imagedata import dvcfile_md5

    md5 = cli.json("show", "d3")["data_md5"]
    assert md5 == dvcfile_md5(repo / "digits3.dvc") and added["version"] == 1

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "d0" / "extra.png")  # one image more
    err = one_line_error(cli("reproduce", "d3"))
    assert md5 in err and "DVC md5" in err and "--data" in err
    assert cli.json("reproduce", "d3", "--data", str(pristine))["verdict"] == "identical"


def test_a_version_recorded_before_the_rate_pick_rebuilds_without_it():
    from forkpoint.learner import AddTaskConfig

    recorded = AddTaskConfig().to_dict()
    assert recorded["lr_factors"] == [1.0, 3.0]  # today's recipe tries 3x the rates
    del recorded["lr_factors"]
    assert config_from_dict(recorded).lr_factors == (1.0,)  # a recipe-4 version never did
    assert not [m for m in missing(recorded) if "lr_factors" in m]
