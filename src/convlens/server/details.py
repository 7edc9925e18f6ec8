"""Unit and class details computed on demand (no atlas): kernel, examples, render, prototype.

They run on a private copy of the model, so a render that takes seconds never holds up the live
drawing (whose engine owns the original and its hooks), on one thread per model, and every
result is kept in a bounded cache: a unit's details are computed once per server.
Pictures travel as small PNG data URLs (no file is written, no path is ever served).
"""

from __future__ import annotations

import base64
import copy
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from ..data import Dataset
from ..errors import ConvlensError
from ..images.atlas import kernel_mosaic
from ..images.examples import pixels_rgb
from ..lens import Lens
from ..units import Unit
from ..viz.examples import examples
from ..viz.kernels import kernels

T = TypeVar("T")
EXAMPLES_K = 9
CACHE_ITEMS = 256


def png_picture(rgb: np.ndarray) -> dict[str, Any]:
    """A uint8 (H, W, 3) picture as a PNG data URL the page can draw (enlarged, crisp)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return {
        "src": f"data:image/png;base64,{data}",
        "box": None,
        "w": rgb.shape[1],
        "h": rgb.shape[0],
    }


class LRU:
    """A small thread-safe least-recently-used cache (bounded: memory stays flat)."""

    def __init__(self, size: int = CACHE_ITEMS) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or(self, key: Any, make: Callable[[], T]) -> T:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]  # type: ignore[no-any-return]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


def private_copy(lens: Lens) -> Lens:
    """The same Lens on a deep copy of its model (its own modules, so its own hooks)."""
    try:
        return lens.with_model(copy.deepcopy(lens.model))
    except Exception:  # a model that cannot be copied shares the original (slower, still safe)
        return lens


class Details:
    """Computes the details of units and classes of one model, cached."""

    def __init__(self, lens: Lens, dataset: Callable[[], Dataset], *, seed: int = 0) -> None:
        self.lens = private_copy(lens)
        self.dataset = dataset
        self.seed = seed
        self.cache = LRU()
        self.lock = threading.Lock()  # one analysis at a time on the private copy

    def _vr(self) -> tuple[float, float]:
        lo, hi = self.lens.spec.value_range
        return float(lo), float(hi)

    # --- quick parts: kernel, examples ---------------------------------------------------------
    def unit(self, unit: Unit) -> dict[str, Any]:
        """Kernel and top real examples of a channel, neuron or dense unit (render: see below)."""
        return self.cache.get_or(("unit", str(unit)), lambda: self._unit(unit))

    def _unit(self, unit: Unit) -> dict[str, Any]:
        out: dict[str, Any] = {"source": "computed", "kernel": None}
        info = self.lens.layer(unit.layer)
        if info.kind == "conv":
            w = kernels(self.lens, unit.layer)
            scale = float(w.abs().max()) or 1.0
            out["kernel"] = {
                "picture": png_picture(kernel_mosaic(w[unit.channel].numpy(), scale)),
                "shape": list(w.shape[1:]),
                "scale": scale,
            }
        out["examples"] = self._examples(unit)
        return out

    def _examples(self, unit: Unit) -> dict[str, Any]:
        # A channel's examples come from mining its whole layer once (one pass serves them all).
        if unit.kind == "channel":
            mined = self.cache.get_or(
                ("layer-examples", unit.layer), lambda: self._mine(f"{unit.layer}:*")
            )
        else:
            mined = self._mine(str(unit))
        ex = mined[str(unit)]
        vr = self._vr()
        items = []
        for k in range(len(ex.values)):
            items.append(
                {
                    "image": png_picture(pixels_rgb(ex.images[k], vr)),
                    "crop": png_picture(_hatched(pixels_rgb(ex.crops[k], vr), ex.crop_mask[k]))
                    if ex.locations is not None
                    else None,
                    "value": float(ex.values[k]),
                    "label": int(ex.labels[k]) if ex.labels is not None else None,
                    "index": int(ex.indices[k]),
                    "window": [int(v) for v in ex.windows[k].tolist()],
                }
            )
        return {"score": ex.score, "items": items}

    def _mine(self, spec: str) -> Any:
        data = self.dataset()
        with self.lock:
            return examples(self.lens, spec, data, k=EXAMPLES_K, split="val", progress=False)

    # --- slow parts: render, prototype -------------------------------------------------------
    def render(self, unit: Unit) -> dict[str, Any]:
        """The unit's feature visualization with its verification ratio r (cached)."""
        return self.cache.get_or(("render", str(unit)), lambda: self._render(unit))

    def _render(self, unit: Unit) -> dict[str, Any]:
        from ..viz.render import render

        data = self._dataset_or_none()
        with self.lock:
            result = render(self.lens, [unit], seed=self.seed, data=data, progress=False)
        vr = self._vr()
        image = result.crops[0] if result.crops[0] is not None else result.images[0]
        return {
            "picture": png_picture(pixels_rgb(image, vr)),
            "placed": png_picture(pixels_rgb(result.images[0], vr))
            if result.crops[0] is not None
            else None,
            "r": _num(result.ratio[0]),
            "r_mean": _num(result.r_mean[0]),
            "match": _num(result.match[0]),
            "activation": _num(result.activation[0]),
            "reference": _num(result.reference[0]),
            "status": result.status[0],
            "reason": result.reason[0],
            "what": unit.kind,
            "seconds": round(result.seconds, 2),
        }

    def prototype(self, index: int) -> dict[str, Any]:
        """The class's rendered prototype, verified by the model's own verdict (cached)."""
        return self.cache.get_or(("prototype", index), lambda: self._prototype(index))

    def _prototype(self, index: int) -> dict[str, Any]:
        from ..viz.prototypes import prototypes

        data = self._dataset_or_none()
        with self.lock:
            result = prototypes(self.lens, [index], seed=self.seed, data=data, progress=False)
        vr = self._vr()
        d = result.deaveraged[0]
        m = float(d.abs().max()) or 1.0
        signed = pixels_rgb((d / (2 * m) + 0.5).clamp(0, 1), (0.0, 1.0))
        return {
            "source": "computed",
            "picture": png_picture(pixels_rgb(result.images[0], vr)),
            "deaveraged": png_picture(signed) if len(result.classes) > 1 else None,
            "probability": float(result.probability[0]),
            "predicted": int(result.predicted[0]),
        }

    def _dataset_or_none(self) -> Dataset | None:
        try:
            return self.dataset()
        except ConvlensError:
            return None  # renders still run; they are just not verified against real data


def _hatched(rgb: np.ndarray, mask: torch.Tensor) -> np.ndarray:
    """Mark the part of a receptive-field crop that lies outside the image (padding)."""
    m = mask.numpy().astype(bool)
    if m.all():
        return rgb
    out = rgb.copy()
    yy, xx = np.indices(m.shape)
    out[~m & ((yy + xx) % 3 == 0)] = (110, 140, 190)
    return out


def _num(v: Any) -> float | None:
    x = float(v)
    return x if np.isfinite(x) else None
