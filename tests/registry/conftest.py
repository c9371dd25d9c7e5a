"""Fixtures for the registry suite: a throwaway PostgreSQL cluster, both backends, sample data.

Every test that takes ``db_url`` runs twice: on SQLite (the default file in the home)
and on a real PostgreSQL server started for the session (initdb into a temp dir,
pg_ctl on a free loopback port, stopped at the end). Without server binaries the
postgres runs skip with a reason, except under CI=true where they fail.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest
import torch

from forkpoint.contract import BranchSpec, VersionDraft

HERE = Path(__file__).resolve().parent
WORKER = HERE / "registry_worker.py"


# ---- throwaway PostgreSQL ----------------------------------------------------------

def pg_bindir() -> Path | None:
    """Where initdb/pg_ctl live: $PG_BIN, PATH, or Debian's /usr/lib/postgresql/*/bin."""
    candidates = [os.environ.get("PG_BIN", "")]
    if shutil.which("pg_ctl"):
        candidates.append(str(Path(shutil.which("pg_ctl")).parent))  # type: ignore[arg-type]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgCluster:
    """A PostgreSQL cluster in a temp dir, trust auth, loopback only, no fsync (throwaway)."""

    bindir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="forkpoint-pg-")))
    port: int = 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # postgres refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.root / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        last: Exception | None = None
        for _ in range(5):  # another process may grab the port between probe and bind
            self.port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=50")
            try:
                self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-o", opts, "-w", "start")
                return
            except subprocess.CalledProcessError as e:
                last = e
        raise RuntimeError(f"pg_ctl start failed: {last}; log: {(self.root / 'log').read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{db}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(sql)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = pg_bindir()
    if bindir is None:
        msg = "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql or set PG_BIN"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{msg} (CI must run the PostgreSQL tests)")
        pytest.skip(msg)
    cluster = PgCluster(bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    """A fresh, empty database on the session cluster."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    pg_cluster.admin(f"CREATE DATABASE {name}")
    try:
        yield pg_cluster.url(name)
    finally:
        pg_cluster.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """None (SQLite at <home>/registry.db) or a fresh PostgreSQL database URL."""
    return request.getfixturevalue("pg_url") if backend == "postgres" else None


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def reg(home: Path, db_url: str | None):
    from forkpoint.registry import Registry

    r = Registry.open(home, db_url)
    yield r
    r.close()


# ---- sample backbone and versions -----------------------------------------------------

BLOCKS = [f"blocks.{s}.{i}" for s, n in enumerate([1, 2, 2, 3, 3, 4, 1]) for i in range(n)]  # Lite0: 16 units
FINGERPRINT = hashlib.sha256(b"lite0-trunk").hexdigest()
OTHER_FINGERPRINT = hashlib.sha256(b"another-trunk").hexdigest()
CLASSES = ["cat", "dog", "fox"]


def branch_spec(start: int = 9, stop: int = 12, n_classes: int = 3, feature_dim: int = 16, siamese: bool = False) -> BranchSpec:
    """Units ``[start, stop)`` of BLOCKS plus a head (the contract's half-open convention)."""
    return BranchSpec(start, stop, n_classes, feature_dim, siamese)


def branch_tensors(seed: int, n_classes: int = 3, feature_dim: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "blocks.0.conv.weight": torch.randn(8, 4, 3, 3, generator=g),
        "blocks.0.bn.running_mean": torch.randn(8, generator=g),
        "blocks.0.bn.num_batches_tracked": torch.tensor(seed, dtype=torch.int64),
        "head.weight": torch.randn(n_classes, feature_dim, generator=g),
        "head.bias": torch.randn(n_classes, generator=g),
    }


def version_kwargs(seed: int = 0, **over: Any) -> dict[str, Any]:
    """A draft's fields except the tensors, JSON-able (the spec as a dict) so workers can receive them."""
    kw: dict[str, Any] = dict(
        backbone_fingerprint=FINGERPRINT, class_names=CLASSES, spec=asdict(branch_spec()), block_names=BLOCKS,
        metrics={"val_acc": 0.9, "test_acc": 0.88, "per_class": {"cat": 0.9, "dog": 0.85, "fox": 0.89}},
        profile=[{"start": 9, "stop": 12, "val_acc": 0.9}, {"start": 12, "stop": 15, "val_acc": 0.87}],
        config={"lr": 0.01, "epochs": 3, "seed": seed}, data_md5="0123456789abcdef0123456789abcdef.dir",
        data_path="data/pets", split_seed=seed, split_sizes={"train": 80, "val": 10, "test": 10},
        trainable_params=350_000, total_params=4_650_000, extra_cost_pct=12.5, description="pets",
    )
    kw.update(over)
    return kw


def file_digest(task: str, version: int, seed: int, spec: BranchSpec | None = None) -> str:
    """The sha256 of the weights file the registry writes for ``branch_tensors(seed)`` as ``task@version``
    (the file names its task, version, branch and classes, so it differs per version)."""
    from forkpoint.registry.branchfile import encode_branch
    from forkpoint.registry.codec import sha256

    spec = spec or branch_spec()
    return sha256(encode_branch(branch_tensors(seed), task, version, spec.to_dict(BLOCKS), CLASSES))


def make_draft(tensors: Any, **fields: Any) -> VersionDraft:
    """A VersionDraft as the learner's ``TaskReport.draft`` builds one; ``spec`` may be a BranchSpec or its dict."""
    spec = fields.pop("spec")
    return VersionDraft(spec=spec if isinstance(spec, BranchSpec) else BranchSpec(**spec), tensors=tensors, **fields)


class Sample:
    """Helpers bound to one open registry."""

    fingerprint = FINGERPRINT
    blocks = BLOCKS
    classes = CLASSES

    def __init__(self, reg: Any) -> None:
        self.reg = reg

    def backbone(self, fingerprint: str = FINGERPRINT, trunk: bool = False):
        trunk_tensors = {"conv_stem.weight": torch.randn(32, 3, 3, 3)} if trunk else None
        return self.reg.register_backbone("tf_efficientnet_lite0", "embedded:test", fingerprint, BLOCKS, 224,
                                          [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], trunk_tensors=trunk_tensors)

    def draft(self, seed: int = 0, tensors: dict | None = None, **over: Any) -> VersionDraft:
        return make_draft(tensors if tensors is not None else branch_tensors(seed), **version_kwargs(seed, **over))

    def add(self, task: Any = "pets", seed: int = 0, tensors: dict | None = None, *, promote: bool = True,
            actor: str | None = None, **over: Any):
        return self.reg.add_version(task, self.draft(seed, tensors, **over), promote=promote, actor=actor)

    def age_store(self, seconds: float = 2 * 3600) -> None:
        """Make every store entry and every claim ``seconds`` old, as if their writers died long ago."""
        import os
        import time
        from datetime import datetime, timedelta, timezone

        import sqlalchemy as sa

        from forkpoint.registry.models import ObjectClaim

        when = time.time() - seconds
        for p in self.reg.store.files():
            os.utime(p, (when, when))
        with self.reg.engine.begin() as c:
            c.execute(sa.update(ObjectClaim).values(claimed_at=datetime.now(timezone.utc) - timedelta(seconds=seconds)))

    def claims(self) -> int:
        import sqlalchemy as sa

        with self.reg.engine.connect() as c:
            return c.execute(sa.text("SELECT count(*) FROM object_claim")).scalar_one()

    def snapshot(self) -> tuple:
        """Row counts of every table and the object files: equal snapshots = nothing written."""
        import sqlalchemy as sa

        with self.reg.engine.connect() as c:
            counts = tuple(c.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                           for t in ("backbone", "task", "task_version", "audit_event"))
        return counts, tuple(self.reg.store.files())


@pytest.fixture
def sample(reg) -> Sample:
    return Sample(reg)


@pytest.fixture
def ready(sample: Sample) -> Sample:
    """A registry with the sample backbone registered."""
    sample.backbone()
    return sample


class Forker:
    """Client of registry_worker.py's fork server: one import per session, one real process per job."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=HERE)

    def run(self, home: Path, db_url: str | None, jobs: list[dict], env: dict | None = None) -> list[dict]:
        """Fork one child per job (started together), wait for all; per child: exit, signal, result, error."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"home": str(home), "url": db_url, "env": env or {}, "jobs": jobs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"fork server died (rc={self.proc.poll()})"
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def forker() -> Iterator[Forker]:
    f = Forker()
    yield f
    f.close()


Sample.spec = staticmethod(branch_spec)  # type: ignore[attr-defined]
Sample.tensors = staticmethod(branch_tensors)  # type: ignore[attr-defined]
Sample.kwargs = staticmethod(version_kwargs)  # type: ignore[attr-defined]
Sample.make_draft = staticmethod(make_draft)  # type: ignore[attr-defined]
Sample.file_digest = staticmethod(file_digest)  # type: ignore[attr-defined]
Sample.other_fingerprint = OTHER_FINGERPRINT  # type: ignore[attr-defined]
