"""FsspecObjectStore against a real S3 server: round trip, corruption caught on load, atomic writes, gc."""

from __future__ import annotations

import time

import pytest
import torch

from forkpoint.registry import ArtifactCorruptError, ArtifactMissingError, Registry, StoreWriteError
from forkpoint.registry import claims
from forkpoint.registry.codec import sha256
from forkpoint.registry.objectstore import FsspecObjectStore, open_store
from forkpoint.registry.store import WeightStore

pytestmark = pytest.mark.s3


def test_round_trip_is_content_addressed(store_url, bucket, objects):
    store = open_store(store_url)
    assert isinstance(store, FsspecObjectStore) and isinstance(store, WeightStore)
    data = b"safetensors bytes " * 1000
    digest = store.put(data)
    assert digest == sha256(data) and store.put(data) == digest  # same bytes: one object
    key = f"weights/{digest[:2]}/{digest}.safetensors"
    assert objects() == {key: data}  # nothing else left: the temp key is gone
    assert store.rel(digest) == f"s3://{bucket}/{key}" and list(store.keys()) == [store.rel(digest)]
    assert store.get(digest) == data and store.exists(digest) and store.check(digest) is None
    assert store.digest_of(store.rel(digest)) == digest and store.pending_digest(store.rel(digest)) is None
    assert 0 <= store.age_s(store.rel(digest)) < 60
    assert store.delete(store.rel(digest)) == len(data) and store.delete(store.rel(digest)) is None
    assert store.check(digest) == "missing" and not store.exists(digest)
    with pytest.raises(ArtifactMissingError, match=f"s3://{bucket}/{key}.*used by pets@1"):
        store.get(digest, used_by="pets@1")


def test_a_corrupt_object_is_refused_on_load_and_repaired_by_put(store_url, bucket, s3_client, objects):
    store = open_store(store_url)
    data = b"the real weights" * 100
    digest = store.put(data)
    key = f"weights/{digest[:2]}/{digest}.safetensors"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"flipped" + data[7:])  # someone overwrote it
    with pytest.raises(ArtifactCorruptError, match="corrupt"):
        store.get(digest, used_by="pets@1")
    assert store.check(digest).startswith("sha256 mismatch")
    assert store.put(data) == digest  # the good bytes are written over the damaged copy
    assert store.get(digest) == data and objects() == {key: data}


def test_temp_keys_carry_the_digest_and_keys_outside_the_store_are_refused(store_url, bucket, s3_client):
    store = open_store(store_url)
    digest = sha256(b"x")
    tmp = f"s3://{bucket}/weights/{digest[:2]}/.tmp-{digest}-abc123.safetensors"
    assert store.pending_digest(tmp) == digest and store.digest_of(tmp) is None
    with pytest.raises(Exception, match="not a key of the store"):
        store.delete(f"s3://{bucket}/elsewhere/{digest}.safetensors")


def test_an_unwritable_store_fails_with_one_line(bucket, s3_env, monkeypatch):
    store = open_store(f"s3://{bucket}-gone/weights")  # no such bucket
    with pytest.raises(StoreWriteError, match="cannot write s3://.*check the store is reachable"):
        store.put(b"data")


def _orphan(store, text: str) -> str:
    return store.rel(store.put(text.encode()))


def test_gc_removes_unreferenced_objects_and_keeps_referenced_claimed_and_young(home, store_url, bucket, s3_client,
                                                                                objects, sample_of, monkeypatch):
    monkeypatch.setattr(claims, "FLOOR_S", 0.0)  # the 60 s floor off: LastModified cannot be backdated on S3
    with Registry.open(home, store_url=store_url) as reg:
        sample = sample_of(reg)
        sample.backbone()
        kept = sample.add("pets", seed=1)
        old = _orphan(reg.store, "an interrupted add's object")
        claimed_digest = sha256(b"being written")
        claimed_tmp = f"weights/{claimed_digest[:2]}/.tmp-{claimed_digest}-0123456789ab.safetensors"
        s3_client.put_object(Bucket=bucket, Key=claimed_tmp, Body=b"being wri")  # a write in flight
        with reg._write() as s:
            claims.claim(s, claimed_digest, "writer@other")
            s.commit()
        stray_tmp = f"weights/aa/.tmp-{'a' * 64}-0123456789ab.safetensors"  # a dead writer's leftover, no claim
        s3_client.put_object(Bucket=bucket, Key=stray_tmp, Body=b"half")
        time.sleep(5.0)
        young = _orphan(reg.store, "written just now")
        # LastModified has whole seconds and a loaded CI machine is slow: the young object must stay under the age
        # through both passes below, so the margin is seconds, not a fraction of one
        assert reg.gc(min_age_s=3.5, dry_run=True) == sorted([old, f"s3://{bucket}/{stray_tmp}"])
        deleted = reg.gc(min_age_s=3.5)
        assert deleted == sorted([old, f"s3://{bucket}/{stray_tmp}"])
        left = set(objects())
        assert left == {kept.weights_path.removeprefix(f"s3://{bucket}/"), claimed_tmp,
                        young.removeprefix(f"s3://{bucket}/")}
        assert torch.equal(reg.load_tensors("pets")["head.weight"], sample.tensors(1)["head.weight"])
        report = reg.verify()
        assert report.ok and sorted(report.orphans) == sorted([f"s3://{bucket}/{claimed_tmp}", young])

