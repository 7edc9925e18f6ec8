"""The Lens: a model plus what it takes to read it (input spec, named layers, receptive fields).

Every analysis in convlens takes a Lens. Images handed to a Lens are in *pixel space* (the
spec's value range, e.g. [0, 1] for MNIST); the Lens applies the model's normalization itself,
so analyses never have to know about mean/std.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .display.base import LayerTable, Summarized
from .errors import UnknownNameError, did_you_mean
from .receptive import ReceptiveField, probe_receptive_fields

LAYER_KINDS: tuple[tuple[str, tuple[type[nn.Module], ...]], ...] = (
    ("conv", (nn.Conv2d,)),
    ("dense", (nn.Linear,)),
    ("pool", (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)),
    ("dropout", (nn.Dropout, nn.Dropout2d, nn.AlphaDropout)),
    ("flatten", (nn.Flatten,)),
    ("norm", (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)),
    ("softmax", (nn.Softmax, nn.LogSoftmax)),
    (
        "activation",
        (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
         nn.Softplus, nn.Identity),
    ),
)  # fmt: skip


def layer_kind(module: nn.Module) -> str:
    """Coarse kind of a layer module: conv, dense, pool, dropout, flatten, norm, activation, ..."""
    for kind, types in LAYER_KINDS:
        if isinstance(module, types):
            return kind
    return getattr(module, "convlens_kind", "other")


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
    """One row of the layer table."""

    name: str
    kind: str
    type_name: str
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    order: int  # position in execution order
    rf: ReceptiveField | None  # None for non-spatial layers (dense, flatten)
    has_activation: bool  # the layer applies its own activation (pre-activations readable)

    @property
    def channels(self) -> int:
        return self.output_shape[0]

    @property
    def is_spatial(self) -> bool:
        return len(self.output_shape) == 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "type": self.type_name,
            "output_shape": list(self.output_shape),
            "params": self.params,
            "receptive_field": self.rf.to_dict() if self.rf else None,
        }


class _Stop(Exception):
    """Raised from a hook once every requested layer has been captured (early exit)."""


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
        """Wrap any ``nn.Module`` taking (N, C, H, W): find its layers, shapes and fields."""
        model.eval()
        modules = _layer_modules(model)
        order, shapes = _trace(model, spec, modules)
        named = [name for name in order if name in shapes]
        lens = cls(
            model=model,
            spec=spec,
            layers=(),
            logits_layer=named[-1] if named else "",
            source=source or {},
            path=path,
            _modules={name: modules[name] for name in named},
        )
        if named and layer_kind(modules[named[-1]]) == "softmax":
            lens.logits_from_input = True
        spatial = [name for name in named if len(shapes[name]) == 3]
        fields = probe_receptive_fields(
            lambda x: lens.forward(x, spatial), spatial, spec.channels, spec.height, spec.width
        )
        infos = []
        for index, name in enumerate(named):
            module = modules[name]
            shape = shapes[name]
            rf = fields.get(name)
            infos.append(
                LayerInfo(
                    name=name,
                    kind=layer_kind(module),
                    type_name=type(module).__name__,
                    output_shape=shape,
                    params=sum(p.numel() for p in module.parameters()),
                    order=index,
                    rf=rf,
                    has_activation=_activation_child(module) is not None,
                )
            )
        lens.layers = LayerTable(infos)
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
        raise UnknownNameError(did_you_mean(name, self.layer_names, "layer"))

    def module(self, name: str) -> nn.Module:
        self.layer(name)
        return self._modules[name]

    def with_model(self, model: nn.Module, **source: Any) -> Lens:
        """The same Lens reading another model of the same architecture (e.g. a snapshot).

        The layer table and receptive fields are reused rather than probed again; ``source``
        entries (e.g. ``epoch=3``) are merged into the new Lens's source.
        """
        named = dict(model.named_modules())
        missing = [name for name in self._modules if name not in named]
        if missing:
            raise ValueError(f"the model lacks layers {missing[:3]} of this Lens")
        model.eval()
        return dataclasses.replace(
            self,
            model=model,
            source={**self.source, **source},
            _modules={name: named[name] for name in self._modules},
        )

    def activation_of(self, name: str) -> nn.Module | None:
        """The activation a layer applies itself (a Keras ``Conv2D(relu)``), or None.

        ``activation_of(name)(pre)`` turns a pre-activation read with ``pre_activation=True``
        back into the layer's output, so one forward can serve both.
        """
        return _activation_child(self.module(name))

    def output_from_pre(self, name: str, pre: torch.Tensor) -> torch.Tensor:
        """A layer's output from its pre-activation (identity for layers without their own)."""
        act = self.activation_of(name)
        return act(pre) if act is not None else pre

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

        ``pre_activation``: for layers with their own activation (a Keras ``Conv2D(relu)``),
        return the values before it. Hooks are removed before returning, whatever happens.
        Gradients flow unless the caller disables them.
        """
        names = list(dict.fromkeys(layers))
        for name in names:
            if name not in self._modules:
                raise UnknownNameError(did_you_mean(name, list(self._modules), "layer"))
        captured: dict[str, torch.Tensor] = {}
        handles = []

        def make_hook(name: str, from_input: bool):
            def hook(_module: nn.Module, args: tuple, output: Any = None) -> None:
                if name not in captured:
                    captured[name] = args[0] if from_input else output
                if len(captured) == len(names):
                    raise _Stop

            return hook

        try:
            for name in names:
                module = self._modules[name]
                act = _activation_child(module) if pre_activation else None
                if act is not None:
                    handles.append(act.register_forward_pre_hook(make_hook(name, True)))
                elif name == self.logits_layer and self.logits_from_input and pre_activation:
                    handles.append(module.register_forward_pre_hook(make_hook(name, True)))
                else:
                    handles.append(module.register_forward_hook(make_hook(name, False)))
            if names:
                with contextlib.suppress(_Stop):
                    self.model(self.spec.normalize(x))
        finally:
            for handle in handles:
                handle.remove()
        missing = [n for n in names if n not in captured]
        if missing:
            raise RuntimeError(f"layers {missing} were not reached by the forward pass")
        return {name: captured[name] for name in names}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-softmax class scores for pixel-space images (a final softmax layer is skipped)."""
        if self.logits_from_input:
            return self.forward(x, [self.logits_layer], pre_activation=True)[self.logits_layer]
        return self.model(self.spec.normalize(x))

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Class probabilities for many images, in batches, without gradients."""
        outs = [self.probabilities(x[i : i + batch_size].to(self.device)).cpu()
                for i in range(0, len(x), batch_size)]  # fmt: skip
        return torch.cat(outs) if outs else torch.empty(0, self.num_classes)


def _activation_child(module: nn.Module) -> nn.Module | None:
    act = getattr(module, "act", None)
    return act if isinstance(act, nn.Module) else None


def _layer_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The modules that count as layers: known kinds and leaves, not nested in another layer."""
    chosen: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not name:
            continue
        if any(name.startswith(parent + ".") for parent in chosen):
            continue
        known = layer_kind(module) != "other"
        leaf = next(iter(module.children()), None) is None
        if known or leaf:
            chosen[name] = module
    return chosen


def _trace(
    model: nn.Module, spec: InputSpec, modules: dict[str, nn.Module]
) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """Run one dummy forward: execution order and output shape of every layer that runs."""
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def make_hook(name: str):
        def hook(_m: nn.Module, _args: tuple, output: Any) -> None:
            if name not in shapes and isinstance(output, torch.Tensor):
                order.append(name)
                shapes[name] = tuple(output.shape[1:])

        return hook

    try:
        for name, module in modules.items():
            handles.append(module.register_forward_hook(make_hook(name)))
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = torch.zeros(1, *spec.shape, device=device)
        with torch.no_grad():
            model(spec.normalize(x))
    finally:
        for handle in handles:
            handle.remove()
    return order, shapes


def resolve_layers(lens: Lens, names: Sequence[str] | None, kind: str | None = None) -> list[str]:
    """Validate layer names (all layers of ``kind`` when ``names`` is empty)."""
    if names:
        return [lens.layer(n).name for n in names]
    return [info.name for info in lens.layers if kind is None or info.kind == kind]
