"""Benchmark of feature visualization: convlens against the classic loop, in one run.

    python bench/render.py [--ckpt runs/kaggle4] [--threads N] [--classic-every K]

Renders all conv channels and all classes of the model with the default preset and, in the
same process, times
  (a) the classic recipe one unit at a time (the Keras blog: noise start, RMS-normalized
      gradient of the channel mean, constant step, 256 steps; classes from zeros, decaying
      step), on every K-th unit and extrapolated to all (said so in the output),
  (b) plain batched gradient ascent at 256 steps (the same recipe, all units in one batched
      run: ``preset="seed"``),
  (c) plain forward+backward throughput of the model at large batches, per depth,
and prints seconds, the ratios classic/convlens and plain-batched/convlens, the efficiency =
ideal time from (c) for the image passes convlens actually ran / its actual time (each run
paired with a throughput measurement just before it, as the machine may be shared), and per
layer the share of live channels with r >= 1 and the median r, for the classic recipe and for
convlens. Ratios are measured in the same run, so they hold on a busy machine too.

Then the picture table, for every preset (``seed``, ``clear`` and the default, each rendering
all conv channels and classes with the same seed): per layer the share of live channels with
r_mean >= 1 and with r_peak >= 1, the match top-1 rate (the unit's own real examples are the
closest to its picture), the mean share of pixels at the range limits (beside the same figure
for the real validation digits), the flat pictures (> 80% one value) and the units that the
best constant image already ties; the class prototypes judged by the model and by an
independently trained model of another architecture (simple2, trained here on the training
split only), also with ``--diversity 4``; and each preset's time against ``clear``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import convlens as cl
from convlens.lens import Lens
from convlens.units import Unit, resolve_units
from convlens.viz.maxima import Maxima, dataset_maxima
from convlens.viz.render import render
from convlens.viz.render.evidence import FLAT, pixel_figures
from convlens.viz.render.presets import PRESETS, get_preset
from convlens.viz.render.prior import image_prior
from convlens.viz.render.result import R_TOLERANCE, RenderResult

try:
    from convlens.viz.render.presets import DEFAULT_PRESET
except ImportError:  # before a default other than clear existed
    DEFAULT_PRESET = "clear"

STEPS = 256


def classic_unit(lens: Lens, unit: Unit, steps: int, gen: torch.Generator) -> torch.Tensor:
    """The blog loop for one unit, as written there (one image, one unit, step by step)."""
    lo, hi = lens.spec.value_range
    span = hi - lo
    shape = (1, *lens.spec.shape)
    if unit.kind == "class":
        x = torch.full(shape, lo)
    else:
        x = lo + span * (torch.rand(shape, generator=gen) * 20 + 128) / 255
    for i in range(steps):
        x.requires_grad_(True)
        if unit.kind == "class":
            loss = lens.logits(x)[0, unit.channel]
            step = 2 * span / 255 * (1 - i / steps)
        else:
            loss = lens.forward(x, [unit.layer])[unit.layer][0, unit.channel].mean()
            step = span / 255
        (grad,) = torch.autograd.grad(loss, x)
        grad = grad / (grad.pow(2).mean().sqrt() + 1e-5)
        x = (x + step * grad).detach()
    return x[0]


@torch.no_grad()
def ratios(lens: Lens, units: list[Unit], images: torch.Tensor, maxima: Maxima) -> torch.Tensor:
    """r = largest post-activation of each channel's map / its dataset maximum (NaN if dead)."""
    out = torch.full((len(units),), float("nan"))
    images = images.clamp(*lens.spec.value_range)  # as render verifies: inside the input range
    for i, unit in enumerate(units):
        ref = float(maxima.channel[unit.layer][unit.channel])
        if ref > 0:
            a = lens.forward(images[i : i + 1], [unit.layer])[unit.layer][0, unit.channel]
            out[i] = float(a.max()) / ref
    return out


