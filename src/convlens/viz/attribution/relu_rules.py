"""Guided backprop and deconvnet: gradients with a modified backward pass through every ReLU.

The rule is applied to *calls*, not to modules: a :class:`~torch.overrides.TorchFunctionMode`
intercepts ``relu`` however it is reached (an ``nn.ReLU`` module, one ReLU module reused by many
layers, ``F.relu``, ``torch.relu``, ``Tensor.relu``, in-place variants) and substitutes an
autograd function with the modified backward. Nothing is registered on the model, so nothing
can leak; the mode ends with the ``with`` block.

Limits: only ``relu`` is rewritten (a ReLU written as ``clamp(min=0)`` or a leaky ReLU keeps its
ordinary gradient); an in-place relu returns a new tensor instead of writing into its input,
which is what every caller that uses the return value expects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.overrides import TorchFunctionMode

from .core import Context, Method, register_method

Result = tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]

_RELU_NAMES = frozenset({"relu", "relu_"})


class _GuidedRelu(torch.autograd.Function):
    """ReLU forward; backward passes only positive gradients where the input was positive."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype)


class _DeconvRelu(torch.autograd.Function):
    """ReLU forward; backward is a ReLU of the gradient itself (Zeiler & Fergus' deconvnet)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp(min=0)


RULES: dict[str, type[torch.autograd.Function]] = {
    "guided": _GuidedRelu,
    "deconvnet": _DeconvRelu,
}


class ReluRule(TorchFunctionMode):
    """Within this mode every relu call runs forward as usual and backward by ``rule``."""

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.function = RULES[rule]
        self.calls = 0

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in _RELU_NAMES:
            x = args[0] if args else kwargs["input"]
            self.calls += 1
            return self.function.apply(x)
        return func(*args, **kwargs)


def rule_gradient(ctx: Context, rule: str) -> torch.Tensor:
    """d logit / d x with ``rule`` applied to every relu of the forward pass."""
    with ReluRule(rule):
        return ctx.input_gradient(ctx.x, ctx.target)


@register_method
class GuidedBackprop(Method):
    """Guided backprop (Springenberg et al. 2015): gradient and forward mask both gate each ReLU."""

    name = "guided_backprop"
    summary = "ReLUs pass only positive gradients where the input was positive"
    defaults: ClassVar[dict[str, Any]] = {}

    def compute(self, ctx: Context, **options: Any) -> Result:
        return rule_gradient(ctx, "guided"), None, {}


@register_method
class Deconvnet(Method):
    """Deconvnet (Zeiler & Fergus 2014): ReLUs rectify the gradient, ignoring the forward mask."""

    name = "deconvnet"
    summary = "ReLUs rectify the backward signal itself (Zeiler & Fergus 2014)"
    defaults: ClassVar[dict[str, Any]] = {}

    def compute(self, ctx: Context, **options: Any) -> Result:
        return rule_gradient(ctx, "deconvnet"), None, {}
