"""``forkpoint demo``: three real tasks added one after another to the embedded Lite0, checked for forgetting.

After each task the served model is rebuilt from the registry alone (trunk from its
recorded source, every branch from its sha256-checked file) and every older task's test
logits are recomputed and compared bit for bit with the ones recorded when that task was
added; so is each fingerprint. Any difference is a failed check (exit 1). Inference cost
is what one shared pass over the served tasks runs (``MultiTaskModel.total_cost_pct``) and
what each task adds to it (``marginal_cost_pct``), in % of one trunk pass.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from forkpoint.contract.branch import UnitRange
from forkpoint.contract.errors import ConfigError
from forkpoint.contract.names import DEFAULT_ARCH
from forkpoint.learner import AddTaskConfig, add_task_config
from forkpoint.learner.data import to_input
from forkpoint.workflows.datasets import load_task_data, prepare_note
from forkpoint.workflows.errors import PredictionChangedError, TrunkChangedError
from forkpoint.workflows.home import Home, init_home
from forkpoint.workflows.live import LiveModel, load_live_model
from forkpoint.workflows.predict import collect_images, predict_images
from forkpoint.workflows.progress import PhaseProgress, rich_progress
from forkpoint.workflows.render import branch_label, pct
from forkpoint.workflows.samples import write_samples
from forkpoint.workflows.tasks import AddedTask, add_task_version

MARKER = ".forkpoint-demo"


@dataclass(frozen=True)
class DemoTask:
    name: str
    source: str
    about: str
    limit_per_class: int  # train and test images per class
    val_limit_per_class: int  # validation scores every profiled block: the main cost after training


# Sized so the whole demo takes about four minutes on two CPU cores at 64 px. The learner
# profiles only the blocks whose fork fits the extra-cost budget (the last four of Lite0 at
# 30%), so most of the time is the frozen prefix over every image plus training.
DEFAULT_TASKS = (
    DemoTask("mnist", "mnist", "handwritten digits (MNIST sample)", 100, 20),
    DemoTask("animals", "animals", "animal silhouettes (animal-mnist)", 100, 20),
    DemoTask("digits", "digits", "8x8 optical digits (scikit-learn)", 100, 20),
)


@dataclass(frozen=True)
class DemoSettings:
    tasks: tuple[DemoTask, ...] = DEFAULT_TASKS
    resolution: int = 64
    epochs: int = 6
    profile_epochs: int = 2
    device: str = "auto"
    candidates: UnitRange | None = None  # None: the blocks within the cost budget

    @classmethod
    def default(cls, limit_per_class: int | None = None, resolution: int = 64, epochs: int | None = None,
                profile_epochs: int | None = None, device: str = "auto",
                candidates: UnitRange | None = None) -> "DemoSettings":
        tasks = DEFAULT_TASKS if limit_per_class is None else tuple(
            DemoTask(t.name, t.source, t.about, limit_per_class, limit_per_class) for t in DEFAULT_TASKS)
        return cls(tasks, resolution, epochs or cls.epochs, profile_epochs or cls.profile_epochs, device, candidates)

    def config(self) -> AddTaskConfig:
        """The learner's config builder: the demo sets only its sizes, every other default is add-task's."""
        return add_task_config(epochs=self.epochs, profile_epochs=self.profile_epochs, candidates=self.candidates,
                               device=self.device)


@dataclass
class Reference:
    """A task's test inputs and the logits/fingerprint recorded right after it was registered."""

    inputs: torch.Tensor
    labels: torch.Tensor
    logits: torch.Tensor
    fingerprint: str


@dataclass
class OlderCheck:
    task: str
    images: int
    alone_identical: bool
    shared_identical: bool
    shared_same_predictions: bool
    fingerprint_unchanged: bool

    @property
    def ok(self) -> bool:
        return self.alone_identical and self.shared_same_predictions and self.fingerprint_unchanged


@dataclass
class DemoStep:
    task: DemoTask
    added: AddedTask
    seconds: float
    checks: list[OlderCheck] = field(default_factory=list)
    total_cost_pct: float = 100.0  # one shared pass over every task served after this step
    marginal_cost_pct: float = 0.0  # what this task adds to that pass


@dataclass
class DemoResult:
    home: Path
    steps: list[DemoStep]
    total_cost_pct: float  # one shared pass over all tasks, % of one trunk pass
    marginal_cost_pct: dict[str, float]  # what each task adds to it
    seconds: float


