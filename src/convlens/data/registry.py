"""Datasets by name, timm-style: ``@register_dataset("mnist")`` adds a loader.

A name of the form ``"prefix:METAVAR"`` (``"idx:DIR"``) registers a prefix: the spec
``idx:/data/mnist`` calls that loader with ``"/data/mnist"``. Loaders only decode; splitting,
``limit`` and ``size`` are applied by :func:`convlens.data.dataset.build_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from convlens.data.dataset import Dataset, RawSplits, build_dataset
from convlens.errors import DataError, UnknownNameError, did_you_mean


class Loader(Protocol):
    """Decodes a source. ``arg`` is the text after ``prefix:`` ("" for plain names); ``size`` is
    passed so sources of mixed image sizes (folders) can resize while decoding."""

    def __call__(self, arg: str, /, *, size: int | None) -> RawSplits: ...


_NAMED: dict[str, Loader] = {}
_PREFIXED: dict[str, tuple[str, Loader]] = {}


def register_dataset(name: str) -> Callable[[Loader], Loader]:
    """Register ``loader`` under ``name`` ("mnist") or as a prefix ("idx:DIR")."""

    def add(loader: Loader) -> Loader:
        prefix, sep, metavar = name.partition(":")
        table_has = prefix in _PREFIXED if sep else name in _NAMED
        if table_has:
            raise ValueError(f"dataset {name!r} is already registered")
        if sep:
            _PREFIXED[prefix] = (metavar, loader)
        else:
            _NAMED[name] = loader
        return loader

    return add


def dataset_names() -> list[str]:
    """Registered names, then the prefixed forms ("idx:DIR"), for --help and error messages."""
    return [*_NAMED, *(f"{p}:{m}" for p, (m, _) in _PREFIXED.items())]


def load_dataset(
    spec: str, *, size: int | None = None, split_seed: int = 0, limit: int | None = None
) -> Dataset:
    """Load a dataset by name or prefixed spec (``mnist``, ``idx:DIR``, ``folder:DIR`` ...).

    ``size`` resizes images to ``size`` x ``size`` (bilinear with antialiasing); ``split_seed``
    chooses the held-out split where the source has no official one, and the ``limit`` subset;
    ``limit`` keeps at most that many training images (stratified), the val split is unchanged.
    """
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise DataError(f"size must be a positive integer, got {size!r}")
    if isinstance(split_seed, bool) or not isinstance(split_seed, int) or split_seed < 0:
        raise DataError(f"split_seed must be a non-negative integer, got {split_seed!r}")
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"the dataset name is empty; give one of: {', '.join(dataset_names())}")
    loader, arg = _resolve(spec)
    raw = loader(arg, size=size)
    return build_dataset(raw, size=size, split_seed=split_seed, limit=limit)


def _resolve(spec: str) -> tuple[Loader, str]:
    prefix, sep, arg = spec.partition(":")
    if sep and prefix.lower() in _PREFIXED:
        if not arg:
            metavar = _PREFIXED[prefix.lower()][0]
            raise DataError(f"dataset spec {spec!r} needs a path: {prefix.lower()}:{metavar}")
        return _PREFIXED[prefix.lower()][1], arg
    canonical = spec.strip().lower().replace("_", "-")
    if canonical in _NAMED:
        return _NAMED[canonical], ""
    message = did_you_mean(spec, dataset_names(), "dataset")
    if not sep and ("/" in spec or "\\" in spec or "." in spec):
        prefixes = ", ".join(f"{p}:{m}" for p, (m, _) in _PREFIXED.items())
        message += f" To load a file or folder, prefix its path: {prefixes}."
    raise UnknownNameError(message)
