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
MAX_UNITS = 100_000  # units in one request (a list is checked as it is read, not after)
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
# Numbers in units are ASCII digits only (no '²', no Arabic-Indic digits), at most 9 of them:
# every index is checked against the layer's size before any list of units is built.
_NUMBER = re.compile(r"[0-9]{1,9}", re.ASCII)
_RANGE = re.compile(r"([0-9]{1,9})-([0-9]{1,9})", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def _short(text: str) -> str:
    """A user's text for a message, cut when long (a pasted megabyte stays one short line)."""
    return text if len(text) <= 24 else text[:20] + "..."


def _is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def split_unit_list(text: str) -> list[str]:
    """Split a comma list, keeping the comma inside a neuron position ``@7,7``."""
    items: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if items and "@" in items[-1] and items[-1].count(",") == 0 and _DIGITS.fullmatch(piece):
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
        if len(units) > MAX_UNITS:
            raise UnitError(f"more than {MAX_UNITS:,} units requested; ask for fewer at a time")
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
        if match := _RANGE.fullmatch(part):
            lo, hi = int(match[1]), int(match[2])
            if lo > hi:
                raise UnitError(f"range {part!r} of {layer} runs backwards; write {hi}-{lo}")
            if hi >= count:  # checked before the range is built: 0-9999999999 costs nothing
                raise UnitError(f"{layer} has {count} channels (0-{count - 1}); got {_short(part)}")
            indices.extend(range(lo, hi + 1))
            if len(indices) > MAX_UNITS:
                raise UnitError(f"more than {MAX_UNITS:,} units requested; ask for fewer at a time")
        elif _is_number(part):
            if int(part) >= count:
                raise UnitError(f"{layer} has {count} channels (0-{count - 1}); got {part}")
            indices.append(int(part))
        else:
            if _DIGITS.fullmatch(part) or re.fullmatch(r"[0-9]+-[0-9]+", part, re.ASCII):
                raise UnitError(f"{layer} has {count} channels (0-{count - 1}); got {_short(part)}")
            raise UnitError(
                f"cannot read channel {_short(part)!r} of {layer}; use a number (ASCII digits), "
                "A-B or *"
            )
    return indices


def _position(text: str, rows: int, cols: int, item: str) -> tuple[int, int]:
    if text.strip().lower() in ("c", "center", "centre"):
        return rows // 2, cols // 2
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(_DIGITS.fullmatch(p) for p in parts):
        raise UnitError(
            f"{item!r}: write the neuron position as @ROW,COL in ASCII digits (e.g. @7,7) or "
            "@center"
        )
    if not all(_is_number(p) for p in parts):
        raise UnitError(
            f"{_short(item)!r}: position {_short(text)!r} is outside the {rows}x{cols} map"
        )
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
        elif match := _RANGE.fullmatch(key):
            lo, hi = int(match[1]), int(match[2])
            if lo > hi:
                raise UnitError(f"class range {key!r} runs backwards; write {hi}-{lo}")
            if hi >= n:
                raise UnitError(f"the model has {n} classes (0-{n - 1}); got class {_short(key)}")
            out.extend(range(lo, hi + 1))
            if len(out) > MAX_UNITS:
                raise UnitError(f"more than {MAX_UNITS:,} units requested; ask for fewer at a time")
        elif _is_number(key):
            if int(key) >= n:
                raise UnitError(f"the model has {n} classes (0-{n - 1}); got class {key}")
            out.append(int(key))
        elif _DIGITS.fullmatch(key) or re.fullmatch(r"[0-9]+-[0-9]+", key, re.ASCII):
            raise UnitError(f"the model has {n} classes (0-{n - 1}); got class {_short(key)}")
        else:
            raise UnitError(did_you_mean(_short(part), list(lens.class_names), "class"))
    return out