def class_ok(lens: Lens, units: list[Unit], images: torch.Tensor) -> int:
    probs = lens.predict(images)
    return sum(
        int(probs[i].argmax() == u.channel and probs[i, u.channel] >= 0.99)
        for i, u in enumerate(units)
    )


def throughput(lens: Lens, layer: str, batches: tuple[int, ...], seconds: float = 0.6) -> float:
    """Forward+backward (to the input) images per second, at the best of ``batches``.

    Each batch size is timed pass by pass for ``seconds``; its rate uses the median pass, so
    a busy machine slows this figure as much as it slows the render it is compared with.
    """
    best = 0.0
    params = [(p, p.requires_grad) for p in lens.model.parameters()]
    for p, _ in params:
        p.requires_grad_(False)
    cpu = lens.device.type == "cpu"
    if cpu:
        lens.model.to(memory_format=torch.channels_last)
    try:
        for b in batches:
            x = torch.rand(b, *lens.spec.shape, device=lens.device)
            if cpu:
                x = x.contiguous(memory_format=torch.channels_last)
            passes: list[float] = []
            start = time.perf_counter()
            while len(passes) < 3 or time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                xx = x.clone().requires_grad_(True)
                out = (
                    lens.logits(xx)
                    if layer == lens.logits_layer
                    else lens.forward(xx, [layer])[layer]
                )
                torch.autograd.grad(out.sum(), xx)
                _sync(lens)
                passes.append(time.perf_counter() - t0)
            best = max(best, b / statistics.median(passes[1:]))  # the first pass warms up
    finally:
        if cpu:
            lens.model.to(memory_format=torch.contiguous_format)
        for p, flag in params:
            p.requires_grad_(flag)
    return best


def _sync(lens: Lens) -> None:
    if lens.device.type == "cuda":
        torch.cuda.synchronize()


def per_layer(
    units: list[Unit], r: torch.Tensor, layers: list[str]
) -> dict[str, tuple[int, int, float]]:
    out = {}
    for layer in layers:
        rows = [i for i, u in enumerate(units) if u.layer == layer and not torch.isnan(r[i])]
        if rows:
            rr = r[rows]
            out[layer] = (int((rr >= 1 - R_TOLERANCE).sum()), len(rows), float(rr.median()))
    return out


def fmt(stats: tuple[int, int, float] | None) -> str:
    if stats is None:
        return "-"
    ok, live, med = stats
    return f"{ok:>3}/{live:<3} {100 * ok / live:5.1f}%  med r {med:4.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ckpt", default="runs/kaggle4")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine OpenMP threads that wait on "
        "busy cores slow every step several-fold; use 2 on an idle machine)",
    )
    ap.add_argument(
        "--classic-every",
        type=int,
        default=4,
        help="time the classic loop on every K-th unit and extrapolate (1: all)",
    )
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="convlens runs (median is reported)")
    ap.add_argument(
        "--presets",
        default=",".join(PRESETS),
        help="presets of the picture table (default: all: " + ", ".join(PRESETS) + ")",
    )
    ap.add_argument("--no-speed", action="store_true", help="only the picture table")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    lens = cl.load(Path(args.ckpt)).to(device)
    convs = [info.name for info in lens.conv_layers()]
    spec = ",".join(f"{name}:*" for name in convs) + ",class:*"
    units = resolve_units(lens, spec)
    maxima = dataset_maxima(lens)  # computed (or read from cache) outside the timings
    if any(get_preset(p).recipe.param == "latent" for p in PRESETS):
        t0 = time.perf_counter()
        prior = image_prior(lens)  # trained once per dataset (or read from the cache), untimed
        how = f"trained in {prior.seconds:.1f} s" if prior.seconds else "read from the cache"
        print(f"image prior: {how} ({time.perf_counter() - t0:.1f} s), latent {prior.latent}")
    print(
        f"model {args.ckpt}: {len(units)} units ({', '.join(convs)}: all channels; "
        f"{lens.num_classes} classes) on {device}, {torch.get_num_threads()} torch threads"
    )

    render(lens, f"{convs[0]}:0", steps=3)  # warm-up: lazy initialization, allocator
    if not args.no_speed:
        speed(args, lens, convs, spec, units, maxima, device)
    pictures(args, lens, convs, spec)


