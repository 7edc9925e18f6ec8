"""The seed architectures, by name (a timm-style registry).

Layer names follow Keras' automatic names (``conv2d_1``, ``dense_2``) so that blog code and
convlens talk about the same layers. Every builder takes ``in_channels``, ``image_size`` and
``num_classes``; the last layer returns logits (softmax is applied only where probabilities are
shown).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import UnknownNameError, did_you_mean
from .layers import Conv2dAct, LinearAct

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    builder: Builder
    summary: str


_ZOO: dict[str, ZooEntry] = {}


def register_model(name: str, summary: str) -> Callable[[Builder], Builder]:
    """Add an architecture builder to the zoo under ``name``."""

    def wrap(builder: Builder) -> Builder:
        _ZOO[name] = ZooEntry(name, builder, summary)
        return builder

    return wrap


def model_names() -> list[str]:
    return sorted(_ZOO)


def model_summaries() -> dict[str, str]:
    return {name: _ZOO[name].summary for name in model_names()}


def build_model(
    name: str,
    *,
    in_channels: int = 1,
    image_size: int = 28,
    num_classes: int = 10,
    **kwargs: object,
) -> nn.Module:
    """Build a zoo architecture with fresh weights (deterministic under ``torch.manual_seed``)."""
    if name not in _ZOO:
        raise UnknownNameError(did_you_mean(name, model_names(), "model"))
    return _ZOO[name].builder(
        in_channels=in_channels, image_size=image_size, num_classes=num_classes, **kwargs
    )


def _pooled(size: int, times: int) -> int:
    for _ in range(times):
        size //= 2
    if size < 1:
        raise ValueError("image_size is too small for this architecture's pooling layers")
    return size


@register_model("kaggle4", "4 conv (32,32,64,64, 3x3 same) + 2 pool + dense 256-128-10, dropout")
def kaggle4(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    side = _pooled(image_size, 2)
    return nn.Sequential(
        OrderedDict(
            conv2d_1=Conv2dAct(in_channels, 32, 3, padding=1),
            conv2d_2=Conv2dAct(32, 32, 3, padding=1),
            max_pooling2d_1=nn.MaxPool2d(2),
            dropout_1=nn.Dropout(0.25),
            conv2d_3=Conv2dAct(32, 64, 3, padding=1),
            conv2d_4=Conv2dAct(64, 64, 3, padding=1),
            max_pooling2d_2=nn.MaxPool2d(2),
            dropout_2=nn.Dropout(0.25),
            flatten_1=nn.Flatten(),
            dense_1=LinearAct(64 * side * side, 256, activation="relu"),
            dropout_3=nn.Dropout(0.5),
            dense_2=LinearAct(256, 128, activation="relu"),
            dropout_4=nn.Dropout(0.5),
            dense_3=LinearAct(128, num_classes),
        )
    )


@register_model("simple2", "2 conv (32, 3x3 valid) + pool + dense 128-10 (the blog's first CNN)")
def simple2(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    side = (image_size - 4) // 2
    if side < 1:
        raise ValueError("image_size is too small for simple2")
    return nn.Sequential(
        OrderedDict(
            conv2d_1=Conv2dAct(in_channels, 32, 3),
            conv2d_2=Conv2dAct(32, 32, 3),
            max_pooling2d_1=nn.MaxPool2d(2),
            dropout_1=nn.Dropout(0.25),
            flatten_1=nn.Flatten(),
            dense_1=LinearAct(32 * side * side, 128, activation="relu"),
            dropout_2=nn.Dropout(0.5),
            dense_2=LinearAct(128, num_classes),
        )
    )


@register_model("fcn", "fully connected baseline: dense 512-256-10 (no convolution)")
def fcn(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            flatten_1=nn.Flatten(),
            dense_1=LinearAct(in_channels * image_size * image_size, 512, activation="relu"),
            dropout_1=nn.Dropout(0.2),
            dense_2=LinearAct(512, 256, activation="relu"),
            dropout_2=nn.Dropout(0.2),
            dense_3=LinearAct(256, num_classes),
        )
    )


@register_model("oip3", "3 conv (32,32,64, 3x3) each followed by 2x2 pooling + dense 64-10")
def oip3(*, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    side = _pooled(image_size, 3)
    return nn.Sequential(
        OrderedDict(
            conv2d_1=Conv2dAct(in_channels, 32, 3, padding=1),
            max_pooling2d_1=nn.MaxPool2d(2),
            conv2d_2=Conv2dAct(32, 32, 3, padding=1),
            max_pooling2d_2=nn.MaxPool2d(2),
            conv2d_3=Conv2dAct(32, 64, 3, padding=1),
            max_pooling2d_3=nn.MaxPool2d(2),
            flatten_1=nn.Flatten(),
            dense_1=LinearAct(64 * side * side, 64, activation="relu"),
            dropout_1=nn.Dropout(0.5),
            dense_2=LinearAct(64, num_classes),
        )
    )
