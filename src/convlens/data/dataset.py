"""The Dataset every analysis reads, and the one place raw pixels become it.

Loaders only decode files into :class:`RawSplits` (uint8, NCHW); splitting, subsetting, resizing
and scaling to [0, 1] happen here once, so every source behaves the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from convlens.data.splits import stratified_split, stratified_subset
from convlens.data.transforms import resize_batch, uint8_to_float
from convlens.errors import DataError

VAL_FRACTION = 0.1
"""Share of each class held out when a source has no official test split."""


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Images and labels ready for a model: float32 NCHW in [0, 1], int64 labels.

    ``x_val``/``y_val`` is the held-out split: the official test set where the source has one,
    otherwise a stratified share chosen by ``split_seed``. ``eq`` is off because tensors do not
    compare to a single bool; the repr is a summary because the tensors are large.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    class_names: tuple[str, ...]
    split_seed: int

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def height(self) -> int:
        return int(self.x_train.shape[2])

    @property
    def width(self) -> int:
        return int(self.x_train.shape[3])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.y_train)}, val={len(self.y_val)}, "
            f"shape={self.channels}x{self.height}x{self.width}, classes={len(self.class_names)}, "
            f"split_seed={self.split_seed})"
        )


@dataclass(frozen=True, eq=False)
class RawSplits:
    """What a loader returns: uint8 NCHW pixels and int64 labels, not yet split or scaled.

    ``x_val``/``y_val`` are set only when the source ships its own test split; otherwise
    :func:`build_dataset` holds out a stratified share of ``x``/``y``.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    class_names: tuple[str, ...]
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None


def default_class_names(*labels: np.ndarray) -> tuple[str, ...]:
    """Digits "0".."9" (the MNIST family), widened when labels go past 9 (e.g. EMNIST)."""
    top = max((int(y.max()) for y in labels if y.size), default=0)
    return tuple(str(i) for i in range(max(10, top + 1)))


def as_uint8_pixels(x: np.ndarray, where: str) -> np.ndarray:
    """Pixels as uint8: integers must lie in 0..255, floats in [0, 1] or [0, 255]."""
    if x.dtype == np.uint8:
        return x
    if x.size == 0:
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{where}: pixel values must lie in 0..255; rescale them to uint8")
        return x.astype(np.uint8)
    if np.issubdtype(x.dtype, np.floating):
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        if np.isnan(x).any() or lo < 0 or hi > 255:
            raise DataError(f"{where}: pixel values must lie in [0, 1] or 0..255 without NaN")
        scale = 255.0 if hi <= 1.0 else 1.0
        return np.clip(np.rint(x * scale), 0, 255).astype(np.uint8)
    raise DataError(f"{where}: pixels have dtype {x.dtype}; store them as uint8 0..255")


def as_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Labels as int64 (N,): accepts (N,) or (N, 1) integers, rejects negatives."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{where}: labels must be a 1-D integer array, got {y.dtype} of shape {y.shape}"
        )
    if y.size and y.min() < 0:
        raise DataError(f"{where}: labels must be >= 0, found {int(y.min())}")
    return y.astype(np.int64)


def build_dataset(
    raw: RawSplits, *, size: int | None, split_seed: int, limit: int | None
) -> Dataset:
    """Split (if needed), subset train to ``limit``, scale to [0, 1] and resize to ``size``."""
    _check_raw(raw)
    official = raw.x_val is not None and raw.y_val is not None
    train_idx, val_idx = split_indices(
        raw.y, raw.y_val if official else None, split_seed=split_seed, limit=limit, name=raw.name
    )
    if official:
        x_tr, y_tr, x_va, y_va = raw.x, raw.y, raw.x_val, raw.y_val
    else:
        x_tr, y_tr, x_va, y_va = raw.x, raw.y, raw.x, raw.y
    return Dataset(
        name=raw.name,
        x_train=_to_tensor(x_tr, train_idx, size),
        y_train=torch.from_numpy(np.ascontiguousarray(y_tr[train_idx])),
        x_val=_to_tensor(x_va, val_idx, size),
        y_val=torch.from_numpy(np.ascontiguousarray(y_va[val_idx])),
        class_names=raw.class_names,
        split_seed=split_seed,
    )


def split_indices(
    y: np.ndarray, y_val: np.ndarray | None, *, split_seed: int, limit: int | None, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) record indices: train into the source's images, val into its official test
    images (``y_val`` given) or into the same images (a seeded stratified share held out).

    The one definition of a split, so a worker that reads a shard of a split straight from the
    files (:mod:`convlens.data.source`) picks exactly the images :func:`build_dataset` would.
    """
    if y_val is None:
        train_idx, val_idx = stratified_split(y, VAL_FRACTION, split_seed)
        if val_idx.size == 0:
            raise DataError(
                f"{name}: no class has 2 or more images, so nothing can be held out for "
                "validation; add images"
            )
    else:
        train_idx, val_idx = np.arange(len(y)), np.arange(len(y_val))
    if limit is not None:
        train_idx = train_idx[stratified_subset(y[train_idx], limit, split_seed)]
    return train_idx, val_idx


def _to_tensor(x: np.ndarray, idx: np.ndarray, size: int | None) -> torch.Tensor:
    images = uint8_to_float(x[idx])
    if size is not None and images.shape[-2:] != (size, size):
        images = resize_batch(images, size, size)
    return images


def _check_raw(raw: RawSplits) -> None:
    """Catch loader output that would break analyses later, with the source named."""
    pairs = [("train", raw.x, raw.y)]
    if raw.x_val is not None and raw.y_val is not None:
        pairs.append(("test", raw.x_val, raw.y_val))
    for part, x, y in pairs:
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise DataError(
                f"{raw.name}: {part} images must be uint8 N x C x H x W with C 1 or 3, "
                f"got {x.dtype} {x.shape}"
            )
        if len(x) != len(y):
            raise DataError(f"{raw.name}: {part} has {len(x)} images but {len(y)} labels")
        if y.size and int(y.max()) >= len(raw.class_names):
            raise DataError(
                f"{raw.name}: {part} label {int(y.max())} has no class name "
                f"({len(raw.class_names)} classes); add names or fix the labels"
            )
    if len(raw.y) == 0:
        raise DataError(f"{raw.name}: no training images found")
    if raw.x_val is not None and raw.x_val.shape[1:] != raw.x.shape[1:]:
        raise DataError(
            f"{raw.name}: train images are {raw.x.shape[1:]} but test images are "
            f"{raw.x_val.shape[1:]}; they must match"
        )
