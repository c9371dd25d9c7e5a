"""``forkpoint data ...``: prepare the built-in datasets and show what is in ``data/``."""

from __future__ import annotations

import logging
from pathlib import Path

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from forkpoint.imagedata.sources import BUILTIN_NAMES


@click.group("data")
def data_group() -> None:
    """Prepare and inspect forkpoint's datasets (tracked by DVC in data.dvc)."""


@data_group.command("prepare")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"),
              show_default=True, help="Folder to write <name>/ dataset folders into (env FORKPOINT_DATA).")
@click.option("--only", "only", multiple=True, type=click.Choice(BUILTIN_NAMES),
              help="Prepare just this dataset (repeatable). Default: all; fashion only if installed.")
@click.option("--limit-per-class", type=click.IntRange(min=3), default=None,
              help="Keep at most N images per class (a small slice; will not match data.dvc).")
@click.option("--force", is_flag=True, help="Rebuild even if a folder is already prepared with this recipe.")
def prepare_cmd(root: Path, only: tuple[str, ...], limit_per_class: int | None, force: bool) -> None:
    """Write the built-in datasets into ROOT deterministically (same bytes on every machine)."""
    from forkpoint.imagedata.prepare import prepare

    _log_to_rich()
    done = prepare(root, list(only) or None, limit_per_class=limit_per_class, progress=True, force=force)
    click.echo(f"prepared {len(done)} dataset(s) in {root}: {', '.join(done)}")
    from forkpoint.imagedata.versioning import commit_if_matching

    check = commit_if_matching(root)
    if check is not None:
        recorded, actual = check
        if recorded == actual:
            click.echo(f"{root} matches {root}.dvc ({recorded}); committed to the DVC cache, `dvc status` is clean")
        else:
            click.echo(f"{root} ({actual}) differs from {root}.dvc ({recorded}): expected after --only or "
                       f"--limit-per-class; a full prepare reproduces it")


@data_group.command("info")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), envvar="FORKPOINT_DATA", default=Path("data"),
              show_default=True, help="Folder holding the prepared datasets (env FORKPOINT_DATA).")
def info_cmd(root: Path) -> None:
    """Show each prepared dataset (classes, sizes, DVC md5) and whether ROOT matches its .dvc file."""
    from forkpoint.imagedata.store import MANIFEST, read_manifest
    from forkpoint.imagedata.versioning import dvc_md5, dvcfile_md5

    console = Console()
    folders = sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []
    if not folders:
        console.print(f"no prepared datasets in {root}: run `forkpoint data prepare`")
        return
    table = Table(title=f"datasets in {root}")
    for col in ("name", "classes", "image", "train", "val", "test", "dupes removed", "per-class limit"):
        table.add_column(col)
    md5s = []
    for folder in folders:
        m = read_manifest(folder)
        sizes = m.get("split_sizes", {})
        table.add_row(folder.name, str(len(m["class_names"])), "x".join(map(str, m["image_shape"])),
                      *(f"{sizes.get(s, 0):,}" for s in ("train", "val", "test")),
                      str(m.get("dedupe", {}).get("removed", 0)), str(m.get("limit_per_class") or "-"))
        md5s.append(f"  {folder.name:<8} {dvc_md5(folder)}")
    console.print(table)
    console.print("DVC md5 (data version) per dataset:\n" + "\n".join(md5s), highlight=False)
    dvcfile = root.parent / f"{root.name}.dvc"
    if dvcfile.is_file():
        have, want = dvc_md5(root), dvcfile_md5(dvcfile)
        if have == want:
            console.print(f"{root} matches {dvcfile} ({want})")
        else:
            console.print(f"{root} differs from {dvcfile}: {have} here, {want} recorded. "
                          f"Run `forkpoint data prepare --root {root}` (all four datasets) or `dvc pull`.")


def _log_to_rich() -> None:
    logger = logging.getLogger("imagedata")
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(show_time=False, show_path=False))
        logger.setLevel(logging.INFO)


if __name__ == "__main__":
    data_group()
