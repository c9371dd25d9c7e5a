"""``predict --any`` and ``evaluate --any`` on a real home (digits then mnist, both with --agnostic)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from forkpoint.cli import main
from forkpoint.workflows.samples import write_samples


def _run(home, data_root, *args):
    env = {"FORKPOINT_DATA": str(data_root), "FORKPOINT_HOME": None, "FORKPOINT_DB": None, "COLUMNS": "200"}
    return CliRunner().invoke(main, ["--home", str(home.path), *args], env=env, catch_exceptions=False)


def test_predict_any_json(homes, data_root, tmp_path):
    write_samples("mnist", tmp_path / "m", data_root=data_root, per_class=1)
    r = _run(homes.ab, data_root, "predict", "--any", str(tmp_path / "m"), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) == {"backbone_fingerprint", "head", "images"} and out["head"]["tasks"] == {"digits": 1, "mnist": 1}
    assert len(out["images"]) == 10 and set(out["images"][0]) == {"path", "task", "label", "score", "ncm"}
    assert sum(i["task"] == "mnist" for i in out["images"]) >= 7


def test_predict_any_refuses_route(homes, data_root, tmp_path):
    write_samples("mnist", tmp_path / "m", data_root=data_root, per_class=1)
    r = _run(homes.ab, data_root, "predict", "--any", "--route", str(tmp_path / "m"))
    assert r.exit_code == 2 and "--any answers over every task" in r.stderr


def test_evaluate_any_reports_every_stage(homes, data_root, tmp_path):
    for task in ("digits", "mnist"):
        write_samples(task, tmp_path / "eval" / task, data_root=data_root, per_class=2, layout="imagefolder")
    r = _run(homes.ab, data_root, "evaluate", "--any", str(tmp_path / "eval"), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [s["tasks"] for s in out["stages"]] == [["digits"], ["digits", "mnist"]]
    assert [s["images"] for s in out["stages"]] == [20, 40]
    for way in ("agnostic", "ncm", "routing", "task_incremental"):
        accs = [s["accuracy"][way] for s in out["stages"]]
        assert all(0.0 <= a <= 1.0 for a in accs)
        assert out["summary"][way]["average"] == sum(accs) / 2 and out["summary"][way]["last"] == accs[-1]
