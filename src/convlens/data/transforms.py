"""Pixel transforms shared by every loader: uint8 -> [0, 1] floats and batch resizing."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

_RESIZE_CHUNK = 4096
"""Images resized per call, to bound the temporary memory of a 60,000-image resize."""


def uint8_to_float(x: np.ndarray) -> torch.Tensor:
    """uint8 array -> float32 tensor in [0, 1] (same shape, contiguous with standard strides).

    Standard strides even on size-1 axes: numpy may give a 1-channel axis stride 1, which torch
    reads as channels-last, and its convolutions then sum in another order, so the same pixels
    would give other floats than the same images read another way (a shard from the files).
    """
    if not (x.flags.c_contiguous and x.flags.writeable):  # torch warns on read-only buffers
        x = np.array(x, order="C")
    return torch.from_numpy(x).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def resize_batch(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Resize float NCHW images with bilinear interpolation and antialiasing.

    Antialiasing (a widened triangle filter, as Pillow does) keeps thin strokes from aliasing away
    when shrinking; the result stays in [0, 1] because all filter weights are non-negative.
    """
    if x.shape[-2:] == (height, width):
        return x
    out = torch.empty((x.shape[0], x.shape[1], height, width), dtype=torch.float32)
    for start in range(0, x.shape[0], _RESIZE_CHUNK):
        chunk = x[start : start + _RESIZE_CHUNK]
        out[start : start + _RESIZE_CHUNK] = F.interpolate(
            chunk, size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
    return out.clamp_(0.0, 1.0)