def prepare_home(path: Path) -> Path:
    """Wipe a previous demo home (never anything else) and mark the new one."""
    path = Path(path).expanduser().resolve()
    if path.exists():
        if not path.is_dir() or not ((path / MARKER).is_file() or not any(path.iterdir())):
            raise ConfigError(f"{path} exists and is not a forkpoint demo home: pass another --home (it is wiped first)")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("created by `forkpoint demo`; the next demo run wipes this folder\n")
    return path


def _reference(live: LiveModel, name: str, added: AddedTask, test) -> Reference:
    """Test logits of ``name`` through the registry-rebuilt model (after checking the round trip is exact)."""
    bb = live.model.backbone
    x = to_input(np.require(test.images, requirements="W"), bb.resolution, bb.mean, bb.std)
    logits = live.model(x, tasks=[name])[name]
    fp = live.model.fingerprints()[f"task:{name}"]
    if fp != added.report.fingerprints[f"task:{name}"]:
        raise PredictionChangedError(f"{name}: the branch rebuilt from the registry differs from the trained one; report this as a bug")
    return Reference(x, torch.as_tensor(test.labels), logits, fp)


def _check_older(live: LiveModel, refs: dict[str, Reference], new: str, home: Home) -> list[OlderCheck]:
    fps = live.model.fingerprints()
    if fps["trunk"] != home.fingerprint:
        raise TrunkChangedError(f"the trunk's fingerprint moved after adding {new}: report this as a bug")
    checks = []
    for name, ref in refs.items():
        if name == new:
            continue
        alone = live.model(ref.inputs, tasks=[name])[name]
        shared = live.model(ref.inputs)[name]
        checks.append(OlderCheck(
            task=name, images=len(ref.labels),
            alone_identical=torch.equal(alone, ref.logits),
            shared_identical=torch.equal(shared, ref.logits),
            shared_same_predictions=torch.equal(shared.argmax(1), ref.logits.argmax(1)),
            fingerprint_unchanged=fps[f"task:{name}"] == ref.fingerprint,
        ))
    return checks


