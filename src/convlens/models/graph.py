"""A network described as JSON: a list of named layer nodes, built into a plain ``nn.Module``.

Converted models (Keras files) are stored this way in a checkpoint folder: ``config.json``
holds the node list (``architecture: {"name": "graph", "args": {"graph": ...}}``) and
``model.safetensors`` the weights, so reloading needs neither Keras nor pickle. Each node is a
child module named after its layer, so hooks, receptive-field probes and unit names see the
original layer names. Layers compute in NCHW and follow Keras semantics where Keras and
PyTorch differ ("same" padding for any stride, ``Flatten`` in channels-last order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .layers import ACTIVATIONS, Conv2dAct, LinearAct, make_activation

GRAPH_ARCH = "graph"
GRAPH_FORMAT = "convlens-graph"
GRAPH_VERSION = 1


def activation_names() -> list[str]:
    return list(ACTIVATIONS)


def activation_module(name: str, negative_slope: float | None = None) -> nn.Module:
    """A fresh activation module for a Keras activation name; a one-line error otherwise."""
    try:
        return make_activation(name, negative_slope)
    except ValueError:
        raise CheckpointError(
            f"activation {name!r} is not supported; supported: {', '.join(ACTIVATIONS)}"
        ) from None


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """Keras/TF "same" padding (before, after) along one axis: the extra pixel goes after."""
    extent = (kernel - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + extent - size, 0)
    return total // 2, total - total // 2


def _pad_arg(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int],
             dilation: Sequence[int] = (1, 1)) -> tuple[int, int, int, int]:  # fmt: skip
    """``F.pad`` argument (left, right, top, bottom) for "same" padding of an NCHW tensor."""
    top, bottom = same_pads(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = same_pads(x.shape[-1], kernel[1], stride[1], dilation[1])
    return left, right, top, bottom


class KerasConv2d(Conv2dAct):
    """``Conv2dAct`` with Keras "same" padding for strides > 1 or even kernels (size-dependent,
    possibly asymmetric); symmetric cases use the ordinary ``padding`` attribute instead."""

    def __init__(self, *args: Any, same: bool = False, activation: str = "linear",
                 **kwargs: Any) -> None:  # fmt: skip
        activation_module(activation)  # an unknown name fails as one line, before any weights
        super().__init__(*args, activation=activation, **kwargs)
        self.same = same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            x = F.pad(x, _pad_arg(x, self.kernel_size, self.stride, self.dilation))
        return self.act(self._conv_forward(x, self.weight, self.bias))


class KerasMaxPool2d(nn.MaxPool2d):
    """Max pooling; "same" pads by replicating the border, which equals ignoring the padding."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int], same: bool) -> None:
        super().__init__(tuple(kernel), tuple(stride))
        self.same = same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.same:
            x = F.pad(x, _pad_arg(x, self.kernel_size, self.stride), mode="replicate")  # type: ignore[arg-type]
        return super().forward(x)


class KerasAvgPool2d(nn.AvgPool2d):
    """Average pooling; "same" averages over the real pixels of each window only (as in TF)."""

    def __init__(self, kernel: Sequence[int], stride: Sequence[int], same: bool) -> None:
        super().__init__(tuple(kernel), tuple(stride))
        self.same = same

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.same:
            return super().forward(x)
        pads = _pad_arg(x, self.kernel_size, self.stride)  # type: ignore[arg-type]
        total = F.avg_pool2d(F.pad(x, pads), self.kernel_size, self.stride)
        ones = torch.ones(1, 1, *x.shape[-2:], dtype=x.dtype, device=x.device)
        count = F.avg_pool2d(F.pad(ones, pads), self.kernel_size, self.stride)
        return total / count


class _GlobalPool:
    """Keras global pooling over an adaptive pool to 1x1: (N, C, H, W) -> (N, C), or
    (N, C, 1, 1) with ``keepdims``."""

    def __init__(self, keepdims: bool = False) -> None:
        super().__init__(1)  # type: ignore[call-arg]
        self.keepdims = keepdims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)  # type: ignore[misc]
        return out if self.keepdims else out.flatten(1)


class GlobalAvgPool2d(_GlobalPool, nn.AdaptiveAvgPool2d):
    """Keras ``GlobalAveragePooling2D``."""


class GlobalMaxPool2d(_GlobalPool, nn.AdaptiveMaxPool2d):
    """Keras ``GlobalMaxPooling2D``."""


class KerasFlatten(nn.Flatten):
    """Flatten in Keras' channels-last order, so a following Dense keeps Keras' kernel as is."""

    def __init__(self, channels_last: bool = True) -> None:
        super().__init__()
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.flatten(1)


class Rescale(nn.Module):
    """Keras ``Rescaling``: ``x * scale + offset`` (scalars or one value per channel)."""

    convlens_kind = "other"

    def __init__(self, scale: float | list[float], offset: float | list[float]) -> None:
        super().__init__()
        self.scale, self.offset = scale, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * _per_channel(self.scale, x) + _per_channel(self.offset, x)


def _per_channel(value: float | list[float], x: torch.Tensor) -> torch.Tensor | float:
    if isinstance(value, list):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return torch.tensor(value, dtype=x.dtype, device=x.device).view(shape)
    return value


class Add(nn.Module):
    """Keras ``Add``: the element-wise sum of its inputs (residual connections)."""

    convlens_kind = "other"

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Concat(nn.Module):
    """Keras ``Concatenate`` along channels (dim 1 in NCHW)."""

    convlens_kind = "other"

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.dim)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[1])


