"""Shared mechanics of every attribution method: the Heatmap, the registry, targets, batching.

A method is a small subclass of :class:`Method` that declares its options (with defaults) and
computes signed per-channel or per-pixel evidence; everything else (checking the input, choosing
the target, validating options, keeping the model in eval mode, reducing channels, moving results
to the CPU) happens once, here, in :func:`attribute`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ...display.base import Pictured
from ...errors import UnitError, UnknownNameError, did_you_mean
from ...lens import Lens
from ..activations import check_input

Target = int | str | Sequence[int | str] | torch.Tensor | None


@dataclass(frozen=True, eq=False, repr=False)
class Heatmap(Pictured):
    """Signed evidence for ``target`` per input pixel, for a batch of images.

    ``values``: (N, H, W) at input resolution, summed over input channels, sign kept (positive
    pixels raise the target score). ``native``: (N, h, w) for CAM methods, the map at the conv
    layer's own resolution (upsampling it is for overlays only). ``options``: every option the
    method ran with, defaults filled in. ``extras``: per-image diagnostics (e.g. the completeness
    gap of integrated gradients).
    """

    values: torch.Tensor
    method: str
    target: torch.Tensor  # (N,) long
    options: dict[str, Any] = field(default_factory=dict)
    native: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, index: int | slice) -> Heatmap:
        """The heatmap(s) of some images, as a Heatmap again (batch dimension kept)."""
        if isinstance(index, int):
            i = range(len(self))[index]  # negative indices count from the end; IndexError past it
            sel = slice(i, i + 1)
        else:
            sel = index
        return Heatmap(
            values=self.values[sel],
            method=self.method,
            target=self.target[sel],
            options=self.options,
            native=None if self.native is None else self.native[sel],
            extras={k: v[sel] for k, v in self.extras.items()},
        )

    def scale(self) -> float:
        """Largest |value|: the symmetric colour range that shows every map of this batch."""
        return float(self.values.abs().max()) if self.values.numel() else 0.0

    def describe(self) -> str:
        """``method · option=value, ...`` (batch size left out: it never changes the map)."""
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items() if k != "batch_size")
        return f"{self.method} · {opts}" if opts else self.method


@dataclass
class Context:
    """What a method sees: the checked input, the resolved targets and the shared helpers."""

    lens: Lens
    x: torch.Tensor  # (N, C, H, W) on the lens device
    target: torch.Tensor  # (N,) long on the lens device
    batch_size: int
    resolved: dict[str, Any] = field(default_factory=dict)  # defaults a method settled (layer)

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def scores(self, x: torch.Tensor, target: torch.Tensor, score: str = "logit") -> torch.Tensor:
        """(N,) score of each image's target class: the logit, or the softmax probability."""
        logits = self.lens.logits(x)
        if score == "probability":
            logits = torch.softmax(logits, dim=-1)
        elif score != "logit":
            raise UnknownNameError(did_you_mean(score, ["logit", "probability"], "score"))
        return logits.gather(1, target.view(-1, 1)).squeeze(1)

    def input_gradient(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """d logit[target] / d x for a batch (pixel space), in chunks of ``batch_size``."""
        outs = []
        for i in range(0, len(x), self.batch_size):
            xb = x[i : i + self.batch_size].detach().requires_grad_(True)
            with torch.enable_grad():
                s = self.scores(xb, target[i : i + self.batch_size])
                (g,) = torch.autograd.grad(s.sum(), xb)
            outs.append(g)
        return torch.cat(outs) if outs else torch.zeros_like(x)

    @torch.no_grad()
    def expanded_scores(
        self,
        count: int,
        make: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        score: str,
    ) -> torch.Tensor:
        """Scores of ``count`` variants of every image, (N, count), in big batches.

        ``make(image_index, variant_index)`` builds the variants for flat index vectors; images
        and variants are flattened together so a batch mixes both and stays full.
        """
        total = self.n * count
        flat = torch.arange(total, device=self.x.device)
        out = torch.empty(total, device=self.x.device)
        for i in range(0, total, self.batch_size):
            idx = flat[i : i + self.batch_size]
            img, var = idx // count, idx % count
            out[i : i + len(idx)] = self.scores(make(img, var), self.target[img], score)
        return out.view(self.n, count)


class Method:
    """Base of every attribution method: declare ``name``, ``defaults`` and :meth:`compute`.

    ``compute`` returns signed evidence shaped (N, C, H, W) or (N, H, W); channels are summed by
    :func:`attribute`. CAM methods also return the native map, (N, h, w).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    cam: ClassVar[bool] = False

    def compute(
        self, ctx: Context, **options: Any
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        raise NotImplementedError


_METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: make a :class:`Method` available to :func:`attribute` by its name."""
    _METHODS[cls.name] = cls
    return cls


def method_names() -> list[str]:
    """Every registered method, in registration order (cheap gradient methods first)."""
    return list(_METHODS)


def get_method(name: str) -> type[Method]:
    if name not in _METHODS:
        raise UnknownNameError(did_you_mean(name, method_names(), "attribution method"))
    return _METHODS[name]


def method_options(name: str) -> dict[str, Any]:
    """The options of a method with their defaults (``batch_size`` applies to all)."""
    return {**get_method(name).defaults, "batch_size": 256}


def attribute(
    lens: Lens,
    x: torch.Tensor,
    target: Target = None,
    method: str = "gradient",
    **options: Any,
) -> Heatmap:
    """Signed heatmap(s) of why ``lens`` scores ``target`` for images ``x``.

    ``x``: (C, H, W) or (N, C, H, W) in pixel space. ``target``: a class index or name, one per
    image, or None for each image's predicted class. ``method``: see :func:`method_names`;
    ``options`` are the method's own (unknown ones are refused with the valid list). The model's
    train/eval state is restored afterwards and no hook or mode outlives the call.
    """
    cls = get_method(method)
    allowed = method_options(method)
    for key in options:
        if key not in allowed:
            raise UnknownNameError(
                did_you_mean(key, list(allowed), f"option for method {method!r}")
            )
    opts = {**allowed, **options}
    batch_size = int(opts.pop("batch_size"))
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    with eval_mode(lens.model):
        xs = check_input(lens, x)
        targets = resolve_target(lens, xs, target)
        ctx = Context(lens=lens, x=xs, target=targets, batch_size=batch_size)
        values, native, extras = cls().compute(ctx, **opts)
    if values.dim() == 4:
        values = values.sum(dim=1)  # channel reduction: sum of the signed evidence
    shown = {k: _jsonable(v) for k, v in {**opts, **ctx.resolved}.items()}
    shown["batch_size"] = batch_size
    return Heatmap(
        values=values.detach().float().cpu(),
        method=method,
        target=targets.cpu(),
        options=shown,
        native=None if native is None else native.detach().float().cpu(),
        extras={k: v.detach().cpu() for k, v in extras.items()},
    )


def resolve_target(lens: Lens, x: torch.Tensor, target: Target) -> torch.Tensor:
    """(N,) class indices: the prediction when None; names and indices are checked (one line)."""
    n = int(x.shape[0])
    if target is None:
        with torch.no_grad():
            return lens.logits(x).argmax(dim=1)
    if isinstance(target, torch.Tensor):
        items: list[int | str] = [int(v) for v in target.reshape(-1).tolist()]
    elif isinstance(target, (int, str)):
        items = [target]
    else:
        items = list(target)
    indices = [_class_index(lens, t) for t in items]
    if len(indices) == 1:
        indices = indices * n
    if len(indices) != n:
        raise UnitError(f"got {len(indices)} targets for {n} images; give one, or one per image")
    return torch.tensor(indices, dtype=torch.long, device=x.device)


def _class_index(lens: Lens, t: int | str) -> int:
    names = list(lens.class_names) or [str(i) for i in range(_num_outputs(lens))]
    k = len(names)
    if isinstance(t, str):
        if t in names:  # a class name wins over an index spelled as text
            return names.index(t)
        if not t.lstrip("-").isdigit():
            raise UnitError(did_you_mean(t, names, "target class"))
    i = int(t)
    if not 0 <= i < k:
        listed = ", ".join(names) if k <= 30 else ", ".join(names[:30]) + ", ..."
        raise UnitError(f"target class {i} is out of range: the model has {k} classes, "
                        f"0-{k - 1} ({listed})")  # fmt: skip
    return i


def _num_outputs(lens: Lens) -> int:
    shape = lens.layer(lens.logits_layer).output_shape
    return int(shape[0])


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run in eval mode (no dropout noise in a heatmap), then restore every module's flag."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), kernel radius 3 sigma, reflect-padded borders."""
    if sigma <= 0:
        return x
    radius = max(1, int(3.0 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    h, w = x.shape[2], x.shape[3]
    mode = "reflect" if radius < min(h, w) else "replicate"
    out = F.pad(x, (radius, radius, 0, 0), mode=mode)
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.pad(out, (0, 0, radius, radius), mode=mode)
    return F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def default_blur_sigma(lens: Lens) -> float:
    """The blur used for 'blurred' baselines: side / 7 pixels (4.0 on 28x28 MNIST)."""
    return min(lens.spec.height, lens.spec.width) / 7.0


def upsample(native: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, h, w) -> (N, H, W), bilinear with cell centres aligned (for overlays and rankings)."""
    return F.interpolate(
        native.unsqueeze(1), size=(height, width), mode="bilinear", align_corners=False
    ).squeeze(1)


def _jsonable(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return f"tensor{tuple(v.shape)}"
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)
