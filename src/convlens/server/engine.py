"""What one update of the live app computes, for a batch of drawings on one model.

Prediction + the maps of every conv layer + the dense layers come from ONE no-grad forward pass
(:meth:`Lens.forward` capturing all of them, the logits read from the same pass when that is
verified to equal :meth:`Lens.logits`); the heatmap is :func:`convlens.attribute` with the target
given, so it does not predict again. Drawings of several clients that wait at the same time run
as one batch (grouped by method), which is where the throughput with many clients comes from.

The engine holds no per-client state, and every hook it (or an analysis) adds is removed before
a call returns, so it can serve any number of requests without growing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConvlensError, UnitError, UnknownNameError
from ..lens import Lens
from ..units import Unit, resolve_units
from ..viz.attribution import attribute, get_method, method_names, method_options
from ..viz.attribution.cam import cam_layer
from ..viz.faithfulness import DEFAULT_STEPS, faithfulness
from .protocol import Blob


@dataclass(frozen=True)
class Request:
    """One drawing to analyse: pixels (C, H, W) in the model's range, and what to explain."""

    x: np.ndarray
    method: str = "gradient"
    target: int | None = None  # None: the predicted class
    layer: str | None = None  # CAM layer (None: the method's default, the last conv layer)
    focus: Unit | None = None
    focus_error: dict[str, str] | None = None  # a focus that did not resolve, said back


@dataclass
class Result:
    """Everything the page shows for one drawing on one model (arrays on the CPU)."""

    probabilities: np.ndarray  # (K,)
    logits: np.ndarray  # (K,)
    maps: dict[str, np.ndarray]  # conv layer -> (C, h, w)
    dense: dict[str, np.ndarray]  # hidden dense layer -> (F,)
    heat: np.ndarray  # (H, W) signed
    native: np.ndarray | None  # (h, w) for CAM methods
    target: int
    method: str
    options: dict[str, Any]
    focus: dict[str, Any] | None = None
    seconds: float = 0.0

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))


@dataclass
class Curves:
    """Deletion/insertion curves of one heatmap, with the random-order baseline."""

    fractions: list[float]
    deletion: list[float]
    insertion: list[float]
    random_deletion: list[float]
    random_insertion: list[float]
    aucs: dict[str, float]
    protocol: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "fractions": self.fractions,
            "deletion": self.deletion,
            "insertion": self.insertion,
            "random_deletion": self.random_deletion,
            "random_insertion": self.random_insertion,
            "aucs": self.aucs,
            "protocol": self.protocol,
        }


def _round(values: Any) -> list[float]:
    return [round(float(v), 5) for v in np.asarray(values).reshape(-1)]


