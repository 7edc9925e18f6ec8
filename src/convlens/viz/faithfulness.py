"""Deletion and insertion AUC: does a heatmap rank first the pixels the model actually needs?

The RISE protocol (Petsiuk et al. 2018), exactly as computed here:

- **Ranking.** Pixels (spatial positions; all channels of a position move together) are sorted by
  the map's *signed* value, highest first, so evidence against the class comes last. Ties (e.g.
  the exact zeros of guided backprop) are broken in a seeded random order, never by position.
- **Steps.** ``steps`` equal steps: after step k (k = 0 .. steps) the first
  n_k = round(k * H * W / steps) ranked pixels have been changed; ``steps + 1`` images per curve.
- **Deletion.** Changed pixels are set to ``baseline`` (default: the bottom of the value range,
  i.e. 0 = black for MNIST). A faithful map makes the score fall fast: low AUC is good.
- **Insertion.** The start image is the input under a Gaussian blur of ``blur_sigma`` pixels
  (default side / 7 = 4.0 px on 28x28; kernel radius 3 sigma, reflected borders); changed pixels
  take their original values. A faithful map makes the score rise fast: high AUC is good.
- **Score.** The softmax probability of the target class (default: the heatmap's target).
- **AUC.** Trapezoid rule over the fraction of pixels changed, n_k / (H W), in [0, 1].
- **Baseline to beat.** The same curves for a uniformly random pixel order per image (seeded):
  a map earns trust only where deletion AUC < random and insertion AUC > random.

Every step of every image is scored in large batches (``batch_size`` images per forward pass).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ..display.base import Pictured, Summarized
from ..lens import Lens
from .activations import check_input
from .attribution import Heatmap, attribute, get_method, method_names, method_options
from .attribution.core import Target, default_blur_sigma, eval_mode, gaussian_blur, resolve_target

DEFAULT_STEPS = 25


@dataclass(frozen=True, eq=False, repr=False)
class Faithfulness(Summarized):
    """Deletion/insertion curves and AUCs per image, with the random-order baseline beside them."""

    fractions: torch.Tensor  # (steps + 1,) fraction of pixels changed
    deletion_curve: torch.Tensor  # (N, steps + 1) target probability
    insertion_curve: torch.Tensor  # (N, steps + 1)
    deletion_auc: torch.Tensor  # (N,)
    insertion_auc: torch.Tensor  # (N,)
    random_deletion_auc: torch.Tensor | None = None  # (N,)
    random_insertion_auc: torch.Tensor | None = None
    random_deletion_curve: torch.Tensor | None = None
    random_insertion_curve: torch.Tensor | None = None
    target: torch.Tensor | None = None
    method: str = ""
    protocol: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float | None]:
        """Mean AUCs over the images (and of the random order): the figures a report shows."""

        def mean(t: torch.Tensor | None) -> float | None:
            return None if t is None else float(t.mean())

        return {
            "deletion_auc": mean(self.deletion_auc),
            "insertion_auc": mean(self.insertion_auc),
            "random_deletion_auc": mean(self.random_deletion_auc),
            "random_insertion_auc": mean(self.random_insertion_auc),
        }


def pixel_ranks(values: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """(N, H*W) rank of each pixel (0 = changed first): signed value, highest first, ties random."""
    flat = values.reshape(values.shape[0], -1)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    shuffle = torch.stack([torch.randperm(flat.shape[1], generator=gen) for _ in range(len(flat))])
    shuffle = shuffle.to(flat.device)
    order = shuffle.gather(1, torch.argsort(-flat.gather(1, shuffle), dim=1, stable=True))
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand_as(order))
    return ranks


def random_ranks(n: int, pixels: int, seed: int, device: torch.device) -> torch.Tensor:
    """(N, pixels) uniformly random ranks (the random-order baseline), seeded."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed) + 1)
    return torch.stack([torch.randperm(pixels, generator=gen) for _ in range(n)]).to(device)


