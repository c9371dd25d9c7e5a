"""Run a stream with every chosen strategy on one backbone and one benchmark, then report.

For each strategy: train experience i, evaluate experiences 0..i with Avalanche's
metrics; then measure what each task costs and how long serving all tasks takes.
SubTuning additionally runs the exact no-forgetting check; if anything moved the run
is marked failed and :class:`ForgettingError` (exit 1) is raised after the report is
written.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from forkpoint.contract.branch import UnitRange
from forkpoint.contract.errors import ConfigError, ForgettingError
from forkpoint.learner import AddTaskConfig, Backbone, MultiTaskModel, add_task_config, load_backbone
from forkpoint.learner.data import to_input
from forkpoint.learner.device import Stopwatch, resolve_device
from forkpoint.learner.methods import MethodRecipe
from forkpoint.scenarios.baselines import (
    AVALANCHE_BASELINES,
    EWC_LAMBDAS,
    LWF_SETTINGS,
    STRATEGIES,
    BaselineConfig,
    FullFinetuneStrategy,
    StreamSplits,
    make_baseline,
    stream_splits,
)
from forkpoint.scenarios.benchmark import build_benchmark
from forkpoint.scenarios.class_incremental import class_incremental
from forkpoint.scenarios.metrics import (
    STREAM_BWT,
    STREAM_FORGETTING,
    accuracy_matrix,
    avalanche_matrix,
    changed_accuracies,
    forgetting_per_task,
    inference_ms_per_image,
    last_value,
    make_evaluator,
)
from forkpoint.scenarios.models import SubTuningModule
from forkpoint.scenarios.report import StrategyResult, write_reports
from forkpoint.scenarios.runstate import DONE, FAILED, RunState
from forkpoint.scenarios.schedule import StepSchedule, split_scores
from forkpoint.scenarios.streams import Stream
from forkpoint.scenarios.subtuning import NoForgettingCheck, PerTaskStrategy, SubTuningStrategy, TaskSource, TrainLocally


@dataclass(frozen=True)
class RunConfig:
    """Settings shared by all strategies of a run (every baseline trains on SubTuning's schedule)."""

    strategies: tuple[str, ...] = STRATEGIES
    resolution: int = 64
    epochs: int = 4
    profile_epochs: int = 1
    candidates: UnitRange | None = None  # SubTuning's profiled units; None = those within the cost budget
    max_blocks: int = 3
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    infer_images: int = 64
    workers: int = 1  # strategies run as this many Ray tasks side by side (learner.parallel); results as with 1
    ewc_lambdas: tuple[float, ...] = EWC_LAMBDAS  # tried in turn; validation keeps one
    lwf_settings: tuple[tuple[float, float], ...] = LWF_SETTINGS  # (alpha, temperature) pairs, likewise

    def __post_init__(self) -> None:
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise ConfigError(f"unknown strategy '{unknown[0]}': use any of {', '.join(STRATEGIES)}")
        if not self.strategies:
            raise ConfigError(f"no strategy chosen: use any of {', '.join(STRATEGIES)}")
        if self.resolution < 16:
            raise ConfigError(f"resolution {self.resolution} px is too small for a CNN trunk: use 16 or more")
        if self.epochs < 1 or self.profile_epochs < 1:
            raise ConfigError(f"epochs ({self.epochs}) and profile epochs ({self.profile_epochs}) must be >= 1")
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers} must be >= 1")

    def subtuning(self) -> AddTaskConfig:
        """The learner's config builder with this run's settings (its defaults for everything else)."""
        return add_task_config(epochs=self.epochs, profile_epochs=self.profile_epochs, batch_size=self.batch_size,
                               budget_blocks=self.max_blocks, seed=self.seed, candidates=self.candidates, device=self.device)

    def baseline(self) -> BaselineConfig:
        """Every baseline: SubTuning's schedules, views and split; the Avalanche strategies' trunk at this run's lr."""
        sub = self.subtuning()
        recipe = MethodRecipe.of(sub)
        recipe = replace(recipe, train=replace(recipe.train, lr=self.lr))
        return BaselineConfig(recipe=recipe, batch_size=self.batch_size, ewc_lambdas=tuple(self.ewc_lambdas),
                              lwf_settings=tuple(tuple(p) for p in self.lwf_settings), val_fraction=sub.val_fraction,
                              split_seed=sub.split_seed)

    def settings(self) -> dict:
        """What must not change between a run and its resume (the strategy list and device may)."""
        return {"resolution": self.resolution, "seed": self.seed, "subtuning": self.subtuning().to_dict() | {"device": None},
                "baseline": self.baseline().to_dict()}


