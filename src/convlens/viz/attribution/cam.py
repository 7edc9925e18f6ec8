"""Class activation maps: Grad-CAM, Grad-CAM++ and guided Grad-CAM, for any conv layer.

The map lives at the conv layer's resolution (``Heatmap.native``: a 7x7 layer gives a 7x7 map);
``values`` is that map upsampled bilinearly to the input, for overlays and pixel rankings. By
default the map is its positive part (the ReLU of the papers, and what keras.io, tf-keras-vis and
pytorch-grad-cam show): evidence *for* the class. ``relu=False`` keeps the sign, so negative
regions read as evidence against it. Never min-max scaled.

Grad-CAM's channel weight is the *spatial mean* of the gradient, which is exact for a global
average pooling head. Behind Flatten + Dense (kaggle4) one channel's gradient changes sign from
place to place (a stroke here is evidence for, there against) and the mean can point the wrong
way; ``layercam`` keeps the gradient per position and does not have that weakness.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from ...errors import UnknownNameError
from ...lens import Lens, kind_phrase
from .core import Context, Method, register_method, upsample
from .relu_rules import rule_gradient

Result = tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]


def cam_layer(lens: Lens, layer: str | None) -> str:
    """The conv layer (or residual block) a CAM reads: ``layer`` if it is one, else the last;
    one line otherwise."""
    convs = [i.name for i in lens.layers if i.kind in ("conv", "block") and i.is_spatial]
    if not convs:
        raise UnknownNameError("this model has no conv layer, so CAM methods do not apply")
    if layer is None:
        return convs[-1]
    if layer not in convs:
        kind = next((i.kind for i in lens.layers if i.name == layer), None)
        what = kind_phrase(kind) if kind else "not a layer of this model"
        raise UnknownNameError(
            f"CAM needs a conv layer; {layer!r} is {what}. Conv layers: {', '.join(convs)}."
        )
    return layer


def activations_and_gradients(ctx: Context, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer output A (N, K, h, w) and d logit[target] / d A, in chunks; no hook outlives it."""
    acts, grads = [], []
    for i in range(0, ctx.n, ctx.batch_size):
        xb = ctx.x[i : i + ctx.batch_size].detach().requires_grad_(True)  # graph even if frozen
        with torch.enable_grad(), ctx.lens.tap([layer]) as seen:
            s = ctx.scores(xb, ctx.target[i : i + ctx.batch_size])
        a = seen[layer][0]  # the layer's output after its activation, as for the zoo
        (g,) = torch.autograd.grad(s.sum(), a)
        acts.append(a.detach())
        grads.append(g)
    return torch.cat(acts), torch.cat(grads)


class _Cam(Method):
    """Shared CAM mechanics; subclasses say how to weight the layer's channels."""

    cam = True
    defaults: ClassVar[dict[str, Any]] = {"layer": None, "relu": True}

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        """(N, K) channel weights, or (N, K, h, w) per-position weights."""
        raise NotImplementedError

    def native_map(self, ctx: Context, layer: str | None) -> torch.Tensor:
        name = cam_layer(ctx.lens, layer)
        ctx.resolved["layer"] = name
        acts, grads = activations_and_gradients(ctx, name)
        w = self.weights(acts, grads)
        if w.dim() == 2:
            w = w[:, :, None, None]
        return (w * acts).sum(dim=1)

    def compute(self, ctx: Context, *, layer: str | None, relu: bool, **_: Any) -> Result:
        native = self.native_map(ctx, layer)
        if relu:  # the papers' convention: keep only evidence for the class
            native = native.clamp(min=0)
        h, w = ctx.x.shape[2], ctx.x.shape[3]
        return upsample(native, h, w), native, {}


@register_method
class GradCam(_Cam):
    """Grad-CAM (Selvaraju et al. 2017): channels weighted by their spatially averaged gradient."""

    name = "gradcam"
    summary = "layer channels weighted by mean gradient (Selvaraju et al. 2017); relu=False: signed"

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.mean(dim=(2, 3))


@register_method
class GradCamPlusPlus(_Cam):
    """Grad-CAM++ (Chattopadhay et al. 2018), closed form with the exponential-score trick.

    alpha = g^2 / (2 g^2 + sum_ab A g^3) per position, weight = sum of alpha * relu(g), where g
    is the gradient of the logit: the paper's eq. 19 for the score exp(logit).
    """

    name = "gradcampp"
    summary = "Grad-CAM with per-position weights (Chattopadhay et al. 2018); relu=False: signed"

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        g2 = grads.pow(2)
        g3 = g2 * grads
        denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
        alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
        return (alpha * grads.clamp(min=0)).sum(dim=(2, 3))


@register_method
class LayerCam(_Cam):
    """LayerCAM (Jiang et al. 2021): each position weighted by its own positive gradient.

    Needs no pooling-head assumption, so it stays faithful behind Flatten + Dense layers.
    """

    name = "layercam"
    summary = "activations times their positive gradient, per position (Jiang et al. 2021)"

    def weights(self, acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
        return grads.clamp(min=0)


@register_method
class GuidedGradCam(Method):
    """Guided Grad-CAM (Selvaraju et al. 2017): guided backprop times the upsampled Grad-CAM.

    As in the paper (and Captum), the coarse map is clipped to its positive part *first* and then
    upsampled: clipping after bilinear upsampling would let every negative cell eat into its
    positive neighbours and erase most of the evidence for the class. The guided backprop sign is
    kept.
    """

    name = "guided_gradcam"
    summary = "guided backprop x Grad-CAM (clipped at its resolution, then upsampled)"
    defaults: ClassVar[dict[str, Any]] = {"layer": None}

    def compute(self, ctx: Context, *, layer: str | None, **_: Any) -> Result:
        native = GradCam().native_map(ctx, layer).clamp(min=0)
        h, w = ctx.x.shape[2], ctx.x.shape[3]
        gate = upsample(native, h, w)
        guided = rule_gradient(ctx, "guided").sum(dim=1)
        return guided * gate, None, {}
