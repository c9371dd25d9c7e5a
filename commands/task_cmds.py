"""Commands over a home and its tasks: ``init``, ``info``, ``add-task``, ``predict``, ``demo``, ``samples``."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from forkpoint.contract import recipe

from forkpoint.commands._paths import parent_exists
from forkpoint.commands._shared import (
    DEFAULT_BACKBONE,
    DEMO_HOME,
    State,
    UnitRangeParam,
    device_option,
    emit_json,
    json_option,
    pass_state,
    resolve_units,
)


# ---- home -------------------------------------------------------------------------------


@click.command()
@click.option("--backbone", "arch", default=None, metavar="ARCH",
              help=f"timm architecture [default: {DEFAULT_BACKBONE}, with its embedded ImageNet weights (offline)]. Others need --weights.")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False), help="Local .safetensors/state-dict file for --backbone; stored in the registry.")
@click.option("--random-init", is_flag=True, help="Accept a randomly initialised trunk for a --backbone without --weights (tests only).")
@click.option("--resolution", type=click.IntRange(16, 1024), help="Input size in pixels (default: the model's, 224 for Lite0; 64 is a good CPU choice).")
@click.option("--store", metavar="URL",
              help="Keep weights in this object store instead of HOME/objects: s3://BUCKET/PREFIX (credentials and endpoint from "
                   "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, FORKPOINT_S3_ENDPOINT), file:///PATH or any fsspec URL. "
                   "Recorded in the database: every home on the same --db uses it.")
@json_option
@pass_state
def init(state: State, arch: str | None, weights: str | None, random_init: bool, resolution: int | None, store: str | None,
         as_json: bool) -> None:
    """Create a registry home and register its frozen trunk (idempotent; with no options, shows an existing home)."""
    from forkpoint.workflows.home import InitResult, existing_home, init_home
    from forkpoint.workflows.render import backbone_dict, backbone_table

    plain = (arch, weights, resolution, random_init, store) == (None, None, None, False, None)
    found = existing_home(state.home, state.db) if plain else None
    result = InitResult(found, created=False) if found is not None else init_home(
        state.home, state.db, arch or DEFAULT_BACKBONE, weights, resolution, random_init=random_init, store=store)
    with result.home as home:
        db = _shown_db(home.registry.url)
        for note in result.notes:
            state.note(note)
        if home.registry.store_url:
            state.note(f"weights in {home.registry.store_url} (recorded in the database)")
        if as_json:
            emit_json({**backbone_dict(home.record, str(home.path), db, _store_of(home)), "created": result.created})
            return
        state.console.print(backbone_table(home.record, str(home.path), db, _store_of(home)))
        state.note(("initialised " if result.created else "already initialised: ") + f"{home.path}. Next: `forkpoint add-task NAME --data mnist`")


def _shown_db(url: str) -> str:
    from forkpoint.registry.db import shown

    return shown(url)


def _store_of(home) -> str:
    """Where the home's weights live: the --store URL the database records, else the home's objects/ folder."""
    return home.registry.store_url or str(home.path / "objects")


@click.command()
@json_option
@pass_state
def info(state: State, as_json: bool) -> None:
    """Show the home, its database and its trunk (block names for --branch)."""
    from forkpoint.workflows.render import backbone_dict, backbone_table

    with state.open() as home:
        db = _shown_db(home.registry.url)
        if as_json:
            emit_json({**backbone_dict(home.record, str(home.path), db, _store_of(home)), "num_tasks": len(home.registry.list_tasks())})
            return
        state.console.print(backbone_table(home.record, str(home.path), db, _store_of(home)))
        state.console.print("blocks: " + ", ".join(f"{i}={n}" for i, n in enumerate(home.record.block_names)), highlight=False)


# ---- adding tasks ------------------------------------------------------------------------


@click.command("add-task")
@click.argument("name")
@click.option("--data", "source", required=True, metavar="NAME|PATH",
              help="Built-in dataset (mnist, animals, digits, fashion), a prepared folder, an ImageFolder dir or a path,label CSV.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"),
              show_default=True, help="Where built-in datasets are prepared (env FORKPOINT_DATA).")
@click.option("--limit-per-class", type=click.IntRange(min=2), help="Use at most N images per class in each split (quick runs, low-data studies).")
@click.option("--val-limit-per-class", type=click.IntRange(min=1), help="Cap validation images per class separately (profiling scores every block on them).")
@click.option("--budget-blocks", type=click.IntRange(min=1), default=recipe.MAX_BLOCKS, show_default=True,
              help="Most consecutive blocks the branch may tune (from its fork toward the head).")
@click.option("--max-extra-cost", type=click.FloatRange(min=0, min_open=True), default=recipe.MAX_EXTRA_COST, show_default=True,
              help="Most extra inference cost, in % of one trunk pass.")
@click.option("--eps", type=click.FloatRange(min=0), default=recipe.EPS, show_default=True,
              help="An earlier fork (or any branch over the linear probe) must win on validation by more than this and than half a standard error.")
@click.option("--paper-greedy", is_flag=True,
              help="Grow the branch by the paper's rule (each unit added left or right must improve on validation) instead of tuning from the fork to the head.")
@click.option("--branch", type=UnitRangeParam(),
              help="Fix the branch to blocks START:END (inclusive; indices or names), or 'probe' for a head-only linear probe; skips profiling.")
@click.option("--candidates", type=UnitRangeParam(), help="Profile only blocks LO:HI (HI exclusive). Default: the blocks within --max-extra-cost.")
@click.option("--test-fraction", type=click.FloatRange(0, 0.9, max_open=True), default=0.0, show_default=True,
              help="For a folder/CSV without its own test split: hold out this share of each class for testing (default: none, every image trains or validates).")
@click.option("--siamese", is_flag=True, help="Head sees the branch's and the frozen trunk's features (Siamese SubTuning).")
@click.option("--probe/--no-probe", "probe", default=True, show_default=True,
              help="The linear probe (head only: no tuned units; alone it costs one trunk pass) competes with the trained branch and is served unless the branch beats it on validation.")
@click.option("--epochs", type=click.IntRange(min=1), default=recipe.EPOCHS, show_default=True,
              help="Training epochs for the chosen branch (at least --min-steps optimizer steps are taken).")
@click.option("--profile-epochs", type=click.IntRange(min=1), default=recipe.PROFILE_EPOCHS, show_default=True,
              help=f"Epochs per profiled candidate (at least {recipe.PROFILE_MIN_STEPS} steps).")
@click.option("--min-steps", type=click.IntRange(min=0), default=recipe.MIN_STEPS, show_default=True,
              help="Fewest optimizer steps for the chosen branch, so few epochs on few images still converge.")
@click.option("--patience", type=click.IntRange(min=0), default=recipe.PATIENCE, show_default=True, help="Early-stopping patience in validation passes (0: off).")
@click.option("--augment-views", type=click.IntRange(0, 16), default=recipe.AUGMENT_VIEWS, show_default=True,
              help="Augmented copies (random resized crops) of each training image for the final training, cached through the frozen prefix (0: off).")
@click.option("--flip", is_flag=True, help="Also mirror augmented views horizontally (only for classes that stay the same mirrored; never for digits or text).")
@click.option("--bn-adapt/--no-bn-adapt", default=recipe.BN_ADAPT, show_default=True,
              help="The branch's private BatchNorm copies adapt their statistics to the task (the trunk's never change).")
@click.option("--batch-size", type=click.IntRange(min=1), default=recipe.BATCH, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=recipe.LR, show_default=True,
              help=f"Learning rate of the tuned blocks; the new head trains at {recipe.HEAD_LR_FACTOR}x this.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the validation split, the per-class limit and training.")
@device_option("auto")
@click.option("--description", default="", help="Free text stored with the version.")
@click.option("--stage", "staged", is_flag=True, help="Register the version without making it live (promote it later).")
@click.option("--track-data", is_flag=True,
              help="`dvc add` your --data folder first (it must be inside a DVC repo), so its recorded md5 can be pulled back later.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Profile candidates and greedy options as this many Ray tasks side by side (a local Ray unless --ray-address); "
                   "same choice and weights as 1.")
@click.option("--ray-address", metavar="ADDR", envvar="RAY_ADDRESS",
              help="Join this running Ray cluster (env RAY_ADDRESS) instead of starting a local one; forkpoint must be installed on its nodes.")
@click.option("--agnostic", is_flag=True,
              help="Also add the task to the home's task-agnostic head (predict --any): sums over its training images, one more trunk pass.")
@json_option
@pass_state
def add_task_cmd(state: State, name: str, source: str, data_root: Path, limit_per_class: int | None,
                 val_limit_per_class: int | None, budget_blocks: int,
                 max_extra_cost: float, eps: float, paper_greedy: bool, branch, candidates, test_fraction: float, siamese: bool, probe: bool, epochs: int,
                 profile_epochs: int, min_steps: int, patience: int, augment_views: int, flip: bool, bn_adapt: bool, batch_size: int, lr: float, seed: int, device: str,
                 description: str, staged: bool, track_data: bool, workers: int, ray_address: str | None,
                 agnostic: bool, as_json: bool) -> None:
    """Profile, select, SubTune and register task NAME (a new version if NAME exists)."""
    from forkpoint.learner import add_task_config
    from forkpoint.learner.device import describe, resolve_device
    from forkpoint.registry.validate import task_name
    from forkpoint.workflows.datasets import load_task_data, prepare_note
    from forkpoint.workflows.progress import PhaseProgress
    from forkpoint.workflows.render import added_dict, added_table
    from forkpoint.workflows.tasks import add_task_version, budget_warning, check_new_version_fits, slow_cpu_note

    task_name(name)
    state.compute()
    if ray_address:
        import os

        os.environ["RAY_ADDRESS"] = ray_address  # how learner.parallel (and Ray itself) find the cluster
    with state.open() as home:
        blocks = list(home.record.block_names)
        cfg = add_task_config(
            epochs=epochs, profile_epochs=profile_epochs, patience=patience, batch_size=batch_size, lr=lr,
            min_steps=min_steps, augment_views=augment_views, flip=flip, bn_adapt=bn_adapt,
            eps=eps, budget_blocks=budget_blocks, max_extra_cost=max_extra_cost, free_growth=not paper_greedy, seed=seed,
            candidates=resolve_units(candidates, blocks, "--candidates", inclusive=False),
            branch=resolve_units(branch, blocks, "--branch"),
            siamese=siamese, probe_candidate=probe, device=device, workers=workers,
        )
        if (note := prepare_note(source, data_root)) is not None:
            state.note(note)
        if track_data:
            from forkpoint.workflows.datasets import track_data as dvc_track

            state.note(f"dvc add {source}: data version {dvc_track(source)} (commit the .dvc file; `dvc push` stores the data)")
        data = load_task_data(source, data_root, limit_per_class, seed, resolution=home.record.resolution,
                              val_limit=val_limit_per_class, test_fraction=test_fraction)
        previous = check_new_version_fits(home, name, data.class_names)
        state.note(f"device: {describe(resolve_device(device))}")
        state.note(f"{name}: {data.dataset.name}, {len(data.class_names)} classes, "
                   + ", ".join(f"{k} {v}" for k, v in data.sizes.items())
                   + (f" (new version of a task with live v{previous.live_version})" if previous else ""))
        from forkpoint.learner.plan import plan_note

        state.note(plan_note(home.backbone, cfg, dict(data.sizes)))
        for warning in (budget_warning(home, cfg), slow_cpu_note(home, device, data.sizes.get("train", 0))):
            if warning is not None:
                state.stderr.print(f"warning: {warning}", highlight=False, markup=False, soft_wrap=True)
        display = state.progress()
        with display or contextlib.nullcontext():
            added = add_task_version(home, name, data, cfg, description=description, promote=not staged,
                                     progress=PhaseProgress(display), agnostic=agnostic)
    if as_json:
        emit_json(added_dict(added))
    else:
        state.console.print(added_table(added))


# ---- serving -----------------------------------------------------------------------------------


@click.command()
@click.argument("images", nargs=-1, required=True, metavar="IMAGE_OR_DIR...")
@click.option("--task", "task_names", multiple=True, metavar="NAME", help="Only these tasks (repeatable). Default: every live task.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Classes listed per task in --json.")
@device_option("cpu", "Where the shared pass runs.")
@click.option("--route", is_flag=True,
              help="Answer per image the task it most likely belongs to (or none of them) and that task's label.")
@click.option("--any", "any_task", is_flag=True,
              help="Answer per image a task and a label over every class of the home's agnostic head (tasks added with --agnostic).")
@json_option
@pass_state
def predict(state: State, images: tuple[str, ...], task_names: tuple[str, ...], top_k: int, device: str, route: bool,
            any_task: bool, as_json: bool) -> None:
    """Classify images with every live task (or --task ones) in one shared forward pass (--route: with the one task each belongs to)."""
    from forkpoint.workflows.inputs import collect_images, live_records

    # usage errors that need no model first, before torch loads (workflows.inputs)
    if any_task and (route or task_names):
        raise click.UsageError("--any answers over every task: drop --route and --task")
    paths = collect_images(list(images))
    with state.open() as home:
        if task_names:
            live_records(home, task_names)  # an unknown or not-live --task: exit 2 naming the fix
        from forkpoint.learner.device import resolve_device
        from forkpoint.workflows.live import load_live_model
        from forkpoint.workflows.predict import predict_images
        from forkpoint.workflows.render import predictions_table

        target = resolve_device(device)
        state.compute()
        if any_task:
            from forkpoint.commands.agnostic_cmds import show_any

            home.backbone.to(target)
            show_any(state, home, paths, as_json)
            return
        live = load_live_model(home, tasks=list(task_names) or None)
        if not live.tasks:
            raise click.UsageError("no live tasks to predict with: add one with `forkpoint add-task NAME --data ...`")
        live.model.to(target)
        if route:
            from forkpoint.commands.eval_cmds import show_routes

            show_routes(state, home, live, paths, as_json)
            return
        preds = predict_images(live, paths, live.tasks, top_k=top_k)
        if as_json:
            emit_json({
                "backbone_fingerprint": home.fingerprint,
                "versions": {t: live.versions[t].version for t in live.tasks},
                "images": [p.to_dict() for p in preds],
            })
            return
        state.console.print(predictions_table(preds, live.tasks))
        state.note(f"one shared pass for {len(live.tasks)} task(s): extra cost {live.model.extra_cost_pct():.1f}% of one trunk pass")


# ---- demo and samples ---------------------------------------------------------------------------------------


@click.command()
@click.option("--home", "demo_home", type=click.Path(file_okay=False, path_type=Path), default=DEMO_HOME, show_default=True,
              help="Demo registry home; wiped first (only if it is a previous demo home or empty).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"), show_default=True)
@click.option("--limit-per-class", type=click.IntRange(min=4), default=None,
              help="Images per class in every split (default: 100 train/test and 20 validation, ~4 minutes on 2 cores).")
@click.option("--resolution", type=click.IntRange(16, 1024), default=64, show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs per task (default 6).")
@click.option("--profile-epochs", type=click.IntRange(min=1), default=None, help="Epochs per profiled block (default 2).")
@click.option("--candidates", type=UnitRangeParam(), help="Profile only blocks LO:HI (HI exclusive; quick runs). Default: all blocks.")
@device_option("auto")
@click.option("--publish", is_flag=True, help="Write the run's figures to benchmarks/results/demo/cpu.json and the README's demo paragraph (checkout only).")
@pass_state
def demo(state: State, demo_home: Path, data_root: Path, limit_per_class: int | None, resolution: int,
         epochs: int | None, profile_epochs: int | None, candidates, device: str, publish: bool) -> None:
    """Three real tasks on the embedded Lite0 (MNIST, animal silhouettes, sklearn digits), checked for forgetting."""
    from forkpoint.learner.backbone import load_backbone
    from forkpoint.workflows.demo import DemoSettings, run_demo

    state.compute()
    blocks = load_backbone().block_names if candidates else []
    settings = DemoSettings.default(limit_per_class, resolution, epochs, profile_epochs, device,
                                    resolve_units(candidates, blocks, "--candidates", inclusive=False))
    if publish:
        from forkpoint.contract.docblock import require_publishable

        require_publishable()  # before minutes of work: figures only from a clean commit
    load = os.getloadavg()[0]  # before the run: were the cores idle?
    result = run_demo(demo_home, data_root, settings, state.console, show_progress=not state.quiet)
    if publish:
        from forkpoint.workflows import demo_figures

        demo_figures.publish(demo_figures.summary(result, resolution, load))
        state.note(f"demo figures written to {demo_figures.RESULTS} and {demo_figures.README}")


@click.command()
@click.option("--data", "source", required=True, metavar="NAME|PATH", help="Dataset to take images from (as for add-task).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, callback=parent_exists,
              help="Folder to write PNGs into (created if missing; the folder it is in must exist).")
@click.option("--per-class", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"), show_default=True)
@click.option("--layout", type=click.Choice(["flat", "imagefolder"]), default="flat", show_default=True,
              help="flat: OUT/<class>_<n>.png; imagefolder: OUT/<class>/<n>.png (a labelled folder for `forkpoint evaluate`).")
@pass_state
def samples(state: State, source: str, out: Path, per_class: int, split: str, data_root: Path, layout: str) -> None:
    """Write a few real images of a dataset as PNGs (to try `forkpoint predict` or `evaluate` on)."""
    from forkpoint.workflows.datasets import prepare_note
    from forkpoint.workflows.samples import write_samples

    if (note := prepare_note(source, data_root)) is not None:
        state.note(note)
    written = write_samples(source, out, per_class, split, data_root, layout)
    state.console.print(f"wrote {len(written)} image(s) to {out}", highlight=False)



COMMANDS: tuple[click.Command, ...] = (init, info, add_task_cmd, predict, demo, samples)
