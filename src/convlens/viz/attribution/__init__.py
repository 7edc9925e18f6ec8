"""Attribution: which pixels of one image drove a decision, by many methods behind one call.

>>> hm = attribute(lens, x, target=None, method="gradcam", layer="conv2d_3")
>>> hm.values   # (N, H, W) signed, input resolution
>>> hm.native   # (N, 14, 14) for CAM methods: the map at the layer's own resolution

Methods (``method_names()``): gradient, gradient_x_input, smoothgrad, integrated_gradients,
guided_backprop, deconvnet, occlusion, rise, gradcam, gradcampp, layercam, guided_gradcam. A new
method is a :class:`Method` subclass registered with :func:`register_method`. Every map keeps its
units (no per-image min-max) and its sign, except the CAM maps (gradcam, gradcampp, layercam),
which are their positive part by default as in the papers (``relu=False`` keeps the sign); check
one with
:func:`convlens.viz.faithfulness.faithfulness` and :func:`convlens.viz.sanity.sanity_check`.
"""

# Importing the method modules registers them, in this order (cheap gradient methods first).
# isort: off
from . import gradients, relu_rules, perturbation, cam  # noqa: F401

# isort: on
from .core import (
    Heatmap,
    Method,
    attribute,
    gaussian_blur,
    get_method,
    method_names,
    method_options,
    register_method,
    resolve_target,
)

__all__ = [
    "Heatmap",
    "Method",
    "attribute",
    "gaussian_blur",
    "get_method",
    "method_names",
    "method_options",
    "register_method",
    "resolve_target",
]
