"""What an operation is: module kinds, function names, activations, leaves.

One vocabulary for modules (``nn.Conv2d`` is a conv) and for functions as every tracer spells
them (``F.relu``, ``torch.relu``, ``x.relu()``, ``x.relu_()``, ``aten.relu.default`` are all
``relu``), so the fx graph, a recorded forward pass and the running model agree on names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

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
        (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
         nn.Sigmoid, nn.Tanh, nn.Softplus, nn.Softsign, nn.Hardswish, nn.Hardsigmoid,
         nn.Hardtanh, nn.PReLU, nn.Identity),
    ),
)  # fmt: skip

CORE_KINDS = ("conv", "dense")  # the layers that carry a following activation

# Functions by kind, in the names of :func:`function_name`.
FUNCTION_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"), "pool"
    ),
    **dict.fromkeys(("dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout"), "dropout"),
    "flatten": "flatten",
    **dict.fromkeys(("batch_norm", "layer_norm", "group_norm", "instance_norm"), "norm"),
    **dict.fromkeys(("softmax", "log_softmax"), "softmax"),
    **dict.fromkeys(
        ("relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "sigmoid",
         "tanh", "softplus", "softsign", "hardswish", "hardsigmoid", "hardtanh", "prelu"),
        "activation",
    ),
    "add": "add",
}  # fmt: skip

# Names the tracers give one operation: Python operators, in-place and aten spellings.
_ALIASES = {
    "iadd": "add", "radd": "add", "isub": "sub", "rsub": "sub", "imul": "mul", "rmul": "mul",
    "truediv": "div", "itruediv": "div", "rtruediv": "div", "true_divide": "div",
    "max_pool2d_with_indices": "max_pool2d", "adaptive_max_pool2d_with_indices":
    "adaptive_max_pool2d", "feature_dropout": "dropout2d", "concat": "cat",
    "concatenate": "cat",
}  # fmt: skip


def layer_kind(module: nn.Module) -> str:
    """Coarse kind of a layer module: conv, dense, pool, dropout, flatten, norm, activation, ..."""
    for kind, types in LAYER_KINDS:
        if isinstance(module, types):
            return kind
    return getattr(module, "convlens_kind", "other")


def function_name(func: Callable[..., Any] | str) -> str:
    """The one name of a function however it is reached (``F.relu``, ``Tensor.relu_``, ...)."""
    name = func if isinstance(func, str) else getattr(func, "__name__", "") or ""
    name = name.split(".")[0]  # aten overloads: relu.default
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    name = name.lstrip("_").rstrip("_")
    return _ALIASES.get(name, name)


def is_inplace_name(func: Callable[..., Any] | str) -> bool:
    """``relu_``, ``add_``, ``__iadd__``: the spellings of operations that write their input."""
    name = func if isinstance(func, str) else getattr(func, "__name__", "") or ""
    name = name.split(".")[0]
    if name.startswith("__i") and name.endswith("__"):
        return True
    return name.endswith("_") and not name.endswith("__")


def function_kind(name: str) -> str | None:
    """The kind of a (normalized) function name, or None for other tensor operations."""
    return FUNCTION_KINDS.get(name)


def is_leaf(module: nn.Module) -> bool:
    """Modules traced as one operation: known layer kinds (and subclasses such as Keras-style
    ``Conv2dAct``), modules declaring a ``convlens_kind``, and modules without children."""
    containers = ("Sequential", "ModuleList", "ModuleDict")
    if isinstance(module, nn.Sequential | nn.ModuleList | nn.ModuleDict):
        return False
    if getattr(module, "convlens_type", None) in containers:  # a mirrored TorchScript one
        return False
    if layer_kind(module) != "other" or hasattr(module, "convlens_kind"):
        return True
    return next(iter(module.children()), None) is None


# Activations that commute with max pooling (they never decrease: relu(max(x)) = max(relu(x)))
# and may be applied twice (relu(relu(x)) = relu(x)): F.relu(F.max_pool2d(conv(x))) has the
# conv's own post-activation value relu(conv(x)), and the model may run on it unchanged.
MAX_POOL_ACTIVATIONS = frozenset({"relu", "relu6", "hardtanh"})
MAX_POOLS = frozenset({"max_pool2d", "adaptive_max_pool2d"})

_MODULE_NAMES = {
    nn.LeakyReLU: "leaky_relu", nn.LogSoftmax: "log_softmax", nn.ReLU6: "relu6",
    nn.Identity: "linear",
}  # fmt: skip


def activation_name(module: nn.Module) -> str:
    """An activation module's name as the function is called: ``nn.LeakyReLU`` -> leaky_relu."""
    for cls, name in _MODULE_NAMES.items():
        if type(module) is cls:
            return name
    return type(module).__name__.lower()


def own_activation(module: nn.Module) -> nn.Module | None:
    """The activation a layer applies itself (an ``act`` child, as Keras' ``activation=``)."""
    act = getattr(module, "act", None)
    if isinstance(act, nn.Module) and not isinstance(act, nn.Identity):
        return act
    return None
