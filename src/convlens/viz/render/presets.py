"""Presets: named recipes plus the objective each unit kind gets under them.

- ``seed``: the classic Keras-blog recipe, exactly, so users can compare: start from gray plus
  a little uniform noise (the blog's ``random() * 20 + 128`` on its 0-255 scale), ascend the
  gradient of the channel *mean* divided by its RMS (``+ 1e-5``) with a constant step (the
  blog's 1 on the 0-255 scale, i.e. 1/255 of the value range), 256 steps, raw pixels (never
  clipped while optimizing). Class images start from zeros with a step decaying linearly to 0.
  Shown with the blog's display normalization (centre, std 0.1, +0.5, clip) and class images
  de-averaged (:func:`convlens.images.blog_normalize`, :func:`convlens.images.de_average`).
- ``clear``: our best *pixel* recipe for small grayscale models. Start from black (the
  MNIST background: from gray, ascent settles in poorer optima), pixels kept inside the value
  range by a straight-through cut, Adam with a cosine-decayed step, lucid's redirected ReLU
  gradient for the first steps (so units silent on the start image still move), a small ink
  cost (white strokes on black, as in the data), and an objective that adds twice the
  channel's *peak* (read before its ReLU, so it always has a gradient) to its mean. Each unit
  stops when it has converged; a unit that ends below the best real image gets up to three
  fresh starts with more patience and half the ink cost. Classes get a stronger ink cost,
  2-px jitter and a little total variation, which turns class evidence into one clean digit.
  Its pictures beat the real digits but are binary (most pixels exactly at 0 or 1): blocky
  stripes and blobs, and many first-layer images are flat fields.
- ``natural`` (default, :data:`DEFAULT_PRESET`): pictures that look like the data. It optimizes
  the latent of a small VAE trained on the training images (:mod:`.prior`), decoded with
  crisper stroke edges (``sharpness`` 2), plus a free pixel residual of at most 0.4 of the
  range with an L1 price, so it is spent only where the decoder cannot draw what the unit
  wants (often the exact edge a peak needs); a small cost on the latent's size keeps the
  decoder near the digits it learned (fewer white fields). The objective weighs the channel
  mean more than ``clear`` (peak weight 0.2), so both ratios, mean and peak, clear the
  real-data bar. No view
  transforms for channels (the decoder is the smoothness prior, and the peak ratio is judged
  on the untransformed image); 1-px jitter for classes. Falls back to ``clear`` where there is
  no training data to learn a prior from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ...errors import UnknownNameError, did_you_mean
from ...units import Unit
from .objectives import Objective, channel, class_logprob, class_score, neuron
from .recipe import Recipe

ObjectiveFor = Callable[[Unit], Objective]


@dataclass(frozen=True)
class Preset:
    """A recipe for channel and neuron units, one for class units, and their objectives."""

    name: str
    recipe: Recipe
    class_recipe: Recipe
    peak_weight: float  # weight of the channel's pre-activation peak added to its mean
    display: str  # "plain" (pixel space as is) or "blog" (centre, std 0.1, +0.5, clip)
    de_average_classes: bool
    summary: str
    restarts: int = 0  # fresh starts for units that end below the real-data bar
    logprob_weight: float = 0.0  # class units: weight of log p(class) added to the logit
    fallback: str | None = None  # preset used when this one's image prior cannot be had

    def objective(self, unit: Unit) -> Objective:
        """The objective a unit gets under this preset."""
        if unit.kind == "class":
            obj = class_score(unit.layer, unit.channel)
            if self.logprob_weight:
                obj = obj + self.logprob_weight * class_logprob(unit.layer, unit.channel)
            return obj
        pre = self.recipe.pre_activation or unit.pre  # a LAYER:pre:N unit targets the pre-value
        if unit.kind == "neuron":
            assert unit.position is not None
            return neuron(unit.layer, unit.channel, unit.position, pre_activation=True)
        obj = channel(unit.layer, unit.channel, pre_activation=pre)
        if self.peak_weight:
            obj = obj + self.peak_weight * channel(
                unit.layer, unit.channel, pre_activation=True, pool="max"
            )
        return obj

    def recipe_for(self, unit: Unit | None) -> Recipe:
        return self.class_recipe if unit is not None and unit.kind == "class" else self.recipe


SEED_STEP = 1.0 / 255.0

SEED = Preset(
    name="seed",
    recipe=Recipe(
        name="seed",
        steps=256,
        param="pixel",
        squash=False,
        init_mean=128 / 255,
        init_std=20 / 255,
        init_noise="uniform",
        optimizer="normalized",
        lr=SEED_STEP,
        pre_activation=False,
    ),
    class_recipe=Recipe(
        name="seed",
        steps=256,
        param="constant",
        init_value=0.0,
        optimizer="normalized",
        lr=2 * SEED_STEP,
        schedule="linear",
        lr_end=0.0,
        pre_activation=True,
    ),
    peak_weight=0.0,
    display="blog",
    de_average_classes=True,
    summary="the classic Keras-blog recipe (noise start, RMS-normalized gradient, 256 steps)",
)

CLEAR_RECIPE = Recipe(
    name="clear",
    steps=48,
    param="box",
    init_mean=0.0,
    init_std=0.05,
    optimizer="adam",
    lr=0.2,
    schedule="cosine",
    lr_end=0.1,
    pre_activation=False,
    redirect_relu=16,
    l1=0.3,
    early_stop=True,
    min_steps=10,
    patience=5,
    tol=0.01,
    diversity=0.5,
)

CLEAR = Preset(
    name="clear",
    recipe=CLEAR_RECIPE,
    # Classes: an ink cost (black background), 2-px jitter and a little TV turn the
    # class evidence into a single clean digit instead of a page of strokes.
    class_recipe=CLEAR_RECIPE.with_(
        l1=2.0, tv=0.5, jitter=2, steps=64, min_steps=16, patience=8, tol=0.005
    ),
    peak_weight=2.0,
    restarts=3,
    logprob_weight=0.0,
    display="plain",
    de_average_classes=False,
    summary="best legibility for small grayscale models: black start, Adam, peak + mean",
)

# clear's optimizer and stopping, on the latent of the image prior (a mid-grey start, no ink
# cost: the decoder draws the background), with more steps for the decoder to settle.
NATURAL_RECIPE = CLEAR_RECIPE.with_(
    name="natural", steps=64, param="latent", sharpness=2.0, residual=0.4, residual_l1=0.25,
    latent_l2=0.3, init_mean=0.5, init_std=0.5, l1=0.0, min_steps=12, patience=6,
)  # fmt: skip

NATURAL = Preset(
    name="natural",
    recipe=NATURAL_RECIPE,
    # Classes: 1-px jitter, so the digit holds up under a shift (no single-pixel tricks).
    class_recipe=NATURAL_RECIPE.with_(jitter=1, min_steps=16, patience=8, tol=0.005),
    peak_weight=0.2,
    restarts=3,
    display="plain",
    de_average_classes=False,
    summary="looks like the data: optimizes the latent of a small VAE trained on the "
    "training images (cached with the checkpoint), plus a small sparse pixel residual",
    fallback="clear",
)

PRESETS: dict[str, Preset] = {p.name: p for p in (NATURAL, CLEAR, SEED)}

DEFAULT_PRESET = "natural"
"""The preset every entry point uses unless told otherwise (render, prototypes, CLI, server)."""


def get_preset(name: str | Preset) -> Preset:
    if isinstance(name, Preset):
        return name
    if name not in PRESETS:
        raise UnknownNameError(did_you_mean(name, list(PRESETS), "preset"))
    return PRESETS[name]
