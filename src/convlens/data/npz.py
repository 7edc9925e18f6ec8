"""``npz:FILE``: Keras' ``mnist.npz`` layout (``x_train, y_train, x_test, y_test``).

Loaded with ``allow_pickle=False`` so a hostile file cannot run code. Images may be N x H x W
or N x H x W x C (Keras); N x C x H x W is accepted too when unambiguous.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from convlens.data.dataset import RawSplits, as_labels, as_uint8_pixels, default_class_names
from convlens.data.registry import register_dataset
from convlens.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four Keras arrays from ``path``, loaded eagerly and without pickle."""
    if not path.is_file():
        raise DataError(f"npz file {path} does not exist; check the path")
    with path.open("rb") as handle:
        head = handle.read(6)
    if head[:4] != b"PK\x03\x04" and head != b"\x93NUMPY":
        raise DataError(f"{path} is not a readable .npz archive (not a zip file)")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path} holds a single array; npz:FILE needs {', '.join(KEYS)}")
        with loaded as archive:
            missing = [key for key in KEYS if key not in archive.files]
            if missing:
                raise DataError(
                    f"{path} lacks {', '.join(missing)} (has {', '.join(archive.files) or 'none'});"
                    f" save it with np.savez(path, {'=..., '.join(KEYS)}=...)"
                )
            return {key: archive[key] for key in KEYS}
    except ValueError as error:
        if "allow_pickle" in str(error) or "pickled" in str(error):
            raise DataError(
                f"{path} holds Python objects (pickled arrays), which convlens never loads; save "
                "plain numeric arrays (uint8 images, integer labels)"
            ) from None
        raise DataError(f"{path} is not a readable .npz archive ({_first(error)})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is not a readable .npz archive ({_first(error)})") from None


def _first(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def to_nchw(x: np.ndarray, where: str) -> np.ndarray:
    """N x H x W, N x H x W x C or N x C x H x W (C in 1, 3) -> uint8 N x C x H x W."""
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif not (x.ndim == 4 and x.shape[1] in (1, 3)):
        raise DataError(
            f"{where}: images must be N x H x W or N x H x W x C with C 1 or 3, got {x.shape}"
        )
    return np.ascontiguousarray(as_uint8_pixels(x, where))


@register_dataset("npz:FILE")
def load_npz(arg: str, /, *, size: int | None) -> RawSplits:
    path = Path(arg).expanduser().resolve()
    arrays = read_npz(path)
    y = as_labels(arrays["y_train"], f"{path}:y_train")
    y_val = as_labels(arrays["y_test"], f"{path}:y_test")
    return RawSplits(
        name=f"npz:{path}",
        x=to_nchw(arrays["x_train"], f"{path}:x_train"),
        y=y,
        class_names=default_class_names(y, y_val),
        x_val=to_nchw(arrays["x_test"], f"{path}:x_test"),
        y_val=y_val,
    )
