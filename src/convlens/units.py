"""The unit grammar: what an analysis targets, written the same way in the CLI, API and URLs.

``conv2d_3:12`` one channel; ``conv2d_3:*`` all; ``conv2d_3:0-15`` a range; ``conv2d_3:12@7,7``
one neuron (row 7, col 7); ``conv2d_3:12@center`` the centre neuron; ``class:3`` or
``class:seven`` an output class (its pre-softmax score); ``class:*`` every class. Several units:
a comma list, e.g. ``conv2d_1:*,conv2d_4:0-15,class:*``.

A layer's units are its values after its activation; ``conv2d_3:pre:12`` (``:pre:`` before any
channel selector, e.g. ``conv2d_3:pre:*``, ``conv2d_3:pre:12@7,7``) reads the value before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .errors import UnitError, did_you_mean

if TYPE_CHECKING:
    from .lens import Lens

UnitKind = Literal["channel", "neuron", "class"]
UNIT_LAYER_KINDS = ("conv", "dense", "block")
PRE = "pre:"  # the selector prefix for values before the layer's activation
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass(frozen=True)
class Unit:
    """A resolved target: a channel or neuron of a layer, or a class score of the logits layer."""

    kind: UnitKind
    layer: str
    channel: int
    position: tuple[int, int] | None = None
    pre: bool = False  # the value before the layer's activation

    def __str__(self) -> str:
        if self.kind == "class":
            return f"class:{self.channel}"
        text = f"{self.layer}:{PRE if self.pre else ''}{self.channel}"
        if self.position is not None:
            text += f"@{self.position[0]},{self.position[1]}"
        return text


_ITEM = re.compile(r"^(?P<layer>[^:@]+):(?P<sel>[^@]+?)(?:@(?P<pos>.+))?$")


def split_unit_list(text: str) -> list[str]:
    """Split a comma list, keeping the comma inside a neuron position ``@7,7``."""
    items: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if items and "@" in items[-1] and items[-1].count(",") == 0 and re.fullmatch(r"\d+", piece):
            items[-1] += "," + piece
        else:
            items.append(piece)
    return items


def resolve_units(lens: Lens, spec: str | Iterable[str]) -> list[Unit]:
    """Parse unit strings and check them against the Lens; one-line errors list what exists."""
    items = (
        split_unit_list(spec)
        if isinstance(spec, str)
        else [s for t in spec for s in split_unit_list(t)]
    )
    if not items:
        raise UnitError("no units given; write e.g. 'conv2d_1:*', 'conv2d_3:12@7,7' or 'class:3'")
    units: list[Unit] = []
    for item in items:
        units.extend(_resolve_one(lens, item))
    return list(dict.fromkeys(units))


def _resolve_one(lens: Lens, item: str) -> list[Unit]:
    match = _ITEM.match(item)
    if not match:
        raise UnitError(
            f"cannot read unit {item!r}; write LAYER:CHANNEL (conv2d_3:12), LAYER:* , "
            "LAYER:A-B, LAYER:C@ROW,COL, LAYER:pre:C (before the activation) or class:N"
        )
    layer_name, selector, position = match["layer"].strip(), match["sel"].strip(), match["pos"]
    if selector == PRE[:-1]:
        raise UnitError(f"{item!r}: name the channels too, e.g. {layer_name}:pre:* or :pre:3")
    pre = selector.startswith(PRE)
    if pre:
        selector = selector[len(PRE) :].strip()
    if layer_name == "class":
        if position is not None:
            raise UnitError(f"{item!r}: class units have no position")
        if pre:
            raise UnitError(f"{item!r}: class units are already pre-softmax scores; drop ':pre'")
        return [Unit("class", lens.logits_layer, c) for c in _class_indices(lens, selector)]
    if layer_name not in lens.layer_names:
        raise UnitError(lens.unknown_layer(layer_name))
    info = lens.layer(layer_name)
    if info.kind not in UNIT_LAYER_KINDS:
        from .lens import kind_phrase  # lazily: this module stays importable without torch

        usable = [i.name for i in lens.layers if i.kind in UNIT_LAYER_KINDS]
        raise UnitError(
            f"layer {layer_name!r} is {kind_phrase(info.kind)}; units live on conv or dense "
            "layers: " + ", ".join(usable)
        )
    channels = _channel_indices(selector, info.channels, layer_name)
    if position is None:
        return [Unit("channel", layer_name, c, pre=pre) for c in channels]
    if not info.is_spatial:
        raise UnitError(
            f"{item!r}: {layer_name} is not spatial (shape {info.output_shape}); drop '@'"
        )
    pos = _position(position, info.output_shape[1], info.output_shape[2], item)
    return [Unit("neuron", layer_name, c, pos, pre=pre) for c in channels]


def _channel_indices(selector: str, count: int, layer: str) -> list[int]:
    if selector == "*":
        return list(range(count))
    indices: list[int] = []
    for part in selector.split("+"):
        if re.fullmatch(r"\d+-\d+", part):
            lo, hi = (int(v) for v in part.split("-"))
            if lo > hi:
                raise UnitError(f"range {part!r} of {layer} runs backwards; write {hi}-{lo}")
            indices.extend(range(lo, hi + 1))
        elif re.fullmatch(r"\d+", part):
            indices.append(int(part))
        else:
            raise UnitError(f"cannot read channel {part!r} of {layer}; use a number, A-B or *")
    bad = [i for i in indices if i >= count]
    if bad:
        raise UnitError(f"{layer} has {count} channels (0-{count - 1}); got {bad[0]}")
    return indices


def _position(text: str, rows: int, cols: int, item: str) -> tuple[int, int]:
    if text.strip().lower() in ("c", "center", "centre"):
        return rows // 2, cols // 2
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UnitError(f"{item!r}: write the neuron position as @ROW,COL (e.g. @7,7) or @center")
    r, c = (int(p) for p in parts)
    if r >= rows or c >= cols:
        raise UnitError(
            f"{item!r}: position ({r}, {c}) is outside the {rows}x{cols} map "
            f"(rows 0-{rows - 1}, cols 0-{cols - 1})"
        )
    return r, c


def _class_indices(lens: Lens, selector: str) -> list[int]:
    n = lens.num_classes
    if selector == "*":
        return list(range(n))
    out = []
    names = [c.lower() for c in lens.class_names]
    for part in selector.split("+"):
        key = part.strip().lower()
        if key in names:
            out.append(names.index(key))
        elif key in NUMBER_WORDS and str(NUMBER_WORDS.index(key)) in names:
            out.append(names.index(str(NUMBER_WORDS.index(key))))
        elif re.fullmatch(r"\d+-\d+", key):
            lo, hi = (int(v) for v in key.split("-"))
            out.extend(range(lo, hi + 1))
        elif key.isdigit():
            out.append(int(key))
        else:
            raise UnitError(did_you_mean(part, list(lens.class_names), "class"))
    bad = [c for c in out if c >= n]
    if bad:
        raise UnitError(f"the model has {n} classes (0-{n - 1}); got class {bad[0]}")
    return out
