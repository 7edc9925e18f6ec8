"""Evidence about a rendered picture beyond its ratio: does it look like the data, and like the
unit's own real examples?

- :func:`pixel_figures`: the share of pixels at the range limits (binary renders sit there) and
  the largest share of pixels with one value (a flat field is all one value).
- :func:`best_constant`: what the best *constant* image reaches; a kernel whose weights sum
  positive is maximized by a white field, so a picture that only ties it shows nothing.
- :func:`match`: the render cropped at the receptive field of its strongest neuron, correlated
  with the mean field crop of the top real examples of every live unit of its layer; the
  unit's *match* is the rank of its own examples among them (1.0: its own are the closest,
  0.5: chance) and *top-1* whether they are the closest.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ...lens import Lens
from ..examples import background_value, field_crops
from ..maxima import Maxima

LIMIT_TOLERANCE = 1e-3
"""A pixel within this fraction of the range from a bound counts as at the limit."""
LEVELS = 256
"""Grey levels (of the range) pixels are binned into when counting one value."""
FLAT = 0.8
"""A picture with more than this share of its pixels at one value is flat."""
CONSTANT_LEVELS = 33
"""Constant images tried (evenly spaced over the range, both bounds included)."""


def pixel_figures(
    images: torch.Tensor, value_range: tuple[float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image (N, C, H, W): share of pixels at the range limits, largest one-value share."""
    lo, hi = value_range
    unit = ((images.float() - lo) / (hi - lo)).clamp(0, 1).flatten(1)
    at_limits = ((unit <= LIMIT_TOLERANCE) | (unit >= 1 - LIMIT_TOLERANCE)).float().mean(1)
    bins = (unit * (LEVELS - 1)).round().long()
    counts = torch.zeros(unit.shape[0], LEVELS).scatter_add_(1, bins, torch.ones_like(unit))
    flat = counts.max(1).values / unit.shape[1]
    return at_limits, flat


@torch.no_grad()
def best_constant(lens: Lens, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(C,) peak and (C,) spatial mean the best constant image reaches, per channel of ``layer``."""
    lo, hi = lens.spec.value_range
    levels = torch.linspace(lo, hi, CONSTANT_LEVELS)
    x = levels.view(-1, 1, 1, 1).expand(-1, *lens.spec.shape).contiguous()
    a = lens.forward(x.to(lens.device), [layer])[layer].float().cpu()
    if a.dim() == 4:
        flat = a.flatten(2)
        return flat.amax(2).amax(0), flat.mean(2).amax(0)
    return a.amax(0), a.amax(0)


def field_crop(lens: Lens, layer: str, image: torch.Tensor, amap: torch.Tensor) -> torch.Tensor:
    """The receptive-field crop of ``image`` around the strongest position of ``amap`` (H, W)."""
    rf = lens.layer(layer).rf
    assert rf is not None
    where = int(amap.flatten().argmax())
    location = torch.tensor([[where // amap.shape[1], where % amap.shape[1]]])
    background = background_value(lens, lens.spec.channels)
    crops, _mask, _windows = field_crops(image[None].float().cpu(), rf, location, background)
    return crops[0]


def match(
    lens: Lens,
    layer: str,
    images: torch.Tensor,
    channels: Sequence[int],
    maps: torch.Tensor,
    maxima: Maxima,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Match and top-1 of renders ``images`` (N, C, H, W) of ``channels`` of ``layer``.

    ``maps``: (N, H', W') each render's own channel map on ``layer``. NaN (and False) where the
    unit is dead or the layer has no crops. A crop with no contrast correlates with nothing and
    gets rank 0.5 (it says nothing about the unit).
    """
    n = len(channels)
    nan = torch.full((n,), float("nan"))
    top1 = torch.zeros(n, dtype=torch.bool)
    refs = maxima.crops.get(layer)
    if refs is None or n == 0:
        return nan, top1
    live = maxima.channel[layer] > 0
    live_ids = torch.nonzero(live).flatten()
    if len(live_ids) < 2:
        return nan, top1
    ref = _standardize(refs[live_ids].flatten(1))  # (L, P)
    out = nan.clone()
    for k, ch in enumerate(channels):
        if not bool(live[ch]):
            continue
        crop = field_crop(lens, layer, images[k], maps[k]).flatten()
        corr = ref @ _standardize(crop[None])[0] / crop.numel()  # Pearson with each live unit
        own_pos = int((live_ids == ch).nonzero()[0, 0])
        own = corr[own_pos]
        others = torch.cat([corr[:own_pos], corr[own_pos + 1 :]])
        out[k] = float(((others < own).float() + 0.5 * (others == own).float()).mean())
        top1[k] = bool((others < own).all())
    return out, top1


def _standardize(rows: torch.Tensor) -> torch.Tensor:
    """Rows centred and scaled to unit variance (a row with no contrast becomes zeros)."""
    centred = rows - rows.mean(1, keepdim=True)
    std = centred.pow(2).mean(1, keepdim=True).sqrt()
    return torch.where(std > 1e-8, centred / std.clamp_min(1e-8), torch.zeros_like(centred))
