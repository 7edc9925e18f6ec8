"""``folder:DIR``: one sub-folder per class of PNG/JPG images, like torchvision's ImageFolder.

Channels are decided per dataset (3 if any image has colour, else 1) so grayscale scans saved
as RGB still give a 1-channel dataset. Images of mixed sizes need ``size``; with it, each image
is resized as it is decoded, so memory holds the dataset, never every original image at once.

Nothing outside the folder is read: a class folder or an image that is a symbolic link leading
out of the dataset is refused (links within it are fine).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens.data.dataset import RawSplits
from convlens.data.images import (
    IMAGE_SUFFIXES,
    image_pixels,
    is_colour,
    open_image,
    resize_pixels,
    to_channels,
)
from convlens.data.registry import register_dataset
from convlens.errors import DataError


def _inside(root: Path, path: Path) -> None:
    """Refuse ``path`` if it leads out of the dataset folder ``root`` (a resolved path)."""
    real = path.resolve()
    if real != root and root not in real.parents:
        raise DataError(
            f"{path} is a link to {real}, outside the dataset {root}; copy the files into the "
            "dataset folder or remove the link"
        )


def list_images(root: Path) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """Class names (sorted sub-folder names) and (image path, label) pairs, sorted."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; folder:DIR needs one sub-folder per class")
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    for folder in folders:
        _inside(root, folder)
    classes = tuple(sorted(p.name for p in folders))
    if not classes:
        raise DataError(f"{root} has no sub-folders; put each class's images in its own sub-folder")
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files = sorted(
            p
            for p in (root / name).rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"{root / name} has no PNG/JPG images; add some or remove the folder")
        for path in files:
            _inside(root, path)
        items.extend((path, label) for path in files)
    return classes, items


def _target_size(root: Path, shapes: list[tuple[int, int]], size: int | None) -> tuple[int, int]:
    if size is not None:
        return size, size
    distinct = sorted(set(shapes))
    if len(distinct) > 1:
        (h0, w0), (h1, w1) = distinct[0], distinct[-1]
        raise DataError(
            f"images in {root} differ in size ({w0}x{h0} to {w1}x{h1}); pass size= (--size) "
            "to resize them all"
        )
    return distinct[0]


@register_dataset("folder:DIR")
def load_folder(arg: str, /, *, size: int | None) -> RawSplits:
    root = Path(arg).expanduser().resolve()
    classes, items = list_images(root)
    decoded, shapes, colour = [], [], False
    for path, _ in items:
        pixels = image_pixels(open_image(path)[0])[0]
        shapes.append(pixels.shape[:2])
        colour = colour or is_colour(pixels)
        decoded.append(pixels if size is None else resize_pixels(pixels, size, size))
    channels = 3 if colour else 1
    height, width = _target_size(root, shapes, size)
    x = np.empty((len(decoded), channels, height, width), dtype=np.uint8)
    for i, pixels in enumerate(decoded):
        x[i] = resize_pixels(to_channels(pixels, channels), height, width).transpose(2, 0, 1)
    y = np.array([label for _, label in items], dtype=np.int64)
    return RawSplits(f"folder:{root}", x, y, classes)
