"""Learned kernels: the weights of a conv layer, as data (drawing lives in ``images``)."""

from __future__ import annotations

import torch

from ..errors import UnknownNameError
from ..lens import Lens, kind_phrase


def kernels(lens: Lens, layer: str) -> torch.Tensor:
    """Weights of conv ``layer`` as (out_channels, in_channels, kh, kw), detached, on CPU.

    For the first layer of a model with normalized inputs the weights act on normalized pixels;
    they are returned as stored.
    """
    info = lens.layer(layer)
    if info.kind != "conv":
        convs = [i.name for i in lens.conv_layers()]
        raise UnknownNameError(
            f"layer {layer!r} is {kind_phrase(info.kind)}, not convolutional; conv layers: "
            + (", ".join(convs) or "none")
        )
    weight = getattr(lens.module(layer), "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise UnknownNameError(f"layer {layer!r} has no 4-D kernel to show")
    return weight.detach().cpu().clone()


def all_kernels(lens: Lens) -> dict[str, torch.Tensor]:
    """Kernels of every conv layer, by layer name, in execution order."""
    return {info.name: kernels(lens, info.name) for info in lens.conv_layers()}
