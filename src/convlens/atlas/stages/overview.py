"""Overview: accuracy on the validation images, receptive fields to scale, training curves."""

from __future__ import annotations

from typing import Any

from ...images.atlas import receptive_fields_figure, training_curves_figure
from ..context import BuildContext
from . import Task


def tasks(ctx: BuildContext) -> list[Task]:
    return [Task("overview", "overview/model", "accuracy and figures", run)]


def run(ctx: BuildContext) -> dict[str, Any]:
    lens, data = ctx.lens, ctx.dataset
    probs = lens.predict(data.x_val, batch_size=ctx.options.batch_size)
    predicted = probs.argmax(1)
    correct = predicted == data.y_val
    per_class = [
        float(correct[data.y_val == c].float().mean()) if bool((data.y_val == c).any()) else None
        for c in range(lens.num_classes)
    ]
    fragment: dict[str, Any] = {
        "model": {
            "accuracy": {
                "value": float(correct.float().mean()),
                "images": len(data.y_val),
                "source": data.name,
                "split": "val",
                "per_class": per_class,
            }
        },
        "figures": {},
    }
    fields = []
    seen = set()
    for info in lens.layers:
        if info.rf is None or info.kind not in ("conv", "pool") or info.rf in seen:
            continue
        seen.add(info.rf)
        fields.append((info.name, info.rf))
    if fields:
        _, index = ctx.samples[0] if ctx.samples else (0, 0)
        image = data.x_val[index]
        fig = receptive_fields_figure(image, fields)
        fragment["figures"].update(
            ctx.figure(
                "receptive_fields",
                "img/overview/receptive_fields.png",
                fig,
                title="Receptive fields to scale",
                caption="Each square is the part of the input that the centre unit of a layer "
                "can see; deeper layers see more, and pooling doubles the step between units.",
            )
        )
    history = lens.source.get("config", {}).get("history", []) if lens.source else []
    if history:
        fragment["figures"].update(
            ctx.figure(
                "training_curves",
                "img/overview/training_curves.png",
                training_curves_figure(history),
                title="Training curves",
                caption="Loss and accuracy after each epoch, on the training images (blue) and "
                "the held-out validation images (orange).",
            )
        )
    return fragment
