"""FsspecObjectStore over a file system other than S3 (fsspec's in-memory one): no server needed."""

from __future__ import annotations

import pytest

from forkpoint.registry.objectstore import FsspecObjectStore, open_store


@pytest.mark.parametrize("url", ["memory://forkpoint-test/weights"])
def test_any_fsspec_url_is_a_store(url):
    """The same code over another fsspec file system (no server): layout, ages and deletes."""
    store = open_store(url)
    assert isinstance(store, FsspecObjectStore)
    digest = store.put(b"weights")
    key = store.rel(digest)
    assert key == f"memory:///forkpoint-test/weights/{digest[:2]}/{digest}.safetensors"
    assert list(store.keys()) == [key] and store.digest_of(key) == digest and store.get(digest) == b"weights"
    assert 0 <= store.age_s(key) < 60 and store.delete(key) == 7 and list(store.keys()) == []
