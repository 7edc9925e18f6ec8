"""Uploaded images -> the model's input, through the same converter as the CLI's ``--image``.

Bounded before anything is decoded: the body is read in chunks and refused past ``MAX_BYTES``;
the header alone is parsed to refuse formats other than PNG/JPEG and images over
``MAX_PIXELS`` (a small file can claim a huge image). Only then is it decoded by
:func:`convlens.data.images.load_image`, from a private temporary file, so every conversion
(grayscale, inversion, resize) is reported exactly as the CLI reports it.
"""

from __future__ import annotations

import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..data.images import load_image
from ..errors import DataError
from ..lens import InputSpec

MAX_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 16_000_000
FORMATS = {"PNG": ".png", "JPEG": ".jpg"}


class UploadError(DataError):
    """An upload the app refuses (too big, not an image); the page shows the message."""


def check_header(data: bytes) -> str:
    """The image format from the file's header; UploadError if not a PNG/JPEG within the caps."""
    if len(data) > MAX_BYTES:
        raise UploadError(
            f"the file is over the {MAX_BYTES // 2**20} MB limit ({len(data):,} bytes); shrink it"
        )
    if not data:
        raise UploadError("the upload is empty; choose a PNG or JPG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                fmt, (w, h) = image.format or "", image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise UploadError("the file is not a PNG or JPG image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError("the image has too many pixels to decode safely; shrink it") from None
    if fmt not in FORMATS:
        raise UploadError(f"{fmt or 'this'} images are not accepted; upload a PNG or JPG")
    if w * h > MAX_PIXELS:
        raise UploadError(
            f"the image is {w}x{h} ({w * h / 1e6:.1f} megapixels); the limit is "
            f"{MAX_PIXELS / 1e6:.0f} megapixels, so shrink it first"
        )
    return fmt


def convert_upload(data: bytes, spec: InputSpec) -> tuple[np.ndarray, list[str]]:
    """Pixels (C, H, W) float32 in [0, 1] for the model, and the conversions made."""
    fmt = check_header(data)
    with tempfile.TemporaryDirectory(prefix="convlens-upload-") as folder:
        path = Path(folder) / f"upload{FORMATS[fmt]}"
        path.write_bytes(data)
        x, notes = load_image(path, channels=spec.channels, height=spec.height, width=spec.width)
    return x.numpy(), notes
