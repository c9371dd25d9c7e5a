"""Adding one task: validate -> profile -> select -> SubTune a fresh branch -> check -> attach.

The model is only touched at the very end, after the no-forgetting check passed, so a
failure at any step leaves it exactly as it was.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from forkpoint.contract.branch import BranchSpec
from forkpoint.contract.draft import VersionDraft
from forkpoint.learner.branch import Branch
from forkpoint.contract.branch import UnitRange
from forkpoint.contract.errors import ConfigError, DataError
from forkpoint.contract.names import check_task_name
from forkpoint.learner.augment import with_views
from forkpoint.learner.cache import PrefixCache
from forkpoint.learner.config import AddTaskConfig
from forkpoint.learner.crossval import cross_validate
from forkpoint.learner.data import TaskData, check_labels, check_task, stratified_split, to_input
from forkpoint.learner.invariants import FrozenGuard
from forkpoint.learner.lrsearch import pick_rate, scaled_rates
from forkpoint.learner.multitask import MultiTaskModel
from forkpoint.learner.probe import ProbeFit, fit_probe, refit_probe
from forkpoint.learner.parallel import SERIAL, open_executor
from forkpoint.learner.profile import Candidate, ScoreJob, plot_profile, probe_candidate, run_profile, score_ranges
from forkpoint.learner.select import beats, greedy_select
from forkpoint.learner.device import resolve_device
from forkpoint.learner.train import accuracy, fit, num_evals, predict


@dataclass
class TaskReport:
    """What happened when a task was added: the audit trail and the figures."""

    name: str
    class_names: list[str]
    spec: BranchSpec
    block_names: list[str]
    profile: list[Candidate]
    greedy: list[Candidate]
    val_acc: float
    test_acc: float | None
    per_class_test_acc: dict[str, float]
    trainable_params: int
    total_params: int
    extra_cost_pct: float
    split_sizes: dict[str, int]
    timings: dict[str, float]
    device: str
    config: dict
    fingerprints: dict[str, str] = field(default_factory=dict)
    plot: str | None = None
    notes: list[str] = field(default_factory=list)  # decisions a user should know about (e.g. probe fallback)

    def branch_dict(self) -> dict:
        return self.spec.to_dict(self.block_names)

    def metrics(self) -> dict:
        return {"val_acc": self.val_acc, "test_acc": self.test_acc, "per_class_test_acc": self.per_class_test_acc}

    def draft(self, backbone_fingerprint: str, tensors: dict[str, torch.Tensor], **provenance) -> VersionDraft:
        """The version this report describes, for ``Registry.add_version(task, draft)``.

        ``provenance`` fills the fields the learner does not know (data_md5, data_path,
        description, run_id, parent_version) and may extend ``metrics``/``config``.
        """
        metrics = {**self.metrics(), "timings": self.timings, "device": self.device, "notes": self.notes,
                   **provenance.pop("metrics", {})}
        config = {**self.config, **provenance.pop("config", {})}
        return VersionDraft(
            backbone_fingerprint=backbone_fingerprint,
            class_names=tuple(self.class_names),
            spec=self.spec,
            block_names=tuple(self.block_names),
            tensors=tensors,
            metrics=metrics,
            profile=tuple(c.to_dict() for c in self.profile + self.greedy),
            config=config,
            split_seed=int(self.config.get("split_seed", 0)),
            split_sizes=dict(self.split_sizes),
            trainable_params=self.trainable_params,
            total_params=self.total_params,
            extra_cost_pct=self.extra_cost_pct,
            **provenance,
        )

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "class_names": self.class_names,
            "branch": self.branch_dict(),
            "profile": [c.to_dict() for c in self.profile + self.greedy],
            "metrics": self.metrics(),
            "trainable_params": self.trainable_params,
            "total_params": self.total_params,
            "extra_cost_pct": self.extra_cost_pct,
            "split_sizes": self.split_sizes,
            "timings": self.timings,
            "device": self.device,
            "config": self.config,
            "plot": self.plot,
            "notes": self.notes,
        }


class _Phases:
    """Progress bars (rich) for add-task's phases; silent when no Progress is given.

    A phase that ends early (early stopping, a skipped cross-validation) is closed at what
    it did, and every closed bar stays: a terminal shows each phase finished, and a log
    file (where rich prints the bars once, at the end) gets every phase, not the last.
    """

    def __init__(self, progress, name: str) -> None:
        self.progress, self.name, self.id, self.total = progress, name, None, 0

    def start(self, what: str, total: int) -> None:
        self.done()
        self.total = total
        if self.progress is not None:
            self.id = self.progress.add_task(f"{self.name}: {what}", total=total)

    def advance(self, n: int = 1) -> None:
        if self.progress is not None and self.id is not None:
            self.progress.advance(self.id, n)

    def done(self) -> None:
        if self.progress is not None and self.id is not None:
            self.progress.update(self.id, completed=self.total)
            self.id = None


def _splits(data: TaskData, cfg: AddTaskConfig, res: int, mean, std):
    """Backbone-ready tensors for train/val/test; val carved from train when absent (never from test)."""
    k = len(data.class_names)
    x_train = to_input(data.train.images, res, mean, std)
    y_train = check_labels(data.train.labels, k, "train")
    if data.val is not None:
        x_val, y_val = to_input(data.val.images, res, mean, std), check_labels(data.val.labels, k, "val")
    else:
        tr, va = stratified_split(y_train, cfg.val_fraction, cfg.split_seed)
        x_train, y_train, x_val, y_val = x_train[tr], y_train[tr], x_train[va], y_train[va]
    if data.test is not None:
        x_test, y_test = to_input(data.test.images, res, mean, std), check_labels(data.test.labels, k, "test")
    else:
        x_test, y_test = None, None
    return x_train, y_train, x_val, y_val, x_test, y_test


def profile_candidates(bb, cfg: AddTaskConfig) -> list[int]:
    """Units to profile: the user's range, else every unit whose fork fits the cost budget.

    Greedy selection discards any unit over the extra-cost budget, so profiling those is
    wasted time (up to 4x the add-task cost on Lite0); ``candidates=(0, n)`` profiles all.
    """
    n_units = bb.num_blocks
    if cfg.candidates is not None:
        rng = cfg.candidates.check(n_units, "--candidates")
        if rng.is_probe:
            return []
        return list(range(rng.start, rng.stop))
    units = [i for i in range(n_units) if bb.extra_cost_pct(i) <= cfg.selection.max_extra_cost]
    if not units:
        raise ConfigError(
            f"no block fits the extra-cost budget of {cfg.selection.max_extra_cost:g}% (cheapest is {bb.extra_cost_pct(n_units - 1):.1f}%): raise --max-extra-cost"
        )
    return units


def _train_views(caches, x_train: torch.Tensor, cfg: AddTaskConfig, depth: int) -> tuple[PrefixCache, torch.Tensor]:
    """The final training's split: the training cache, plus augmented views of it when asked for
    (the originals' activations at ``depth`` are reused; only the views run the prefix)."""
    train, y_train = caches[0], caches[1]
    if cfg.augment.views == 0:
        return train, y_train
    x, y = with_views(x_train, y_train, cfg.augment, cfg.split_seed)
    return train.extended(x[len(x_train):], depth), y


def _fit_probe(bb, caches, num_classes: int) -> tuple[ProbeFit, float]:
    train, y_train, val, y_val = caches
    t0 = time.perf_counter()
    probe = fit_probe(train.trunk_features(), y_train, val.trunk_features(), y_val, num_classes)
    return probe, time.perf_counter() - t0


def add_task(
    model: MultiTaskModel,
    name: str,
    data: TaskData,
    cfg: AddTaskConfig = AddTaskConfig(),
    progress=None,
    plot_dir: Path | None = None,
) -> TaskReport:
    """Profile, select and SubTune a new branch for ``name``; attach it only if nothing frozen moved.

    The recipe: fit the linear probe on the frozen trunk's features (seconds); profile
    each affordable unit with its head starting from that probe (LP-FT); grow the best
    unit greedily; train the chosen branch from the probe head; serve it only if it beats
    the probe on validation by more than noise (the probe tunes no units: alone it costs one trunk pass;
    beside forking tasks it keeps the trunk's rows running past their forks, ``MultiTaskModel.total_cost_pct``).
    """
    check_task_name(name)
    if name in model.branches:
        raise ConfigError(f"task '{name}' already exists in this model: pick another name")
    check_task(data)
    bb = model.backbone
    n_units = bb.num_blocks
    fixed = cfg.branch.check(n_units) if cfg.branch is not None else None
    device = resolve_device(cfg.device)
    phases = _Phases(progress, name)
    guard = FrozenGuard(model)
    t_start = time.perf_counter()
    home_device = next(bb.parameters()).device
    num_classes = len(data.class_names)

    x_train, y_train, x_val, y_val, x_test, y_test = _splits(data, cfg, bb.resolution, bb.mean, bb.std)
    t_decode = time.perf_counter() - t_start
    if len(y_val) < num_classes:
        raise DataError(f"only {len(y_val)} validation images for {num_classes} classes: add images (>= 2 per class)")
    model.to(device)
    notes: list[str] = []
    stack = contextlib.ExitStack()  # a Ray this call starts is shut down when it returns or fails
    try:
        caches = (
            PrefixCache(bb, x_train, device, cfg.cache_budget_mb, cfg.cache), y_train,
            PrefixCache(bb, x_val, device, cfg.cache_budget_mb, cfg.cache), y_val,
        )
        units = profile_candidates(bb, cfg) if fixed is None else [fixed.start]
        t0 = time.perf_counter()
        for cache in (caches[0], caches[2]):  # one prefix pass per split: probe features start from the deepest
            cache.warm(units)
        t_cache = time.perf_counter() - t0
        need_probe = cfg.lp_init or cfg.probe_candidate or (fixed is not None and fixed.is_probe)
        probe, t_probe = _fit_probe(bb, caches, num_classes) if need_probe else (None, 0.0)
        probe_cand = probe_candidate(bb, probe, t_probe) if probe is not None else None
        head_init = probe if cfg.lp_init else None
        profile: list[Candidate] = []
        greedy: list[Candidate] = []
        t0 = time.perf_counter()
        executor = SERIAL
        if fixed is None:
            # Ray only for workers > 1 (or RAY_ADDRESS); its tasks take a GPU each when this run trains on one
            executor = stack.enter_context(open_executor(cfg.workers, gpu=device.type == "cuda"))
            phases.start("profile", len(units))
            profile = run_profile(bb, units, caches, num_classes, cfg.profile, cfg.siamese, lambda c: phases.advance(),
                                  head_init, executor)
            t_profile = time.perf_counter() - t0
            # trainings greedy may run: the run to the head, then one per earlier fork; or two options a step
            sel = cfg.selection
            phases.start("select", len(units) if sel.free_growth else 2 * (sel.max_blocks - 1))
            job = ScoreJob(bb, caches, num_classes, cfg.profile, cfg.siamese, head_init)

            def score(options) -> list[Candidate]:
                return score_ranges(job, options, "greedy", executor, lambda c: phases.advance())

            # The probe competes with the *trained* branch below, not with short profile runs:
            # a profile run from the probe's head is still in its transient and scores under it.
            if profile:
                chosen, greedy = greedy_select(profile, score, bb.extra_cost_pct, n_units, cfg.selection)
            elif probe_cand is not None and cfg.probe_candidate:
                chosen = probe_cand
            else:
                raise ConfigError("nothing to profile and the probe is not a candidate: widen --candidates")
            start, stop = chosen.start, chosen.stop
            train_cfg = cfg.train
            if start < stop and len(cfg.lr_factors) > 1:
                factor, tried = pick_rate(job, chosen, cfg.lr_factors, executor)
                greedy += tried
                train_cfg = scaled_rates(cfg.train, factor)
                if factor != 1.0:
                    notes.append(f"validation chose {factor:g}x the learning rates for {chosen.label} "
                                 f"(blocks {train_cfg.lr:g}, head {train_cfg.head_lr:g})")
            t_select = time.perf_counter() - t0 - t_profile
        else:
            start, stop = fixed.start, fixed.stop
            t_profile = t_select = 0.0
            train_cfg = cfg.train

        t1 = time.perf_counter()
        t_cv = 0.0

        def served_probe() -> Branch:
            """The probe as the served head, refitted on train + validation (``probe.refit_probe``)."""
            refit = refit_probe(probe, caches[0].trunk_features(), y_train, caches[2].trunk_features(), y_val, num_classes)
            head = Branch.new(bb, n_units, n_units, num_classes, cfg.siamese, seed=cfg.train.seed)
            head.init_head(refit.weight, refit.bias)
            notes.append("the linear probe is served refitted on train + validation at the L2 strength validation chose")
            return head

        if start == stop and probe is not None and not cfg.siamese:
            # the probe is the converged head: nothing left to train
            branch = served_probe()
            val_acc = probe.val_acc
            phases.start("probe", 1)
            phases.done()
        else:
            branch = Branch.new(bb, start, stop, num_classes, cfg.siamese, seed=cfg.train.seed)
            if probe is not None and (cfg.lp_init or start == stop):
                branch.init_head(probe.weight, probe.bias)
            phases.start(f"train {UnitRange(start, stop).label(bb.block_names)}", num_evals(cfg.train, len(y_train)))
            result = fit(bb, branch, *_train_views(caches, x_train, cfg, start), *caches[2:], train_cfg,
                         on_epoch=lambda e, a: phases.advance(), epoch_size=len(y_train))
            phases.done()
            val_acc = result.val_acc
            if fixed is None and probe_cand is not None and cfg.probe_candidate and not cfg.siamese and start != stop:
                final = Candidate(start, stop, bb.block_names[start:stop], branch.num_params(), round(bb.extra_cost_pct(start), 3),
                                  result.val_acc, result.seconds, result.epochs_run, "final", result.val_loss, result.val_correct)
                greedy.append(final)
                mine, rival = final, probe_cand
                # Too few validation images to decide on: k-fold over train + val, unless validation alone
                # already shows the branch ahead by CV_SKIP_Z paired standard errors (then more votes cannot flip it cheaply).
                clear = cfg.cv_skip_z != float("inf") and beats(final, probe_cand,
                                                                 replace(cfg.selection, z=max(cfg.selection.z, cfg.cv_skip_z)))
                if len(y_val) < cfg.cv_below_val and clear:
                    notes.append(f"branch {final.label} beat the linear probe on validation by more than "
                                 f"{cfg.cv_skip_z:g} standard errors: no cross-validation needed")
                elif len(y_val) < cfg.cv_below_val:
                    phases.start(f"cross-validate {final.label} vs probe", 1)
                    t_cv0 = time.perf_counter()
                    mine, rival = cross_validate(bb, caches[0].extended(caches[2], start), torch.cat([y_train, y_val]),
                                                 start, stop, num_classes, train_cfg, device, lp_init=cfg.lp_init,
                                                 executor=executor, steps=result.best_step, l2=probe.l2)
                    t_cv = time.perf_counter() - t_cv0
                    greedy += [mine, rival]
                    phases.done()
                if not beats(mine, rival, cfg.selection):
                    how = "cross-validated" if mine.stage == "cv" else "on validation"
                    notes.append(f"branch {final.label} scored {100 * mine.val_acc:.1f}% {how}, not clearly above the "
                                 f"linear probe's {100 * rival.val_acc:.1f}%: serving the probe (no tuned units)")
                    start = stop = n_units
                    branch = served_probe()
                    val_acc = probe.val_acc
        t_train = time.perf_counter() - t1

        t_train -= t_cv
        t0 = time.perf_counter()
        test_acc, per_class = None, {}
        if x_test is not None:
            preds = predict(bb, branch, PrefixCache(bb, x_test, device, cfg.cache_budget_mb, cfg.cache))
            test_acc = accuracy(preds, y_test)
            per_class = {
                c: accuracy(preds[y_test == i], y_test[y_test == i]) for i, c in enumerate(data.class_names) if (y_test == i).any()
            }
        t_test = time.perf_counter() - t0
        branch.freeze()
    finally:
        stack.close()
        model.to(home_device)
    branch.to(home_device)
    guard.check()
    model.add(name, branch, data.class_names)

    candidates_seen = ([probe_cand] if probe_cand is not None and fixed is None else []) + profile
    plot = None
    if plot_dir is not None and profile:
        plot = str(plot_profile(candidates_seen, Path(plot_dir) / f"{name}-profile.png", f"{name}: finetuning profile", (start, stop)))
    return TaskReport(
        name=name,
        class_names=list(data.class_names),
        spec=branch.spec,
        block_names=list(bb.block_names),
        profile=candidates_seen,
        greedy=greedy,
        val_acc=val_acc,
        test_acc=test_acc,
        per_class_test_acc=per_class,
        trainable_params=branch.num_params(),
        total_params=branch.num_params() + sum(p.numel() for p in bb.parameters()),
        extra_cost_pct=round(bb.extra_cost_pct(start), 3) if start < n_units else 0.0,
        split_sizes={"train": len(y_train), "val": len(y_val), "test": 0 if y_test is None else len(y_test)},
        # train_s: the final training with its augmented views' prefix pass; cv_s: the branch-vs-probe folds
        timings={k: round(v, 3) for k, v in {  # milliseconds are all a duration needs (and all the diff shows)
            "decode_s": t_decode, "cache_s": t_cache, "probe_s": t_probe, "profile_s": t_profile, "select_s": t_select,
            "train_s": t_train, "cv_s": t_cv, "test_s": t_test, "total_s": time.perf_counter() - t_start}.items()},
        device=str(device),
        config=cfg.to_dict(),
        fingerprints=model.fingerprints(),
        plot=plot,
        notes=notes,
    )
