"""Keras-like building blocks: a conv or dense layer that carries its own activation.

A Keras ``Conv2D(32, 3, activation="relu")`` is one named layer whose output is post-activation;
blog code reads ``conv2d_1``'s output that way. These modules keep that meaning (the layer's
output is post-activation) while exposing the activation as a child module ``act`` so the Lens
can read pre-activations from its input.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

# Keras activation names -> fresh modules with Keras' defaults (leaky_relu's slope is 0.2 there).
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "linear": nn.Identity,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softmax": lambda: nn.Softmax(dim=1),
    "log_softmax": lambda: nn.LogSoftmax(dim=1),
    "elu": nn.ELU,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "softsign": nn.Softsign,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "hard_sigmoid": nn.Hardsigmoid,
    "hard_swish": nn.Hardswish,
    "hard_silu": nn.Hardswish,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
}


def make_activation(name: str, negative_slope: float | None = None) -> nn.Module:
    """Build a fresh activation module by its Keras name (``negative_slope``: leaky_relu's)."""
    if name == "leaky_relu" and negative_slope is not None:
        return nn.LeakyReLU(negative_slope)
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