@dataclass
class RunOutcome:
    run_id: str
    status: str
    results: list[StrategyResult]
    files: dict[str, Path] = field(default_factory=dict)
    folder: Path | None = None


def _inference_input(stream: Stream, backbone: Backbone, n: int) -> torch.Tensor:
    images = stream.tasks[0].dataset.test.images[:n]
    return to_input(images, backbone.resolution, backbone.mean, backbone.std)


@dataclass
class _Trained:
    """One strategy (one setting of it) trained over the stream."""

    strategy: object
    evaluator: object
    check: NoForgettingCheck | None
    schedule: StepSchedule | None
    seconds: list[float]
    steps: int
    setting: dict
    val_acc: list[float] = field(default_factory=list)  # Avalanche baselines: each task's validation accuracy at the end

    @property
    def mean_val(self) -> float:
        return sum(self.val_acc) / len(self.val_acc) if self.val_acc else float("nan")


def _train_once(name: str, stream: Stream, benchmark, backbone: Backbone, config: RunConfig, source: TaskSource | None,
                progress, splits: StreamSplits, setting: dict) -> _Trained:
    """Train ``name`` (at ``setting``) over every experience, evaluating experiences 0..i after experience i."""
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    evaluator = make_evaluator()
    check = schedule = None
    if name == "subtuning":
        check = NoForgettingCheck()
        strategy = SubTuningStrategy(
            model=SubTuningModule(MultiTaskModel(backbone)), tasks=stream.tasks,
            source=source or TrainLocally(config.subtuning(), progress), evaluator=evaluator, device=device,
            plugins=[check],
        )
    else:
        cfg = config.baseline()
        plugins = None
        if name in AVALANCHE_BASELINES:
            label = name + "".join(f" {k}={v:g}" for k, v in setting.items())
            schedule = StepSchedule(cfg.recipe.train, splits.val, splits.originals, progress, label)
            plugins = [schedule]
        strategy = make_baseline(name, backbone, cfg, stream.tasks, evaluator=evaluator, device=device, plugins=plugins,
                                 setting=setting)

    seconds: list[float] = []
    steps = 0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="avalanche")  # Avalanche's own internals
        for i, experience in enumerate(benchmark.train_stream):
            with Stopwatch(device) as sw:
                strategy.train(experience, eval_streams=[])
            seconds.append(sw.seconds)
            strategy.eval(benchmark.test_stream[: i + 1])
            steps = i + 1
            if check is not None and check.violations:
                break  # fail fast: the report shows where it broke
    trained = _Trained(strategy, evaluator, check, schedule, seconds, steps, setting)
    if schedule is not None:
        trained.val_acc = [split_scores(strategy.model, splits.val[t], t, device)[0] for t in range(steps)]
    return trained


def _selection(name: str, trials: list[_Trained], chosen: _Trained) -> dict:
    """What the run tried for ``name`` and why it kept ``chosen`` (validation only; empty when nothing was picked)."""
    out: dict = {}
    if chosen.schedule is not None:
        out["steps_per_task"] = list(chosen.schedule.steps)
        out["val_history"] = chosen.schedule.history
    if len(trials) > 1:
        out.update(rule="mean validation accuracy over all tasks after the last one (ties: the first setting)",
                   chosen=chosen.setting,
                   trials=[{"setting": t.setting, "val_acc": t.val_acc, "mean_val_acc": t.mean_val} for t in trials])
    if isinstance(chosen.strategy, FullFinetuneStrategy):
        out["lr_per_task"] = chosen.strategy.choices
    return out