def _step_table(step: DemoStep) -> Table:
    r, v = step.added.report, step.added.version
    table = Table(title=f"task {step.task.name}: {step.task.about}  (v{v.version}, {step.seconds:.0f} s)", show_header=False,
                  title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("accuracy", f"val {pct(r.val_acc)}, test {pct(r.test_acc)} ({r.split_sizes['test']} test images)")
    table.add_row("branch point", branch_label(v) + f", {r.trainable_params:,} tuned params")
    n = len(step.checks) + 1
    table.add_row("inference cost", f"{step.total_cost_pct:.1f}% of one trunk pass ({step.task.name} alone)" if n == 1 else
                  f"one shared pass for {n} tasks: {step.total_cost_pct:.1f}% of one trunk pass; {step.task.name} adds "
                  f"{step.marginal_cost_pct:.1f}%")
    for c in step.checks:
        table.add_row(
            f"older task {c.task}",
            ("[green]unchanged[/]" if c.ok else "[red]CHANGED[/]")
            + f": {c.images} test logits {'identical bit for bit' if c.alone_identical else 'DIFFER'}"
            + (", also in the shared pass" if c.shared_identical else
               (", shared pass: same predictions" if c.shared_same_predictions else ", shared pass: predictions DIFFER"))
            + f"; fingerprint {'unchanged' if c.fingerprint_unchanged else 'CHANGED'}",
        )
    return table


def _summary_table(result: DemoResult) -> Table:
    table = Table(title=f"forkpoint demo: {len(result.steps)} tasks on one frozen Lite0 trunk")
    for col in ("task", "data", "train/val/test", "branch point", "tuned params", "adds to the pass", "val acc", "test acc", "time"):
        table.add_column(col, justify="right" if col in ("tuned params", "adds to the pass", "val acc", "test acc", "time") else "left")
    for s in result.steps:
        r, v = s.added.report, s.added.version
        sizes = r.split_sizes
        table.add_row(s.task.name, s.task.source, f"{sizes['train']}/{sizes['val']}/{sizes['test']}", branch_label(v),
                      f"{r.trainable_params:,}", f"{result.marginal_cost_pct[s.task.name]:.1f}%", pct(r.val_acc), pct(r.test_acc),
                      f"{s.seconds:.0f} s")
    return table


def run_demo(home_dir: Path, data_root: Path, settings: DemoSettings = DemoSettings(), console: Console | None = None,
             show_progress: bool = True) -> DemoResult:
    """Fresh home, trunk, three tasks (each checked against all older ones), summary, sample predictions."""
    console = console or Console()
    t0 = time.perf_counter()
    path = prepare_home(home_dir)
    home = init_home(path, None, DEFAULT_ARCH, None, settings.resolution).home
    bb = home.backbone
    console.print(f"[bold]forkpoint demo[/] in {path}: trunk {bb.arch} ({bb.weights_source}), {bb.num_blocks} blocks, "
                  f"{settings.resolution} px, fingerprint {home.fingerprint[:12]}; {torch.get_num_threads()} CPU thread(s)", highlight=False)
    refs: dict[str, Reference] = {}
    steps: list[DemoStep] = []
    cfg = settings.config()
    with home:
        for task in settings.tasks:
            started = time.perf_counter()
            if (note := prepare_note(task.source, data_root)) is not None:
                console.print(note, highlight=False, markup=False)
            data = load_task_data(task.source, data_root, task.limit_per_class, val_limit=task.val_limit_per_class)
            console.print(f"\n[bold]adding {task.name}[/]: {task.about}, {len(data.class_names)} classes, "
                          + "/".join(str(n) for n in data.sizes.values()) + " train/val/test images", highlight=False)
            if show_progress:
                with rich_progress(console) as display:
                    added = add_task_version(home, task.name, data, cfg, description=f"demo: {task.about}",
                                             progress=PhaseProgress(display))
            else:
                added = add_task_version(home, task.name, data, cfg, description=f"demo: {task.about}")
            live = load_live_model(home)  # everything from the registry, nothing from memory
            refs[task.name] = _reference(live, task.name, added, data.dataset.test)
            step = DemoStep(task, added, time.perf_counter() - started, _check_older(live, refs, task.name, home),
                            live.model.total_cost_pct(), live.model.marginal_cost_pct(task.name))
            steps.append(step)
            console.print(_step_table(step))
            bad = [c.task for c in step.checks if not c.ok]
            if bad:
                raise PredictionChangedError(f"adding {task.name} changed older task(s) {', '.join(bad)}: forgetting detected; report this as a bug")

        live = load_live_model(home)
        result = DemoResult(path, steps, live.model.total_cost_pct(), {t: live.model.marginal_cost_pct(t) for t in live.tasks},
                            time.perf_counter() - t0)
        console.print()
        console.print(_summary_table(result))
        n = len(steps)
        console.print(f"serving all {n} tasks: one shared pass costing {result.total_cost_pct:.1f}% of one trunk pass "
                      f"({n} separately finetuned models: {100 * n}%)", highlight=False)
        sample_dirs = [write_samples_dir(path, s.task, data_root) for s in steps]
        picks = [sorted(d.glob("*.png"))[3] for d in sample_dirs]  # one test image (class 3) per task
        preds = predict_images(live, collect_images(picks), live.tasks, top_k=1)
        console.print(_shared_pass_table(preds, [s.task.name for s in steps], path))
        console.print("profile plots:", highlight=False)
        for s in steps:
            console.print(f"  {s.task.name}: {s.added.report.plot}", highlight=False)
        console.print(f"total {result.seconds:.0f} s. Next: forkpoint --home {path} tasks (or history mnist, "
                      f"predict {path / 'samples'}, audit)", highlight=False)
    return result


def _shared_pass_table(preds, owners: list[str], home: Path) -> Table:
    """One image per task through the shared pass; the owning task's answer is the one that counts."""
    table = Table(title="one shared forward pass, every task's answer (bold: the image's own task)")
    table.add_column("image")
    for t in owners:
        table.add_column(t)
    for owner, p in zip(owners, preds):
        cells = [f"[bold]{p.tasks[t].label} ({100 * p.tasks[t].probability:.0f}%)[/]" if t == owner
                 else f"{p.tasks[t].label} ({100 * p.tasks[t].probability:.0f}%)" for t in owners]
        table.add_row(str(Path(p.path).relative_to(home)), *cells)
    return table


def write_samples_dir(home: Path, task: DemoTask, data_root: Path) -> Path:
    out = home / "samples" / task.name
    write_samples(task.source, out, per_class=1, split="test", data_root=data_root)
    return out
