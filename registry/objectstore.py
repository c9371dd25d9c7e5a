"""Weights in an object store: :class:`FsspecObjectStore`, and :func:`open_store`, which turns a store URL into a store.

The layout is :class:`~forkpoint.registry.store.LocalObjectStore`'s, under the URL's
prefix: ``s3://bucket/prefix/ab/abcdef….safetensors``, named by the sha256 of the bytes,
checked again on every load. A write is atomic at the object level, which is the only
atomicity an object store offers, and is enough:

1. ``PUT`` the bytes to a temporary key beside the final one,
   ``ab/.tmp-<sha256>-<random>.safetensors``: the name carries the digest, so gc sees
   the write is claimed (``pending_digest``) and leaves it alone;
2. verify what the server stored: its size, and its MD5 ETag against ours where the
   backend reports one (a single-part S3 upload does), else read it back and hash it;
3. move it to the final key (S3: a server-side ``CopyObject``, itself atomic: readers
   see no object or the whole one, never part), then delete the temp key.

A crash before 3 leaves a temp key that gc removes once its claim is stale; after it,
a complete object. Credentials and the endpoint come from the environment, never from
the URL or the database (:func:`s3_options`).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Iterator
from urllib.parse import urlsplit

from forkpoint.registry.codec import sha256
from forkpoint.registry.errors import (
    InvalidInputError,
    StoreUnavailableError,
    StoreWriteError,
)
from forkpoint.registry.store import (
    SUFFIX,
    TMP_PREFIX,
    LocalObjectStore,
    WeightStore,
    missing,
    object_digest,
    temp_digest,
    verified,
)

ENDPOINT_ENVS = ("FORKPOINT_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
USAGE = "use file:///PATH, s3://BUCKET/PREFIX or another fsspec URL"


def s3_options() -> dict[str, Any]:
    """s3fs options from the environment: the endpoint (FORKPOINT_S3_ENDPOINT, AWS_ENDPOINT_URL_S3,
    AWS_ENDPOINT_URL); keys and region are read by botocore itself (AWS_ACCESS_KEY_ID, …). Fail fast:
    a short connect timeout and few retries, so a wrong endpoint is an error in seconds."""
    opts: dict[str, Any] = {"config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}}}
    endpoint = next((os.environ[e] for e in ENDPOINT_ENVS if os.environ.get(e)), None)
    if endpoint:
        opts["endpoint_url"] = endpoint
    return opts


def check_url(url: str) -> str:
    """``url`` normalised (no trailing slash), or InvalidInputError naming the fix. Never holds secrets."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError(f"store URL {url!r} is empty: {USAGE}")
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if not parts.scheme or "://" not in url:
        raise InvalidInputError(f"store URL {url!r} has no scheme: {USAGE}")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise InvalidInputError(
            f"store URL {parts.scheme}://… carries credentials or options: pass them in the environment "
            "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, FORKPOINT_S3_ENDPOINT), never in the URL (it is stored in the database)")
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise InvalidInputError(f"store URL {url!r} is not an absolute file URL: use file:///ABSOLUTE/PATH")
    elif parts.scheme in ("s3", "s3a") and not parts.netloc:
        raise InvalidInputError(f"store URL {url!r} names no bucket: use s3://BUCKET/PREFIX")
    return url


def open_store(url: str) -> WeightStore:
    """The store a URL names: ``file://`` is a :class:`LocalObjectStore` (fsync + rename), anything else fsspec's."""
    url = check_url(url)
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalObjectStore(Path(parts.path))
    return FsspecObjectStore(url)


