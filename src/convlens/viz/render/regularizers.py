"""Regularizers: per-image penalties (N,) that keep renders close to natural-looking images.

All take pixel-space images (N, C, H, W) and return one value per image, so a batch of
different units is penalized item by item, in the same units whatever the image size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def l2(x: torch.Tensor, center: float = 0.0) -> torch.Tensor:
    """Mean squared distance from ``center`` (for MNIST: the black background)."""
    return (x - center).pow(2).flatten(1).mean(1)


def l1(x: torch.Tensor, center: float = 0.0) -> torch.Tensor:
    """Mean absolute distance from ``center``: favours few bright pixels (strokes)."""
    return (x - center).abs().flatten(1).mean(1)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels: penalizes speckle."""
    dy = (x[:, :, 1:, :] - x[:, :, :-1, :]).abs().flatten(1).mean(1)
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().flatten(1).mean(1)
    return dx + dy


def blur(x: torch.Tensor) -> torch.Tensor:
    """Mean squared distance to the image's own 3x3 blur (held fixed): pulls toward smoothness."""
    c = x.shape[1]
    kernel = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
    kernel = (kernel[:, None] * kernel[None, :]) / 16.0
    weight = kernel.expand(c, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, groups=c)
    return (x - blurred.detach()).pow(2).flatten(1).mean(1)
