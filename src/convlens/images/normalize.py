"""Normalizations: map raw arrays (weights, activations, inputs) into [0, 1] for display.

Pure numpy and nothing here draws, so analyses and tests can use these without a figure. Every
function also accepts torch tensors (detached and moved to the CPU first).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

UnitMode = Literal["minmax", "symmetric", "fixed"]


def as_numpy(x: Any) -> np.ndarray:
    """``x`` as a numpy array; torch tensors are detached, moved to the CPU, half floats widened.

    Duck-typed on ``.detach`` so this module never has to import torch.
    """
    if hasattr(x, "detach"):
        t = x.detach().cpu()
        if t.is_floating_point() and t.element_size() < 4:  # float16 / bfloat16 have no numpy twin
            t = t.float()
        return t.numpy()
    return np.asarray(x)


def as_float(x: Any) -> np.ndarray:
    """``x`` as a floating numpy array (integers become float32; float64 stays float64)."""
    a = as_numpy(x)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    return a


def to_unit_range(
    x: Any,
    *,
    mode: UnitMode = "minmax",
    lo: float = 0.0,
    hi: float = 1.0,
    batch: bool = False,
) -> np.ndarray:
    """Map ``x`` into [0, 1] for display.

    - ``"minmax"``: per image, min -> 0 and max -> 1 (a constant image becomes all 0).
    - ``"symmetric"``: [-m, m] -> [0, 1] with m = max|x|, so zero always lands on 0.5 and the sign
      stays readable with a diverging colormap (an all-zero image becomes all 0.5).
    - ``"fixed"``: [lo, hi] -> [0, 1], clipped; use it when images must share a known range.

    With ``batch=True`` axis 0 indexes images and each is scaled on its own; otherwise the whole
    array is one image. NaNs stay NaN (drawn as the colormap's "bad" colour).
    """
    a = as_float(x)
    axes = tuple(range(1, a.ndim)) if batch and a.ndim > 1 else None
    if mode == "minmax":
        mn = np.nanmin(a, axis=axes, keepdims=True)
        span = np.nanmax(a, axis=axes, keepdims=True) - mn
        ok = span > 0
        out = np.where(ok, (a - mn) / np.where(ok, span, 1), 0.0)
    elif mode == "symmetric":
        m = np.nanmax(np.abs(a), axis=axes, keepdims=True)
        ok = m > 0
        out = np.where(ok, a / (2 * np.where(ok, m, 1)) + 0.5, 0.5)
    elif mode == "fixed":
        if not hi > lo:
            raise ValueError(f"to_unit_range: need hi > lo for mode='fixed', got lo={lo}, hi={hi}.")
        out = (a - lo) / (hi - lo)
    else:
        raise ValueError(
            f"to_unit_range: unknown mode {mode!r}; use 'minmax', 'symmetric' or 'fixed'."
        )
    return np.clip(out, 0.0, 1.0).astype(a.dtype, copy=False)


def blog_normalize(x: Any) -> np.ndarray:
    """The Keras-blog deprocess, exactly: centre, scale to std 0.1 around 0.5, clip to [0, 1].

    ``x - mean; x / (std + 1e-5); x * 0.1; x + 0.5; clip(0, 1)`` over the whole array. It keeps
    the relative contrast of rendered (feature-visualization) images comparable across units,
    which per-image min-max does not.
    """
    a = as_float(x).copy()
    a -= a.mean()
    a /= a.std() + 1e-5
    a *= 0.1
    a += 0.5
    return np.clip(a, 0.0, 1.0)


def de_average(images: Any) -> np.ndarray:
    """Subtract the set's mean image (axis 0) from each image: what sets each one apart.

    The blog's trick for class prototypes: all class images share a common "average digit", and
    removing it reveals what distinguishes each class. The result is signed and sums to ~0 over
    the set; draw it with ``norm="symmetric"`` and a diverging colormap.
    """
    a = as_float(images)
    if a.ndim < 2:
        raise ValueError(f"de_average: need a set of images (N, ...), got shape {a.shape}.")
    return a - a.mean(axis=0, keepdims=True)
