"""Seeded, stratified index selection: the held-out split and the ``limit`` subset.

Stratified so small subsets still cover every class; seeded through numpy's PCG64 so the same
seed gives the same split on every machine.
"""

from __future__ import annotations

import numpy as np

from convlens.errors import DataError

_SPLIT_STREAM = 0
_SUBSET_STREAM = 1


def _rng(seed: int, stream: int) -> np.random.Generator:
    if seed < 0:
        raise DataError(f"split_seed must be a non-negative integer, got {seed}")
    return np.random.default_rng([seed, stream])


def val_count(n: int, fraction: float) -> int:
    """How many of a class's ``n`` images to hold out: ~fraction, >= 1 when n >= 2, < n."""
    if n < 2:
        return 0
    return min(n - 1, max(1, round(n * fraction)))


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: ``fraction`` of each class in val, both shuffled."""
    rng = _rng(seed, _SPLIT_STREAM)
    train: list[np.ndarray] = []
    val: list[np.ndarray] = []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        k = val_count(len(members), fraction)
        val.append(members[:k])
        train.append(members[k:])
    train_idx = rng.permutation(np.concatenate(train)) if train else np.zeros(0, np.int64)
    val_idx = rng.permutation(np.concatenate(val)) if val else np.zeros(0, np.int64)
    return train_idx.astype(np.int64), val_idx.astype(np.int64)


def stratified_subset(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of at most ``limit`` items, each class in proportion to its share, in random order.

    Every item gets a key "position within its class / class size" over a seeded shuffle; the
    ``limit`` smallest keys take the same fraction of every class.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise DataError(f"limit must be a positive integer, got {limit!r}")
    n = len(y)
    rng = _rng(seed, _SUBSET_STREAM)
    perm = rng.permutation(n)
    if limit >= n:
        return perm
    labels = y[perm]
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    rank = np.empty(n, dtype=np.float64)
    rank[order] = np.arange(n) - np.searchsorted(sorted_labels, sorted_labels, side="left")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    key = (rank + 0.5) / counts[inverse]
    chosen = np.sort(np.argsort(key, kind="stable")[:limit])
    return perm[chosen]
