"""Parameterizations: how an image is made from the variables the optimizer moves.

Each builder returns a :class:`Param` ``(tensor, image_fn)``: the leaf tensor (batch first, one
row per rendered image) and a pure function mapping (rows of) it to pixel-space images
(N, C, H, W). Pure functions of the tensor let the loop drop converged rows at any step.

``squash`` keeps images inside the model's value range by construction (a sigmoid onto
[lo, hi]) instead of clipping after the fact, so the optimizer never leaves the data's range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

ImageFn = Callable[[torch.Tensor], torch.Tensor]


class Param(NamedTuple):
    """The optimized leaf tensor and its map to pixel-space images."""

    tensor: torch.Tensor
    image_fn: ImageFn


def logit(p: float) -> float:
    """Inverse sigmoid, for a starting brightness ``p`` in (0, 1).

    Kept within [0.02, 0.98]: further out the sigmoid is so flat that a start at "black" would
    barely move (with the stretched :func:`squash` 0.02 is already black on screen).
    """
    p = min(max(p, 0.02), 0.98)
    return math.log(p / (1 - p))


SATURATION = 0.05
"""How far past the value range the stretched sigmoid of :func:`squash` reaches (fraction)."""


def squash(
    value_range: tuple[float, float], margin: float = SATURATION
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Map the real line onto the value range: a sigmoid stretched by ``margin`` and cut at the
    bounds, with the cut passing gradients straight through.

    A plain sigmoid only approaches the bounds, but real digits sit *at* them (MNIST strokes are
    exactly 1 on exactly 0), so a plain sigmoid can never match the best real image of an edge
    filter. The stretched one reaches the bounds at |logit| ~ 3 and, thanks to the
    straight-through cut, can still leave them when the objective asks.
    """
    lo, hi = value_range

    def fn(t: torch.Tensor) -> torch.Tensor:
        s = (1 + 2 * margin) * torch.sigmoid(t) - margin
        if margin > 0:
            s = s + (s.clamp(0.0, 1.0) - s).detach()
        return lo + (hi - lo) * s

    return fn


def pixel(
    n: int,
    shape: tuple[int, int, int],
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    squashed: bool = True,
    mean: float = 0.5,
    std: float = 0.1,
    noise: str = "normal",
    seeds: list[int] | None = None,
    device: torch.device | str = "cpu",
) -> Param:
    """One variable per pixel.

    Squashed: the variable is a logit; images start at brightness ``mean`` (a fraction of the
    range) plus Gaussian logit noise of ``std``. Raw (``squashed=False``, the blog's way): the
    variable is the image itself, starting at ``lo + (hi - lo) * (mean + std * noise)`` with
    ``noise`` uniform in [0, 1) or normal. ``seeds`` gives each row its own generator, so an
    image does not depend on which other images share its batch.
    """
    lo, hi = value_range
    z = _noise(n, shape, noise, seeds, device)
    if squashed:
        t = logit(mean) + std * z
        fn = squash(value_range)
    else:
        t = lo + (hi - lo) * (mean + std * z)
        fn = _identity
    return Param(t.requires_grad_(True), fn)


def box(
    n: int,
    shape: tuple[int, int, int],
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    mean: float = 0.5,
    std: float = 0.1,
    seeds: list[int] | None = None,
    device: torch.device | str = "cpu",
) -> Param:
    """Pixels as fractions of the range, cut at the bounds with straight-through gradients.

    The optimizer moves pixels linearly (no sigmoid flattening near the bounds, so a saturated
    pixel can come back as easily as it went); the loop keeps the variable within
    ``BOX_SLACK`` of the range, so the cut never hides a pixel for long.
    """
    lo, hi = value_range
    t = mean + std * _noise(n, shape, "normal", seeds, device)

    def fn(t: torch.Tensor) -> torch.Tensor:
        s = t + (t.clamp(0.0, 1.0) - t).detach()
        return lo + (hi - lo) * s

    return Param(t.requires_grad_(True), fn)


BOX_SLACK = 0.1


def fourier_scale(height: int, width: int, decay: float) -> torch.Tensor:
    """Weights 1 / f**decay of the rFFT frequencies (f in cycles per pixel), normalized.

    ``decay`` sets the length scale of the fluctuations: 0 is white noise (pixel-like), 1 the
    classic lucid weighting, larger values give smoother, larger structures.
    """
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    freq = torch.sqrt(fy * fy + fx * fx).clamp_min(1.0 / max(height, width))
    scale = freq.pow(-decay)
    return scale / scale.pow(2).mean().sqrt()


