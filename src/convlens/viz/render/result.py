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
    statistic's maximum over the validation images), ``ratio`` = :attr:`r_peak` = activation /
    reference (NaN for dead units and classes), ``r_mean`` = the map's spatial mean /
    ``mean_reference`` (the largest spatial mean over the validation images; channels only),
    ``probability`` (of the target class for class units, of the predicted class otherwise)
    and ``predicted``. Evidence (see :mod:`~convlens.viz.render.evidence`): ``match`` (rank of
    the unit's own real examples among its layer's live units, 1.0 best, 0.5 chance) and
    ``match_top1``; ``at_limits`` (share of pixels at the range limits) and ``flat`` (largest
    share at one value), on a neuron's field for neurons; ``constant_r_peak``/``constant_r_mean``
    (the ratios the best constant image reaches).
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
    mean_reference: torch.Tensor | None = None
    r_mean: torch.Tensor | None = None
    match: torch.Tensor | None = None
    match_top1: torch.Tensor | None = None
    at_limits: torch.Tensor | None = None
    flat: torch.Tensor | None = None
    constant_r_peak: torch.Tensor | None = None
    constant_r_mean: torch.Tensor | None = None

    def __post_init__(self) -> None:
        n = len(self.names)
        for name in EVIDENCE:
            if getattr(self, name) is None:
                setattr(self, name, torch.full((n,), float("nan")))
        if self.match_top1 is None:
            self.match_top1 = torch.zeros(n, dtype=torch.bool)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def r_peak(self) -> torch.Tensor:
        """Peak reached / largest peak over the validation images (the same as ``ratio``)."""
        return self.ratio

    @property
    def passed(self) -> torch.Tensor:
        """Per item: verified. Channels: r_peak >= 1 and r_mean >= 1; neurons: r_peak >= 1 (their
        own value); classes: argmax == target with p >= 0.99."""
        out = self.passed_peak.clone()
        mean = self.passed_mean
        for i, unit in enumerate(self.units):
            if unit is not None and unit.kind == "class":
                out[i] = (
                    bool(self.predicted[i] == unit.channel) and float(self.probability[i]) >= 0.99
                )
            elif unit is not None and unit.kind == "channel":
                out[i] = bool(out[i]) and bool(mean[i])
        return out

    @property
    def passed_peak(self) -> torch.Tensor:
        """Per item: r_peak >= 1 (False where r_peak is NaN: dead units, classes)."""
        return _at_least_one(self.ratio)

    @property
    def passed_mean(self) -> torch.Tensor:
        """Per item: r_mean >= 1 (False where r_mean is NaN: neurons, dead units, classes)."""
        assert self.r_mean is not None
        return _at_least_one(self.r_mean)

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
        """Per layer and kind: units, live, dead, live with r_peak >= 1 and with r_mean >= 1
        (channels; neurons have one value), medians, match (median and top-1 rate), the mean
        share of pixels at the range limits and the flat pictures (> 80% one value)."""
        from .evidence import FLAT

        out: dict[str, dict[str, Any]] = {}
        passed = self.passed
        peak, mean = self.passed_peak, self.passed_mean
        assert self.r_mean is not None and self.match is not None and self.flat is not None
        assert self.match_top1 is not None and self.at_limits is not None
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
            stats: dict[str, Any] = {
                "units": len(rows),
                "live": len(live),
                "dead": len(rows) - len(live),
                "r_peak_ge_1": int(peak[live].sum()),
                "share_r_peak_ge_1": _share(peak[live]),
                "median_r_peak": _median(self.ratio[live]),
                "at_limits": _mean(self.at_limits[live]),
                "flat": int((self.flat[live] > FLAT).sum()),
            }
            if kind == "channel":
                matched = [i for i in live if not math.isnan(float(self.match[i]))]
                stats.update(
                    r_mean_ge_1=int(mean[live].sum()),
                    share_r_mean_ge_1=_share(mean[live]),
                    median_r_mean=_median(self.r_mean[live]),
                    median_match=_median(self.match[matched]),
                    match_top1=_share(self.match_top1[matched]),
                )
            out[label] = stats
        return out

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per item."""
        records = []
        passed = self.passed
        ev = {name: getattr(self, name) for name in (*EVIDENCE, "match_top1")}
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
                "mean_reference": _num(ev["mean_reference"][i]),
                "r_peak": _num(self.ratio[i]),
                "r_mean": _num(ev["r_mean"][i]),
                "passed": bool(passed[i]),
                "match": _num(ev["match"][i]),
                "match_top1": bool(ev["match_top1"][i]),
                "at_limits": _num(ev["at_limits"][i]),
                "flat": _num(ev["flat"][i]),
                "constant_r_peak": _num(ev["constant_r_peak"][i]),
                "constant_r_mean": _num(ev["constant_r_mean"][i]),
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


EVIDENCE = (
    "mean_reference", "r_mean", "match", "at_limits", "flat", "constant_r_peak", "constant_r_mean",
)  # fmt: skip
"""The per-item float evidence fields (NaN where they do not apply)."""


def _at_least_one(r: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(r, nan=0.0) >= 1 - R_TOLERANCE


def _share(flags: torch.Tensor) -> float:
    return float(flags.float().mean()) if len(flags) else float("nan")


def _median(values: torch.Tensor) -> float:
    values = values[~torch.isnan(values)]
    return float(values.median()) if len(values) else float("nan")


def _mean(values: torch.Tensor) -> float:
    values = values[~torch.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


def _num(v: torch.Tensor | float) -> float | None:
    x = float(v)
    return None if math.isnan(x) or math.isinf(x) else round(x, 6)
