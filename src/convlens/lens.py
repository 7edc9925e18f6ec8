"""The Lens: a model plus what it takes to read it (input spec, named layers, receptive fields).

Every analysis in convlens takes a Lens. Images handed to a Lens are in *pixel space* (the
spec's value range, e.g. [0, 1] for MNIST); the Lens applies the model's normalization itself,
so analyses never have to know about mean/std.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .display.base import LayerTable, Summarized
from .errors import UnknownNameError, did_you_mean
from .receptive import ReceptiveField, probe_receptive_fields
from .tracing.capture import Capture, Stop
from .tracing.kinds import LAYER_KINDS, layer_kind
from .tracing.plan import Activation, Point, Row, plan_rows
from .tracing.record import recorded_graph
from .tracing.trace import trace_graph

__all__ = ["LAYER_KINDS", "InputSpec", "LayerInfo", "Lens", "layer_kind", "resolve_layers"]


def kind_phrase(kind: str) -> str:
    """A layer kind with its article, for messages: "a conv layer", "an activation layer"."""
    return f"{'an' if kind[:1] in 'aeiou' else 'a'} {kind} layer"


@dataclass(frozen=True)
class InputSpec:
    """What the model expects: shape, pixel value range, normalization, class names."""

    channels: int
    height: int
    width: int
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    class_names: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel space -> model input: ``(x - mean) / std`` per channel (identity by default)."""
        if all(m == 0.0 for m in self.mean) and all(s == 1.0 for s in self.std):
            return x
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def describe(self) -> str:
        lo, hi = self.value_range
        text = f"{self.channels}x{self.height}x{self.width}, pixels in [{lo:g}, {hi:g}]"
        if not (all(m == 0.0 for m in self.mean) and all(s == 1.0 for s in self.std)):
            text += f", mean {list(self.mean)}, std {list(self.std)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "value_range": list(self.value_range),
            "mean": list(self.mean),
            "std": list(self.std),
            "class_names": list(self.class_names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            channels=int(data["channels"]),
            height=int(data["height"]),
            width=int(data["width"]),
            value_range=tuple(float(v) for v in data.get("value_range", (0.0, 1.0))),  # type: ignore[arg-type]
            mean=tuple(float(v) for v in data.get("mean", (0.0,))),
            std=tuple(float(v) for v in data.get("std", (1.0,))),
            class_names=tuple(str(c) for c in data.get("class_names", ())),
        )


@dataclass(frozen=True, repr=False)
class LayerInfo(Summarized):
    """One row of the layer table.

    A conv or dense row is the layer *after* its activation, wherever the activation is
    written; ``activation_source`` says where: ``attribute`` (the layer's own, as Keras'
    ``activation=``), ``module`` (an activation module after it), ``functional`` (a call in
    ``forward``) or ``none``. ``parts`` lists what the row merges (``features.0``, its batch
    norm, ``features.2``).
    """

    name: str
    kind: str
    type_name: str
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    order: int  # position in execution order
    rf: ReceptiveField | None  # None for non-spatial layers (dense, flatten)
    has_activation: bool  # a value before the activation exists (pre_activation=True reads it)
    activation: str = ""  # the activation's name (relu, leaky_relu, softmax), "" for none
    activation_source: str = "none"  # attribute, module, functional or none
    activation_where: str = ""  # the module path, or how the call is written ("F.relu()")
    parts: tuple[str, ...] = ()
    module_path: str | None = None  # the module holding the weights (None: a function call)

    @property
    def channels(self) -> int:
        return self.output_shape[0]

    @property
    def is_spatial(self) -> bool:
        return len(self.output_shape) == 3

    def describe_activation(self, framework: str = "") -> str:
        """Where the activation comes from: ``relu (F.relu() in forward)``, ``relu (module
        features.1)``, ``relu (own: conv2d_1.act)``, ``none``; in Keras' words for Keras models
        (``framework="keras"``: ``relu (Keras attribute activation='relu')``)."""
        if self.activation_source == "none":
            return "none"
        keras = framework == "keras"
        where = {
            "attribute": f"Keras attribute activation={self.activation!r}"
            if keras
            else f"own: {self.activation_where}",
            "module": f"{'Keras layer' if keras else 'module'} {self.activation_where}",
            "functional": f"{self.activation_where} in forward",
        }.get(self.activation_source, self.activation_where)
        return f"{self.activation} ({where})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "type": self.type_name,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "receptive_field": self.rf.to_dict() if self.rf else None,
            "activation": {
                "name": self.activation,
                "source": self.activation_source,
                "where": self.activation_where,
            }
            if self.activation_source != "none"
            else None,
            "parts": list(self.parts),
        }


