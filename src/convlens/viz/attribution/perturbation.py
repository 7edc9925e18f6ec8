"""Perturbation methods: occlusion and RISE. They only run the model forward, never backward.

Both build every perturbed copy of every image up front as index arithmetic and score them in
large batches (:meth:`Context.expanded_scores`), so the cost is a few big forward passes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .core import Context, Method, register_method

Result = tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]


def window_starts(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of a sliding window that covers every pixel (the last one flush right)."""
    if window > size:
        return [0]
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


@register_method
class Occlusion(Method):
    """Occlusion (Zeiler & Fergus 2014): slide a square of ``fill`` over the image.

    A pixel's value is the mean drop of the target score over all windows that cover it (positive:
    hiding it lowers the score, evidence for the class). ``fill`` defaults to black (the bottom of
    the value range); ``score`` is the logit (a saturated softmax hides small drops) or the
    probability. ``extras['grid']`` holds the drop per window position (rows x cols).
    """

    name = "occlusion"
    summary = "score drop when a sliding square is blacked out (Zeiler & Fergus 2014)"
    defaults: ClassVar[dict[str, Any]] = {"window": 4, "stride": 2, "fill": None, "score": "logit"}

    def compute(
        self, ctx: Context, *, window: int, stride: int, fill: float | None, score: str, **_: Any
    ) -> Result:
        if window < 1 or stride < 1:
            raise ValueError(f"occlusion: window and stride must be >= 1, got {window}, {stride}")
        h, w = ctx.x.shape[2], ctx.x.shape[3]
        value = ctx.lens.spec.value_range[0] if fill is None else float(fill)
        rows, cols = window_starts(h, window, stride), window_starts(w, window, stride)
        masks = torch.zeros(len(rows) * len(cols), 1, h, w, device=ctx.x.device)
        for k, (r, c) in enumerate((r, c) for r in rows for c in cols):
            masks[k, 0, r : r + window, c : c + window] = 1.0

        def make(img: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
            m = masks[var]
            return ctx.x[img] * (1 - m) + value * m

        with torch.no_grad():
            base = ctx.scores(ctx.x, ctx.target, score)
        drops = base.unsqueeze(1) - ctx.expanded_scores(len(masks), make, score)  # (N, P)
        flat = masks.flatten(1)  # (P, H*W)
        values = (drops @ flat) / flat.sum(dim=0).clamp(min=1)
        grid = drops.view(ctx.n, len(rows), len(cols))
        return values.view(ctx.n, h, w), None, {"grid": grid}


def rise_masks(
    count: int, height: int, width: int, cell: int, p: float, seed: int, device: torch.device
) -> torch.Tensor:
    """RISE masks (Petsiuk et al. 2018): random coarse grids, upsampled and randomly shifted.

    A grid of ceil(side / cell) + 1 cells per side, each kept with probability ``p``, is upsampled
    bilinearly to (cells x cell) pixels and cropped at a random offset in [0, cell): smooth masks
    whose edges fall anywhere, not only on the cell lattice. Returns (count, 1, H, W) in [0, 1].
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    gh, gw = -(-height // cell) + 1, -(-width // cell) + 1
    grid = (torch.rand(count, 1, gh, gw, generator=gen) < p).float()
    big = F.interpolate(grid, size=(gh * cell, gw * cell), mode="bilinear", align_corners=False)
    dy = torch.randint(0, cell, (count,), generator=gen)
    dx = torch.randint(0, cell, (count,), generator=gen)
    rows = (dy.view(-1, 1) + torch.arange(height).view(1, -1)).view(count, 1, height, 1)
    cols = (dx.view(-1, 1) + torch.arange(width).view(1, -1)).view(count, 1, 1, width)
    idx = torch.arange(count).view(count, 1, 1, 1)
    return big[idx, 0:1, rows, cols].view(count, 1, height, width).to(device)


@register_method
class Rise(Method):
    """RISE (Petsiuk et al. 2018): the score-weighted average of random masks.

    Each image is scored under ``masks`` random masks (``cell`` px cells, kept with probability
    ``p``, hidden pixels set to black); a pixel's value is sum_i (s_i - mean s) M_i / (masks p).
    ``center`` (default) subtracts the mean score: the same map as the paper's up to a constant
    in expectation, with far less noise, and it can go negative (evidence against).
    """

    name = "rise"
    summary = "score-weighted average of random masks (Petsiuk et al. 2018)"
    defaults: ClassVar[dict[str, Any]] = {
        "masks": 1000, "cell": 4, "p": 0.5, "seed": 0, "score": "probability", "center": True,
    }  # fmt: skip

    def compute(
        self,
        ctx: Context,
        *,
        masks: int,
        cell: int,
        p: float,
        seed: int,
        score: str,
        center: bool,
        **_: Any,
    ) -> Result:
        if masks < 1 or cell < 1 or not 0 < p < 1:
            raise ValueError(f"rise: need masks >= 1, cell >= 1, 0 < p < 1; got {masks}/{cell}/{p}")
        h, w = ctx.x.shape[2], ctx.x.shape[3]
        m = rise_masks(masks, h, w, cell, p, seed, ctx.x.device)
        low = ctx.lens.spec.value_range[0]

        def make(img: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
            mv = m[var]
            return ctx.x[img] * mv + low * (1 - mv)

        s = ctx.expanded_scores(masks, make, score)  # (N, masks)
        if center:
            s = s - s.mean(dim=1, keepdim=True)
        values = (s @ m.flatten(1)) / (masks * p)
        return values.view(ctx.n, h, w), None, {}
