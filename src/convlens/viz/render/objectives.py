"""Objectives: what a rendered image should make the network do, per batch item.

An :class:`Objective` is a weighted sum of *terms* (a channel mean, a neuron, a class score, or
any callable). Objectives compose with ``+``, ``-`` and scalar ``*`` (``a + 0.5 * b``), as in
lucent, but stay *linear* so that a whole batch of different objectives (batch item i carries
objective i) compiles into one gather per layer: no Python loop over units at run time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from ...units import Unit

TermKind = Literal["channel", "neuron", "class", "logprob", "custom"]
ActsFn = Callable[[dict[str, torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class Term:
    """One differentiable score of one layer's activations.

    ``channel``: spatial mean of a channel (a dense layer: the feature itself); ``neuron``: one
    position of a channel; ``class``: a class score of the logits layer (pre-softmax);
    ``custom``: ``fn(acts) -> (N,)`` over the whole batch. ``pre_activation`` reads the layer
    before its own activation (a ReLU then cannot hide the gradient).
    """

    kind: TermKind
    layer: str
    channel: int = 0
    position: tuple[int, int] | None = None
    pre_activation: bool = False
    fn: ActsFn | None = field(default=None, compare=False)
    pool: Literal["mean", "max"] = "mean"  # channel terms: how the map becomes one number


@dataclass(frozen=True)
class Objective:
    """A weighted sum of terms; higher is better. Compose with ``+``, ``-`` and ``* float``."""

    terms: tuple[tuple[float, Term], ...]
    name: str = ""

    # --- algebra -------------------------------------------------------------------------
    def __add__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms, f"{self.name} + {other.name}")

    def __radd__(self, other: object) -> Objective:
        if other == 0:  # sum() starts from 0
            return self
        return NotImplemented

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, int | float):
            return NotImplemented
        return Objective(tuple((w * k, t) for w, t in self.terms), f"{k:g} * ({self.name})")

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return Objective(tuple((-w, t) for w, t in self.terms), f"-({self.name})")

    def __sub__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + (-other).terms, f"{self.name} - {other.name}")

    def __str__(self) -> str:
        return self.name

    # --- queries -------------------------------------------------------------------------
    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.layer for _, t in self.terms))

    def __call__(self, acts: dict) -> torch.Tensor:  # type: ignore[type-arg]
        """Score every batch item with this one objective: (N,)."""
        n = next(iter(acts.values())).shape[0]
        return compile_objectives([self] * n)(acts)


def channel(
    layer: str, index: int, *, pre_activation: bool = False, pool: Literal["mean", "max"] = "mean"
) -> Objective:
    """Spatial mean of channel ``index`` of ``layer`` (the blog's filter objective).

    ``pool="max"``: its largest value instead (the peak, which verification compares).
    """
    term = Term("channel", layer, index, None, pre_activation, pool=pool)
    name = f"{layer}:{index}" if pool == "mean" else f"max {layer}:{index}"
    return Objective(((1.0, term),), name)


def neuron(
    layer: str, index: int, position: tuple[int, int], *, pre_activation: bool = False
) -> Objective:
    """One neuron: channel ``index`` of ``layer`` at map ``position`` (row, col)."""
    term = Term("neuron", layer, index, (int(position[0]), int(position[1])), pre_activation)
    return Objective(((1.0, term),), f"{layer}:{index}@{position[0]},{position[1]}")


def class_score(logits_layer: str, index: int) -> Objective:
    """The pre-softmax score of class ``index`` (``logits_layer`` is ``lens.logits_layer``)."""
    return Objective(((1.0, Term("class", logits_layer, index, None, True)),), f"class:{index}")


def class_logprob(logits_layer: str, index: int) -> Objective:
    """The log-probability of class ``index``: rises only if the class beats the others."""
    return Objective(((1.0, Term("logprob", logits_layer, index, None, True)),), f"log p({index})")


def custom(fn: ActsFn, layers: Sequence[str], name: str = "custom") -> Objective:
    """Any differentiable ``fn(acts) -> (N,)``; ``layers`` are the activations it reads."""
    if not layers:
        raise ValueError("a custom objective must name the layers it reads")
    terms = tuple(
        (1.0 if i == 0 else 0.0, Term("custom", layer, fn=fn if i == 0 else None))
        for i, layer in enumerate(layers)
    )
    return Objective(terms, name)


def from_unit(unit: Unit, *, pre_activation: bool = False) -> Objective:
    """The objective of a resolved :class:`~convlens.units.Unit`."""
    if unit.kind == "class":
        return class_score(unit.layer, unit.channel)
    if unit.kind == "neuron":
        assert unit.position is not None
        return neuron(unit.layer, unit.channel, unit.position, pre_activation=pre_activation)
    return channel(unit.layer, unit.channel, pre_activation=pre_activation)


def needed(objectives: Sequence[Objective]) -> dict[str, bool]:
    """Layers the objectives read, and whether any term wants them before the activation."""
    out: dict[str, bool] = {}
    for obj in objectives:
        for _, t in obj.terms:
            out[t.layer] = out.get(t.layer, False) or t.pre_activation
    return out


class CompiledObjectives:
    """Item i of the batch scored by objective i, as a few gathers (one per layer and kind).

    ``acts`` maps ``layer`` to post-activation values and ``(layer, "pre")`` to pre-activation
    values where a term asks for them (missing: the layer has no activation of its own, and its
    plain entry is used).
    """

    def __init__(self, objectives: Sequence[Objective]) -> None:
        self.n = len(objectives)
        groups: dict[tuple[str, str, bool], list[tuple[int, float, Term]]] = defaultdict(list)
        customs: dict[int, tuple[ActsFn, list[int], list[float]]] = {}
        for i, obj in enumerate(objectives):
            for w, t in obj.terms:
                if t.kind == "custom":
                    if t.fn is not None and w != 0.0:
                        _, items, weights = customs.setdefault(id(t.fn), (t.fn, [], []))
                        items.append(i)
                        weights.append(w)
                else:
                    kind = "channel_max" if t.kind == "channel" and t.pool == "max" else t.kind
                    groups[(kind, t.layer, t.pre_activation)].append((i, w, t))
        self.groups: list[tuple[str, str | tuple[str, str], dict[str, torch.Tensor]]] = []
        for (kind, layer, pre), rows in groups.items():
            data = {
                "item": torch.tensor([r[0] for r in rows], dtype=torch.long),
                "weight": torch.tensor([r[1] for r in rows], dtype=torch.float32),
                "channel": torch.tensor([r[2].channel for r in rows], dtype=torch.long),
            }
            if kind == "neuron":
                data["row"] = torch.tensor([r[2].position[0] for r in rows], dtype=torch.long)  # type: ignore[index]
                data["col"] = torch.tensor([r[2].position[1] for r in rows], dtype=torch.long)  # type: ignore[index]
            key: str | tuple[str, str] = (layer, "pre") if pre else layer
            self.groups.append((kind, key, data))
        # One call per distinct custom function, whatever the number of items using it.
        self.customs = [
            (fn, torch.tensor(items, dtype=torch.long), torch.tensor(weights))
            for fn, items, weights in customs.values()
        ]

    def to(self, device: torch.device) -> CompiledObjectives:
        for _, _, data in self.groups:
            for k, v in data.items():
                data[k] = v.to(device)
        self.customs = [(fn, i.to(device), w.to(device)) for fn, i, w in self.customs]
        return self

    def __call__(self, acts: dict) -> torch.Tensor:  # type: ignore[type-arg]
        first = next(iter(acts.values()))
        scores = torch.zeros(self.n, device=first.device, dtype=first.dtype)
        for kind, key, d in self.groups:
            # A layer read without a separate pre-activation entry has no own activation.
            a = acts[key] if key in acts or isinstance(key, str) else acts[key[0]]
            if kind == "neuron":
                v = a[d["item"], d["channel"], d["row"], d["col"]]
            elif kind == "logprob":
                v = torch.log_softmax(a[d["item"]], dim=1).gather(1, d["channel"][:, None])[:, 0]
            else:
                v = a[d["item"], d["channel"]]
                if v.dim() > 1:
                    v = v.flatten(1).amax(1) if kind == "channel_max" else v.flatten(1).mean(1)
            scores = scores.index_add(0, d["item"], v * d["weight"])
        for fn, items, weights in self.customs:
            scores = scores.index_add(0, items, fn(acts)[items] * weights.to(scores.dtype))
        return scores


def compile_objectives(objectives: Sequence[Objective]) -> CompiledObjectives:
    return CompiledObjectives(objectives)
