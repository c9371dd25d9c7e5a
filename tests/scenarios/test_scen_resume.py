"""Registry-backed runs: SubTuning's versions carry the run id, and a run killed mid-stream
resumes from the last registered task without retraining it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forkpoint.contract.branch import UnitRange
from forkpoint.contract.errors import ConfigError
from forkpoint.registry.crashpoints import ENV as CRASH_ENV
from forkpoint.scenarios.runner import RunConfig, run_stream
from forkpoint.scenarios.runstate import RunState
from forkpoint.scenarios.streams import StreamOptions, load_stream

OPTIONS = dict(per_class=10, test_per_class=10, num_tasks=2)
CONFIG = dict(strategies=("subtuning",), resolution=32, epochs=1, candidates=UnitRange(14, 16), max_blocks=1, device="cpu")

CHILD = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from forkpoint.contract.branch import UnitRange
    from forkpoint.workflows.home import open_home
    from forkpoint.scenarios.runner import RunConfig, run_stream
    from forkpoint.scenarios.streams import StreamOptions, load_stream
    home = open_home(sys.argv[1])
    stream = load_stream("domains", StreamOptions(**{options}))
    run_stream(stream, RunConfig(**{config}), sys.argv[2], home=home)
""")


@pytest.fixture()
def home(tmp_path):
    from forkpoint.workflows.home import init_home

    result = init_home(tmp_path / "home", resolution=32)
    yield result.home
    result.home.close()


def test_killed_run_resumes_from_the_last_registered_task(tmp_path, home):
    out = tmp_path / "run"
    script = CHILD.format(options=OPTIONS, config=CONFIG)
    env = {**os.environ, CRASH_ENV: "stream_registered_1"}  # SIGKILL right after the first task is registered
    child = subprocess.run([sys.executable, "-c", script, str(home.path), str(out)], env=env,
                           cwd=Path.cwd(), capture_output=True, text=True, timeout=600)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    state = json.loads((out / "run.json").read_text())
    run_id = state["run_id"]
    assert state["status"] == "running" and not (out / "results" / "subtuning.json").exists()
    [first] = home.registry.versions("domains.mnist")
    assert first.run_id == run_id and first.live
    assert [t.name for t in home.registry.list_tasks()] == ["domains.mnist"]

    stream = load_stream("domains", StreamOptions(**OPTIONS))
    outcome = run_stream(stream, RunConfig(**CONFIG), out, home=home, resume=True)

    assert outcome.run_id == run_id and outcome.status == "done"
    [r] = outcome.results
    assert r.restored == ["domains.mnist@1"] and r.registry == ["domains.fashion@1"]
    assert [v.version for v in home.registry.versions("domains.mnist")] == [1]  # restored, not retrained
    second = home.registry.show("domains.fashion")
    assert second.run_id == run_id and second.metrics["stream"] == {"run_id": run_id, "stream": "domains", "experience": 1, "of": 2}
    assert r.checks["passed"] and r.forgetting == 0.0
    assert r.acc_matrix[0][0] == r.acc_matrix[1][0]
    # The restored branch is the trained one: its accuracy matches what was recorded at training time.
    assert r.acc_matrix[0][0] == pytest.approx(first.metrics["test_acc"], abs=0.02)
    assert r.train_seconds[0] == pytest.approx(first.metrics["timings"]["total_s"])


def test_run_folder_refuses_mixups(tmp_path):
    identity = {"stream": {"name": "domains"}, "settings": {"seed": 0}}
    state = RunState.start(tmp_path, "domains", identity, resume=False)
    with pytest.raises(ConfigError, match="pass --resume"):
        RunState.start(tmp_path, "domains", identity, resume=False)
    with pytest.raises(ConfigError, match="settings differ"):
        RunState.start(tmp_path, "domains", {**identity, "settings": {"seed": 1}}, resume=True)
    assert RunState.start(tmp_path, "domains", identity, resume=True).run_id == state.run_id
    with pytest.raises(ConfigError, match="nothing to resume"):
        RunState.start(tmp_path / "empty", "domains", identity, resume=True)
    state.mark("done")
    with pytest.raises(ConfigError, match="finished run"):
        RunState.start(tmp_path, "domains", identity, resume=False)


def test_home_resolution_must_match_the_run(tmp_path, home):
    stream = load_stream("domains", StreamOptions(**OPTIONS))
    with pytest.raises(ConfigError, match="serves its trunk at 32 px"):
        run_stream(stream, RunConfig(**{**CONFIG, "resolution": 48}), tmp_path / "run", home=home)
