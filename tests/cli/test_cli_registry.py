"""tasks / show / history / diff / events / promote / rollback / audit / gc on a real trained home."""

from __future__ import annotations

import os
from pathlib import Path


def test_tasks_lists_live_versions_branches_and_accuracy(trained):
    listed = trained.json("tasks")
    rows = {t["name"]: t for t in listed["tasks"]}
    assert set(rows) == {"digits", "mnist"}
    assert rows["digits"]["num_versions"] == 2 and rows["mnist"]["live_version"] == 1
    assert rows["mnist"]["branch"] == {"start": 14, "stop": 16, "block_names": ["blocks.5.3", "blocks.6.0"]}
    assert rows["mnist"]["class_names"] == [str(i) for i in range(10)]
    assert 0 <= rows["mnist"]["test_acc"] <= 1 and rows["mnist"]["extra_cost_pct"] > 0
    table = trained.ok("tasks").stdout
    assert "digits" in table and "mnist" in table and "14:15 (blocks.5.3..blocks.6.0)" in table


def test_show_a_named_version_and_its_profile(trained):
    v1 = trained.json("show", "digits", "--version", "1")
    assert (v1["branch"]["start"], v1["branch"]["stop"], v1["live"], v1["parent_version"]) == (14, 16, False, None)
    assert v1["branch"]["block_names"] == ["blocks.5.3", "blocks.6.0"] and "end" not in v1["branch"]
    assert v1["profile"] == []  # fixed --branch: nothing profiled
    human = trained.ok("show", "digits").stdout
    assert "digits v2 (live)" in human and "finetuning profile" in human and "second try" in human


def test_history_lists_versions_and_their_audit_events(trained):
    h = trained.json("history", "digits")
    assert [v["version"] for v in h["versions"]] == [1, 2]
    assert [e["action"] for e in h["events"] if e["action"] == "add_version"] == ["add_version", "add_version"]
    human = trained.ok("history", "digits").stdout
    assert "digits: versions" in human and "digits: audit events" in human


def test_diff_names_what_changed(trained):
    d = trained.json("diff", "digits", "1", "2")
    assert (d["task"], d["v1"], d["v2"]) == ("digits", 1, 2)
    changes = d["changes"]
    assert changes["split_seed"] == [0, 1]
    assert changes["parent_version"] == [None, 1]
    assert "weights_sha256" in changes
    assert "are the same" in trained.ok("diff", "digits", "2", "2").stdout


def test_events_is_the_audit_log(trained):
    actions = [e["action"] for e in trained.json("events")["events"]]
    assert actions[0] == "register_backbone" and actions.count("add_version") == 3
    assert {e["task"] for e in trained.json("events", "--task", "mnist")["events"]} == {"mnist"}


def test_rollback_and_promote_move_only_the_live_pointer(trained, one_line_error):
    try:
        back = trained.json("rollback", "digits", "--to", "1")
        assert (back["live_before"], back["live_after"]) == (2, 1)
        assert trained.json("show", "digits")["version"] == 1
        assert trained.json("tasks")["tasks"][0]["live_version"] == 1
        assert "not older" in one_line_error(trained("rollback", "digits", "--to", "1"))
        forward = trained.json("promote", "digits", "2")
        assert (forward["live_before"], forward["live_after"]) == (1, 2)
        default_back = trained.json("rollback", "digits")  # newest earlier version that was live
        assert default_back["live_after"] == 1
    finally:
        trained.ok("promote", "digits", "2")
    assert trained.json("history", "digits")["task"]["num_versions"] == 2  # nothing was deleted


def test_unknown_tasks_and_versions_are_one_line_errors(trained, one_line_error, tmp_path):
    assert "unknown task" in one_line_error(trained("show", "nope"))
    assert "unknown task" in one_line_error(trained("history", "nope"))
    assert "unknown task" in one_line_error(trained("diff", "nope", "1", "2"))
    assert "no version 9" in one_line_error(trained("show", "digits", "--version", "9"))
    assert "no version 9" in one_line_error(trained("promote", "digits", "9"))
    assert "invalid task name" in one_line_error(trained("show", "../etc"))
    assert "no version 7" in one_line_error(trained("diff", "digits", "1", "7"))
    assert "not found" in one_line_error(trained("samples", "--data", "/no/such/data", "--out", str(tmp_path)))


def test_audit_passes_on_an_intact_home(trained):
    report = trained.json("audit")
    assert report["ok"] is True and report["problems"] == []
    assert report["checked_versions"] == 3 and report["live_branches_checked"] == 2
    assert report["checked_data"] == 3  # every version's DVC md5 re-read
    assert "audit: OK" in trained.ok("audit").stdout


def _weights_file(c) -> Path:
    return c.home / c.json("show", "digits")["weights_path"]


