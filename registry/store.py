"""Where weights live: the :class:`WeightStore` seam and its first implementation, a local directory.

The registry talks to the interface only, so weights can move to another place (an
object store such as S3) without touching the database code. Every store is
content-addressed: an object's name is the sha256 of its bytes, so identical content is
stored once and any change to an object is detectable on read.

:class:`LocalObjectStore` keeps ``<home>/objects/ab/abcdef….safetensors``. Writes are
atomic (temp file in the same directory, fsync, rename, fsync the directory): a crash
leaves either no file or a complete one, plus at worst a stray temp file that gc removes.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable

from forkpoint.registry.codec import sha256
from forkpoint.contract.atomic import write_bytes
from forkpoint.registry.errors import ArtifactCorruptError, ArtifactMissingError, InvalidInputError, StoreWriteError

SUFFIX = ".safetensors"
TMP_PREFIX = ".tmp-"
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


def object_digest(name: str, folder: str) -> str | None:
    """The sha256 an object file ``folder/name`` is named by (``ab/ab….safetensors``), or None."""
    if not name.endswith(SUFFIX) or name.startswith(TMP_PREFIX):
        return None
    stem = name[: -len(SUFFIX)]
    return stem if _SHA_RE.match(stem) and folder == stem[:2] else None


def temp_digest(name: str) -> str | None:
    """The sha256 a temp file is being written as (``put`` names temps ``.tmp-<sha256>-<random>``), or None."""
    if not name.startswith(TMP_PREFIX):
        return None
    stem = name[len(TMP_PREFIX):].split("-", 1)[0]
    return stem if _SHA_RE.match(stem) else None


def missing(what: str) -> ArtifactMissingError:
    """The one message for a weights object that is not there (``what``: its key and user)."""
    return ArtifactMissingError(f"weights {what} is missing: restore it from backup (verify lists every affected version)")


def verified(data: bytes, digest: str, what: str) -> bytes:
    """``data`` if it hashes to ``digest``; else the one corrupt-object error, naming ``what``."""
    actual = sha256(data)
    if actual != digest:
        raise ArtifactCorruptError(
            f"weights {what} is corrupt (sha256 {actual[:12]}…, expected {digest[:12]}…): refusing to load; restore it from backup"
        )
    return data


@runtime_checkable
class WeightStore(Protocol):
    """Content-addressed bytes. Entries are named by *keys*: the string users see
    (``objects/ab/ab….safetensors`` locally); objects have a digest, leftovers of
    interrupted writes do not."""

    def put(self, data: bytes) -> str:
        """Store ``data`` (repairing a damaged copy) and return its sha256; refreshes its age."""
        ...

    def get(self, digest: str, *, used_by: str = "") -> bytes:
        """The stored bytes, refused (ArtifactMissingError / ArtifactCorruptError) unless they hash to ``digest``."""
        ...

    def exists(self, digest: str) -> bool:
        ...

    def check(self, digest: str) -> str | None:
        """None if the object is present and intact, else a short reason ("missing", "sha256 mismatch …")."""
        ...

    def rel(self, digest: str) -> str:
        """The key of the object with this digest (how messages and records name it)."""
        ...

    def keys(self) -> Iterator[str]:
        """Every entry: objects and leftovers of interrupted writes alike."""
        ...

    def digest_of(self, key: str) -> str | None:
        """The sha256 an entry is named by, or None for leftovers and strangers."""
        ...

    def pending_digest(self, key: str) -> str | None:
        """For a temp entry (a write in flight, or its leftover), the sha256 it is being written as; else None."""
        ...

    def age_s(self, key: str) -> float:
        """Seconds since the entry was last written (0 if it is gone)."""
        ...

    def delete(self, key: str) -> int | None:
        """Remove an entry; the bytes freed, or None if it was already gone."""
        ...


class LocalObjectStore:
    """A :class:`WeightStore` in a local directory ``root`` (keys are relative to its parent, the home)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    # ---- naming --------------------------------------------------------------------

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}{SUFFIX}"

    def rel(self, digest: str) -> str:
        return f"{self.root.name}/{digest[:2]}/{digest}{SUFFIX}"

    def key_of(self, p: Path) -> str:
        return p.relative_to(self.root.parent).as_posix()

    def path_of(self, key: str) -> Path:
        p = self.root.parent / key
        if not p.resolve().is_relative_to(self.root.resolve()):
            raise InvalidInputError(f"{key!r} is not a key of the store at {self.root}: pass a key the store listed")
        return p

    def digest_of(self, key: str) -> str | None:
        p = Path(key)
        return object_digest(p.name, p.parent.name)

    def pending_digest(self, key: str) -> str | None:
        return temp_digest(Path(key).name)

    # ---- objects -------------------------------------------------------------------

    def put(self, data: bytes) -> str:
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
        try:
            # immutable, readable by the team; the temp name carries the digest, so gc sees it is claimed
            write_bytes(final, data, mode=0o444, prefix=f"{TMP_PREFIX}{digest}-")
        except OSError as e:
            raise StoreWriteError(
                f"cannot write {self.rel(digest)} under {self.root.parent} ({e.strerror or e}): check free space and permissions"
            ) from None
        return digest

    def get(self, digest: str, *, used_by: str = "") -> bytes:
        what = f"file {self.rel(digest)}" + (f" (used by {used_by})" if used_by else "")
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise missing(what) from None
        return verified(data, digest, what)

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def check(self, digest: str) -> str | None:
        try:
            actual = sha256(self.path(digest).read_bytes())
        except FileNotFoundError:
            return "missing"
        except OSError as e:
            return f"unreadable ({e.strerror})"
        return None if actual == digest else f"sha256 mismatch (now {actual[:12]}…)"

    # ---- listing and collection -----------------------------------------------------

    def files(self) -> list[Path]:
        """Every file under the store, objects and stray temp files alike."""
        if not self.root.exists():
            return []
        return sorted(p for p in self.root.rglob("*") if p.is_file())

    def keys(self) -> Iterator[str]:
        return iter([self.key_of(p) for p in self.files()])

    def age_s(self, key: str) -> float:
        try:
            return time.time() - self.path_of(key).stat().st_mtime
        except FileNotFoundError:
            return 0.0

    def delete(self, key: str) -> int | None:
        p = self.path_of(key)
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            return None
        return size
