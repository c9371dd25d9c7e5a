"""A run folder: its id, what it runs (checked on resume), and each finished strategy's results.

``run.json`` is written first, each strategy's results as soon as it finishes, so a
crashed run can go on: finished strategies are read back, SubTuning restores the
branches it registered (see scenarios.recording), an interrupted baseline starts over
(Avalanche checkpoints of multi-head models are not trusted). Plain JSON only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from forkpoint.contract.atomic import write_json
from forkpoint.contract.errors import ConfigError
from forkpoint.contract.ids import new_run_id

RUN_FILE = "run.json"
RUNNING, DONE, FAILED = "running", "done", "failed"


@dataclass
class RunState:
    folder: Path
    run_id: str
    identity: dict  # stream + settings; a resume must match it exactly
    status: str = RUNNING

    @property
    def results_dir(self) -> Path:
        return self.folder / "results"

    def save(self) -> None:
        write_json(self.folder / RUN_FILE, {"run_id": self.run_id, "status": self.status, "identity": self.identity})

    def mark(self, status: str) -> None:
        self.status = status
        self.save()

    def load_result(self, strategy: str) -> dict | None:
        path = self.results_dir / f"{strategy}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def save_result(self, strategy: str, result: dict) -> None:
        write_json(self.results_dir / f"{strategy}.json", result)

    @classmethod
    def start(cls, folder: Path, stream_name: str, identity: dict, resume: bool) -> "RunState":
        """A new run in ``folder``, or (``resume``) the unfinished one already there."""
        folder = Path(folder)
        path = folder / RUN_FILE
        existing = json.loads(path.read_text()) if path.is_file() else None
        if not resume:
            if existing is not None and existing.get("status") != DONE:
                raise ConfigError(
                    f"{folder} holds unfinished run {existing.get('run_id')}: pass --resume to continue it or choose another --out"
                )
            if existing is not None:
                raise ConfigError(f"{folder} already holds finished run {existing.get('run_id')}: choose another --out")
            state = cls(folder, new_run_id(f"stream-{stream_name}"), identity)
            state.save()
            return state
        if existing is None:
            raise ConfigError(f"nothing to resume in {folder} (no {RUN_FILE}): drop --resume to start a new run")
        if existing.get("identity") != identity:
            diff = sorted(k for k in set(identity) | set(existing.get("identity", {}))
                          if identity.get(k) != existing.get("identity", {}).get(k))
            raise ConfigError(
                f"run {existing.get('run_id')} in {folder} was started with other settings ({', '.join(diff)} differ): resume with the same options or choose another --out"
            )
        state = cls(folder, existing["run_id"], identity, RUNNING)
        state.save()
        return state
