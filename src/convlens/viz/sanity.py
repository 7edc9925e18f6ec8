"""The model-parameter randomization sanity check (Adebayo et al. 2018), cascading from the top.

A heatmap that explains the *model* must change when the model's learned weights are destroyed;
one that barely changes is showing the input (edges, strokes), not the model. Protocol:

- **Copy.** A deep copy of the model is randomized; the user's model is never touched.
- **Stages.** Stage k re-initializes (the module's own ``reset_parameters``, seeded with
  ``seed + k``) the k topmost layers that have weights (conv and dense, from the logits layer
  down), cumulatively: dense_3, then dense_3 + dense_2, ..., finally every layer.
- **Maps.** At every stage the same method, options, images and targets (the trained model's
  targets) give a map, compared per image with the trained model's map by
  *Spearman* rank correlation of |map| (average ranks for ties; 0 when either map is constant)
  and *SSIM* of |map| scaled by its own max to [0, 1] (Gaussian window 7x7, sigma 1.5,
  K1 = 0.01, K2 = 0.03, data range 1, valid positions only, mean over the SSIM map).
- **Verdict.** A method passes when the mean Spearman over all stages (the area under the
  cascade, each stage weighted alike) is below ``threshold`` (default 0.5): its maps have, on
  average, decorrelated from the trained ones. A map that changes only once the first conv
  layer is destroyed (guided backprop, as published) fails, although its last stage alone
  falls below 0.5 on kaggle4; so does one that never changes (gradient x input on MNIST).
  ``final_spearman`` (every layer randomized) is reported beside it.
- **Where.** On MNIST a map that is exactly zero on the black background (gradient x input,
  integrated gradients from black, occlusion with black) shares that zero set with *any* model,
  which alone keeps the Spearman high. ``where`` (a boolean (N, H, W) mask, e.g. ``x > 0`` for
  the digit's pixels) restricts the Spearman to those pixels, separating "the input fixes the
  map's support" from "the input fixes the map".
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..display.base import Summarized
from ..lens import Lens
from .activations import check_input
from .attribution.core import Target, attribute, eval_mode, method_options, resolve_target

DEFAULT_THRESHOLD = 0.5
SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 7, 1.5, 0.01, 0.03


@dataclass(frozen=True, eq=False)
class SanityStage:
    """Similarity to the trained maps after randomizing ``layers`` (top-down, cumulative)."""

    layers: tuple[str, ...]
    spearman: torch.Tensor  # (N,)
    ssim: torch.Tensor  # (N,)

    @property
    def layer(self) -> str:
        """The layer this stage added to the randomized set."""
        return self.layers[-1]

    @property
    def mean_spearman(self) -> float:
        return float(self.spearman.mean())

    @property
    def mean_ssim(self) -> float:
        return float(self.ssim.mean())


@dataclass(frozen=True, eq=False, repr=False)
class SanityResult(Summarized):
    """One method's cascade: a stage per randomized layer, and the verdict."""

    method: str
    stages: list[SanityStage]
    threshold: float
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def mean_spearman(self) -> float:
        """Mean over the stages of the mean Spearman of |map| (what the verdict reads)."""
        return sum(s.mean_spearman for s in self.stages) / max(len(self.stages), 1)

    @property
    def final_spearman(self) -> float:
        """Mean Spearman of |map| once every weighted layer is randomized."""
        return self.stages[-1].mean_spearman if self.stages else float("nan")

    @property
    def final_ssim(self) -> float:
        return self.stages[-1].mean_ssim if self.stages else float("nan")

    @property
    def passed(self) -> bool:
        return self.mean_spearman < self.threshold

    def rows(self) -> list[dict[str, Any]]:
        """One dict per stage (for tables and JSON)."""
        return [
            {
                "stage": i + 1,
                "randomized": s.layer,
                "spearman": s.mean_spearman,
                "ssim": s.mean_ssim,
            }
            for i, s in enumerate(self.stages)
        ]

    def verdict(self) -> str:
        word = "passes" if self.passed else "FAILS"
        sign = "<" if self.passed else ">="
        return (
            f"{word}: mean Spearman of |map| over the cascade {self.mean_spearman:.2f} "
            f"{sign} {self.threshold:g} (fully randomized: {self.final_spearman:.2f})"
        )


def weighted_layers(lens: Lens) -> list[str]:
    """Layers that carry learned weights (conv, dense), from the top (logits) down."""
    return [i.name for i in reversed(lens.layers) if i.kind in ("conv", "dense") and i.params > 0]