def speed(
    args: argparse.Namespace,
    lens: Lens,
    convs: list[str],
    spec: str,
    units: list[Unit],
    maxima: Maxima,
    device: str,
) -> None:
    """Timings against the classic loop and plain batched ascent, and r_peak per layer."""

    # convlens, default preset
    # convlens, each run paired with a throughput measurement (c) taken just before it, so
    # that the efficiency compares times measured under the same load
    batches = (32, 128) if device == "cpu" else (1024, 4096)
    layers = [*convs, lens.logits_layer]
    times, ideals, all_rates = [], [], []
    for _ in range(max(1, args.repeats)):  # the same seed: the same images each time
        rates = {layer: throughput(lens, layer, batches, 0.3) for layer in layers}
        t0 = time.perf_counter()
        res: RenderResult = render(lens, spec, seed=args.seed, preset=DEFAULT_PRESET)
        times.append(time.perf_counter() - t0)
        ideals.append(sum(n / rates[layer] for layer, n in res.layer_steps.items()))
        all_rates.append(rates)
    t_convlens = statistics.median(times)
    efficiency = statistics.median(i / t for i, t in zip(ideals, times, strict=True))
    ideal = statistics.median(ideals)

    # (b) plain batched gradient ascent: the classic recipe, all units in one batched run
    rates = {layer: throughput(lens, layer, batches, 0.3) for layer in layers}
    t0 = time.perf_counter()
    plain = render(lens, spec, preset="seed", steps=STEPS, seed=args.seed)
    t_plain = time.perf_counter() - t0

    # (a) the classic loop, one unit at a time, on every K-th unit of each layer
    k = max(1, args.classic_every)
    subset = [
        u
        for layer in [*convs, "class"]
        for j, u in enumerate(
            [u for u in units if (u.layer == layer if layer != "class" else u.kind == "class")]
        )
        if j % k == 0
    ]
    gen = torch.Generator().manual_seed(args.seed)
    classic_images = []
    t_subset = t_classic = 0.0
    for key in dict.fromkeys(u.layer for u in subset):  # layer by layer: cost grows with depth
        chosen = [u for u in subset if u.layer == key]
        t0 = time.perf_counter()
        classic_images += [classic_unit(lens, u, STEPS, gen).cpu() for u in chosen]
        spent = time.perf_counter() - t0
        t_subset += spent
        t_classic += spent * sum(1 for u in units if u.layer == key) / len(chosen)
    classic_images = torch.stack(classic_images)

    ideal_plain = sum(plain.layer_steps[layer] / rates[layer] for layer in plain.layer_steps)
    rates = {layer: statistics.median(r[layer] for r in all_rates) for layer in layers}

    print()
    print(
        f"(a) classic loop, one unit at a time, {STEPS} steps: {t_classic:7.2f} s "
        f"(timed on {len(subset)} of {len(units)} units, every {k}th, in {t_subset:.1f} s; "
        "extrapolated by layer)"
        if k > 1
        else f"(a) classic loop, one unit at a time, {STEPS} steps: {t_classic:7.2f} s"
    )
    print(
        f"(b) plain batched gradient ascent, {STEPS} steps:   {t_plain:7.2f} s "
        f"({plain.item_steps} image passes)"
    )
    print(
        f"{f'convlens render (preset {DEFAULT_PRESET}):':<48}{t_convlens:7.2f} s "
        f"(median of {len(times)}: {', '.join(f'{t:.2f}' for t in times)}; "
        f"{res.item_steps} image passes, {res.item_steps / len(res):.0f} per unit, "
        f"{sum(1 for r in res.restarts if r)} units needed a fresh start)"
    )
    print(
        f"(c) forward+backward throughput (best of batches {batches}, median of runs), images/s: "
        + ", ".join(f"{layer} {rate:.0f}" for layer, rate in rates.items())
    )
    print()
    print(f"classic / convlens:        {t_classic / t_convlens:6.1f}x   (target >= 10x)")
    print(f"plain batched / convlens:  {t_plain / t_convlens:6.1f}x")
    print(
        f"efficiency convlens:       {efficiency:6.2f}    (ideal {ideal:.2f} s from (c); "
        "median over runs, each against (c) measured just before it; target >= 0.5)"
    )
    print(f"efficiency plain batched:  {ideal_plain / t_plain:6.2f}")

    print()
    chan_units = [u for u in units if u.kind == "channel"]
    rows = [i for i, u in enumerate(units) if u.kind == "channel"]
    r_plain = plain.ratio[rows]
    r_ours = res.ratio[rows]
    sub_ch = [u for u in subset if u.kind == "channel"]
    sub_imgs = classic_images[[i for i, u in enumerate(subset) if u.kind == "channel"]]
    r_classic = ratios(lens, sub_ch, sub_imgs.to(lens.device), maxima)
    a = per_layer(sub_ch, r_classic, convs)
    b = per_layer(chan_units, r_plain, convs)
    c = per_layer(chan_units, r_ours, convs)
    print("live channels with r >= 1 (r = reached / best validation image), median r:")
    print(f"{'layer':<10} {'classic (a, subset)':<28} {'classic recipe (b, all)':<28} convlens")
    for layer in convs:
        print(f"{layer:<10} {fmt(a.get(layer)):<28} {fmt(b.get(layer)):<28} {fmt(c.get(layer))}")
    tot = [sum(v[0] for v in d.values()) for d in (a, b, c)]
    live = [sum(v[1] for v in d.values()) for d in (a, b, c)]
    print(
        f"{'all':<10} "
        + "".join(
            f"{f'{t:>3}/{n:<3} {100 * t / max(n, 1):5.1f}%':<28} "
            for t, n in zip(tot, live, strict=True)
        )
    )
    dead = {layer: len(maxima.dead(layer)) for layer in convs}
    print(
        "dead channels (never active on validation images): "
        + ", ".join(f"{layer} {n}" for layer, n in dead.items())
    )
    cls = [u for u in units if u.kind == "class"]
    crow = [i for i, u in enumerate(units) if u.kind == "class"]
    sub_cls = [u for u in subset if u.kind == "class"]
    sub_cls_imgs = classic_images[[i for i, u in enumerate(subset) if u.kind == "class"]]
    print(
        f"classes classified as themselves with p >= 0.99: classic (a) "
        f"{class_ok(lens, sub_cls, sub_cls_imgs)}/{len(sub_cls)}, classic recipe (b) "
        f"{class_ok(lens, cls, plain.images[crow])}/{len(cls)}, convlens "
        f"{class_ok(lens, cls, res.images[crow])}/{len(cls)}"
    )