@torch.no_grad()
def curves(
    lens: Lens,
    x: torch.Tensor,
    ranks: torch.Tensor,
    target: torch.Tensor,
    *,
    steps: int,
    baseline: float,
    blurred: torch.Tensor,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fractions (S+1,), deletion and insertion probability curves (N, S+1), all steps batched."""
    n, _, h, w = x.shape
    pixels = h * w
    counts = torch.round(torch.arange(steps + 1, dtype=torch.float64) * pixels / steps).long()
    counts = counts.to(x.device)
    total = n * (steps + 1)
    deletion = torch.empty(total, device=x.device)
    insertion = torch.empty(total, device=x.device)
    flat = torch.arange(total, device=x.device)
    for i in range(0, total, batch_size):
        idx = flat[i : i + batch_size]
        img, step = idx // (steps + 1), idx % (steps + 1)
        changed = (ranks[img] < counts[step].unsqueeze(1)).view(-1, 1, h, w)
        xs = x[img]
        deleted = torch.where(changed, torch.full_like(xs, baseline), xs)
        inserted = torch.where(changed, xs, blurred[img])
        both = torch.cat([deleted, inserted])
        probs = torch.softmax(lens.logits(both), dim=-1).gather(1, target[img].repeat(2)[:, None])
        deletion[i : i + len(idx)], insertion[i : i + len(idx)] = probs.squeeze(1).chunk(2)
    fractions = counts.double().cpu() / pixels
    return fractions.float(), deletion.view(n, -1).cpu(), insertion.view(n, -1).cpu()


def auc(curve: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Trapezoid-rule area under each row of ``curve`` over ``fractions``."""
    return torch.trapezoid(curve, fractions.to(curve), dim=-1)


def faithfulness(
    lens: Lens,
    x: torch.Tensor,
    heatmap: Heatmap | torch.Tensor,
    target: Target = None,
    *,
    steps: int = DEFAULT_STEPS,
    baseline: float | None = None,
    blur_sigma: float | None = None,
    random_order: bool = True,
    seed: int = 0,
    batch_size: int = 512,
) -> Faithfulness:
    """Deletion and insertion AUC of ``heatmap`` for images ``x`` (see the module docstring).

    ``target`` defaults to the heatmap's own target (or the prediction, for a bare tensor).
    ``random_order`` adds the random-order AUCs (the baseline to beat); they depend only on the
    images, target and seed, so a comparison of many methods can compute them once.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    values = heatmap.values if isinstance(heatmap, Heatmap) else heatmap
    if values.dim() == 2:
        values = values.unsqueeze(0)
    with eval_mode(lens.model):
        xs = check_input(lens, x)
        if values.shape != (xs.shape[0], xs.shape[2], xs.shape[3]):
            raise ValueError(f"heatmap of shape {tuple(values.shape)} does not match images "
                             f"{tuple(xs.shape)}; need (N, H, W)")  # fmt: skip
        if target is None and isinstance(heatmap, Heatmap):
            target = heatmap.target
        tgt = resolve_target(lens, xs, target)
        low = lens.spec.value_range[0] if baseline is None else float(baseline)
        sigma = default_blur_sigma(lens) if blur_sigma is None else float(blur_sigma)
        blurred = gaussian_blur(xs, sigma)
        kw = {"steps": steps, "baseline": low, "blurred": blurred, "batch_size": batch_size}
        ranks = pixel_ranks(values.to(xs.device), seed)
        fractions, dele, ins = curves(lens, xs, ranks, tgt, **kw)
        rnd: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        if random_order:
            r = random_ranks(len(xs), xs.shape[2] * xs.shape[3], seed, xs.device)
            rnd = curves(lens, xs, r, tgt, **kw)
    return Faithfulness(
        fractions=fractions,
        deletion_curve=dele,
        insertion_curve=ins,
        deletion_auc=auc(dele, fractions),
        insertion_auc=auc(ins, fractions),
        random_deletion_auc=None if rnd is None else auc(rnd[1], fractions),
        random_insertion_auc=None if rnd is None else auc(rnd[2], fractions),
        random_deletion_curve=None if rnd is None else rnd[1],
        random_insertion_curve=None if rnd is None else rnd[2],
        target=tgt.cpu(),
        method=heatmap.method if isinstance(heatmap, Heatmap) else "",
        protocol={
            "steps": steps,
            "baseline": low,
            "blur_sigma": sigma,
            "seed": seed,
            "score": "softmax probability of the target",
        },
    )


@dataclass(frozen=True, eq=False, repr=False)
class MethodEvidence(Summarized):
    """One method's heatmap for some images, its faithfulness, and how long the map took."""

    heatmap: Heatmap
    faithfulness: Faithfulness
    seconds: float


class Explanation(Pictured, dict):  # type: ignore[type-arg]
    """What :func:`explain` returns: method name -> :class:`MethodEvidence`, in order, plus the
    ``inputs`` explained (so the panel of every method can be drawn from the result alone)."""

    def __init__(self, methods: dict[str, MethodEvidence], inputs: torch.Tensor) -> None:
        super().__init__(methods)
        self.inputs = inputs


def explain(
    lens: Lens,
    x: torch.Tensor,
    methods: Sequence[str] | str = "all",
    target: Target = None,
    *,
    layer: str | None = None,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Explanation:
    """Every chosen method's heatmap of ``x`` with its deletion/insertion AUCs, in order.

    ``layer`` goes to the CAM methods, ``seed`` to every method that draws noise, ``options``
    (method -> options) overrides per method. The random-order baseline is computed once and
    shared, since it depends only on the images, the target and the seed.
    """
    if isinstance(methods, str):
        names = method_names() if methods == "all" else [methods]
    else:
        names = list(methods)
    for name in names:
        get_method(name)  # unknown names fail before any work
    xs = check_input(lens, x)
    with eval_mode(lens.model):
        tgt = resolve_target(lens, xs, target)
    out: dict[str, MethodEvidence] = {}
    random_aucs: tuple[torch.Tensor | None, ...] = ()
    for name in names:
        if progress is not None:
            progress(name)
        allowed = method_options(name)
        opts: dict[str, Any] = {}
        if "layer" in allowed and layer is not None:
            opts["layer"] = layer
        if "seed" in allowed:
            opts["seed"] = seed
        opts.update((options or {}).get(name, {}))
        start = time.perf_counter()
        hm = attribute(lens, xs, tgt, name, **opts)
        seconds = time.perf_counter() - start
        f = faithfulness(lens, xs, hm, steps=steps, seed=seed, random_order=not random_aucs)
        if not random_aucs:
            random_aucs = (f.random_deletion_auc, f.random_insertion_auc,
                           f.random_deletion_curve, f.random_insertion_curve)  # fmt: skip
        else:
            f = dataclasses.replace(
                f,
                random_deletion_auc=random_aucs[0],
                random_insertion_auc=random_aucs[1],
                random_deletion_curve=random_aucs[2],
                random_insertion_curve=random_aucs[3],
            )
        out[name] = MethodEvidence(heatmap=hm, faithfulness=f, seconds=seconds)
    return Explanation(out, xs.detach().cpu())
