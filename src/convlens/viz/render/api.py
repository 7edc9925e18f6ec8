"""``render``: every requested unit in one batched optimization, each verified against real data.

Units become *items* (unit x diversity copy). Items that share a canvas, a recipe and a
deepest layer run through :func:`~convlens.viz.render.loop.optimize` together (chunked by
``batch_size``). Neurons are rendered on a canvas the size of their receptive field (their
value depends on nothing else) and pasted in place on a background canvas; neurons whose field
crosses the image border are rendered on the full canvas. Afterwards one no-grad pass per layer
measures what each image reaches, against the dataset maxima.
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from ...data import Dataset
from ...errors import ConvlensError, DataError, UnitError
from ...lens import Lens
from ...progress import bar as progress_bar
from ...units import Unit, resolve_units
from ..maxima import Maxima, dataset_maxima
from .evidence import best_constant, match, pixel_figures
from .loop import optimize
from .objectives import Objective, neuron
from .presets import DEFAULT_PRESET, Preset, get_preset
from .prior import ImagePrior, image_prior
from .recipe import Recipe
from .result import R_TOLERANCE, RenderResult

Target = str | Unit | Objective


@dataclass
class _Item:
    target: int  # index of the unit/objective in the request (diversity group)
    unit: Unit | None
    name: str
    copy: int
    objective: Objective  # in canvas coordinates (a neuron's position on its own canvas)
    canvas: tuple[int, int, int]
    window: tuple[int, int, int, int] | None  # where a neuron's canvas sits on the input
    recipe: Recipe
    scale: float
    seed: int


def default_batch_size(lens: Lens) -> int:
    """Chunk size: small on CPU (28x28 maps stay in cache), large on accelerators."""
    return 32 if lens.device.type == "cpu" else 1024


def render(
    lens: Lens,
    units: Target | Sequence[Target],
    *,
    preset: str | Preset = DEFAULT_PRESET,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    diversity: int = 1,
    param: str | None = None,
    data: str | Dataset | None = None,
    restarts: int | None = None,
    progress: bool | None = None,
    executor: Any = None,
    prior: ImagePrior | None = None,
    **overrides: object,
) -> RenderResult:
    """Render ``units`` (a unit string such as ``"conv2d_3:*,class:*"``, Units or Objectives).

    ``preset``: ``"natural"`` (default: the latent of a learned image prior, see
    :mod:`~convlens.viz.render.prior`; falls back to ``"clear"`` with a warning where the model
    records no training data), ``"clear"`` (pixels) or ``"seed"`` (the classic blog recipe);
    ``steps``, ``param`` (``"box"``, ``"pixel"``, ``"fourier"`` or ``"latent"``) and any other
    :class:`~convlens.viz.render.recipe.Recipe` field given as a keyword override it.
    ``diversity``: images per unit, pushed apart by a diversity term. ``data``: the dataset
    whose validation images set the verification bar (default: the checkpoint's own).
    ``restarts``: fresh starts for units that end below the real-data bar (default: the
    preset's). ``seed`` makes the run reproducible. ``executor`` (a
    :class:`convlens.distributed.Executor`): render in fixed chunks of units, in this process or
    on Ray workers, with the same result everywhere (``data`` may then be precomputed Maxima,
    and ``prior`` the image prior made once by the caller, as :func:`image_prior_for` makes it).
    """
    if executor is not None:
        return executor.render(
            lens, units, preset=preset, steps=steps, batch_size=batch_size, seed=seed,
            diversity=diversity, param=param, data=data, restarts=restarts, progress=progress,
            **overrides,
        )  # fmt: skip
    start = time.perf_counter()
    if diversity < 1:
        raise ConvlensError(f"diversity must be at least 1, got {diversity}")
    chosen = get_preset(preset)
    changes = dict(overrides, steps=steps, param=param)
    if diversity == 1:
        changes["diversity"] = 0.0
    unknown = [k for k in changes if k not in Recipe.__dataclass_fields__]
    if unknown:
        raise ConvlensError(
            f"unknown render option {unknown[0]!r}; options: "
            + ", ".join(sorted(Recipe.__dataclass_fields__))
        )
    chosen = _customized(chosen, changes, restarts)
    targets = _targets(lens, units)
    if "latent" not in (chosen.recipe.param, chosen.class_recipe.param):
        prior = None
    elif prior is None:
        prior, used = _prior(lens, chosen, data, explicit=param == "latent", progress=progress)
        if used is not chosen:
            chosen = _customized(used, changes, restarts)
    maxima = _maxima(lens, targets, data)
    items = _items(lens, targets, chosen, maxima, diversity, seed)

    n = len(items)
    c, h, w = lens.spec.shape
    images = torch.zeros(n, c, h, w)
    crops: list[torch.Tensor | None] = [None] * n
    longest = max(chosen.recipe.steps, chosen.class_recipe.steps) * 2**chosen.restarts
    curves = torch.full((n, longest), float("nan"))
    steps_t = torch.zeros(n, dtype=torch.long)
    status, reason = ["ok"] * n, [""] * n
    restarts = [0] * n
    stats = {"item_steps": 0}
    layer_steps: dict[str, int] = {}
    size = batch_size or default_batch_size(lens)
    bar = progress_bar(n, desc="render", unit="unit", progress=progress)
    runs = _optimize_items(lens, items, list(range(n)), size, seed, bar, stats, layer_steps, prior)
    for i, (canvas, curve, taken, state, why) in runs.items():
        images[i], crops[i] = _place(lens, items[i], canvas)
        curves[i, : curve.shape[0]] = curve
        steps_t[i], reason[i] = taken, why
        if state == "failed":
            status[i] = "failed"
    verdict = _verify(lens, items, images, maxima)

    # Fresh starts for units that stalled below the real-data bar (or below p 0.99).
    for attempt in range(1, chosen.restarts + 1):
        again = [i for i in range(n) if _retry(items[i], status[i], verdict, i)]
        if not again:
            break
        bar.add_total(len(again))  # the bar stays up through the fresh starts
        bar.set_description(f"render, fresh start {attempt}")
        for i in again:  # a new start, more patience, half the ink cost: the hard units
            r = items[i].recipe
            patient = r.with_(
                steps=2 * r.steps, min_steps=2 * r.min_steps, patience=2 * r.patience, l1=r.l1 / 2
            )
            items[i] = replace(
                items[i], seed=_seed(seed, items[i].name, items[i].copy, attempt), recipe=patient
            )
        runs = _optimize_items(
            lens, items, again, size, seed + attempt, bar, stats, layer_steps, prior
        )
        trial = images.clone()
        trial_crops = list(crops)
        for i, (canvas, _curve, _taken, _state, _why) in runs.items():
            trial[i], trial_crops[i] = _place(lens, items[i], canvas)
        sub = [items[i] for i in again]
        fresh = _verify(lens, sub, trial[again], maxima)
        for k, i in enumerate(again):
            canvas, curve, taken, state, why = runs[i]
            if state == "failed" or not _better(items[i], fresh, k, verdict, i):
                continue
            images[i], crops[i] = trial[i], trial_crops[i]
            curves[i] = float("nan")
            curves[i, : curve.shape[0]] = curve
            steps_t[i], restarts[i] = taken, attempt
            reason[i] = f"{why} (fresh start {attempt})"
            verdict.copy_row(i, fresh, k)
    bar.close()

    for i in range(n):
        unit = items[i].unit
        if status[i] == "failed":
            continue
        if unit is not None and unit.kind != "class" and not float(verdict.reference[i]) > 0:
            status[i] = "dead" if maxima is not None else "unverified"
            reason[i] = (
                "dead: no validation image activates this unit"
                if maxima is not None
                else "no dataset maxima to compare with"
            ) + f"; {reason[i]}"
    item_steps = stats["item_steps"]
    return RenderResult(
        units=[it.unit for it in items],
        names=[it.name for it in items],
        copies=[it.copy for it in items],
        images=images,
        crops=crops,
        windows=[_clip(it.window, h, w) if it.window else None for it in items],
        curves=curves,
        steps=steps_t,
        activation=verdict.activation,
        mean_activation=verdict.mean_activation,
        reference=verdict.reference,
        ratio=verdict.r_peak,
        probability=verdict.probability,
        predicted=verdict.predicted,
        mean_reference=verdict.mean_reference,
        r_mean=verdict.r_mean,
        match=verdict.match,
        match_top1=verdict.match_top1,
        at_limits=verdict.at_limits,
        flat=verdict.flat,
        constant_r_peak=verdict.constant_r_peak,
        constant_r_mean=verdict.constant_r_mean,
        status=status,
        reason=reason,
        preset=chosen.name,
        recipe={
            "units": chosen.recipe.to_dict(),
            "classes": chosen.class_recipe.to_dict(),
            "peak_weight": chosen.peak_weight,
            "restarts": chosen.restarts,
            "seed": seed,
            "diversity": diversity,
            "batch_size": size,
        },
        dataset=maxima.dataset if maxima is not None else None,
        seconds=time.perf_counter() - start,
        item_steps=item_steps,
        layer_steps=layer_steps,
        restarts=restarts,
        value_range=lens.spec.value_range,
        class_names=lens.class_names,
    )


def _optimize_items(
    lens: Lens,
    items: list[_Item],
    rows: list[int],
    size: int,
    seed: int,
    bar: object | None,
    stats: dict[str, int],
    layer_steps: dict[str, int],
    prior: ImagePrior | None = None,
) -> dict[int, tuple[torch.Tensor, torch.Tensor, int, str, str]]:
    """Optimize ``rows`` of ``items``, batched by canvas, recipe and depth."""
    results = {}
    for group in _batches(lens, items, rows):
        first = items[group[0]]
        out = optimize(
            lens,
            [items[i].objective for i in group],
            first.canvas,
            first.recipe,
            seeds=[items[i].seed for i in group],
            scales=torch.tensor([items[i].scale for i in group]),
            groups=[items[i].target for i in group],
            diversity_layer=_diversity_layer(lens, first),
            batch_size=size,
            seed=seed,
            progress=bar,
            prior=prior if first.recipe.param == "latent" else None,
        )
        stats["item_steps"] += out.item_steps
        for k, v in out.layer_steps.items():
            layer_steps[k] = layer_steps.get(k, 0) + v
        for k, i in enumerate(group):
            results[i] = (
                out.images[k],
                out.curves[k],
                int(out.steps[k]),
                out.status[k],
                out.reason[k],
            )
    return results


def _place(
    lens: Lens, item: _Item, canvas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The image on the full input canvas (a neuron's crop pasted in place) and the crop."""
    if item.window is None:
        return canvas, None
    c, h, w = lens.spec.shape
    top, left, bottom, right = _clip(item.window, h, w)
    placed = torch.full((c, h, w), float(lens.spec.value_range[0]))
    if item.canvas == (c, h, w):  # rendered on the full canvas: keep what the neuron sees
        placed[:, top:bottom, left:right] = canvas[:, top:bottom, left:right]
    else:
        placed[:, top:bottom, left:right] = canvas
    return placed, placed[:, top:bottom, left:right].clone()


def _retry(item: _Item, status: str, verdict: _Verdict, i: int) -> bool:
    """Whether a unit deserves a fresh start: live with r_peak or r_mean < 1, or a class below
    p 0.99."""
    if item.unit is None or status == "failed":
        return False
    if item.unit.kind == "class":
        return not (
            int(verdict.predicted[i]) == item.unit.channel and float(verdict.probability[i]) >= 0.99
        )
    return bool(float(verdict.reference[i]) > 0 and verdict.score(i) < 1 - R_TOLERANCE)


def _better(item: _Item, fresh: _Verdict, k: int, verdict: _Verdict, i: int) -> bool:
    if item.unit is not None and item.unit.kind == "class":
        return float(fresh.probability[k]) > float(verdict.probability[i])
    return fresh.score(k) > verdict.score(i)


def _seed(seed: int, name: str, copy: int, attempt: int = 0) -> int:
    text = f"{seed}|{name}|{copy}" + (f"|{attempt}" if attempt else "")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


# --- request -> items ------------------------------------------------------------------------


def _targets(lens: Lens, units: Target | Sequence[Target]) -> list[Unit | Objective]:
    given = [units] if isinstance(units, str | Unit | Objective) else list(units)
    out: list[Unit | Objective] = []
    for t in given:
        if isinstance(t, str):
            out.extend(resolve_units(lens, t))
        elif isinstance(t, Unit | Objective):
            out.append(t)
        else:
            raise UnitError(f"cannot render {t!r}; give unit strings, Units or Objectives")
    if not out:
        raise UnitError("no units to render; write e.g. 'conv2d_1:*' or 'class:3'")
    return out


def _customized(preset: Preset, changes: dict[str, Any], restarts: int | None) -> Preset:
    """``preset`` with the caller's recipe changes and restart count."""
    return Preset(
        **{
            **preset.__dict__,
            "recipe": preset.recipe.with_(**changes),
            "class_recipe": preset.class_recipe.with_(**changes),
            "restarts": preset.restarts if restarts is None else max(0, restarts),
        }
    )


def image_prior_for(
    lens: Lens,
    preset: str | Preset = DEFAULT_PRESET,
    param: str | None = None,
    data: str | Dataset | Maxima | None = None,
    *,
    progress: bool | None = None,
) -> tuple[ImagePrior | None, str | Preset]:
    """The image prior a render with these settings needs (None when its recipes draw pixels)
    and the preset it then runs with (the fallback, with a warning, where there is no prior).

    A scaled-out render makes it once, here, and hands it to every chunk, as it does the
    dataset maxima: no worker trains or loads one of its own.
    """
    chosen = get_preset(preset)
    if param is not None:
        chosen = _customized(chosen, {"param": param}, None)
    if "latent" not in (chosen.recipe.param, chosen.class_recipe.param):
        return None, preset
    prior, used = _prior(lens, chosen, data, explicit=param == "latent", progress=progress)
    return prior, preset if used is chosen else used.name


def _prior(
    lens: Lens,
    preset: Preset,
    data: str | Dataset | Maxima | None,
    *,
    explicit: bool,
    progress: bool | None,
) -> tuple[ImagePrior | None, Preset]:
    """The image prior a latent recipe needs, or (when the user did not ask for the latent
    parameterization by name) the preset's fallback with a warning when there is none: a
    model that records no training data, or an input size the decoder cannot draw."""
    source = None if isinstance(data, Maxima) else data
    try:
        return image_prior(lens, source, progress=progress), preset
    except DataError as err:
        if explicit or preset.fallback is None:
            raise
        fallback = get_preset(preset.fallback)
        warnings.warn(
            f"preset {preset.name!r} has no image prior here ({err}); "
            f"rendering with {fallback.name!r}",
            stacklevel=3,
        )
        return None, fallback


def _maxima(
    lens: Lens, targets: list[Unit | Objective], data: str | Dataset | Maxima | None
) -> Maxima | None:
    if not any(isinstance(t, Unit) for t in targets):
        return None
    if isinstance(data, Maxima):  # computed once by the caller (a chunk of a scaled-out job)
        return data
    try:
        return dataset_maxima(lens, None, data)
    except DataError:
        if data is not None:
            raise
        return None  # no recorded training data: render without verification


def _items(
    lens: Lens,
    targets: list[Unit | Objective],
    preset: Preset,
    maxima: Maxima | None,
    diversity: int,
    seed: int,
) -> list[_Item]:
    items = []
    full = lens.spec.shape
    for index, target in enumerate(targets):
        if isinstance(target, Objective):
            unit, name, objective = None, str(target), target
            canvas, window, scale = full, None, 1.0
        else:
            unit, name = target, str(target)
            objective = preset.objective(unit)
            # A decoder draws whole images: latent renders of neurons use the full canvas.
            whole = preset.recipe_for(unit).param == "latent"
            canvas, window, objective = _neuron_canvas(lens, unit, objective, whole)
            scale = _scale(lens, unit, maxima)
        recipe = preset.recipe_for(unit)
        for copy in range(diversity):
            items.append(
                _Item(
                    index,
                    unit,
                    name,
                    copy,
                    objective,
                    canvas,
                    window,
                    recipe,
                    scale,
                    _seed(seed, name, copy),
                )
            )
    return items


def _neuron_canvas(
    lens: Lens, unit: Unit, objective: Objective, whole: bool = False
) -> tuple[tuple[int, int, int], tuple[int, int, int, int] | None, Objective]:
    """Canvas, window and objective of a unit: neurons get a receptive-field-sized canvas
    (the full one when ``whole``)."""
    full = lens.spec.shape
    if unit.kind != "neuron" or unit.position is None:
        return full, None, objective
    info = lens.layer(unit.layer)
    rf = info.rf
    if rf is None:
        return full, None, objective
    window = rf.window(*unit.position)
    top, left, bottom, right = window
    inside = top >= 0 and left >= 0 and bottom <= full[1] and right <= full[2]
    local = _local_position(lens, unit.layer, rf.size, rf) if inside and not whole else None
    if local is None or (rf.size[0], rf.size[1]) == (full[1], full[2]):
        return full, window, objective
    canvas = (full[0], rf.size[0], rf.size[1])
    # The same objective with the neuron's position on its own canvas.
    terms = tuple(
        (
            w,
            t
            if t.kind != "neuron"
            else neuron(t.layer, t.channel, local, pre_activation=t.pre_activation).terms[0][1],
        )
        for w, t in objective.terms
    )
    return canvas, window, Objective(terms, objective.name)


def _local_position(
    lens: Lens, layer: str, size: tuple[int, int], rf: object
) -> tuple[int, int] | None:
    """The neuron whose field is exactly a size-sized canvas (None when the grid misaligns)."""
    pos = []
    for axis in (0, 1):
        num = (size[axis] - 1) / 2 - rf.offset[axis]  # type: ignore[attr-defined]
        jump = rf.jump[axis]  # type: ignore[attr-defined]
        if num < 0 or abs(num / jump - round(num / jump)) > 1e-6:
            return None
        pos.append(round(num / jump))
    try:
        with torch.no_grad():
            probe = torch.zeros(1, lens.spec.channels, *size, device=lens.device)
            shape = lens.forward(probe, [layer])[layer].shape
    except (RuntimeError, ValueError):
        return None
    if len(shape) != 4 or pos[0] >= shape[2] or pos[1] >= shape[3]:
        return None
    return pos[0], pos[1]


def _scale(lens: Lens, unit: Unit, maxima: Maxima | None) -> float:
    """The unit's objective scale: its largest value on real data (or its layer's median)."""
    if maxima is None or unit.layer not in maxima.channel:
        return 1.0
    ref = maxima.channel[unit.layer]
    if unit.kind == "neuron" and unit.position is not None and unit.layer in maxima.neuron:
        value = float(maxima.neuron[unit.layer][unit.channel][unit.position])
    else:
        value = float(ref[unit.channel])
    if value > 0:
        return value
    live = ref[ref > 0]
    return float(live.median()) if len(live) else 1.0


def _batches(lens: Lens, items: list[_Item], rows: list[int]) -> list[list[int]]:
    """Items that can share one optimization: same canvas, recipe and deepest layer."""
    groups: dict[tuple, list[int]] = {}  # type: ignore[type-arg]
    for i in rows:
        it = items[i]
        deepest = max(it.objective.layers, key=lambda name: lens.layer(name).order)
        groups.setdefault((it.canvas, it.recipe, deepest), []).append(i)
    return sorted(groups.values(), key=lambda rows: _depth(lens, items[rows[0]]))


def _depth(lens: Lens, item: _Item) -> int:
    return max(lens.layer(name).order for name in item.objective.layers)


def _diversity_layer(lens: Lens, item: _Item) -> str | None:
    """Where diversity is measured: the unit's own map, or the last conv layer for classes."""
    layers = [lens.layer(name) for name in item.objective.layers]
    spatial = [info for info in layers if info.is_spatial]
    if spatial:
        return max(spatial, key=lambda info: info.order).name
    depth = max(info.order for info in layers)
    convs = [info for info in lens.conv_layers() if info.order < depth]
    return convs[-1].name if convs else None


def _clip(window: tuple[int, int, int, int], h: int, w: int) -> tuple[int, int, int, int]:
    top, left, bottom, right = window
    return max(top, 0), max(left, 0), min(bottom, h), min(right, w)


# --- verification ----------------------------------------------------------------------------


@dataclass
class _Verdict:
    """What each placed image reaches and the evidence about it, one row per item."""

    activation: torch.Tensor  # channel: peak of its map; neuron: its value; class: its logit
    mean_activation: torch.Tensor  # channel: spatial mean of its map
    reference: torch.Tensor  # the same peak's maximum over the validation images
    mean_reference: torch.Tensor  # the largest spatial mean over the validation images
    r_peak: torch.Tensor
    r_mean: torch.Tensor
    probability: torch.Tensor
    predicted: torch.Tensor
    match: torch.Tensor
    match_top1: torch.Tensor
    at_limits: torch.Tensor
    flat: torch.Tensor
    constant_r_peak: torch.Tensor  # what the best constant image reaches, as a ratio
    constant_r_mean: torch.Tensor

    def copy_row(self, i: int, other: _Verdict, k: int) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name)[i] = getattr(other, name)[k]

    def score(self, i: int) -> float:
        """The weaker of the two ratios (r_peak alone where there is no mean)."""
        peak, mean = float(self.r_peak[i]), float(self.r_mean[i])
        return peak if math.isnan(mean) else min(peak, mean)


