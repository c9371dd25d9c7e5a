"""Commands that read and move the registry: ``tasks``, ``show``, ``history``, ``diff``, ``events``,
``promote``, ``rollback``, ``audit``, ``gc``."""

from __future__ import annotations

from pathlib import Path

import click

from forkpoint.commands._paths import parent_exists
from forkpoint.commands._shared import EXIT_CHECK_FAILED, State, emit_json, json_option, pass_state


# ---- reading the registry ------------------------------------------------------------------


@click.command()
@json_option
@pass_state
def tasks(state: State, as_json: bool) -> None:
    """List tasks with their live version, branch point and accuracy."""
    from forkpoint.workflows.render import task_summary, tasks_table

    with state.open() as home:
        live = home.registry.live_versions()  # one query for every row, not four per task
        rows = [(t, live.get(t.name)) for t in home.registry.list_tasks()]
        if as_json:
            emit_json({"backbone_fingerprint": home.fingerprint, "tasks": [task_summary(t, v) for t, v in rows]})
            return
        if not rows:
            state.console.print("no tasks yet: add one with `forkpoint add-task NAME --data mnist`")
            return
        state.console.print(tasks_table(rows))


@click.command()
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), help="Version number (default: the live one).")
@click.option("--profile/--no-profile", default=True, show_default=True, help="Also show the finetuning profile.")
@json_option
@pass_state
def show(state: State, name: str, version: int | None, profile: bool, as_json: bool) -> None:
    """Show one version of a task (default: the live one)."""
    from forkpoint.workflows.render import lifecycle, profile_table, version_table

    with state.open() as home:
        rec = home.registry.show(name, version)
        ever = home.registry.ever_live(name)
        if as_json:
            emit_json({**rec.to_dict(), "state": lifecycle(rec, ever)})
            return
        state.console.print(version_table(rec, ever))
        table = profile_table(rec) if profile else None
        if table is not None:
            state.console.print(table)


@click.command()
@click.argument("name")
@json_option
@pass_state
def history(state: State, name: str, as_json: bool) -> None:
    """Every version of a task and every audit event that touched it."""
    from forkpoint.workflows.render import history_dict, history_tables

    with state.open() as home:
        h = home.registry.history(name)
        if as_json:
            emit_json(history_dict(h))
            return
        for table in history_tables(h):
            state.console.print(table)


@click.command()
@click.argument("name")
@click.argument("v1", type=click.IntRange(min=1))
@click.argument("v2", type=click.IntRange(min=1))
@json_option
@pass_state
def diff(state: State, name: str, v1: int, v2: int, as_json: bool) -> None:
    """What changed between two versions of a task."""
    from forkpoint.workflows.render import diff_table

    with state.open() as home:
        d = home.registry.diff(name, v1, v2)
        if as_json:
            emit_json(d.to_dict())
            return
        if d.same:
            state.console.print(f"{name}: v{v1} and v{v2} are the same")
            return
        state.console.print(diff_table(d, home.registry.show(name, v1), home.registry.show(name, v2)))