def run_strategy(
    name: str,
    stream: Stream,
    benchmark,
    backbone: Backbone,
    config: RunConfig,
    source: TaskSource | None = None,
    progress=None,
    splits: StreamSplits | None = None,
) -> StrategyResult:
    """Train and evaluate one strategy over the whole stream (each of its settings in turn, when it has a grid)."""
    splits = splits or stream_splits(stream.tasks, backbone, config.baseline())
    tasks = [t.name for t in stream.tasks]
    trials = []
    for setting in config.baseline().trials(name):
        trials.append(_train_once(name, stream, benchmark, backbone, config, source, progress, splits, setting))
    chosen = trials[0] if len(trials) == 1 else max(trials, key=lambda t: (t.mean_val, -trials.index(t)))
    strategy, evaluator, check, seconds, steps = chosen.strategy, chosen.evaluator, chosen.check, chosen.seconds, chosen.steps

    model = strategy.model
    matrix = accuracy_matrix(evaluator, steps)
    checks, registry, restored = {}, [], []
    if isinstance(strategy, PerTaskStrategy):
        seconds = list(strategy.seconds)  # training time; for restored SubTuning tasks, the original run's
    ci: dict = {}
    if isinstance(strategy, SubTuningStrategy):
        registry = [a.registered_as for a in strategy.added if a.registered_as]
        restored = [a.restored_from for a in strategy.added if a.restored_from]
        names = [model.name_of(i) for i in range(steps)]
        ci = class_incremental(stream.tasks[:steps], names, model.model, config.subtuning().val_fraction, config.seed)
    if check is not None:
        violations = list(check.violations) + changed_accuracies(matrix)
        checks = {"comparisons": check.comparisons, "violations": violations, "passed": not violations}
    costs = [model.task_cost(t) for t in range(steps)]
    x = _inference_input(stream, backbone, config.infer_images).to(next(model.parameters()).device)
    return StrategyResult(
        strategy=name,
        tasks=tasks[:steps],
        acc_matrix=matrix,
        forgetting=last_value(evaluator, STREAM_FORGETTING),
        bwt=last_value(evaluator, STREAM_BWT),
        forgetting_per_task=forgetting_per_task(evaluator, steps),
        trainable_params=[c.trainable_params for c in costs],
        stored_bytes=[c.stored_bytes for c in costs],
        serving_bytes=model.serving_bytes(),
        train_seconds=seconds,
        infer_ms_per_image=inference_ms_per_image(model, x),
        avalanche_acc_matrix=avalanche_matrix(evaluator),
        checks=checks,
        registry=registry,
        restored=restored,
        class_incremental=ci,
        selection=_selection(name, trials, chosen),
        search_seconds=sum(sum(t.seconds) for t in trials if t is not chosen),
    )


def _strategy_on_worker(name: str, stream: Stream, backbone, config: RunConfig) -> StrategyResult:
    """One strategy on a Ray worker: the trunk from the object store, the benchmark rebuilt from the stream."""
    from forkpoint.learner.parallel import fetch

    backbone = fetch(backbone)
    splits = stream_splits(stream.tasks, backbone, config.baseline())
    return run_strategy(name, stream, build_benchmark(stream, backbone, splits.train), backbone, config, splits=splits)


