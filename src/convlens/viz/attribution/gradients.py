"""Gradient-based methods: vanilla gradient, gradient x input, SmoothGrad, integrated gradients.

All differentiate the target's logit (pre-softmax, so saturation of the softmax does not flatten
the map) with respect to the pixel-space input.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ...errors import UnknownNameError, did_you_mean
from .core import Context, Method, default_blur_sigma, gaussian_blur, register_method

Result = tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]


@register_method
class Gradient(Method):
    """Vanilla saliency (Simonyan et al. 2013): d logit / d pixel, signed."""

    name = "gradient"
    summary = "d logit / d pixel (Simonyan et al. 2013)"
    defaults: ClassVar[dict[str, Any]] = {}

    def compute(self, ctx: Context, **options: Any) -> Result:
        return ctx.input_gradient(ctx.x, ctx.target), None, {}


@register_method
class GradientXInput(Method):
    """Gradient times input: a first-order estimate of each pixel's contribution."""

    name = "gradient_x_input"
    summary = "gradient times input (zero wherever the input is black)"
    defaults: ClassVar[dict[str, Any]] = {}

    def compute(self, ctx: Context, **options: Any) -> Result:
        return ctx.x * ctx.input_gradient(ctx.x, ctx.target), None, {}


@register_method
class SmoothGrad(Method):
    """SmoothGrad (Smilkov et al. 2017): the gradient averaged over noisy copies of the input.

    ``noise``: standard deviation as a fraction of the pixel value range; ``samples`` noisy
    copies per image, all of them batched together; ``seed`` fixes the noise.
    """

    name = "smoothgrad"
    summary = "gradient averaged over noisy copies (Smilkov et al. 2017)"
    defaults: ClassVar[dict[str, Any]] = {"noise": 0.15, "samples": 25, "seed": 0}

    def compute(self, ctx: Context, *, noise: float, samples: int, seed: int, **_: Any) -> Result:
        if samples < 1:
            raise ValueError(f"smoothgrad: samples must be at least 1, got {samples}")
        lo, hi = ctx.lens.spec.value_range
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        eps = torch.randn((ctx.n, samples, *ctx.x.shape[1:]), generator=gen)
        noisy = (ctx.x.unsqueeze(1) + eps.to(ctx.x.device) * (noise * (hi - lo))).flatten(0, 1)
        grads = ctx.input_gradient(noisy, ctx.target.repeat_interleave(samples))
        return grads.view(ctx.n, samples, *ctx.x.shape[1:]).mean(dim=1), None, {}


BASELINES = ("black", "blurred", "uniform")


def make_baseline(
    ctx: Context, baseline: str | float | torch.Tensor, seed: int, blur_sigma: float | None
) -> torch.Tensor:
    """The reference image(s) for integrated gradients, (N, C, H, W) in pixel space.

    ``black``: the bottom of the value range (on MNIST that is the background itself, so every
    background pixel gets exactly zero attribution: black alone is blind there); ``blurred``: the
    image under a Gaussian blur (sigma ``blur_sigma``, default side/7 px); ``uniform``: uniform
    noise over the value range (seeded); a number or a tensor: used as given.
    """
    lo, hi = ctx.lens.spec.value_range
    if isinstance(baseline, torch.Tensor):
        return baseline.to(ctx.x).expand_as(ctx.x)
    if isinstance(baseline, (int, float)):
        return torch.full_like(ctx.x, float(baseline))
    if baseline == "black":
        return torch.full_like(ctx.x, float(lo))
    if baseline == "blurred":
        sigma = default_blur_sigma(ctx.lens) if blur_sigma is None else float(blur_sigma)
        return gaussian_blur(ctx.x, sigma)
    if baseline == "uniform":
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        u = torch.rand(ctx.x.shape, generator=gen).to(ctx.x.device)
        return lo + (hi - lo) * u
    raise UnknownNameError(did_you_mean(str(baseline), list(BASELINES), "baseline"))


@register_method
class IntegratedGradients(Method):
    """Integrated gradients (Sundararajan et al. 2017) along the straight path from a baseline.

    Midpoint Riemann sum with ``steps`` points, all steps of all images batched. The extra
    ``delta`` is the completeness gap: sum of attributions minus (f(x) - f(baseline)), which
    shrinks as ``steps`` grows. See :func:`make_baseline` for the baselines.
    """

    name = "integrated_gradients"
    summary = "path integral of gradients from a baseline (Sundararajan et al. 2017)"
    defaults: ClassVar[dict[str, Any]] = {
        "steps": 32, "baseline": "black", "seed": 0, "blur_sigma": None,
    }  # fmt: skip

    def compute(
        self,
        ctx: Context,
        *,
        steps: int,
        baseline: str | float | torch.Tensor,
        seed: int,
        blur_sigma: float | None,
        **_: Any,
    ) -> Result:
        if steps < 1:
            raise ValueError(f"integrated_gradients: steps must be at least 1, got {steps}")
        ref = make_baseline(ctx, baseline, seed, blur_sigma)
        alphas = (torch.arange(steps, device=ctx.x.device, dtype=ctx.x.dtype) + 0.5) / steps
        diff = ctx.x - ref
        path = ref.unsqueeze(1) + alphas.view(1, -1, 1, 1, 1) * diff.unsqueeze(1)
        grads = ctx.input_gradient(path.flatten(0, 1), ctx.target.repeat_interleave(steps))
        attr = diff * grads.view(ctx.n, steps, *ctx.x.shape[1:]).mean(dim=1)
        with torch.no_grad():
            gap = ctx.scores(ctx.x, ctx.target) - ctx.scores(ref, ctx.target)
        delta = attr.flatten(1).sum(dim=1) - gap
        return attr, None, {"delta": delta, "baseline_score_gap": gap}