def test_audit_fails_on_a_corrupt_weights_file_and_predict_refuses_it(own_trained, one_line_error, tmp_path):
    path = _weights_file(own_trained)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    result = own_trained("audit")
    assert result.exit_code == 1
    assert "problem:" in result.stderr and "sha256 mismatch" in result.stderr
    assert own_trained("audit", "--json").exit_code == 1
    own_trained.ok("samples", "--data", "digits", "--out", str(tmp_path / "s"))
    line = one_line_error(own_trained("predict", str(tmp_path / "s")), code=1)
    assert "corrupt" in line


def test_audit_fails_when_the_training_data_changed(own_trained):
    digits = own_trained.data_root / "digits"
    extra = digits / "zz-added-later.txt"
    try:
        extra.write_text("a file that was not there at training time\n")
        result = own_trained("audit")
        assert result.exit_code == 1 and "DVC md5" in result.stderr
        assert own_trained("audit", "--no-data").exit_code == 0
    finally:
        extra.unlink()


def test_gc_removes_unreferenced_files_only(own_trained):
    stray = own_trained.home / "objects" / "ab" / ".tmp-interrupted.safetensors"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left behind by an interrupted write")
    kept = _weights_file(own_trained)
    assert own_trained.json("gc", "--min-age", "0")["deleted"] == []  # younger than the 60 s floor, whatever --min-age says
    old = stray.stat().st_mtime - 120
    os.utime(stray, (old, old))
    assert own_trained.json("gc")["deleted"] == []  # younger than the 15-minute grace period

    dry = own_trained.json("gc", "--min-age", "0", "--dry-run")
    assert dry == {"dry_run": True, "deleted": [], "would_delete": ["objects/ab/.tmp-interrupted.safetensors"]}
    assert stray.is_file()  # a dry run deletes nothing
    human = own_trained.ok("gc", "--min-age", "0", "--dry-run").stdout
    assert "would delete 1 unreferenced file(s)" in human and "objects/ab/.tmp-interrupted.safetensors" in human
    assert stray.is_file()
    logged = [e["details"] for e in own_trained.json("events")["events"] if e["action"] == "gc"]
    assert [d["dry_run"] for d in logged] == [False, False, True, True] and logged[-1]["deleted"] == []

    deleted = own_trained.json("gc", "--min-age", "0")["deleted"]
    assert deleted == ["objects/ab/.tmp-interrupted.safetensors"]
    assert not stray.exists() and kept.is_file()
    assert own_trained.json("audit")["ok"] is True


def test_a_staged_version_is_not_served_until_promoted(own_trained, tmp_path):
    staged = own_trained.json("-q", "add-task", "digits", "--data", "digits", "--branch", "14:14", "--stage",
                              "--limit-per-class", "4", "--epochs", "1")
    assert (staged["version"], staged["live"]) == (2, False)
    assert own_trained.json("show", "digits", "--version", "2")["status"] == "staged"
    own_trained.ok("samples", "--data", "digits", "--out", str(tmp_path / "s"))
    assert own_trained.json("predict", str(tmp_path / "s" / "0_0.png"))["versions"] == {"digits": 1}
    own_trained.ok("promote", "digits", "2")
    assert own_trained.json("predict", str(tmp_path / "s" / "0_0.png"))["versions"] == {"digits": 2}
    assert "digits: live v2 -> v1 (branch 15:15 (blocks.6.0)" in own_trained.ok("rollback", "digits", "--to", "1").stdout


def test_predict_refuses_a_broken_live_pointer_and_a_tampered_version(own_trained, one_line_error, tmp_path):
    """Registry faults are exit 1 with one line naming the task: never a prediction without the task."""
    import json
    import sqlite3

    own_trained.ok("samples", "--data", "digits", "--out", str(tmp_path / "s"))
    image = str(tmp_path / "s" / "0_0.png")
    db = sqlite3.connect(own_trained.home / "registry.db")
    try:
        db.execute("UPDATE task SET live_version = 9 WHERE name = 'digits'")
        db.commit()
        for args in (("predict", image), ("predict", image, "--task", "digits")):
            line = one_line_error(own_trained(*args), code=1)
            assert "task 'digits' has live version v9, which does not exist" in line
        assert own_trained("audit", "--no-data").exit_code == 1
        db.execute("UPDATE task SET live_version = 1 WHERE name = 'digits'")
        db.commit()
        assert own_trained.json("predict", image)["versions"] == {"digits": 1}

        # someone with write access changes what is served and puts the trigger back
        trigger = db.execute("SELECT sql FROM sqlite_master WHERE name = 'task_version_no_update'").fetchone()[0]
        db.execute("DROP TRIGGER task_version_no_update")
        swapped = ["1", "0", *map(str, range(2, 10))]
        db.execute("UPDATE task_version SET class_names = ?", (json.dumps(swapped),))
        db.execute(trigger)
        db.commit()
    finally:
        db.close()
    result = own_trained("audit", "--no-data")
    assert result.exit_code == 1 and "digits@1: version row does not match its seal" in result.stderr
    line = one_line_error(own_trained("predict", image), code=1)
    assert "digits@1" in line and "refusing to serve" in line
