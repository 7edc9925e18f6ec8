"""Class prototypes ("the perfect digit"): one rendered image per class, verified by the model.

Each prototype maximizes its class's pre-softmax score; the model's verdict on it (argmax and
probability) is its evidence. The de-averaged prototypes (each minus the mean of all classes)
show what sets each class apart, as in the Keras blog.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..data import Dataset
from ..display.base import Pictured
from ..errors import ConvlensError
from ..lens import Lens
from ..units import Unit, resolve_units
from .render import RenderResult, render
from .render.presets import DEFAULT_PRESET, Preset

PASS_PROBABILITY = 0.99


@dataclass(repr=False)
class Prototypes(Pictured):
    """Prototypes of ``classes`` (``diversity`` images each, class-major order)."""

    classes: list[int]
    class_names: list[str]
    diversity: int
    images: torch.Tensor  # (K * diversity, C, H, W) pixel space
    deaveraged: torch.Tensor  # same shape, signed: each minus the mean of its copy's set
    predicted: torch.Tensor  # (K * diversity,)
    probability: torch.Tensor  # probability of the *target* class
    result: RenderResult

    @property
    def targets(self) -> torch.Tensor:
        return torch.tensor([c for c in self.classes for _ in range(self.diversity)])

    @property
    def correct(self) -> torch.Tensor:
        """Per image: classified as its class with probability >= 0.99."""
        return (self.predicted == self.targets) & (self.probability >= PASS_PROBABILITY)

    @property
    def ok(self) -> bool:
        return bool(self.correct.all())

    def table(self) -> list[str]:
        """The verification rows: class, predicted class, probability of the class."""
        names = [self.class_names[c] for c in self.targets.tolist()]
        width = max(4, *(len(n) for n in names))
        pred = [self.class_names[int(p)] for p in self.predicted]
        return [
            "class      " + " ".join(f"{n:>{width}}" for n in names),
            "predicted  " + " ".join(f"{p:>{width}}" for p in pred),
            "p(class)   " + " ".join(f"{float(p):>{width}.2f}" for p in self.probability),
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": [self.class_names[c] for c in self.classes],
            "diversity": self.diversity,
            "all_correct": self.ok,
            "pass_probability": PASS_PROBABILITY,
            "prototypes": [
                {
                    "class": self.class_names[int(t)],
                    "copy": i % self.diversity,
                    "predicted": self.class_names[int(p)],
                    "probability": round(float(q), 6),
                    "correct": bool(ok),
                }
                for i, (t, p, q, ok) in enumerate(
                    zip(self.targets, self.predicted, self.probability, self.correct, strict=True)
                )
            ],
            "render": self.result.to_json(),
        }


def prototypes(
    lens: Lens,
    classes: str | Sequence[int] | None = None,
    *,
    diversity: int = 1,
    preset: str | Preset = DEFAULT_PRESET,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    data: str | Dataset | None = None,
    progress: bool | None = None,
    **overrides: object,
) -> Prototypes:
    """Render and verify one image per class (``diversity`` per class); default every class."""
    if lens.num_classes == 0:
        raise ConvlensError("the model has no class names; prototypes need a classifier")
    if classes is None:
        spec = "class:*"
    elif isinstance(classes, str):
        spec = classes if classes.startswith("class:") else f"class:{classes}"
    else:
        spec = "class:" + "+".join(str(int(c)) for c in classes)
    units: list[Unit] = resolve_units(lens, spec)
    result = render(
        lens,
        units,
        preset=preset,
        steps=steps,
        seed=seed,
        diversity=diversity,
        batch_size=batch_size,
        data=data,
        progress=progress,
        **overrides,
    )
    chosen = [u.channel for u in units]
    images = result.images
    k = len(chosen)
    # De-average within each copy index: prototype j of class c minus the mean of all copy-j's.
    grid = images.view(k, diversity, *images.shape[1:])
    deaveraged = (grid - grid.mean(0, keepdim=True)).view_as(images)
    return Prototypes(
        classes=chosen,
        class_names=list(lens.class_names),
        diversity=diversity,
        images=images,
        deaveraged=deaveraged,
        predicted=result.predicted.clone(),
        probability=result.probability.clone(),
        result=result,
    )
