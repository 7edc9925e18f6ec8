"""RenderResult: rendered images with their evidence (data only; drawing lives in ``images``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ...display.base import Pictured
from ...units import Unit

R_TOLERANCE = 1e-4
"""r counts as >= 1 from 1 - R_TOLERANCE: a render that *ties* the best real image (same
saturated pixels, e.g. a first-layer filter at its theoretical maximum) differs only by float
rounding."""


@dataclass(repr=False)
class RenderResult(Pictured):
    """N rendered items (units x diversity copies), row i everywhere.

    ``images``: (N, C, H, W) pixel space on the full input canvas (a neuron's crop pasted in
    place on the background); ``crops[i]``: a neuron's receptive-field crop (None otherwise)
    and ``windows[i]`` its (top, left, bottom, right) on the canvas. ``curves``: the objective
    per step (NaN after the item stopped). Verification: ``activation`` (channel: largest value
    of its map, post-activation; neuron: its value; class: its logit), ``reference`` (the same
    statistic's maximum over the validation images), ``ratio`` r = activation / reference (NaN
    for dead units and classes), ``probability`` (of the target class for class units, of the
    predicted class otherwise) and ``predicted``.
    """

    units: list[Unit | None]
    names: list[str]
    copies: list[int]
    images: torch.Tensor
    crops: list[torch.Tensor | None]
    windows: list[tuple[int, int, int, int] | None]
    curves: torch.Tensor
    steps: torch.Tensor
    activation: torch.Tensor
    mean_activation: torch.Tensor
    reference: torch.Tensor
    ratio: torch.Tensor
    probability: torch.Tensor
    predicted: torch.Tensor
    status: list[str]
    reason: list[str]
    preset: str = "clear"
    recipe: dict[str, Any] = field(default_factory=dict)
    dataset: str | None = None
    seconds: float = 0.0
    item_steps: int = 0
    layer_steps: dict[str, int] = field(default_factory=dict)
    restarts: list[int] = field(default_factory=list)  # fresh starts each item needed
    value_range: tuple[float, float] = (0.0, 1.0)  # the model's pixel range (for display)
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.names)

    @property
    def passed(self) -> torch.Tensor:
        """Per item: r >= 1 (channels, neurons) or argmax == target with p >= 0.99 (classes)."""
        out = torch.zeros(len(self), dtype=torch.bool)
        for i, unit in enumerate(self.units):
            if unit is not None and unit.kind == "class":
                out[i] = (
                    bool(self.predicted[i] == unit.channel) and float(self.probability[i]) >= 0.99
                )
            elif not math.isnan(float(self.ratio[i])):
                out[i] = float(self.ratio[i]) >= 1 - R_TOLERANCE
        return out

    def rows(self, layer: str | None = None, kind: str | None = None) -> list[int]:
        """Row indices of the items on ``layer`` and/or of unit ``kind``."""
        return [
            i
            for i, u in enumerate(self.units)
            if u is not None
            and (layer is None or u.layer == layer)
            and (kind is None or u.kind == kind)
        ]

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per layer and kind: units, live, dead, share of live with r >= 1, median r."""
        out: dict[str, dict[str, Any]] = {}
        passed = self.passed
        keys = dict.fromkeys(
            (u.layer if u.kind != "class" else "class", u.kind) for u in self.units if u is not None
        )
        for layer, kind in keys:
            rows = self.rows(None if layer == "class" else layer, kind)
            label = (
                layer if kind == "channel" else f"{layer} {kind}s" if kind == "neuron" else "class"
            )
            if kind == "class":
                out[label] = {
                    "units": len(rows),
                    "passed": int(passed[rows].sum()),
                    "min_probability": float(self.probability[rows].min()),
                }
                continue
            live = [i for i in rows if self.status[i] != "dead"]
            ratios = self.ratio[live]
            out[label] = {
                "units": len(rows),
                "live": len(live),
                "dead": len(rows) - len(live),
                "r_ge_1": int(passed[live].sum()),
                "share_r_ge_1": float(passed[live].float().mean()) if live else float("nan"),
                "median_r": float(ratios.median()) if live else float("nan"),
            }
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per item."""
        records = []
        for i, unit in enumerate(self.units):
            rec: dict[str, Any] = {
                "unit": self.names[i],
                "kind": unit.kind if unit else "objective",
                "layer": unit.layer if unit else None,
                "channel": unit.channel if unit else None,
                "position": list(unit.position) if unit and unit.position else None,
                "copy": self.copies[i],
                "status": self.status[i],
                "reason": self.reason[i],
                "steps": int(self.steps[i]),
                "restarts": self.restarts[i] if self.restarts else 0,
                "activation": _num(self.activation[i]),
                "mean_activation": _num(self.mean_activation[i]),
                "reference": _num(self.reference[i]),
                "ratio": _num(self.ratio[i]),
                "passed": bool(self.passed[i]),
                "predicted": int(self.predicted[i]),
                "probability": _num(self.probability[i]),
                "window": list(self.windows[i]) if self.windows[i] else None,
                "loss_curve": [_num(v) for v in self.curves[i, : int(self.steps[i])]],
            }
            records.append(rec)
        return records

    def to_json(self) -> dict[str, Any]:
        """Records plus the run's settings and per-layer summary."""
        return {
            "preset": self.preset,
            "recipe": self.recipe,
            "dataset": self.dataset,
            "seconds": self.seconds,
            "item_steps": self.item_steps,
            "summary": self.summary(),
            "units": self.to_records(),
        }


def _num(v: torch.Tensor | float) -> float | None:
    x = float(v)
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)
