"""Image files -> pixels: decoding any PNG/JPG, and fitting one image to a model's input.

:func:`load_image` reports every conversion it makes, so a surprising prediction can be traced
to, say, an inverted background rather than to the model.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from convlens.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_PIXELS = 4096 * 4096  # larger images are refused before they are decoded
_PNG_END = b"IEND\xaeB`\x82"  # the end chunk's type and its (fixed) checksum
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")


def open_image(path: str | Path) -> tuple[Image.Image, list[str]]:
    """Decode ``path`` fully, upright per its EXIF orientation; DataError if not an image.

    Refused, each in one line: not a file, not an image, larger than :data:`MAX_PIXELS` (checked
    from the header, before decoding: no decompression bombs, no PIL warnings), and truncated
    files (a PNG must be whole, chunk checksums and end marker included).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not an image" if path.is_dir() else "does not exist"
        raise DataError(f"{path} {what}; give the path of a PNG or JPG file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            _check_size(path, image.size)
            if image.format == "PNG":
                _check_whole_png(path)
            image.load()
            rotated = image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
            upright = ImageOps.exif_transpose(image) or image
            upright.load()
    except UnidentifiedImageError:
        raise DataError(
            f"{path} is not a readable image (unknown format); give a PNG or JPG"
        ) from None
    except Image.DecompressionBombError:
        raise DataError(_too_large(path)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path} is not a readable image ({reason}); give a PNG or JPG") from None
    return upright, ["rotated upright per the EXIF orientation"] if rotated else []


def _too_large(path: Path, size: tuple[int, int] | None = None) -> str:
    side = int(MAX_PIXELS**0.5)
    what = f" ({size[0]}x{size[1]}, {size[0] * size[1] / 1e6:.1f} megapixels)" if size else ""
    return (
        f"{path} is too large{what}: convlens reads images up to {MAX_PIXELS / 1e6:.1f} "
        f"megapixels ({side}x{side}); shrink it first"
    )


def _check_size(path: Path, size: tuple[int, int]) -> None:
    if size[0] * size[1] > MAX_PIXELS:
        raise DataError(_too_large(path, size))


def _check_whole_png(path: Path) -> None:
    """A PNG cut short can still decode (its image data may end before the cut): verify every
    chunk's checksum up to the end marker, as PIL's ``verify`` does, in a second open, and that
    the end marker itself is whole (``verify`` does not read its checksum)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as check:
            check.verify()
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - 4096))
        if _PNG_END not in handle.read():
            raise SyntaxError("truncated PNG file")


def image_pixels(image: Image.Image) -> tuple[np.ndarray, list[str]]:
    """uint8 H x W x C pixels with C 1 (grayscale modes) or 3; transparency flattened on white.

    White, because drawings and scans with transparent backgrounds are meant to be seen on paper.
    """
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        wide = np.asarray(image, dtype=np.float64)
        return np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)[..., None], [
            "reduced 16-bit grayscale to 8 bits"
        ]
    transparent = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if transparent:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64)
        alpha = rgba[..., 3:] / 255.0
        if (alpha < 1.0).any():
            flat = rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)
            return np.clip(np.rint(flat), 0, 255).astype(np.uint8), [
                "flattened transparency onto a white background"
            ]
        return rgba[..., :3].astype(np.uint8), []
    if mode in ("1", "L", "F"):
        return np.asarray(image.convert("L"))[..., None], []
    return np.asarray(image.convert("RGB")), []


def is_colour(pixels: np.ndarray) -> bool:
    """True when an H x W x 3 image has any pixel whose channels differ."""
    if pixels.shape[-1] == 1:
        return False
    return bool(
        (pixels[..., 0] != pixels[..., 1]).any() or (pixels[..., 1] != pixels[..., 2]).any()
    )


def to_channels(pixels: np.ndarray, channels: int) -> np.ndarray:
    """H x W x C uint8 -> H x W x ``channels``: ITU-R 601 luma for gray, repetition for RGB."""
    have = pixels.shape[-1]
    if have == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=-1)
    if not is_colour(pixels):
        return pixels[..., :1].copy()
    luma = pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]


def resize_pixels(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with antialiasing (Pillow's filter, which torch's ``antialias`` mirrors)."""
    if pixels.shape[:2] == (height, width):
        return pixels
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(pixels[..., c])).resize(
                (width, height), Image.Resampling.BILINEAR
            )
        )
        for c in range(pixels.shape[-1])
    ]
    return np.stack(planes, axis=-1)


def _needs_inversion(gray: np.ndarray) -> bool:
    """A light border means a dark subject on a light background (paper, screenshots)."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    return float(border.mean()) > 127.5


def load_image(
    path: str | Path, *, channels: int, height: int, width: int
) -> tuple[torch.Tensor, list[str]]:
    """Any PNG/JPG -> float32 (channels, height, width) in [0, 1] for a model, plus one message
    per conversion made (grayscale, resize, inversion, ...), in the order they were applied.

    One-channel models are assumed to be MNIST-family (light subject on a dark background), so a
    light-background image is inverted. Resizing stretches to the target size.
    """
    if channels not in (1, 3):
        raise DataError(f"models with {channels} input channels are not supported; use 1 or 3")
    if min(height, width) < 1:
        raise DataError(f"image size must be positive, got {height}x{width}")
    image, messages = open_image(path)
    pixels, more = image_pixels(image)
    messages += more
    if pixels.shape[-1] != channels:
        messages.append(
            "converted RGB to grayscale" if channels == 1 else "converted grayscale to RGB"
        )
        pixels = to_channels(pixels, channels)
    if channels == 1 and _needs_inversion(pixels[..., 0]):
        pixels = 255 - pixels
        messages.append("inverted: dark digit on light background, MNIST digits are light on dark")
    h, w = pixels.shape[:2]
    if (h, w) != (height, width):
        stretched = abs((w / h) / (width / height) - 1.0) > 0.05
        messages.append(
            f"resized {w}x{h} to {width}x{height}" + (" (stretched)" if stretched else "")
        )
        pixels = resize_pixels(pixels, height, width)
    tensor = torch.from_numpy(pixels.transpose(2, 0, 1).copy())
    return tensor.to(torch.float32).div_(255.0), messages