@click.command()
@click.option("--task", "task", help="Only events of this task.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="The newest N events.")
@json_option
@pass_state
def events(state: State, task: str | None, limit: int, as_json: bool) -> None:
    """The audit log: who registered, promoted, rolled back, verified or collected what, and when."""
    from forkpoint.workflows.render import events_table

    with state.open() as home:
        if task is not None:
            home.registry.get_task(task)  # an unknown name is an input error (exit 2), not an empty log
        found = home.registry.audit_events(task=task, limit=limit)
        if as_json:
            emit_json({"events": [e.to_dict() for e in found]})
            return
        state.console.print(events_table(found))


# ---- moving the live pointer -----------------------------------------------------------------------


@click.command()
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@json_option
@pass_state
def promote(state: State, name: str, version: int, as_json: bool) -> None:
    """Make VERSION the live version of task NAME."""
    with state.open() as home:
        before = home.registry.get_task(name).live_version
        rec = home.registry.promote(name, version)
        _moved(state, rec, before, as_json)


@click.command()
@click.argument("name")
@click.option("--to", "to", type=click.IntRange(min=1), help="Version to go back to (default: the newest earlier version that was live).")
@json_option
@pass_state
def rollback(state: State, name: str, to: int | None, as_json: bool) -> None:
    """Move task NAME's live pointer back to an older version (nothing is deleted)."""
    with state.open() as home:
        before = home.registry.get_task(name).live_version
        rec = home.registry.rollback(name, to)
        _moved(state, rec, before, as_json)


def _moved(state: State, rec, before: int | None, as_json: bool) -> None:
    """The move's one line (``--json``: live_before equals live_after when nothing moved). A promote of the
    version already live moved nothing and logged nothing: say so."""
    if as_json:
        emit_json({"task": rec.task, "live_before": before, "live_after": rec.version, "version": rec.to_dict()})
        return
    from forkpoint.workflows.render import branch_label, pct

    if before == rec.version:
        state.console.print(f"{rec.task}: v{rec.version} is already live (nothing changed, nothing logged)", highlight=False)
        return
    state.console.print(f"{rec.task}: live v{before} -> v{rec.version} (branch {branch_label(rec)}, "
                        f"test acc {pct(rec.metrics.get('test_acc'))})", highlight=False)


# ---- integrity ------------------------------------------------------------------------------------------


@click.command()
@click.option("--no-data", is_flag=True, help="Skip re-hashing each version's training data (DVC md5).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH.html|PATH.md", callback=parent_exists,
              help="Also write a self-contained report: lineage, live-pointer moves, reproductions, profile plots.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]), metavar="DATE",
              help="Report only versions and events from DATE on (UTC; with --report).")
@click.option("--task", "report_task", metavar="NAME", help="Report only this task (with --report).")
@click.option("--deep", is_flag=True, help="Also recompute every version's outputs on its stored probe images and compare "
              "with those stored when it was added: bit-identical, equal within 1e-5 on other library versions, or different.")
@json_option
@pass_state
def audit(state: State, no_data: bool, report_path: Path | None, since, report_task: str | None, deep: bool,
          as_json: bool) -> None:
    """Verify everything: weight hashes, trunk fingerprint, data versions, live branches (--deep: stored outputs). Exit 1 on any problem."""
    from forkpoint.workflows.audit import audit_home

    if report_path is None and (since is not None or report_task is not None):
        raise click.UsageError("--since and --task choose what goes into a report: add --report PATH.html or PATH.md")
    if report_path is not None:
        from forkpoint.workflows.report import report_format

        report_format(report_path)
    state.compute()
    with state.open() as home:
        if report_task is not None:
            home.registry.get_task(report_task)  # an unknown name is an input error before anything is checked
        result = audit_home(home, check_data=not no_data, deep=deep)
        keyed = home.registry.audit_keying()
        if report_path is not None:
            from datetime import timezone

            from forkpoint.workflows.report import gather, write_report

            when = since.replace(tzinfo=timezone.utc) if since is not None else None
            write_report(gather(home, result, when, report_task), report_path)
            state.note(f"report written to {report_path}")
    if as_json:
        emit_json({**result.to_dict(), **({"report": str(report_path)} if report_path is not None else {})})
    else:
        r = result.report
        state.console.print(
            f"checked {r.checked_backbones} trunk(s), {r.checked_versions} version(s), {r.checked_objects} weight file(s), "
            f"{r.checked_data} data version(s), {result.live_checked} live branch rebuild(s)", highlight=False)
        for check in result.deep or ():
            if check.ok:
                state.console.print(f"outputs: {check.line()}", highlight=False, markup=False)
        if r.orphans:
            state.console.print(f"{len(r.orphans)} unreferenced file(s): `forkpoint gc` removes them", highlight=False)
        state.console.print(f"audit log head {r.chain_head} (keep it elsewhere: a later cut of the log's tail will not match)",
                            highlight=False)
        if keyed is not None:
            state.console.print(f"sealed with audit key id {keyed.key_id} from event {keyed.first_event} on "
                                "(keep it elsewhere too: a registry stripped of every keyed seal would look never keyed)",
                                highlight=False)
        for problem in result.problems:
            click.echo(f"problem: {problem}", err=True)
        state.console.print("audit: OK" if result.ok else f"audit: {len(result.problems)} problem(s)", highlight=False)
    if not result.ok:
        click.get_current_context().exit(EXIT_CHECK_FAILED)


@click.command()
@click.option("--min-age", type=click.FloatRange(min=0), default=None,
              help="Only files older than this many seconds (default: 15 minutes; never under 60 s, and never a file a write in flight has claimed).")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing (the audit log records the dry run).")
@json_option
@pass_state
def gc(state: State, min_age: float | None, dry_run: bool, as_json: bool) -> None:
    """Delete weight files no version or trunk uses (rows are never deleted)."""
    from forkpoint.registry import GC_GRACE_S

    with state.open() as home:
        keys = home.registry.gc(GC_GRACE_S if min_age is None else min_age, dry_run=dry_run)  # store keys, relative to the home
    if as_json:
        emit_json({"deleted": [] if dry_run else keys, "would_delete": keys if dry_run else [], "dry_run": dry_run})
        return
    verb = "would delete" if dry_run else "deleted"
    state.console.print(f"gc: {verb} {len(keys)} unreferenced file(s)" + "".join(f"\n  {k}" for k in keys), highlight=False)



COMMANDS: tuple[click.Command, ...] = (tasks, show, history, diff, events, promote, rollback, audit, gc)