class Engine:
    """The live computations of one Lens, serialized by a lock (hooks live on shared modules)."""

    def __init__(self, lens: Lens, *, seed: int = 0) -> None:
        self.lens = lens
        self.seed = seed
        self.conv = [info.name for info in lens.conv_layers()]
        self.dense = [
            info.name
            for info in lens.layers
            if info.kind == "dense" and info.name != lens.logits_layer
        ]
        self.lock = threading.Lock()
        self._units: OrderedDict[str, Unit] = OrderedDict()
        self.logits_in_pass = self._logits_in_pass()

    # --- checks made before a request is queued (so one bad request never fails a batch) ----
    def check(self, method: str, target: int | None, layer: str | None) -> str | None:
        """Validate method, target and CAM layer; returns the layer the method will use."""
        get_method(method)
        if target is not None and not 0 <= target < self.num_classes:
            raise UnitError(
                f"target class {target} is out of range: the model has {self.num_classes} classes"
            )
        if "layer" in method_options(method):
            return cam_layer(self.lens, layer)
        if layer is not None:
            raise UnknownNameError(f"method {method!r} takes no layer; only the CAM methods do")
        return None

    def unit(self, text: str) -> Unit:
        """One unit from its string (cached); a list, range or ``*`` is refused."""
        if text in self._units:
            self._units.move_to_end(text)
            return self._units[text]
        units = resolve_units(self.lens, text)
        if len(units) != 1:
            raise UnitError(f"{text!r} names {len(units)} units; the app shows one at a time")
        self._units[text] = units[0]
        if len(self._units) > 512:
            self._units.popitem(last=False)
        return units[0]

    @property
    def num_classes(self) -> int:
        shape = self.lens.layer(self.lens.logits_layer).output_shape
        return self.lens.num_classes or int(shape[0])

    # --- the update ------------------------------------------------------------------------
    def run(self, requests: Sequence[Request]) -> list[Result]:
        """Prediction, activations and heatmap for every request, batched."""
        if not requests:
            return []
        start = time.perf_counter()
        lens = self.lens
        with self.lock:
            x = torch.from_numpy(np.stack([r.x for r in requests])).to(lens.device)
            names = self.conv + self.dense
            with torch.no_grad():
                if self.logits_in_pass:
                    acts = lens.forward(x, [*names, lens.logits_layer])
                    logits = acts[lens.logits_layer]
                else:
                    acts = lens.forward(x, names) if names else {}
                    logits = lens.logits(x)
                probs = torch.softmax(logits, dim=-1)
            predicted = logits.argmax(dim=1).tolist()
            targets = [
                r.target if r.target is not None else p
                for r, p in zip(requests, predicted, strict=True)
            ]
            heat: list[np.ndarray | None] = [None] * len(requests)
            native: list[np.ndarray | None] = [None] * len(requests)
            options: list[dict[str, Any]] = [{}] * len(requests)
            groups: dict[tuple[str, str | None], list[int]] = {}
            for i, r in enumerate(requests):
                groups.setdefault((r.method, r.layer), []).append(i)
            for (method, layer), idx in groups.items():
                hm = attribute(
                    lens, x[idx], [targets[i] for i in idx], method, **self._options(method, layer)
                )
                shown = {k: v for k, v in hm.options.items() if k != "batch_size"}
                for k, i in enumerate(idx):
                    heat[i] = hm.values[k].numpy()
                    native[i] = None if hm.native is None else hm.native[k].numpy()
                    options[i] = shown
            maps = {name: acts[name].detach().float().cpu().numpy() for name in self.conv}
            dense = {
                name: acts[name].detach().float().cpu().reshape(len(x), -1).numpy()
                for name in self.dense
            }
            logits_np = logits.detach().float().cpu().numpy()
            probs_np = probs.detach().float().cpu().numpy()
        seconds = (time.perf_counter() - start) / len(requests)
        results = []
        for i, r in enumerate(requests):
            result = Result(
                probabilities=probs_np[i],
                logits=logits_np[i],
                maps={k: v[i] for k, v in maps.items()},
                dense={k: v[i] for k, v in dense.items()},
                heat=heat[i],  # type: ignore[arg-type]
                native=native[i],
                target=int(targets[i]),
                method=r.method,
                options=options[i],
                seconds=seconds,
            )
            if r.focus is not None:
                result.focus = self.focus(r.focus, result)
            elif r.focus_error is not None:
                result.focus = r.focus_error
            results.append(result)
        return results

    def _options(self, method: str, layer: str | None) -> dict[str, Any]:
        allowed = method_options(method)
        opts: dict[str, Any] = {}
        if "layer" in allowed and layer is not None:
            opts["layer"] = layer
        if "seed" in allowed:
            opts["seed"] = self.seed
        if method == "integrated_gradients":
            opts["baseline"] = "blurred"  # black is blind on MNIST's black background
        return opts

    def focus(self, unit: Unit, result: Result) -> dict[str, Any]:
        """The exact value of the unit in focus now, where it fired and the field it sees."""
        out: dict[str, Any] = {"unit": str(unit), "kind": unit.kind}
        if unit.kind == "class":
            out["value"] = float(result.logits[unit.channel])
            out["probability"] = float(result.probabilities[unit.channel])
            return out
        info = self.lens.layer(unit.layer)
        if unit.layer in result.maps:
            plane = result.maps[unit.layer][unit.channel]
            if unit.position is not None:
                r, c = unit.position
            else:
                r, c = divmod(int(np.argmax(plane)), plane.shape[1])
            out["value"] = float(plane[r, c])
            out["max"] = float(plane.max())
            out["mean"] = float(plane.mean())
            out["position"] = [int(r), int(c)]
            if info.rf is not None:
                h, w = self.lens.spec.height, self.lens.spec.width
                out["window"] = list(info.rf.clipped_window(int(r), int(c), h, w))
        elif unit.layer in result.dense:
            out["value"] = float(result.dense[unit.layer][unit.channel])
        return out

    # --- deletion / insertion ------------------------------------------------------------------
    def curves(self, items: Sequence[tuple[np.ndarray, np.ndarray, int]]) -> list[Curves]:
        """Deletion/insertion curves (and random order) of (pixels, heatmap, target) items."""
        if not items:
            return []
        with self.lock:
            x = torch.from_numpy(np.stack([i[0] for i in items])).to(self.lens.device)
            values = torch.from_numpy(np.stack([i[1] for i in items]))
            target = [int(i[2]) for i in items]
            f = faithfulness(self.lens, x, values, target, steps=DEFAULT_STEPS, seed=self.seed)
        out = []
        assert f.random_deletion_curve is not None and f.random_insertion_curve is not None
        assert f.random_deletion_auc is not None and f.random_insertion_auc is not None
        for k in range(len(items)):
            out.append(
                Curves(
                    fractions=_round(f.fractions),
                    deletion=_round(f.deletion_curve[k]),
                    insertion=_round(f.insertion_curve[k]),
                    random_deletion=_round(f.random_deletion_curve[k]),
                    random_insertion=_round(f.random_insertion_curve[k]),
                    aucs={
                        "deletion": round(float(f.deletion_auc[k]), 4),
                        "insertion": round(float(f.insertion_auc[k]), 4),
                        "random_deletion": round(float(f.random_deletion_auc[k]), 4),
                        "random_insertion": round(float(f.random_insertion_auc[k]), 4),
                    },
                    protocol=f.protocol,
                )
            )
        return out

    def _logits_in_pass(self) -> bool:
        """Whether the logits layer's output IS :meth:`Lens.logits` (then one pass gives both)."""
        lens = self.lens
        if lens.logits_from_input or not lens.logits_layer:
            return False
        gen = torch.Generator().manual_seed(0)
        lo, hi = lens.spec.value_range
        x = (torch.rand(2, *lens.spec.shape, generator=gen) * (hi - lo) + lo).to(lens.device)
        try:
            with torch.no_grad():
                a = lens.forward(x, [lens.logits_layer])[lens.logits_layer]
                b = lens.logits(x)
        except (RuntimeError, ConvlensError):
            return False
        return a.shape == b.shape and bool(torch.allclose(a, b, rtol=1e-5, atol=1e-6))


