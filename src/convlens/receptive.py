"""Receptive-field arithmetic: which input pixels a unit of a layer can see.

Two ways, which must agree: :func:`chain_receptive_fields` is the textbook recurrence for a plain
chain of convolutions and poolings; :func:`probe_receptive_field` measures the field of any
model (branches, functional ops, Keras bridges) by back-propagating from one unit through a
*linearized* copy of the forward pass (activations become identities, max pooling becomes average
pooling, weights become positive), so no ReLU or max can hide part of the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


@dataclass(frozen=True)
class ReceptiveField:
    """Geometry of one layer's units in input pixels (rows, cols).

    ``size``: extent of the field; ``jump``: input pixels between neighbouring units (the
    cumulative stride); ``offset``: input coordinate of the centre of unit (0, 0). Unit ``(i, j)``
    is centred at ``offset + (i, j) * jump``.
    """

    size: tuple[int, int]
    jump: tuple[int, int]
    offset: tuple[float, float]

    def window(self, i: int, j: int) -> tuple[int, int, int, int]:
        """Input window ``(top, left, bottom, right)`` (half-open) of unit ``(i, j)``, unclipped."""
        top = round(self.offset[0] + i * self.jump[0] - (self.size[0] - 1) / 2)
        left = round(self.offset[1] + j * self.jump[1] - (self.size[1] - 1) / 2)
        return top, left, top + self.size[0], left + self.size[1]

    def clipped_window(self, i: int, j: int, height: int, width: int) -> tuple[int, int, int, int]:
        """:meth:`window` clipped to an image of ``height`` x ``width``."""
        top, left, bottom, right = self.window(i, j)
        return max(top, 0), max(left, 0), min(bottom, height), min(right, width)

    def describe(self) -> str:
        (sh, sw), (jh, jw), (oh, ow) = self.size, self.jump, self.offset
        size = f"{sh}" if sh == sw else f"{sh}x{sw}"
        jump = f"{jh}" if jh == jw else f"{jh}x{jw}"
        off = f"{oh:g}" if oh == ow else f"{oh:g},{ow:g}"
        return f"size {size}, jump {jump}, offset {off}"

    def to_dict(self) -> dict[str, list[float]]:
        return {"size": list(self.size), "jump": list(self.jump), "offset": list(self.offset)}


IDENTITY = ReceptiveField((1, 1), (1, 1), (0.0, 0.0))


@dataclass(frozen=True)
class Window:
    """One sliding-window op of a chain: kernel, stride, padding and dilation (square)."""

    kernel: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1


def chain_receptive_fields(ops: Sequence[Window]) -> list[ReceptiveField]:
    """Receptive field after each op of a plain chain (the standard recurrence)."""
    size, jump, offset = 1, 1, 0.0
    fields = []
    for op in ops:
        extent = op.dilation * (op.kernel - 1) + 1
        offset = offset + ((extent - 1) / 2 - op.padding) * jump
        size = size + (extent - 1) * jump
        jump = jump * op.stride
        fields.append(ReceptiveField((size, size), (jump, jump), (offset, offset)))
    return fields


_IDENTITY_FUNCS = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_",
    "selu", "celu", "gelu", "silu", "mish", "sigmoid", "tanh", "softplus", "hardswish",
    "hardsigmoid", "dropout", "dropout2d", "alpha_dropout", "feature_alpha_dropout", "batch_norm",
    "instance_norm", "layer_norm", "group_norm", "local_response_norm",
}  # fmt: skip


class _Linearized(TorchFunctionMode):
    """Runs a forward pass as a positive linear map: gradients reach every input it depends on."""

    def __torch_function__(
        self,
        func: Callable[..., object],
        types: object,
        args: tuple = (),
        kwargs: dict | None = None,
    ) -> object:
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name in _IDENTITY_FUNCS:
            return args[0] if args else kwargs["input"]
        if name == "max_pool2d":
            return _as_avg_pool(*args, **kwargs)
        if name == "adaptive_max_pool2d":
            return F.adaptive_avg_pool2d(
                args[0], args[1] if len(args) > 1 else kwargs["output_size"]
            )
        if name in ("conv2d", "linear"):
            inp = args[0] if args else kwargs.pop("input")
            weight = args[1] if len(args) > 1 else kwargs.pop("weight")
            rest = list(args[2:])
            if rest:
                rest[0] = None  # bias
            kwargs.pop("bias", None)
            return func(inp, weight.abs() + 1e-3, *rest, **kwargs)
        return func(*args, **kwargs)


def _as_avg_pool(
    x: torch.Tensor,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
    dilation: int | tuple[int, int] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> torch.Tensor:
    del dilation, return_indices
    return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode=ceil_mode)


def probe_receptive_fields(
    run_to_layers: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    names: Sequence[str],
    channels: int,
    height: int,
    width: int,
) -> dict[str, ReceptiveField]:
    """Measure the receptive fields of many layers from one linearized forward and backward.

    ``run_to_layers`` maps an input batch (N, C, H, W) to the named layers' outputs. Batch items
    ``2k`` and ``2k+1`` probe layer ``k`` (its centre unit and the unit one step down-right), so
    a single backward pass gives every field. The probe also runs on a canvas three times the
    input size (a conv stack accepts any size) so the field of a deep unit is not cut by the
    border; where the model refuses that size, or a map does not grow with the canvas (global
    pooling: the unit sees all of any input), the field at the input size is kept.
    """
    names = list(names)
    if not names:
        return {}
    exact = _probe(run_to_layers, names, channels, height, width)
    try:
        wide = _probe(run_to_layers, names, channels, height * 3, width * 3)
    except Exception:  # any model code may refuse a larger input: keep the input-size fields
        return {name: field for name, (field, _) in exact.items()}
    # A map whose size does not grow with the input (global or adaptive pooling, and what
    # follows it) sees the whole input, whatever its size: its field is measured at that size.
    return {
        name: wide[name][0] if wide[name][1] != exact[name][1] else exact[name][0] for name in names
    }


def probe_receptive_field(
    run_to_layer: Callable[[torch.Tensor], torch.Tensor], channels: int, height: int, width: int
) -> ReceptiveField:
    """:func:`probe_receptive_fields` for a single layer."""
    fields = probe_receptive_fields(
        lambda x: {"layer": run_to_layer(x)}, ["layer"], channels, height, width
    )
    return fields["layer"]


def _probe(
    run_to_layers: Callable[[torch.Tensor], dict[str, torch.Tensor]],
    names: list[str],
    channels: int,
    height: int,
    width: int,
) -> dict[str, tuple[ReceptiveField, tuple[int, int]]]:
    """Each layer's field, with the size of its map, on a canvas of ``height`` x ``width``."""
    x = torch.ones(2 * len(names), channels, height, width, requires_grad=True)
    with _Linearized():
        outs = run_to_layers(x)
    target = x.new_zeros(())
    steps, sizes = {}, {}
    for k, name in enumerate(names):
        out = outs[name]
        if out.dim() != 4:
            raise ValueError(f"receptive fields exist only for spatial layers; {name} is not")
        rows, cols = out.shape[2], out.shape[3]
        ci, cj = rows // 2, cols // 2
        # The centre unit, and one step down-right (the same unit on a 1-pixel-wide map).
        di, dj = (1 if ci + 1 < rows else 0), (1 if cj + 1 < cols else 0)
        target = target + out[2 * k, :, ci, cj].sum() + out[2 * k + 1, :, ci + di, cj + dj].sum()
        steps[name] = (ci, cj, di, dj)
        sizes[name] = (rows, cols)
    (grad,) = torch.autograd.grad(target, x)
    mass = grad.abs().sum(1)
    fields = {}
    for k, name in enumerate(names):
        ci, cj, di, dj = steps[name]
        (t0, l0, b0, r0), (t1, l1, _, _) = _support(mass[2 * k]), _support(mass[2 * k + 1])
        size = (b0 - t0, r0 - l0)
        jump_h = (t1 - t0) // di if di else 1
        jump_w = (l1 - l0) // dj if dj else 1
        centre = (t0 + (size[0] - 1) / 2, l0 + (size[1] - 1) / 2)
        offset = (centre[0] - ci * jump_h, centre[1] - cj * jump_w)
        field = ReceptiveField(size, (max(jump_h, 1), max(jump_w, 1)), _tidy(offset))
        fields[name] = (field, sizes[name])
    return fields


def _support(mask: torch.Tensor) -> tuple[int, int, int, int]:
    nz = torch.nonzero(mask > 0)
    if nz.numel() == 0:
        raise ValueError("the unit does not depend on the input")
    top, left = nz.min(0).values.tolist()
    bottom, right = (nz.max(0).values + 1).tolist()
    return top, left, bottom, right


def _tidy(offset: tuple[float, float]) -> tuple[float, float]:
    return tuple(float(math.floor(v * 2 + 0.5) / 2) for v in offset)  # type: ignore[return-value]
