"""A Recipe: every knob of one rendering run, in one frozen value (presets are named Recipes)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

ParamKind = Literal["pixel", "box", "fourier", "constant", "latent"]
Optimizer = Literal["adam", "normalized"]
Schedule = Literal["constant", "linear", "cosine"]


@dataclass(frozen=True)
class Recipe:
    """How to optimize: parameterization, optimizer, transforms, regularizers, stopping.

    Brightness values (``init_mean``, ``l2_center``, ``init_value``) are fractions of the
    model's value range, so one recipe fits [0, 1] and [-1, 1] inputs alike. Regularizer weights
    apply to objectives divided by each unit's ``scale`` (its largest activation on real data
    when known), so one weight suits every layer.
    """

    name: str = "custom"
    steps: int = 96
    param: ParamKind = "fourier"
    decay: float = 1.0  # Fourier: 1/f**decay weighting of the spectrum
    init_mean: float = 0.5
    init_std: float = 0.1
    init_noise: Literal["normal", "uniform"] = "normal"
    init_value: float = 0.0  # constant parameterization
    squash: bool = True  # sigmoid onto the value range (pixel); Fourier always squashes
    residual: float = 0.0  # latent: largest free pixel offset added to the decoded image
    sharpness: float = 1.0  # latent: factor on the decoder's logits (> 1: crisper strokes)
    residual_l1: float = 0.0  # latent: cost of the residual's mean size (sparse: only where needed)
    latent_l2: float = 0.0  # latent: cost of the latent's mean square (keeps it near the prior)
    optimizer: Optimizer = "adam"
    lr: float = 0.05
    schedule: Schedule = "constant"
    lr_end: float = 0.0  # final lr as a fraction of lr (linear and cosine schedules)
    pre_activation: bool = True  # objective read before the unit's own activation
    redirect_relu: int = 0  # first steps with lucid's redirected ReLU gradient
    jitter: int = 0  # pixels
    scale: tuple[float, float] = (1.0, 1.0)
    degrees: float = 0.0
    l2: float = 0.0
    l1: float = 0.0
    l2_center: float = 0.0
    tv: float = 0.0
    blur: float = 0.0
    early_stop: bool = False
    min_steps: int = 16
    patience: int = 8
    tol: float = 0.005  # stop when the smoothed normalized objective gains less than this
    diversity: float = 0.0  # weight of the diversity term (relative to the objective)

    def with_(self, **changes: Any) -> Recipe:
        """A copy with some knobs changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def lr_at(self, step: int) -> float:
        """The learning rate (step size) at ``step`` under the schedule."""
        if self.schedule == "constant" or self.steps <= 1:
            return self.lr
        t = step / (self.steps - 1)
        end = self.lr * self.lr_end
        if self.schedule == "linear":
            return self.lr + (end - self.lr) * t
        import math

        return end + 0.5 * (self.lr - end) * (1 + math.cos(math.pi * t))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scale"] = list(self.scale)
        return data