def probe(store: WeightStore) -> None:
    """Prove ``store`` can be written, listed and deleted from, or raise StoreUnavailableError naming the fix.

    ``init`` calls it before creating anything. A local store's folder is created here, but
    only inside an existing parent (a typo must not grow a tree of folders)."""
    if isinstance(store, FsspecObjectStore):
        store.probe()
        return
    if isinstance(store, LocalObjectStore):
        root = store.root
        if not root.parent.is_dir():
            raise StoreUnavailableError(f"cannot use the store file://{root}: folder {root.parent} does not exist; create it or fix --store")
        try:
            root.mkdir(exist_ok=True)
            (root / f"{TMP_PREFIX}probe-{uuid.uuid4().hex[:12]}").write_bytes(b"forkpoint")
            for p in root.glob(f"{TMP_PREFIX}probe-*"):
                p.unlink(missing_ok=True)
        except OSError as e:
            raise StoreUnavailableError(f"cannot use the store file://{root} ({e.strerror or e}): pass a writable folder to --store") from None


class FsspecObjectStore:
    """A :class:`~forkpoint.registry.store.WeightStore` at any fsspec URL (``s3://bucket/prefix``, ``memory://x``…).

    Keys are full URLs (``s3://bucket/prefix/ab/ab….safetensors``): what messages, ``verify``
    and ``gc`` name is where the object is."""

    def __init__(self, url: str, **options: Any) -> None:
        import fsspec

        self.url = check_url(url)
        self.scheme = urlsplit(self.url).scheme
        try:
            cls = fsspec.get_filesystem_class(self.scheme)
        except (ValueError, ImportError) as e:
            raise InvalidInputError(f"store URL {self.url!r}: fsspec has no usable file system for {self.scheme!r} ({e}): {USAGE}") from None
        if self.scheme in ("s3", "s3a"):
            options = {**s3_options(), **options}
        # no instance or listing caches: other writers change the store under us
        self.fs = cls(skip_instance_cache=True, use_listings_cache=False, **options)
        if self.scheme in ("s3", "s3a"):
            self.fs.retries = 2  # s3fs's own retry loop (a class attribute, 5 by default) on top of botocore's
        self.root = cls._strip_protocol(self.url).rstrip("/")

    # ---- naming --------------------------------------------------------------------

    def _path(self, digest: str) -> str:
        return f"{self.root}/{digest[:2]}/{digest}{SUFFIX}"

    def _key(self, path: str) -> str:
        return f"{self.scheme}://{path}"

    def _path_of(self, key: str) -> str:
        path = type(self.fs)._strip_protocol(key)
        if not (path.startswith(self.root + "/") and ".." not in PurePosixPath(path).parts):
            raise InvalidInputError(f"{key!r} is not a key of the store at {self.url}: pass a key the store listed")
        return path

    def rel(self, digest: str) -> str:
        return self._key(self._path(digest))

    def digest_of(self, key: str) -> str | None:
        p = PurePosixPath(urlsplit(key).path or key)
        return object_digest(p.name, p.parent.name)

    def pending_digest(self, key: str) -> str | None:
        return temp_digest(PurePosixPath(urlsplit(key).path or key).name)

    # ---- objects -------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        digest = sha256(data)
        final = self._path(digest)
        try:
            if self._intact(final, data, digest):
                self._refresh(final)  # a fresh LastModified keeps gc's grace period from racing this writer
                return digest
            tmp = f"{self.root}/{digest[:2]}/{TMP_PREFIX}{digest}-{uuid.uuid4().hex[:12]}{SUFFIX}"
            if self._local:
                self.fs.makedirs(f"{self.root}/{digest[:2]}", exist_ok=True)
            self.fs.pipe_file(tmp, data)
            moved = False
            try:
                if not self._intact(tmp, data, digest):
                    raise OSError(f"the store holds other bytes than were sent to {self._key(tmp)}")
                self._move(tmp, final)
                moved = True
            finally:
                if not moved:  # best effort; a leftover is claimed by its name and collected by gc later
                    _quietly(self.fs.rm_file, tmp)
        except (OSError, ValueError) as e:
            raise StoreWriteError(
                f"cannot write {self.rel(digest)} ({_reason(e)}): check the store is reachable, the credentials may write, and retry"
            ) from None
        return digest

    def get(self, digest: str, *, used_by: str = "") -> bytes:
        who = f" (used by {used_by})" if used_by else ""
        what = f"object {self.rel(digest)}{who}"
        try:
            data = self.fs.cat_file(self._path(digest))
        except FileNotFoundError:
            raise missing(what) from None
        except (OSError, ValueError) as e:
            raise StoreUnavailableError(f"cannot read {self.rel(digest)}{who} ({_reason(e)}): check the store is reachable and retry") from None
        return verified(data, digest, what)

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._path(digest)))

    def check(self, digest: str) -> str | None:
        try:
            actual = sha256(self.fs.cat_file(self._path(digest)))
        except FileNotFoundError:
            return "missing"
        except (OSError, ValueError) as e:
            return f"unreadable ({_reason(e)})"
        return None if actual == digest else f"sha256 mismatch (now {actual[:12]}…)"

    # ---- listing and collection -----------------------------------------------------

    def keys(self) -> Iterator[str]:
        try:
            found = self.fs.find(self.root)
        except FileNotFoundError:
            return iter([])
        return iter(sorted(self._key(p) for p in found))

    def age_s(self, key: str) -> float:
        try:
            info = self.fs.info(self._path_of(key))
        except FileNotFoundError:
            return 0.0
        return time.time() - _modified(info)

    def delete(self, key: str) -> int | None:
        path = self._path_of(key)
        try:
            size = int(self.fs.info(path)["size"])
            self.fs.rm_file(path)
        except FileNotFoundError:
            return None
        return size

    def probe(self) -> None:
        """Prove the store can be listed, written and deleted from (``init`` calls it before creating anything)."""
        probe = f"{self.root}/{TMP_PREFIX}probe-{uuid.uuid4().hex[:12]}"
        try:
            if self._local:
                self.fs.makedirs(self.root, exist_ok=True)
            self.fs.pipe_file(probe, b"forkpoint")
            self.fs.rm_file(probe)
            self.fs.find(self.root)
        except Exception as e:  # noqa: BLE001 - any failure means the same thing here: not usable
            raise StoreUnavailableError(
                f"cannot use the store {self.url} ({_reason(e)}): check the bucket exists, the endpoint "
                "(FORKPOINT_S3_ENDPOINT / AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
            ) from None

    # ---- helpers -----------------------------------------------------------------------

    @property
    def _local(self) -> bool:
        return "file" in _protocols(self.fs) or "local" in _protocols(self.fs)

    def _intact(self, path: str, data: bytes, digest: str) -> bool:
        """Whether ``path`` holds exactly ``data``: size, then the server's MD5 ETag where it has one, else the bytes."""
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return False
        if int(info.get("size", -1)) != len(data):
            return False
        etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
        if re.fullmatch(r"[0-9a-f]{32}", etag):  # single-part upload or copy: the MD5 of what the server holds
            return etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
        try:
            return sha256(self.fs.cat_file(path)) == digest
        except FileNotFoundError:
            return False

    def _move(self, tmp: str, final: str) -> None:
        """Local: one rename. Object stores: a server-side copy (atomic per object), then delete the temp key."""
        if self._local:
            self.fs.mv(tmp, final)
        else:
            self.fs.cp_file(tmp, final)
            self.fs.rm_file(tmp)

    def _refresh(self, path: str) -> None:
        """Bump an existing object's modification time (best effort: claims already protect the write)."""
        try:
            if "s3" in _protocols(self.fs):
                self.fs.copy(path, path, MetadataDirective="REPLACE")  # S3 allows a self-copy that replaces metadata
            elif self._local:
                self.fs.touch(path, truncate=False)
        except (OSError, ValueError):
            pass


def _quietly(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - cleanup after a failure already being reported
        pass


def _protocols(fs: Any) -> tuple[str, ...]:
    p = fs.protocol
    return (p,) if isinstance(p, str) else tuple(p)


def _modified(info: dict[str, Any]) -> float:
    """Seconds since the epoch the entry was last written: S3's LastModified, a local mtime, memory's created."""
    for name in ("LastModified", "mtime", "last_modified", "created", "updated"):
        v = info.get(name)
        if isinstance(v, datetime):
            return v.timestamp()
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, str):
            try:
                return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return time.time()  # no time known: treat as new, so gc never deletes it early


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 160 else text[:157] + "…"
