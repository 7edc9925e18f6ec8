"""Keras-like building blocks: a conv or dense layer that carries its own activation.

A Keras ``Conv2D(32, 3, activation="relu")`` is one named layer whose output is post-activation;
blog code reads ``conv2d_1``'s output that way. These modules keep that meaning (the layer's
output is post-activation) while exposing the activation as a child module ``act`` so the Lens
can read pre-activations from its input.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "linear": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
    "selu": nn.SELU,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    """Build a fresh activation module by its Keras name."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}") from None


class Conv2dAct(nn.Conv2d):
    """``nn.Conv2d`` followed by its activation, as one layer (Keras ``Conv2D(activation=...)``)."""

    def __init__(self, *args: object, activation: str = "relu", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.activation_name = activation
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


class LinearAct(nn.Linear):
    """``nn.Linear`` followed by its activation, as one layer (Keras ``Dense(activation=...)``)."""

    def __init__(self, *args: object, activation: str = "linear", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.activation_name = activation
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))
