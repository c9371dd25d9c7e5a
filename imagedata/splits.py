"""Seeded, stratified splits and exact-duplicate removal that give the same answer everywhere.

Orderings come from a keyed BLAKE2b hash of (seed, index) rather than a NumPy RNG, so the
splits cannot drift if NumPy changes a random stream.
"""

from __future__ import annotations

import hashlib

import numpy as np

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")
DEFAULT_FRACTIONS = {"val": 0.1, "test": 0.2}
DEFAULT_SEED = 0


def keyed_order(indices: np.ndarray, seed: int) -> np.ndarray:
    """``indices`` shuffled by a seeded hash: a permutation that depends only on (seed, index)."""
    key = seed.to_bytes(8, "little", signed=True)
    keys = [hashlib.blake2b(int(i).to_bytes(8, "little"), digest_size=8, key=key).digest() for i in indices]
    return np.asarray(indices, dtype=np.int64)[np.argsort(np.array(keys, dtype="S8"), kind="stable")]


def _counts(n: int, fractions: dict[str, float]) -> tuple[int, int]:
    """(n_val, n_test) for a class of n images: rounded shares, each >= 1 when n >= 3."""
    n_val, n_test = round(n * fractions["val"]), round(n * fractions["test"])
    if n >= 3:
        n_val = max(n_val, 1)
        n_test = max(n_test, 1) if fractions["test"] > 0 else 0
    elif n == 2 and fractions["test"] == 0:
        n_val = max(n_val, 1)  # one to train, one to validate
    return n_val, n_test


def stratified_split(labels: np.ndarray, seed: int = DEFAULT_SEED,
                     fractions: dict[str, float] = DEFAULT_FRACTIONS,
                     fixed_test: np.ndarray | None = None) -> np.ndarray:
    """Per-image split code (0 train, 1 val, 2 test), stratified by class.

    ``fixed_test`` marks a source's own test images: they stay the test split, and val is
    carved from the rest with ``fractions["val"]`` of each class.
    """
    labels = np.asarray(labels)
    split = np.full(len(labels), TRAIN, dtype=np.int8)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if fixed_test is not None:
            split[members[fixed_test[members]]] = TEST
            pool = members[~fixed_test[members]]
            order = keyed_order(pool, seed)
            split[order[:round(len(pool) * fractions["val"])]] = VAL
            continue
        order = keyed_order(members, seed)
        n_val, n_test = _counts(len(members), fractions)
        split[order[:n_test]] = TEST
        split[order[n_test:n_test + n_val]] = VAL
    return split


def cap_per_class(labels: np.ndarray, n: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Sorted indices keeping at most ``n`` per class (seeded choice).

    With ``groups`` (e.g. a source's own train/test flag) each class keeps the groups' ratio.
    """
    keep: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if groups is None:
            keep.append(keyed_order(members, seed)[:n])
            continue
        take = min(n, len(members))
        in_group = members[groups[members]]
        n_group = min(len(in_group), round(take * len(in_group) / len(members)))
        keep.append(keyed_order(in_group, seed)[:n_group])
        keep.append(keyed_order(members[~groups[members]], seed)[:take - n_group])
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


def first_occurrences(images: np.ndarray) -> np.ndarray:
    """Sorted indices of the first copy of every distinct image (exact pixel equality)."""
    seen: set[bytes] = set()
    keep = []
    for i in range(len(images)):
        digest = hashlib.blake2b(images[i].tobytes(), digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)