def opponent_colors(chroma: float = 0.5) -> torch.Tensor:
    """3x3 map from decorrelated components to RGB: luminance, red-green, blue-yellow.

    Natural images vary far more in brightness than in hue; optimizing in this basis (with the
    colour axes damped by ``chroma``) makes RGB renders natural-looking rather than rainbow
    noise. It is an opponent-colour basis, not a dataset statistic, so no ImageNet
    assumption sneaks in.
    """
    basis = torch.tensor(
        [
            [1.0, 1.0, 1.0],
            [1.0, -1.0, 0.0],
            [1.0, 1.0, -2.0],
        ]
    )
    basis = basis / basis.norm(dim=1, keepdim=True)
    weights = torch.tensor([1.0, chroma, chroma])
    return basis.T * weights  # columns: the components' RGB directions, scaled


def fourier(
    n: int,
    shape: tuple[int, int, int],
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    decay: float = 1.0,
    mean: float = 0.5,
    std: float = 0.1,
    seeds: list[int] | None = None,
    device: torch.device | str = "cpu",
) -> Param:
    """A spectrum (real and imaginary parts of the rFFT) weighted by 1/f**decay, squashed.

    Gradient steps on the spectrum move large structures as easily as single pixels, which is
    what makes Fourier renders smoother than pixel ones at the same number of steps. For RGB
    (3 channels) the spectrum's channels are decorrelated colour components mixed into RGB by
    :func:`opponent_colors`.
    """
    c, h, w = shape
    scale = fourier_scale(h, w, decay).to(device)
    mixing = opponent_colors().to(device) if c == 3 else None
    spec_shape = (c, h, w // 2 + 1, 2)
    z = _noise(n, spec_shape, "normal", seeds, device)
    t = z * (std / math.sqrt(2.0))
    offset = logit(mean)
    to_range = squash(value_range)

    def fn(t: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex(t.contiguous()) * scale
        x = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho")
        if mixing is not None:
            x = torch.einsum("rc,nchw->nrhw", mixing, x)
        return to_range(x + offset)

    return Param(t.requires_grad_(True), fn)


def latent(
    n: int,
    shape: tuple[int, int, int],
    logits: Callable[[torch.Tensor], torch.Tensor],
    latent_dim: int,
    *,
    value_range: tuple[float, float] = (0.0, 1.0),
    sharpness: float = 1.0,
    residual: float = 0.0,
    std: float = 1.0,
    seeds: list[int] | None = None,
    device: torch.device | str = "cpu",
) -> Param:
    """The latent of a frozen decoder (a learned image prior), plus a small free pixel residual.

    Each row is ``latent_dim`` latent values, then (when ``residual`` > 0) one variable per
    pixel: the image is ``sigmoid(sharpness * logits(z)) + residual * tanh(r)`` (fractions of
    the range), cut at the range with straight-through gradients and mapped onto it. A VAE's
    decodings are a little blurrier than the data; ``sharpness`` > 1 gives back crisp stroke
    edges. The decoder keeps the picture near the data (strokes, not binary blocks); the residual,
    at most ``residual`` of the range per pixel, lets the optimizer add what the decoder
    cannot draw. Latents start at ``std`` times standard normal noise (the prior's own
    distribution at ``std`` 1), residuals at 0; ``seeds`` give each row its own start.
    """
    lo, hi = value_range
    c, h, w = shape
    z = std * _noise(n, (latent_dim,), "normal", seeds, device)
    t = torch.cat([z, torch.zeros(n, c * h * w, device=device)], 1) if residual > 0 else z

    def fn(t: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(sharpness * logits(t[:, :latent_dim]))
        if residual > 0:
            s = s + residual * torch.tanh(t[:, latent_dim:].view(-1, c, h, w))
            s = s + (s.clamp(0.0, 1.0) - s).detach()
        return lo + (hi - lo) * s

    return Param(t.requires_grad_(True), fn)


def constant(
    n: int,
    shape: tuple[int, int, int],
    value: float,
    *,
    device: torch.device | str = "cpu",
) -> Param:
    """Raw pixels all equal to ``value`` (the blog starts class images from zeros)."""
    t = torch.full((n, *shape), float(value), device=device)
    return Param(t.requires_grad_(True), _identity)


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _noise(
    n: int,
    shape: tuple[int, ...],
    kind: str,
    seeds: list[int] | None,
    device: torch.device | str,
) -> torch.Tensor:
    """Noise of ``shape`` per row; with ``seeds`` each row has its own generator."""
    draw = torch.rand if kind == "uniform" else torch.randn
    if seeds is None:
        return draw((n, *shape), device=device)
    if len(seeds) != n:
        raise ValueError(f"need {n} seeds, got {len(seeds)}")
    rows = [draw(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(rows).to(device) if rows else torch.empty((0, *shape), device=device)