class Replay(nn.Module):
    """A functional activation as a module (``F.leaky_relu(x, 0.1)``): the same call, with the
    same arguments, never in place; lets ``output_from_pre`` and hooks treat it as a layer."""

    def __init__(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.func, self.args = func, args
        self.kwargs = {**kwargs, "inplace": False} if "inplace" in kwargs else dict(kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if isinstance(self.func, str):  # a tensor method: x.relu()
            return getattr(x, self.func.rstrip("_"))(*self.args, **self.kwargs)
        return self.func(x, *self.args, **self.kwargs)


def activation_module(act: Activation) -> nn.Module:
    """The module applying a functional activation (``nn.ReLU`` for a plain relu)."""
    extra = {k: v for k, v in act.kwargs.items() if k != "inplace"}
    if act.name == "relu" and not act.args and not extra:
        return nn.ReLU()
    return Replay(act.func, act.args, act.kwargs)


@dataclass(repr=False)
class Lens(Summarized):
    """A model plus how to read it. Build with :func:`convlens.load` or :meth:`Lens.from_module`."""

    model: nn.Module
    spec: InputSpec
    layers: tuple[LayerInfo, ...]
    logits_layer: str
    logits_from_input: bool = False  # the final layer is a softmax: logits are its input
    source: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    _modules: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    tracing: str = ""  # how the layer table was found: "torch.fx" or "recorded"
    tracing_note: str = ""  # why torch.fx was not used, when it was not
    _rows: dict[str, Row] = field(default_factory=dict, repr=False)
    _acts: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    _channels_last: bool | None = field(default=None, repr=False)

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_module(
        cls,
        model: nn.Module,
        spec: InputSpec,
        *,
        source: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> Lens:
        """Wrap any ``nn.Module`` taking (N, C, H, W): find its layers, shapes and fields.

        The layers come from the model's graph (torch.fx, or one recorded forward pass where
        fx cannot trace it), checked by reading every one of them from the running model.
        """
        model.eval()
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        example = spec.normalize(torch.zeros(1, *spec.shape, device=device))
        graph = trace_graph(model, example)
        planned = plan_rows(graph, dict(model.named_modules()))
        rows, shapes = _reachable_rows(model, planned, example)
        if graph.method == "torch.fx" and len(rows) < len(planned):
            missing = ", ".join(r.name for r in planned if r not in rows)
            graph = recorded_graph(
                model, example, f"torch.fx's graph differs from what runs (no {missing})"
            )
            planned = plan_rows(graph, dict(model.named_modules()))
            rows, shapes = _reachable_rows(model, planned, example)
        final = next((r for r in rows if r.op == graph.output), rows[-1] if rows else None)
        lens = cls(
            model=model,
            spec=spec,
            layers=(),
            logits_layer=final.name if final else "",
            logits_from_input=final is not None and final.kind == "softmax",
            source=source or {},
            path=path,
            tracing=graph.method,
            tracing_note=graph.note,
            _rows={row.name: row for row in rows},
        )
        lens._acts = {
            row.name: _own_activation(model, row.activation)
            for row in rows
            if row.activation is not None and (row.activation.module_path is None or row.derived)
        }
        lens._modules = lens._layer_modules(model)
        spatial = [row.name for row in rows if len(shapes[row.name]) == 3]
        fields = probe_receptive_fields(
            lambda x: lens.forward(x, spatial), spatial, spec.channels, spec.height, spec.width
        )
        lens.layers = LayerTable(
            _layer_info(model, row, index, shapes[row.name], fields.get(row.name))
            for index, row in enumerate(rows)
        )
        return lens

    # --- lookup --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """What to call the model: its zoo architecture, its Keras name (or file), else its class.

        Never an internal class such as ``GraphModel``: pages and messages show this.
        """
        src = self.source or {}
        if src.get("name"):
            return str(src["name"])
        arch = (src.get("config") or {}).get("architecture") or {}
        if arch.get("name") == "graph":  # a converted Keras model: the name it was saved under
            graph = (arch.get("args") or {}).get("graph") or {}
            return str(graph.get("name") or (self.path.name if self.path else "graph"))
        if arch.get("name"):
            return str(arch["name"])
        if src.get("kind") == "torchscript" and src.get("file"):
            return Path(str(src["file"])).stem
        return type(self.model).__name__

    @property
    def logits_source(self) -> str:
        """The layer whose output *is* the logits: ``logits_layer``, or the layer feeding a
        final softmax (a Keras ``Dense(10, activation="softmax")`` splits into ``dense_3_logits``
        and the softmax ``dense_3``; a separate ``Activation("softmax")`` reads the layer before).
        """
        if not self.logits_from_input:
            return self.logits_layer
        wiring = getattr(self.model, "wiring", None)  # a GraphModel knows each node's inputs
        if wiring:
            inputs = dict(wiring).get(self.logits_layer) or ()
            if len(inputs) == 1 and inputs[0] in self._modules:
                return inputs[0]
        names = self.layer_names
        i = names.index(self.logits_layer) if self.logits_layer in names else 0
        return names[i - 1] if i > 0 else self.logits_layer

    @property
    def layer_names(self) -> list[str]:
        return [info.name for info in self.layers]

    @property
    def framework(self) -> str:
        """ "keras" for models converted from Keras (their names and words are Keras'), else ""."""
        return str(getattr(self.model, "convlens_framework", ""))

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.spec.class_names

    @property
    def num_classes(self) -> int:
        return len(self.spec.class_names)

    @property
    def device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def layer(self, name: str) -> LayerInfo:
        for info in self.layers:
            if info.name == name:
                return info
        raise UnknownNameError(self.unknown_layer(name))

    def unknown_layer(self, name: str) -> str:
        """The one-line message for a name that is no layer; a merged part says where it went."""
        for info in self.layers:
            if name in info.parts[1:]:
                use = (f"use {info.name} (after its activation) or {info.name}:pre:N (before it)"
                       if info.has_activation else f"use {info.name}")  # fmt: skip
                return f"{name!r} is part of layer {info.name!r} ({' + '.join(info.parts)}); {use}"
        return did_you_mean(name, self.layer_names, "layer")

    def module(self, name: str) -> nn.Module:
        """The module of a layer: its conv or dense module (the weights), block or layer module."""
        info = self.layer(name)
        if name not in self._modules:
            raise UnknownNameError(
                f"layer {name!r} is the call {info.type_name} in the model's forward; it has no "
                "module (conv, dense and block layers do)"
            )
        return self._modules[name]

    def with_model(self, model: nn.Module, **source: Any) -> Lens:
        """The same Lens reading another model of the same architecture (e.g. a snapshot).

        The layer table and receptive fields are reused rather than probed again; ``source``
        entries (e.g. ``epoch=3``) are merged into the new Lens's source.
        """
        named = dict(model.named_modules())
        missing = [path for path in self._paths() if path not in named]
        if missing:
            raise ValueError(f"the model lacks layers {missing[:3]} of this Lens")
        model.eval()
        lens = dataclasses.replace(self, model=model, source={**self.source, **source})
        lens._modules = lens._layer_modules(model)
        return lens

    def activation_of(self, name: str) -> nn.Module | None:
        """The module applying a layer's activation (its own, the activation module after it,
        or a module doing what the functional call does), or None.

        ``output_from_pre(name, pre)`` turns a pre-activation read with ``pre_activation=True``
        back into the layer's output, so one forward can serve both.
        """
        row = self._row(name)
        if row.activation is None:
            return None
        if name in self._acts:
            return self._acts[name]
        assert row.activation.module_path is not None
        return self.model.get_submodule(row.activation.module_path)

    def output_from_pre(self, name: str, pre: torch.Tensor) -> torch.Tensor:
        """A layer's output from its pre-activation (identity for layers without one)."""
        act = self.activation_of(name)
        if act is None:
            return pre
        if getattr(act, "inplace", None) is not True:
            return act(pre)
        act.inplace = False  # type: ignore[assignment]  # hooks on it see pre, not its output
        try:
            return act(pre)
        finally:
            act.inplace = True  # type: ignore[assignment]

    def accepts_channels_last(self) -> bool:
        """Whether the model runs on channels-last inputs and weights (faster convolutions on
        CPU). A ``forward`` with ``x.view(x.size(0), -1)`` does not: the view needs the default
        layout. Found once by trying, then remembered."""
        if self._channels_last is None:
            c, h, w = self.spec.shape
            x = torch.zeros(2, c, h + 1, w + 1, device=self.device)[:, :, 1:, 1:]  # as a crop
            formats = [p.is_contiguous() for p in self.model.parameters()]
            try:
                self.model.to(memory_format=torch.channels_last)
                with torch.no_grad():
                    for image in (x, x.contiguous(memory_format=torch.channels_last)):
                        self.model(self.spec.normalize(image))
                self._channels_last = True
            except RuntimeError:
                self._channels_last = False
            finally:
                if all(formats):
                    self.model.to(memory_format=torch.contiguous_format)
        return self._channels_last

    def conv_layers(self) -> list[LayerInfo]:
        return [info for info in self.layers if info.kind == "conv"]

    def to(self, device: str | torch.device) -> Lens:
        self.model.to(device)
        return self

    # --- forward -------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        layers: Iterable[str],
        *,
        pre_activation: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for pixel-space images ``x``, stopping after the deepest one.

        ``pre_activation``: for layers with an activation, return the values before it (for a
        final softmax: the logits). Hooks are removed before returning, whatever happens.
        Gradients flow unless the caller disables them.
        """
        names = list(dict.fromkeys(layers))
        capture = self._capture(names, pre_activation, stop=True)
        if names:
            with capture, contextlib.suppress(Stop):
                self.model(self._model_input(x))
        missing = [n for n in names if not capture.values[n]]
        if missing:
            raise RuntimeError(f"layers {missing} were not reached by the forward pass")
        return {name: capture.values[name][0] for name in names}

    @contextlib.contextmanager
    def tap(
        self, layers: Iterable[str], *, pre_activation: bool = False
    ) -> Iterator[dict[str, list[torch.Tensor]]]:
        """Read ``layers`` during whatever runs the model inside the ``with`` block.

        Yields ``{layer: [value of each forward pass]}``, filled as the model runs; the values
        are the tensors the model computes with (take gradients with respect to them).
        """
        capture = self._capture(list(dict.fromkeys(layers)), pre_activation, stop=False)
        with capture:
            yield capture.values

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax class scores for pixel-space images (a final softmax layer is skipped)."""
        if self.logits_from_input:
            return self.forward(x, [self.logits_layer], pre_activation=True)[self.logits_layer]
        return self.model(self._model_input(x))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities for many images, in batches, without gradients."""
        outs = [self.probabilities(x[i : i + batch_size].to(self.device)).cpu()
                for i in range(0, len(x), batch_size)]  # fmt: skip
        return torch.cat(outs) if outs else torch.empty(0, self.num_classes)

    # --- internals -----------------------------------------------------------------------
    def _model_input(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized, and in the default layout for models that need it (a crop or a
        channels-last batch would break their ``x.view(...)``)."""
        x = self.spec.normalize(x)
        plain = torch.empty(0, device=x.device).new_empty(x.shape).stride()
        if x.stride() != plain and not self.accepts_channels_last():
            x = x.clone(memory_format=torch.contiguous_format)  # gradients still flow to x
        return x

    def _row(self, name: str) -> Row:
        if name not in self._rows:
            raise UnknownNameError(self.unknown_layer(name))
        return self._rows[name]

    def _capture(self, names: list[str], pre_activation: bool, *, stop: bool) -> Capture:
        # The layout probe runs the model: never inside a capture, whose hooks would read (and
        # stop) the probe's pass instead of the caller's.
        self.accepts_channels_last()
        points: dict[str, Point] = {}
        routes: dict[Point, nn.Module] = {}
        transforms = {}
        for name in names:
            row = self._row(name)
            points[name] = row.pre if pre_activation and row.pre is not None else row.post
            if row.derived and not pre_activation:  # the activation after a max pool, applied here
                transforms[name] = functools.partial(self.output_from_pre, name)
            elif name in self._acts:  # hooks on the activation module see the functional call
                routes[row.post] = self._acts[name]
        return Capture(self.model, points, stop=stop, routes=routes, transforms=transforms)

    def _layer_modules(self, model: nn.Module) -> dict[str, nn.Module]:
        return {name: model.get_submodule(row.module_path)
                for name, row in self._rows.items() if row.module_path is not None}  # fmt: skip

    def _paths(self) -> set[str]:
        paths: set[str] = set()
        for row in self._rows.values():
            for point in (row.post, row.pre):
                if point is not None and point.anchor is not None:
                    paths.add(point.anchor[0])
            if row.module_path is not None:
                paths.add(row.module_path)
        return paths


def _own_activation(model: nn.Module, act: Activation) -> nn.Module:
    """A module of the Lens's own applying ``act`` (a copy where the model has one: calling
    the model's module outside its forward would disturb what hooks count)."""
    if act.module_path is None:
        return activation_module(act)
    module = copy.deepcopy(model.get_submodule(act.module_path))
    if getattr(module, "inplace", None) is True:
        module.inplace = False  # type: ignore[assignment]
    return module


def _reachable_rows(
    model: nn.Module, rows: list[Row], example: torch.Tensor
) -> tuple[list[Row], dict[str, tuple[int, ...]]]:
    """The rows whose values the running model really produces, with their shapes.

    One forward reads every row (before and after its activation); a row the run does not
    reach (a graph that differs from what runs) is left out rather than failing later.
    """
    points = {f"{row.name}\0post": row.post for row in rows}
    points |= {f"{row.name}\0pre": row.pre for row in rows if row.pre is not None}
    capture = Capture(model, points)
    with capture, torch.no_grad():
        model(example)
    kept, shapes = [], {}
    for row in rows:
        post = capture.values[f"{row.name}\0post"]
        pre = capture.values.get(f"{row.name}\0pre", post)
        if post and pre and tuple(pre[0].shape) == tuple(post[0].shape):
            kept.append(row)
            shapes[row.name] = tuple(post[0].shape[1:])
    return kept, shapes


def _layer_info(
    model: nn.Module, row: Row, order: int, shape: tuple[int, ...], rf: ReceptiveField | None
) -> LayerInfo:
    params: dict[int, int] = {}
    for path in row.params_from:
        for p in model.get_submodule(path).parameters():
            params[id(p)] = p.numel()
    act = row.activation
    return LayerInfo(
        name=row.name,
        kind=row.kind,
        type_name=row.type_name,
        output_shape=shape,
        params=sum(params.values()),
        order=order,
        rf=rf,
        has_activation=row.pre is not None,
        activation=act.name if act else "",
        activation_source=act.source if act else "none",
        activation_where=act.where if act else "",
        parts=row.parts,
        module_path=row.module_path,
    )


def resolve_layers(lens: Lens, names: Sequence[str] | None, kind: str | None = None) -> list[str]:
    """Validate layer names (all layers of ``kind`` when ``names`` is empty)."""
    if names:
        return [lens.layer(n).name for n in names]
    return [info.name for info in lens.layers if kind is None or info.kind == kind]