def pictures(args: argparse.Namespace, lens: Lens, convs: list[str], spec: str) -> None:
    """The picture table: both ratios, match, pixels at the limits, flat images, classes, time."""
    from convlens.data import load_dataset
    from convlens.train import train
    from convlens.viz.maxima import default_dataset

    name, split_seed = default_dataset(lens)
    data = load_dataset(name, split_seed=split_seed, size=lens.spec.height)
    real_limits, real_flat = pixel_figures(data.x_val, lens.spec.value_range)
    presets = [p for p in args.presets.split(",") if p]
    results: dict[str, RenderResult] = {}
    seconds: dict[str, float] = {}
    for preset in presets:
        t0 = time.perf_counter()
        results[preset] = render(lens, spec, preset=preset, seed=args.seed, progress=False)
        seconds[preset] = time.perf_counter() - t0

    print()
    print(
        "picture table: live channels with r_mean >= 1 | with r_peak >= 1 | match top-1 | mean "
        "share of pixels at the range limits | flat pictures (> 80% one value) | tied by the "
        "best constant image (its r_peak >= 1)"
    )
    print(
        f"real validation images ({len(data.x_val)}): {100 * float(real_limits.mean()):.0f}% of "
        f"pixels at the limits, {int((real_flat > FLAT).sum())} flat"
    )
    head = f"{'layer':<10}" + "".join(f"{p:<44}" for p in presets)
    print(head)
    totals = {p: [0, 0, 0] for p in presets}  # r_mean ok, r_peak ok, live
    for layer in convs:
        cells = []
        for p in presets:
            s = results[p].summary()[layer]
            res = results[p]
            rows = [i for i in res.rows(layer, "channel") if res.status[i] != "dead"]
            tied = int((torch.nan_to_num(res.constant_r_peak[rows]) >= 1 - R_TOLERANCE).sum())
            totals[p][0] += s["r_mean_ge_1"]
            totals[p][1] += s["r_peak_ge_1"]
            totals[p][2] += s["live"]
            cells.append(
                f"{s['r_mean_ge_1']:>3}/{s['live']:<3}| {s['r_peak_ge_1']:>3} | "
                f"{s['match_top1']:4.2f} | {100 * s['at_limits']:3.0f}% | {s['flat']:>2} | "
                f"{tied:>2}"
            )
        print(f"{layer:<10}" + "".join(f"{c:<44}" for c in cells))
    cells = []
    for ok_mean, ok_peak, live in totals.values():
        share_mean, share_peak = 100 * ok_mean / max(live, 1), 100 * ok_peak / max(live, 1)
        cells.append(
            f"{ok_mean:>3}/{live:<3}({share_mean:3.0f}%) | {ok_peak:>3} ({share_peak:3.0f}%)"
        )
    print(f"{'all':<10}" + "".join(f"{c:<44}" for c in cells))

    # Classes: the model's verdict, and an independent judge trained on the training split.
    torch.manual_seed(args.seed)
    judge = train("simple2", data, epochs=3, seed=args.seed, progress=False).model.eval()
    with torch.no_grad():
        judge_acc = float((judge(data.x_val).argmax(1) == data.y_val).float().mean())
    print()
    print(
        f"class prototypes (judge: simple2 trained 3 epochs on the {len(data.x_train)} training "
        f"images, val acc {judge_acc:.3f}):"
    )
    runs = {p: results[p] for p in presets}
    t0 = time.perf_counter()
    diverse = render(
        lens, "class:*", preset=DEFAULT_PRESET, seed=args.seed, diversity=4, progress=False
    )
    t_diverse = time.perf_counter() - t0
    runs[f"{DEFAULT_PRESET} --diversity 4"] = diverse
    for label, res in runs.items():
        rows = res.rows(kind="class")
        targets = torch.tensor([res.units[i].channel for i in rows])
        ok_model = int(res.passed[rows].sum())
        with torch.no_grad():
            said = judge(lens.spec.normalize(res.images[rows])).argmax(1)
        ok_judge = int((said == targets).sum())
        print(
            f"  {label:<26} model p >= 0.99: {ok_model:>2}/{len(rows)}   "
            f"read as their class by the judge: {ok_judge:>2}/{len(rows)}"
        )
    print(f"  (--diversity 4 took {t_diverse:.1f} s)")
    print()
    base = seconds.get("clear")
    print(
        "time, all channels + classes: "
        + ", ".join(
            f"{p} {t:.1f} s" + (f" ({t / base:.2f}x clear)" if base and p != "clear" else "")
            for p, t in seconds.items()
        )
    )


if __name__ == "__main__":
    main()
