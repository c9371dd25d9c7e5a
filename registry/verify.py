"""Integrity checks over the whole registry: hashes, trunk fingerprints, data versions, orphans.

Pure functions over records and the object store; the Registry gathers the records
and logs the outcome. Callables for the trunk fingerprint and the DVC md5 are
injected so the registry does not depend on the learner or the data layer.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Iterable

from forkpoint.registry.records import BackboneRecord, VerifyReport, VersionRecord
from forkpoint.registry.store import WeightStore

TrunkFingerprintFn = Callable[[BackboneRecord], str]
DvcMd5Fn = Callable[[str], str]


def references(backbones: Iterable[BackboneRecord], versions: Iterable[VersionRecord],
               probes: dict[str, str] | None = None) -> dict[str, list[str]]:
    """sha256 -> the things that use it ("task@3", "trunk of backbone ab12…", "reference probes of task@3")."""
    refs: dict[str, list[str]] = defaultdict(list)
    for digest, user in (probes or {}).items():
        refs[digest].append(user)
    for b in backbones:
        if b.trunk_sha256:
            refs[b.trunk_sha256].append(f"trunk of backbone {b.fingerprint[:12]}…")
    for v in versions:
        refs[v.weights_sha256].append(v.ref)
    return dict(refs)


def orphans(store: WeightStore, referenced: Iterable[str], min_age_s: float = 0.0) -> list[str]:
    """Keys of entries no row points at (including leftovers of interrupted writes), at least ``min_age_s`` old."""
    keep = set(referenced)
    return [
        key for key in store.keys()
        if store.digest_of(key) not in keep and store.age_s(key) >= min_age_s
    ]


def verify(
    store: WeightStore,
    backbones: list[BackboneRecord],
    versions: list[VersionRecord],
    dangling_live: list[str],
    trunk_fingerprint_fn: TrunkFingerprintFn | None = None,
    dvc_md5_fn: DvcMd5Fn | None = None,
    probes: dict[str, str] | None = None,
) -> VerifyReport:
    problems: list[str] = list(dangling_live)
    bad: set[str] = set()
    refs = references(backbones, versions, probes)
    for digest, users in sorted(refs.items()):
        reason = store.check(digest)
        if reason:
            problems.append(f"{store.rel(digest)} {reason}; used by {', '.join(users)}")
            bad.update(u.rsplit(" ", 1)[-1] for u in users if "@" in u)

    if trunk_fingerprint_fn is not None:
        for b in backbones:
            try:
                now = trunk_fingerprint_fn(b)
            except Exception as e:  # noqa: BLE001 - any failure is a finding, not a crash
                problems.append(f"backbone {b.fingerprint[:12]}… ({b.arch}): cannot recompute fingerprint: {e}")
                continue
            if now != b.fingerprint:
                problems.append(
                    f"backbone {b.fingerprint[:12]}… ({b.arch}, {b.weights_source}): trunk fingerprint is now {now[:12]}…; the frozen weights changed"
                )

    checked_data = 0
    if dvc_md5_fn is not None:
        cache: dict[str, str | Exception] = {}
        for v in versions:
            if not (v.data_path and v.data_md5):
                continue
            checked_data += 1
            if v.data_path not in cache:
                try:
                    cache[v.data_path] = dvc_md5_fn(v.data_path)
                except Exception as e:  # noqa: BLE001
                    cache[v.data_path] = e
            now = cache[v.data_path]
            if isinstance(now, Exception):
                problems.append(f"{v.ref}: cannot read DVC md5 of {v.data_path}: {now}")
                bad.add(v.ref)
            elif now != v.data_md5:
                problems.append(f"{v.ref}: data {v.data_path} has DVC md5 {now}, but the version was trained on {v.data_md5}")
                bad.add(v.ref)

    return VerifyReport(
        problems=tuple(problems),
        orphans=tuple(orphans(store, refs)),
        checked_objects=len(refs),
        checked_versions=len(versions),
        checked_data=checked_data,
        checked_backbones=len(backbones),
        bad_versions=tuple(sorted(bad)),
    )