def layer_scale(maps: np.ndarray) -> tuple[str, float, float]:
    """One colour scale for a layer's maps: 0..max on viridis, or ±max diverging if signed.

    The same rule as the activation figures (``images.activations``), so the app and the
    pictures convlens writes read alike. Non-finite values are left out of the range.
    """
    mn, mx = float(maps.min()), float(maps.max())
    if not (np.isfinite(mn) and np.isfinite(mx)):
        finite = maps[np.isfinite(maps)]
        mn = float(finite.min()) if finite.size else 0.0
        mx = float(finite.max()) if finite.size else 1.0
    if mn < 0:
        m = max(-mn, mx) or 1.0
        return "diverging", -m, m
    return "sequential", 0.0, mx if mx > 0 else 1.0


def quantize(maps: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Maps -> one byte per value over [lo, hi] (the layer's colour scale; NaN -> 0)."""
    t = (maps - np.float32(lo)) * np.float32(255.0 / (hi - lo)) + np.float32(0.5)
    if not np.isfinite(t).all():
        t = np.nan_to_num(t, nan=0.0, posinf=255.0, neginf=0.0)
    np.clip(t, 0, 255, out=t)
    return t.astype(np.uint8)


def update_blobs(result: Result, class_names: Sequence[str]) -> tuple[dict[str, Any], list[Blob]]:
    """The header fields and arrays of one update frame (see :mod:`.protocol`)."""
    blobs = [
        Blob("probabilities", result.probabilities.astype(np.float32), "probabilities"),
        Blob("logits", result.logits.astype(np.float32), "logits"),
    ]
    for name, maps in result.maps.items():
        cmap, lo, hi = layer_scale(maps)
        blobs.append(Blob(name, quantize(maps, lo, hi), "conv", {"lo": lo, "hi": hi, "cmap": cmap}))
    for name, values in result.dense.items():
        blobs.append(Blob(name, values.astype(np.float32), "dense"))
    scale = float(np.abs(result.heat).max()) if result.heat.size else 0.0
    blobs.append(Blob("heat", result.heat.astype(np.float32), "heat", {"scale": scale}))
    if result.native is not None:
        blobs.append(Blob("native", result.native.astype(np.float32), "native", {"scale": scale}))
    predicted = result.predicted
    header = {
        "predicted": predicted,
        "predicted_name": class_names[predicted]
        if predicted < len(class_names)
        else str(predicted),
        "probability": float(result.probabilities[predicted]),
        "target": result.target,
        "method": result.method,
        "options": result.options,
        "focus": result.focus,
        "seconds": round(result.seconds, 6),
    }
    return header, blobs


def available_methods() -> list[dict[str, Any]]:
    """Every attribution method with its one-line summary and whether it is a CAM."""
    out = []
    for name in method_names():
        cls = get_method(name)
        out.append({"name": name, "summary": cls.summary, "cam": bool(cls.cam)})
    return out