@torch.no_grad()
def _verify(
    lens: Lens, items: list[_Item], images: torch.Tensor, maxima: Maxima | None
) -> _Verdict:
    """What each placed image reaches, the real-data bars, both ratios, and the evidence."""
    n = len(items)

    def nans() -> torch.Tensor:
        return torch.full((n,), float("nan"))

    # A real input cannot leave the value range: judge what the model would see if it were one
    # (a no-op for squashed renders; the seed recipe's raw pixels can drift outside).
    images = images.clamp(*lens.spec.value_range)
    probs = lens.predict(images) if n else torch.zeros(0, lens.num_classes)
    v = _Verdict(
        activation=nans(), mean_activation=nans(), reference=nans(), mean_reference=nans(),
        r_peak=nans(), r_mean=nans(),
        probability=probs.max(1).values if n else torch.zeros(0),
        predicted=probs.argmax(1) if n else torch.zeros(0, dtype=torch.long),
        match=nans(), match_top1=torch.zeros(n, dtype=torch.bool),
        at_limits=nans(), flat=nans(), constant_r_peak=nans(), constant_r_mean=nans(),
    )  # fmt: skip
    logits = _logits(lens, images)
    by_layer: dict[str, list[int]] = {}
    h, w = lens.spec.height, lens.spec.width
    for i, it in enumerate(items):
        window = _clip(it.window, h, w) if it.window else (0, 0, h, w)
        top, left, bottom, right = window
        at_limits, flat = pixel_figures(
            images[i : i + 1, :, top:bottom, left:right], lens.spec.value_range
        )
        v.at_limits[i], v.flat[i] = at_limits[0], flat[0]
        if it.unit is None:
            continue
        if it.unit.kind == "class":
            v.probability[i] = probs[i, it.unit.channel]
            v.activation[i] = logits[i, it.unit.channel]
            if (
                maxima is not None
                and it.unit.layer in maxima.channel
                and not lens.logits_from_input
            ):
                v.reference[i] = maxima.channel[it.unit.layer][it.unit.channel]
        else:
            by_layer.setdefault(it.unit.layer, []).append(i)
    const_peak, const_mean = nans(), nans()  # what the best constant image reaches
    for layer, rows in by_layer.items():
        acts = lens.forward(images[rows].to(lens.device), [layer])[layer].float().cpu()
        constant: tuple[torch.Tensor, torch.Tensor] | None = None  # made at the first channel
        channel_rows: list[int] = []
        for k, i in enumerate(rows):
            unit = items[i].unit
            assert unit is not None
            a = acts[k, unit.channel]
            if unit.kind == "neuron" and unit.position is not None:
                v.activation[i] = a[unit.position]
                if maxima is not None:
                    v.reference[i] = maxima.neuron[layer][unit.channel][unit.position]
                continue
            v.activation[i] = a.max()
            v.mean_activation[i] = a.mean()
            if maxima is not None:
                v.reference[i] = maxima.channel[layer][unit.channel]
                if layer in maxima.channel_mean:
                    v.mean_reference[i] = maxima.channel_mean[layer][unit.channel]
            constant = constant or best_constant(lens, layer)
            const_peak[i], const_mean[i] = constant[0][unit.channel], constant[1][unit.channel]
            if a.dim() == 2:
                channel_rows.append(k)
        if maxima is not None and channel_rows:
            chosen = [rows[k] for k in channel_rows]
            channels = [items[i].unit.channel for i in chosen]  # type: ignore[union-attr]
            maps = acts[channel_rows, channels]
            matched, top1 = match(lens, layer, images[chosen], channels, maps, maxima)
            v.match[chosen], v.match_top1[chosen] = matched, top1
    v.r_peak = _ratio(v.activation, v.reference)
    v.r_mean = _ratio(v.mean_activation, v.mean_reference)
    v.constant_r_peak = _ratio(const_peak, v.reference)
    v.constant_r_mean = _ratio(const_mean, v.mean_reference)
    for i, it in enumerate(items):
        if it.unit is not None and it.unit.kind == "class":
            v.r_peak[i] = float("nan")  # classes are judged by probability
    return v


def _ratio(value: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """value / reference where the reference is positive (a live unit), NaN elsewhere."""
    return torch.where(reference > 0, value / reference, torch.full_like(reference, float("nan")))


def _logits(lens: Lens, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    outs = [
        lens.logits(images[i : i + batch_size].to(lens.device)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(outs) if outs else torch.zeros(0, lens.num_classes)