def copy_lens(lens: Lens) -> Lens:
    """A Lens over a deep copy of the model, with its layer table pointing into the copy."""
    return lens.with_model(copy.deepcopy(lens.model))


def randomize(module: nn.Module, seed: int) -> None:
    """Re-initialize ``module``'s weights as at construction, deterministically."""
    devices = [module.weight.device] if getattr(module, "weight", None) is not None else []
    cuda = [d for d in devices if d.type == "cuda"]
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()  # type: ignore[operator]
        else:
            with torch.no_grad():
                for p in module.parameters(recurse=False):
                    p.normal_(0.0, float(p.std()) if p.numel() > 1 else 0.1)


def average_ranks(a: torch.Tensor) -> torch.Tensor:
    """Row-wise ranks of (N, P) with ties given their average rank (as Spearman needs)."""
    s, _ = torch.sort(a, dim=1)
    left = torch.searchsorted(s, a, right=False)
    right = torch.searchsorted(s, a, right=True)
    return (left + right - 1).to(torch.float64) / 2.0


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) Spearman rank correlation of rows of (N, ...) maps; 0 where a row is constant."""
    ra = average_ranks(a.flatten(1).double().contiguous())
    rb = average_ranks(b.flatten(1).double().contiguous())
    ra = ra - ra.mean(dim=1, keepdim=True)
    rb = rb - rb.mean(dim=1, keepdim=True)
    den = ra.norm(dim=1) * rb.norm(dim=1)
    out = torch.where(den > 0, (ra * rb).sum(dim=1) / den.clamp(min=1e-300), 0.0)
    return out.float()


def masked_spearman(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """(N,) Spearman over the pixels selected by ``where`` (N, H, W) only, image by image."""
    rows = [spearman(a[i][where[i]][None], b[i][where[i]][None])[0] for i in range(len(a))]
    return torch.stack(rows) if rows else torch.zeros(0)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) mean SSIM of (N, H, W) maps in [0, 1] (Gaussian window 7, sigma 1.5, valid region)."""
    x, y = a.unsqueeze(1).double(), b.unsqueeze(1).double()
    size = min(SSIM_WINDOW, x.shape[2], x.shape[3])
    t = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (t / SSIM_SIGMA) ** 2)
    k = (g[:, None] * g[None, :]) / (g.sum() ** 2)
    k = k.view(1, 1, size, size).to(x.device)

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, k)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    num = (2 * mx * my + c1) * (2 * cxy + c2)
    den = (mx**2 + my**2 + c1) * (vx + vy + c2)
    return (num / den).flatten(1).mean(dim=1).float()


def _unit_abs(v: torch.Tensor) -> torch.Tensor:
    a = v.abs()
    peak = a.flatten(1).max(dim=1).values.clamp(min=1e-30)
    return a / peak[:, None, None]


def sanity_check(
    lens: Lens,
    x: torch.Tensor,
    method: str = "gradient",
    target: Target = None,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    where: torch.Tensor | None = None,
    **options: Any,
) -> SanityResult:
    """Cascading randomization check of ``method`` on images ``x`` (see the module docstring).

    ``options`` go to the method; ``where`` limits the Spearman to some pixels (bool (N, H, W)).
    ``seed`` seeds the re-initializations and, unless ``options`` name one, the method's own
    noise (SmoothGrad, RISE), the same at every stage so only the model changes.
    """
    if "seed" in method_options(method) and "seed" not in options:
        options = {**options, "seed": seed}
    xs = check_input(lens, x)
    if where is not None:
        where = where.to(torch.bool).cpu().expand(xs.shape[0], xs.shape[2], xs.shape[3])
    with eval_mode(lens.model):
        tgt = resolve_target(lens, xs, target)
    trained = attribute(lens, xs, tgt, method, **options)
    ref_abs, ref_unit = trained.values.abs(), _unit_abs(trained.values)
    work = copy_lens(lens)
    names = weighted_layers(lens)
    stages: list[SanityStage] = []
    for k, name in enumerate(names):
        randomize(work.module(name), seed + k + 1)
        hm = attribute(work, xs, tgt, method, **options)
        stages.append(
            SanityStage(
                layers=tuple(names[: k + 1]),
                spearman=spearman(hm.values.abs(), ref_abs)
                if where is None
                else masked_spearman(hm.values.abs(), ref_abs, where),
                ssim=ssim(_unit_abs(hm.values), ref_unit),
            )
        )
    return SanityResult(
        method=method,
        stages=stages,
        threshold=threshold,
        options=trained.options,
    )
