"""IDX files (LeCun's MNIST format) and ``idx:DIR``, a folder of the four MNIST-layout files.

IDX: two zero bytes, a dtype code, the number of dimensions, each dimension as a big-endian
uint32, then the values big-endian, row-major. We validate every part so a truncated download
fails with a one-line message instead of a reshape error.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from convlens.data.dataset import RawSplits, as_labels, as_uint8_pixels, default_class_names
from convlens.data.registry import register_dataset
from convlens.errors import DataError

IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

SPLIT_FILES = {
    "train images": ("train-images", 3),
    "train labels": ("train-labels", 1),
    "test images": ("t10k-images", 3),
    "test labels": ("t10k-labels", 1),
}
"""Part -> (file stem, IDX rank) as in the MNIST distribution."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzip, detected by content) into a native-endian array."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(
            f"{path} is too short to be an IDX file ({len(data)} bytes); re-download it"
        )
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in IDX_DTYPES:
        raise DataError(
            f"{path} is not an IDX file (magic number 0x{data[:4].hex()}); "
            "expected 0x0000 + dtype code + rank"
        )
    if ndim == 0:
        raise DataError(f"{path} is corrupt: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(f"{path} is truncated inside its header; re-download it")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_len
    if actual < expected:
        raise DataError(
            f"{path} is truncated: header says {'x'.join(map(str, dims))} values "
            f"({expected} bytes) but only {actual} bytes follow; re-download it"
        )
    if actual > expected:
        raise DataError(
            f"{path} is corrupt: {actual - expected} unexpected bytes after the "
            f"{'x'.join(map(str, dims))} values; re-download it"
        )
    values = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_len)
    return values.reshape(dims).astype(dtype.newbyteorder("="), copy=False)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DataError(f"IDX file {path} does not exist; check the path")
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path} is a damaged gzip file ({error}); re-download it") from None


def find_idx_file(folder: Path, stem: str, rank: int) -> Path | None:
    """``stem-idxR-ubyte`` or ``stem.idxR-ubyte``, each optionally ``.gz``; first one found."""
    for name in (f"{stem}-idx{rank}-ubyte", f"{stem}.idx{rank}-ubyte"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def missing_idx_files(folder: Path) -> list[str]:
    """Expected names of the split files not found in ``folder``."""
    return [
        f"{stem}-idx{rank}-ubyte[.gz]"
        for stem, rank in SPLIT_FILES.values()
        if find_idx_file(folder, stem, rank) is None
    ]


def read_idx_folder(folder: Path, name: str) -> RawSplits:
    """The four MNIST-layout files in ``folder`` as official train/test splits."""
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder; idx:DIR needs a folder of IDX files")
    missing = missing_idx_files(folder)
    if missing:
        raise DataError(f"{folder} lacks {', '.join(missing)}; these four IDX files are needed")
    parts: dict[str, np.ndarray] = {}
    for part, (stem, rank) in SPLIT_FILES.items():
        path = find_idx_file(folder, stem, rank)
        assert path is not None  # checked above
        array = read_idx(path)
        if array.ndim != rank:
            raise DataError(f"{path} has {array.ndim} dimensions; {part} need {rank}")
        if rank == 3:
            parts[part] = as_uint8_pixels(array, str(path))[:, None, :, :]
        else:
            parts[part] = as_labels(array, str(path))
    y, y_val = parts["train labels"], parts["test labels"]
    return RawSplits(
        name=name,
        x=parts["train images"],
        y=y,
        class_names=_class_names(folder, y, y_val),
        x_val=parts["test images"],
        y_val=y_val,
    )


def _class_names(folder: Path, *labels: np.ndarray) -> tuple[str, ...]:
    """``classes.txt`` (one name per line) if present, else digits."""
    listing = folder / "classes.txt"
    if not listing.is_file():
        return default_class_names(*labels)
    names = tuple(line.strip() for line in listing.read_text().splitlines() if line.strip())
    if not names:
        raise DataError(f"{listing} is empty; write one class name per line or remove it")
    return names


@register_dataset("idx:DIR")
def load_idx(arg: str, /, *, size: int | None) -> RawSplits:
    folder = Path(arg).expanduser().resolve()
    return read_idx_folder(folder, f"idx:{folder}")
