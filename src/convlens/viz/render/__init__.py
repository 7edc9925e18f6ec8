"""Render: optimize inputs so units respond (feature visualization), every unit verified.

``render(lens, "conv2d_3:*,class:*")`` optimizes all units in one batched run and returns a
:class:`RenderResult` (images, loss curves, r against the best real image, class verdicts).
Parts: ``objectives`` (composable with + and *), ``params`` (box, pixel, Fourier, latent;
squashed into the value range), ``prior`` (the learned image prior the latent one draws with),
``transforms``, ``regularizers``, ``loop`` (the batched optimizer), ``presets`` (``natural``,
the default, ``clear``, ``seed``); ``prototypes`` renders and verifies one image per class.
"""

from typing import TYPE_CHECKING, Any

from ..maxima import Maxima, dataset_maxima
from .api import default_batch_size, render
from .objectives import Objective, channel, class_score, custom, neuron
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset
from .prior import ImagePrior, image_prior
from .recipe import Recipe
from .result import RenderResult

if TYPE_CHECKING:
    from ..prototypes import Prototypes, prototypes


def __getattr__(name: str) -> Any:
    """``prototypes`` and ``Prototypes`` live in ``viz.prototypes``, which builds on render:
    loaded on first use, so either module can be imported first."""
    if name in ("prototypes", "Prototypes"):
        from .. import prototypes as module

        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "ImagePrior",
    "Maxima",
    "Objective",
    "Preset",
    "Prototypes",
    "Recipe",
    "RenderResult",
    "channel",
    "class_score",
    "custom",
    "dataset_maxima",
    "default_batch_size",
    "get_preset",
    "image_prior",
    "neuron",
    "prototypes",
    "render",
]
