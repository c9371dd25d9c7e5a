"""Content-addressed object store: ``<home>/objects/ab/abcdef….safetensors``.

A file's name is the sha256 of its bytes, so identical content is stored once and any
change to a file is detectable. Writes are atomic (temp file in the same directory,
fsync, rename, fsync the directory): a crash leaves either no file or a complete one,
plus at worst a stray temp file that gc removes.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

from forkpoint.registry.codec import sha256
from forkpoint.registry.errors import ArtifactCorruptError, ArtifactMissingError, StoreWriteError

SUFFIX = ".safetensors"
TMP_PREFIX = ".tmp-"
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class ObjectStore:
    """Files under ``root`` named by the sha256 of their content."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}{SUFFIX}"

    def rel(self, digest: str) -> str:
        """Path relative to the registry home, as shown to users."""
        return f"{self.root.name}/{digest[:2]}/{digest}{SUFFIX}"

    def put(self, data: bytes) -> str:
        """Store ``data`` (if not already there, intact) and return its sha256."""
        digest = sha256(data)
        final = self.path(digest)
        if final.exists():
            try:
                if sha256(final.read_bytes()) == digest:
                    os.utime(final)  # fresh mtime keeps gc's grace period from racing this writer
                    return digest
            except OSError:
                pass
            # present but damaged: fall through and rewrite the good bytes over it
        tmp = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=SUFFIX, dir=final.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fchmod(f.fileno(), 0o444)  # objects are immutable; also readable by the team
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as e:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise StoreWriteError(
                f"cannot write {self.rel(digest)} under {self.root.parent} ({e.strerror or e}): check free space and permissions"
            ) from None
        except BaseException:
            if tmp:
                Path(tmp).unlink(missing_ok=True)
            raise
        return digest

    def get(self, digest: str, *, used_by: str = "") -> bytes:
        """The stored bytes, after checking they still hash to ``digest``."""
        p = self.path(digest)
        who = f" (used by {used_by})" if used_by else ""
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise ArtifactMissingError(
                f"weights file {self.rel(digest)}{who} is missing: restore it from backup (verify lists every affected version)"
            ) from None
        actual = sha256(data)
        if actual != digest:
            raise ArtifactCorruptError(
                f"weights file {self.rel(digest)}{who} is corrupt (sha256 {actual[:12]}…, expected {digest[:12]}…): refusing to load; restore it from backup"
            )
        return data

    def check(self, digest: str) -> str | None:
        """None if the object is present and intact, else a short reason."""
        p = self.path(digest)
        try:
            actual = sha256(p.read_bytes())
        except FileNotFoundError:
            return "missing"
        except OSError as e:
            return f"unreadable ({e.strerror})"
        return None if actual == digest else f"sha256 mismatch (now {actual[:12]}…)"

    def files(self) -> list[Path]:
        """Every file under the store, objects and stray temp files alike."""
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def digest_of(self, p: Path) -> str | None:
        """The sha256 a file is named by, or None for temp files and strangers."""
        if p.suffix != SUFFIX or p.name.startswith(TMP_PREFIX):
            return None
        stem = p.name[: -len(SUFFIX)]
        return stem if _SHA_RE.match(stem) and p.parent.name == stem[:2] else None

    @staticmethod
    def age_s(p: Path) -> float:
        try:
            return time.time() - p.stat().st_mtime
        except FileNotFoundError:
            return 0.0


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
