"""SubTuning tasks of a stream run, recorded in a forkpoint home under the run's id.

Every branch SubTuning trains is registered (safetensors, one transaction) right after
the learner's no-forgetting check passed, with ``run_id`` set to the stream run. A
resumed run restores the branches its run id already registered, in stream order,
instead of training them again: that is the crash recovery Avalanche's pickled
checkpoints cannot give multi-head models.

The home comes from ``workflows`` (one trunk per home, rebuilt and fingerprint-checked);
the version's metrics/config follow ``workflows.tasks.add_task_version``'s layout. That
helper is not called because it trains against the home's whole live model under a
fresh run id of its own, while a stream trains against the stream's model and must
tag every version with the stream's run id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from forkpoint.learner import AddTaskConfig, MultiTaskModel
from forkpoint.contract.errors import ConfigError
from forkpoint.registry import UnknownTaskError, VersionRecord
from forkpoint.scenarios.streams import Stream, StreamTask
from forkpoint.registry.crashpoints import crash_point
from forkpoint.scenarios.subtuning import ObtainedBranch, TrainLocally
from forkpoint.workflows.home import Home
from forkpoint.workflows.live import rebuild_branch
from forkpoint.workflows.tasks import check_new_version_fits



def data_description(task: StreamTask, stream: Stream) -> dict:
    ds = task.dataset
    return {
        "source": ds.name, "dataset": ds.name, "path": str(Path(ds.path).resolve()) if ds.path else None,
        "dvc_md5": ds.md5, "limit_per_class": stream.options.per_class,
        "sizes": {"train": len(ds.train), "test": len(ds.test)}, "conversions": dict(ds.conversions),
    }


@dataclass
class RegistryTasks:
    """A TaskSource that restores this run's registered branches and registers every new one."""

    home: Home
    run_id: str
    stream: Stream
    config: AddTaskConfig
    progress: object | None = None
    plot_dir: Path | None = None
    actor: str | None = None
    recorded: list[VersionRecord] = field(default_factory=list)

    def registered(self, task: StreamTask) -> VersionRecord | None:
        """The newest version of ``task`` registered by this run, if any."""
        try:
            versions = self.home.registry.versions(task.name)
        except UnknownTaskError:
            return None
        mine = [v for v in versions if v.run_id == self.run_id]
        return mine[-1] if mine else None

    def obtain(self, model: MultiTaskModel, label: int, task: StreamTask) -> ObtainedBranch:
        record = self.registered(task)
        if record is not None:
            return self._restore(model, label, task, record)
        check_new_version_fits(self.home, task.name, task.class_names)  # refuse before training, not after
        added = TrainLocally(self.config, self.progress, self.plot_dir).obtain(model, label, task)
        record = self._register(added, label, task)
        added.registered_as = record.ref
        self.recorded.append(record)
        crash_point(f"stream_registered_{len(self.recorded)}")  # test seam: SIGKILL after the n-th registration
        return added

    def _restore(self, model: MultiTaskModel, label: int, task: StreamTask, record: VersionRecord) -> ObtainedBranch:
        if list(record.class_names) != task.class_names:
            raise ConfigError(
                f"{record.ref} of run {self.run_id} has classes {list(record.class_names)}, the stream has {task.class_names}: resume with the same data"
            )
        branch = rebuild_branch(self.home, record, self.home.registry.load_tensors(task.name, record.version))
        model.add(task.name, branch, task.class_names)
        seconds = float(record.metrics.get("timings", {}).get("total_s", 0.0))
        return ObtainedBranch(label, task.name, model.branches[task.name], record.trainable_params, seconds,
                         restored_from=record.ref)

    def _register(self, added: ObtainedBranch, label: int, task: StreamTask) -> VersionRecord:
        report = added.report
        assert report is not None
        n = len(self.stream.tasks)
        position = {"run_id": self.run_id, "stream": self.stream.name, "experience": label, "of": n}
        draft = report.draft(
            self.home.fingerprint, added.branch.tensors(),
            metrics={"stream": position},
            config={"data": data_description(task, self.stream), "stream": self.stream.options.to_dict(),
                    "profile_plot": report.plot},
            data_md5=task.dataset.md5,
            data_path=str(Path(task.dataset.path).resolve()) if task.dataset.path else None,
            description=f"stream '{self.stream.name}' experience {label + 1}/{n} (run {self.run_id})",
            run_id=self.run_id,
        )
        return self.home.registry.add_version(task.name, draft, promote=True, actor=self.actor)
