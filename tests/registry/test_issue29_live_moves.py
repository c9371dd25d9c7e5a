"""Issue 29: a live pointer never moves onto weights every reader would refuse, and a move that
moves nothing logs nothing.

Sample versions (no training): ``pets`` v1 and v2 (live). The CLI cases run ``forkpoint`` in
process on the same home (promote, rollback and events never build the trunk).
"""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner, Result

from forkpoint.cli import main
from forkpoint.registry.errors import RegistryError


@pytest.fixture
def two(reg, ready):
    """pets v1 and v2 (live)."""
    ready.add("pets", seed=0)
    ready.add("pets", seed=1)
    assert reg.get_task("pets").live_version == 2
    return ready


def _damage(reg, version: int, how: str) -> None:
    path = reg.store.path(reg.show("pets", version).weights_sha256)
    if how == "missing":
        path.unlink()
        return
    os.chmod(path, 0o644)
    data = path.read_bytes()
    path.write_bytes(data[:-8] + bytes(8))  # same size, other bytes: the sha256 no longer matches


def _events(reg) -> list[tuple[str, int | None]]:
    return [(e.action, e.version) for e in reg.audit_events()]


@pytest.mark.parametrize("how", ["corrupt", "missing"])
@pytest.mark.parametrize("move", ["promote", "rollback"])
def test_a_move_onto_damaged_weights_is_refused_and_changes_nothing(reg, two, how, move):
    if move == "promote":
        reg.rollback("pets", to=1)
        damaged, call = 2, lambda: reg.promote("pets", 2)
    else:
        damaged, call = 1, lambda: reg.rollback("pets", to=1)
    live, events = reg.get_task("pets").live_version, _events(reg)
    _damage(reg, damaged, how)
    with pytest.raises(RegistryError) as caught:
        call()
    message = str(caught.value)
    assert caught.value.exit_code == 1 and "\n" not in message
    assert f"{move} task 'pets' to v{damaged}" in message and ("missing" in message if how == "missing" else "corrupt" in message)
    assert f"stays v{live}" in message
    assert reg.get_task("pets").live_version == live and _events(reg) == events  # pointer and log untouched


def test_the_default_rollback_target_is_checked_too(reg, two):
    _damage(reg, 1, "corrupt")
    with pytest.raises(RegistryError, match="v1"):
        reg.rollback("pets")
    assert reg.get_task("pets").live_version == 2


def test_promoting_the_live_version_is_a_no_op_that_logs_nothing(reg, two):
    events = _events(reg)
    rec = reg.promote("pets", 2)
    assert rec.live and rec.version == 2
    assert _events(reg) == events
    assert reg.verify().ok  # the log still explains the pointer


# ---- the CLI -------------------------------------------------------------------------------------


def _run(home, db_url: str | None, *args: str) -> Result:
    env = {"FORKPOINT_HOME": None, "FORKPOINT_DB": None, "COLUMNS": "200"}
    db = ["--db", db_url] if db_url else []
    return CliRunner().invoke(main, ["--home", str(home), *db, *args], env=env, catch_exceptions=False)


def _error_line(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    return lines[0]


@pytest.mark.parametrize("how", ["corrupt", "missing"])
def test_cli_rollback_to_damaged_weights_exits_1_and_moves_nothing(reg, home, db_url, two, how):
    _damage(reg, 1, how)
    events = _events(reg)
    line = _error_line(_run(home, db_url, "rollback", "pets", "--to", "1"), 1)
    assert "'pets'" in line and "v1" in line and ("missing" in line if how == "missing" else "corrupt" in line)
    assert reg.get_task("pets").live_version == 2 and _events(reg) == events


def test_cli_promote_of_damaged_weights_exits_1(reg, home, db_url, two):
    reg.rollback("pets", to=1)
    _damage(reg, 2, "corrupt")
    line = _error_line(_run(home, db_url, "promote", "pets", "2"), 1)
    assert "promote task 'pets' to v2" in line and "corrupt" in line
    assert reg.get_task("pets").live_version == 1


def test_cli_promote_of_the_live_version_says_already_live_and_logs_nothing(reg, home, db_url, two):
    events = _events(reg)
    result = _run(home, db_url, "promote", "pets", "2")
    assert result.exit_code == 0, result.output
    assert "already live" in result.stdout
    assert _events(reg) == events


def test_cli_events_of_an_unknown_task_exits_2_naming_it(reg, home, db_url, two):
    line = _error_line(_run(home, db_url, "events", "--task", "nope"), 2)
    assert "'nope'" in line and "forkpoint tasks" in line
    assert _run(home, db_url, "events", "--task", "pets").exit_code == 0