def _run_side_by_side(names: list[str], stream: Stream, benchmark, backbone: Backbone, config: RunConfig,
                      source: TaskSource | None, progress, state: RunState, splits: StreamSplits) -> dict[str, StrategyResult]:
    """Every strategy in ``names`` at once, as Ray tasks (each is independent: own model, own seed).

    SubTuning that records into a home runs here, in the driver, while the others run on
    workers: only the driver writes the registry. Each result is saved as it arrives, so
    a resume skips what finished.
    """
    from forkpoint.learner.parallel import Call, open_executor

    with open_executor(config.workers, gpu=resolve_device(config.device).type == "cuda") as executor:
        trunk = executor.share(backbone)
        calls = [
            Call(f"strategy:{n}", run_strategy, (n, stream, benchmark, backbone, config, source, progress, splits), here=True)
            if (n == "subtuning" and source is not None) or executor.local
            else Call(f"strategy:{n}", _strategy_on_worker, (n, stream, trunk, config))
            for n in names
        ]
        results = executor.map(calls, lambda r: state.save_result(r.strategy, r.to_dict()))
    return dict(zip(names, results))


def run_stream(
    stream: Stream,
    config: RunConfig,
    out: Path,
    home=None,
    resume: bool = False,
    progress=None,
    backbone: Backbone | None = None,
    task_source: TaskSource | None = None,
) -> RunOutcome:
    """Run every strategy of ``config`` on ``stream``; write reports into ``out``.

    ``home`` (a ``workflows.Home``) records SubTuning's tasks under the run id and lets
    ``resume`` restore them; its trunk is then the backbone of every strategy.
    ``task_source`` replaces how SubTuning obtains each branch (default: add_task,
    recorded in ``home`` when given).
    """
    if home is not None:
        if home.record.resolution != config.resolution:
            raise ConfigError(
                f"home {home.path} serves its trunk at {home.record.resolution} px, not {config.resolution}: pass --resolution {home.record.resolution} or use another --home"
            )
        backbone = home.backbone
    elif backbone is None:
        backbone = load_backbone(resolution=config.resolution)
    elif backbone.resolution != config.resolution:
        raise ConfigError(f"backbone resolution {backbone.resolution} != run resolution {config.resolution}")

    identity = {"stream": stream.describe(), "settings": config.settings(), "backbone": backbone.fingerprint()}
    state = RunState.start(Path(out), stream.name, identity, resume)
    splits = stream_splits(stream.tasks, backbone, config.baseline())
    benchmark = build_benchmark(stream, backbone, splits.train)
    source = task_source
    if source is None and home is not None:
        from forkpoint.scenarios.recording import RegistryTasks

        source = RegistryTasks(home, state.run_id, stream, config.subtuning(), progress, Path(out) / "plots")

    results: list[StrategyResult] = []
    failed: list[str] = []
    done: dict[str, StrategyResult] = {}
    for name in config.strategies:
        saved = state.load_result(name) if resume else None
        if saved is not None:
            done[name] = StrategyResult.from_dict(saved)
    if config.workers > 1:
        todo = [n for n in config.strategies if n not in done]
        done.update(_run_side_by_side(todo, stream, benchmark, backbone, config, source, progress, state, splits))
    for name in config.strategies:
        result = done.get(name)
        if result is None:
            result = run_strategy(name, stream, benchmark, backbone, config,
                                  source if name == "subtuning" else None, progress, splits)
            state.save_result(name, result.to_dict())
        results.append(result)
        if result.checks and not result.checks.get("passed", True):
            failed.append(name)
            break

    state.status = FAILED if failed else DONE
    run = {"run_id": state.run_id, "status": state.status, "stream": stream.describe(),
           "settings": {**asdict(config), "strategies": list(config.strategies)}, "backbone": backbone.describe()}
    files = write_reports(Path(out), run, results)
    state.mark(state.status)
    outcome = RunOutcome(state.run_id, state.status, results, files, Path(out))
    if failed:
        first = results[-1].checks["violations"][0]
        raise ForgettingError(
            f"SubTuning changed an earlier task's outputs ({first}; {len(results[-1].checks['violations'])} problem(s)): run {state.run_id} marked failed, see {files['markdown']}"
        )
    return outcome