def build_node(node: dict[str, Any]) -> nn.Module:
    """The module for one node description (see :func:`build_graph` for the ops)."""
    op = node["op"]
    if op == "conv2d":
        kernel, stride = _pair(node["kernel"]), _pair(node["stride"])
        dilation = _pair(node.get("dilation", 1))
        same = node.get("padding", "valid") == "same"
        padding: tuple[int, int] = (0, 0)
        if same and stride == (1, 1):
            totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
            if all(t % 2 == 0 for t in totals):  # symmetric whatever the input size
                padding, same = (totals[0] // 2, totals[1] // 2), False
        return KerasConv2d(
            node["in_channels"], node["out_channels"], kernel, stride=stride, padding=padding,
            dilation=dilation, groups=node.get("groups", 1), bias=node.get("bias", True),
            same=same, activation=node.get("activation", "linear"),
        )  # fmt: skip
    if op == "dense":
        activation = node.get("activation", "linear")
        activation_module(activation)  # an unknown name fails as one line
        return LinearAct(node["in_features"], node["out_features"], bias=node.get("bias", True),
                         activation=activation)  # fmt: skip
    if op in ("max_pool2d", "avg_pool2d"):
        pool = KerasMaxPool2d if op == "max_pool2d" else KerasAvgPool2d
        return pool(_pair(node["kernel"]), _pair(node["stride"]), node.get("padding") == "same")
    if op == "global_avg_pool2d":
        return GlobalAvgPool2d(node.get("keepdims", False))
    if op == "global_max_pool2d":
        return GlobalMaxPool2d(node.get("keepdims", False))
    if op == "dropout":
        return (nn.Dropout2d if node.get("spatial") else nn.Dropout)(node.get("rate", 0.5))
    if op == "flatten":
        return KerasFlatten(node.get("channels_last", True))
    if op == "batch_norm":
        norm = nn.BatchNorm2d if node.get("spatial", True) else nn.BatchNorm1d
        return norm(node["features"], eps=node.get("eps", 1e-3))
    if op == "activation":
        return activation_module(node["activation"], node.get("negative_slope"))
    if op == "add":
        return Add()
    if op == "concat":
        return Concat(node.get("dim", 1))
    if op == "zero_pad2d":
        return nn.ZeroPad2d(tuple(node["padding"]))
    if op == "rescale":
        return Rescale(node["scale"], node.get("offset", 0.0))
    raise CheckpointError(f"graph node {node.get('name')!r} has an unknown op {op!r}")


class GraphModel(nn.Module):
    """Runs named layer nodes in order; each node reads the outputs of earlier nodes by name."""

    def __init__(self, graph: dict[str, Any], live: dict[str, nn.Module] | None = None) -> None:
        super().__init__()
        self.live = dict(live or {})  # nodes run by code outside the graph (trusted Keras Lambdas)
        self.graph = graph
        self.convlens_framework = str(graph.get("source", ""))  # "keras": the Lens speaks Keras
        self.input_name: str = graph["input"]
        self.output_name: str = graph["output"]
        self.wiring: list[tuple[str, tuple[str, ...]]] = []
        known = {self.input_name}
        for node in graph["nodes"]:
            name, inputs = node["name"], tuple(node["inputs"])
            missing = [i for i in inputs if i not in known]
            if missing or name in known or not name or "." in name:
                raise CheckpointError(
                    f"graph node {name!r} is malformed (duplicate name, a '.' in it, or inputs "
                    f"{missing} not defined before it); the model description is corrupt"
                )
            if node["op"] == "keras_layer":
                if name not in self.live:
                    raise CheckpointError(
                        f"graph node {name!r} is a Keras Lambda layer, whose code is not stored; "
                        "load the original Keras file instead"
                    )
                self.add_module(name, self.live[name])
            else:
                self.add_module(name, build_node(node))
            self.wiring.append((name, inputs))
            known.add(name)
        if self.output_name not in known:
            raise CheckpointError(f"graph output {self.output_name!r} is not one of its nodes")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input_name: x}
        for name, inputs in self.wiring:
            values[name] = self._modules[name](*(values[i] for i in inputs))  # type: ignore[misc]
        return values[self.output_name]


def build_graph(graph: dict[str, Any], live: dict[str, nn.Module] | None = None) -> GraphModel:
    """Build a model from its description, with fresh (untrained) weights.

    ``graph = {"format": "convlens-graph", "version": 1, "input": NAME, "output": NAME,
    "nodes": [{"name", "op", "inputs": [...], **op arguments}, ...]}``; ops: conv2d, dense,
    max_pool2d, avg_pool2d, global_avg_pool2d, global_max_pool2d, dropout, flatten, batch_norm,
    activation, add, concat, zero_pad2d, rescale; ``keras_layer`` nodes take their module
    from ``live`` (code that cannot be stored, such as a trusted Keras Lambda).
    """
    if not isinstance(graph, dict) or graph.get("format") != GRAPH_FORMAT:
        raise CheckpointError("the architecture description is not a convlens graph; re-convert")
    if int(graph.get("version", 0)) > GRAPH_VERSION:
        raise CheckpointError(f"the graph was written by a newer convlens (v{graph['version']})")
    try:
        return GraphModel(graph, live)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"the graph description is corrupt ({exc!r}); re-convert") from None
