"""Random transforms of the rendered image, applied to the *view* the model sees each step.

The variable itself is never moved: each step the model sees a slightly shifted, scaled or
rotated copy, so only patterns that survive small moves are rewarded (fewer high-frequency
artefacts). All draws come from a generator the caller seeds; every item of the batch gets its
own draw in one vectorized call. Outside the canvas the view is filled with ``fill`` (for MNIST
the background value, black), which plays the role of lucent's padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Jitter:
    """Shift each image by a whole number of pixels in [-pixels, pixels] (exact, no blur)."""

    pixels: int
    fill: float = 0.0

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        d = self.pixels
        if d <= 0:
            return x
        n, _, h, w = x.shape
        shifts = torch.randint(0, 2 * d + 1, (2, n), generator=gen).to(x.device)
        padded = F.pad(x, (d, d, d, d), value=self.fill)
        rows = shifts[0][:, None] + torch.arange(h, device=x.device)[None]  # (n, h)
        cols = shifts[1][:, None] + torch.arange(w, device=x.device)[None]  # (n, w)
        batch = torch.arange(n, device=x.device)[:, None, None]
        out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2)


@dataclass(frozen=True)
class Affine:
    """Random scale (factor in ``scale``), rotation (±``degrees``) and sub-pixel shift, at once.

    One ``grid_sample`` for the whole batch; bilinear, so it also blurs a little.
    """

    scale: tuple[float, float] = (1.0, 1.0)
    degrees: float = 0.0
    shift: float = 0.0  # pixels
    fill: float = 0.0

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        u = torch.rand(4, n, generator=gen).to(x.device, x.dtype)
        s = self.scale[0] + (self.scale[1] - self.scale[0]) * u[0]
        a = math.radians(self.degrees) * (2 * u[1] - 1)
        tx = self.shift * (2 * u[2] - 1) * 2 / w
        ty = self.shift * (2 * u[3] - 1) * 2 / h
        cos, sin = torch.cos(a) / s, torch.sin(a) / s
        theta = torch.stack(
            [torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1
        )  # (n, 2, 3): output -> input coordinates
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        out = F.grid_sample(
            x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )
        return out + self.fill


@dataclass(frozen=True)
class Compose:
    """Apply transforms in order."""

    steps: tuple[Transform, ...]

    def __call__(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        for t in self.steps:
            x = t(x, gen)
        return x


def jitter(pixels: int, fill: float = 0.0) -> Jitter:
    return Jitter(pixels, fill)


def random_scale(lo: float, hi: float, fill: float = 0.0) -> Affine:
    return Affine(scale=(lo, hi), fill=fill)


def random_rotate(degrees: float, fill: float = 0.0) -> Affine:
    return Affine(degrees=degrees, fill=fill)


def pad_fill(fill: float) -> Affine:
    """No move, only the fill value used outside the canvas by the transforms after it."""
    return Affine(fill=fill)


def compose(transforms: Sequence[Transform]) -> Transform | None:
    """One transform from several (None when there are none)."""
    kept = tuple(transforms)
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else Compose(kept)


def standard(
    *,
    jitter_px: int = 1,
    scale: tuple[float, float] = (1.0, 1.0),
    degrees: float = 0.0,
    fill: float = 0.0,
) -> Transform | None:
    """The usual chain: integer jitter, then (if asked) one affine for scale and rotation."""
    steps: list[Transform] = []
    if jitter_px > 0:
        steps.append(Jitter(jitter_px, fill))
    if scale != (1.0, 1.0) or degrees > 0:
        steps.append(Affine(scale=scale, degrees=degrees, fill=fill))
    return compose(steps)
