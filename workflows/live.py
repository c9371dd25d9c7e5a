"""The served model: the registered trunk plus every task's live branch, rebuilt from the registry.

Nothing is taken from memory: each branch comes from its sha256-checked safetensors file
through ``Branch.from_state``, which refuses weights that do not fit the trunk.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from forkpoint.learner import Branch, MultiTaskModel
from forkpoint.registry import UnknownTaskError, UnknownVersionError, VersionRecord
from forkpoint.workflows.home import Home


@dataclass
class LiveModel:
    """A multi-task model and the registry version each of its tasks came from."""

    model: MultiTaskModel
    versions: dict[str, VersionRecord]

    @property
    def tasks(self) -> list[str]:
        return self.model.tasks


def rebuild_branch(home: Home, record: VersionRecord, tensors) -> Branch:
    """The stored branch on this home's trunk (``record.spec``: the one stored form of its branch)."""
    return Branch.from_state(home.backbone, record.spec, tensors)


def load_live_model(home: Home, tasks: Iterable[str] | None = None, exclude: Iterable[str] = ()) -> LiveModel:
    """Every live task (or just ``tasks``, all of which must exist and be live), minus ``exclude``.

    Refuses (LivePointerError, TamperedError: exit 1) rather than serve without a task whose
    live pointer is broken or whose rows fail their checks; other tasks' faults do not matter
    when ``tasks`` names only sound ones."""
    wanted = list(dict.fromkeys(tasks)) if tasks is not None else None
    if wanted is not None:
        for name in wanted:
            rec = home.registry.get_task(name)  # UnknownTaskError names the fix
            if rec.live_version is None:
                raise UnknownVersionError(f"task {name!r} has no live version: `forkpoint promote {name} VERSION` first")
    skip = set(exclude)
    model = MultiTaskModel(home.backbone)
    versions: dict[str, VersionRecord] = {}
    live = home.registry.live(home.fingerprint, tasks=wanted, exclude=skip)
    by_name = {rec.task: (rec, tensors) for rec, tensors in live}
    order = wanted if wanted is not None else [rec.task for rec, _ in live]
    for name in order:
        if name in skip:
            continue
        if name not in by_name:
            raise UnknownTaskError(f"task {name!r} is not served by backbone {home.fingerprint[:12]}: list tasks with `forkpoint tasks`")
        rec, tensors = by_name[name]
        model.add(name, rebuild_branch(home, rec, tensors), list(rec.class_names))
        versions[name] = rec
    return LiveModel(model, versions)
