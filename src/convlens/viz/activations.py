"""Activation maps of chosen layers for chosen inputs, plus the model's verdict on them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..display.base import Pictured
from ..errors import DataError
from ..lens import Lens


@dataclass(frozen=True, repr=False)
class Activations(Pictured):
    """Feature maps of some layers for a batch of inputs, with the class probabilities."""

    inputs: torch.Tensor  # (N, C, H, W), pixel space
    maps: dict[str, torch.Tensor]  # layer -> (N, C_l, H_l, W_l) or (N, F)
    probabilities: torch.Tensor  # (N, num_classes)
    class_names: tuple[str, ...] = ()

    @property
    def predicted(self) -> torch.Tensor:
        return self.probabilities.argmax(dim=1)


def check_input(lens: Lens, x: torch.Tensor) -> torch.Tensor:
    """Accept (C,H,W) or (N,C,H,W) matching the spec; one-line error otherwise."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or tuple(x.shape[1:]) != lens.spec.shape:
        want = "x".join(str(v) for v in lens.spec.shape)
        got = "x".join(str(v) for v in x.shape)
        raise DataError(f"input of shape {got} does not fit the model, which takes (N)x{want}")
    return x.to(device=lens.device, dtype=torch.float32)


@torch.no_grad()
def activations(
    lens: Lens,
    x: torch.Tensor,
    layers: Sequence[str] | None = None,
    *,
    pre_activation: bool = False,
) -> Activations:
    """Activations of ``layers`` (default: every conv layer) for images ``x`` (pixel space)."""
    x = check_input(lens, x)
    names = list(layers) if layers else [info.name for info in lens.conv_layers()]
    maps = lens.forward(x, names, pre_activation=pre_activation) if names else {}
    probs = lens.probabilities(x)
    return Activations(
        inputs=x.cpu(),
        maps={k: v.detach().cpu() for k, v in maps.items()},
        probabilities=probs.cpu(),
        class_names=lens.class_names,
    )
