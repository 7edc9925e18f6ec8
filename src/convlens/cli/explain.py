"""Commands for heatmaps and their evidence: explain (maps + deletion/insertion AUC), sanity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import torch

from .. import images
from ..data import load_dataset
from ..data.for_model import check_fits
from ..errors import DataError, UnknownNameError
from ..fileio import write_json
from ..images.heatmaps import (
    PANEL_CAPTIONS,
    PanelEntry,
    faithfulness_warning,
    heatmap_figure,
    heatmap_panel,
    map_label,
)
from ..lens import Lens
from ..progress import bar as progress_bar
from ..progress import track
from ..viz.attribution import get_method, method_names
from ..viz.attribution.gradients import BASELINES
from ..viz.faithfulness import DEFAULT_STEPS, explain
from ..viz.sanity import DEFAULT_THRESHOLD, sanity_check
from .app import (
    SEED,
    FiniteFloat,
    InputPath,
    OutputPath,
    cli,
    count,
    echo_written,
    input_options,
    lens_argument,
    quiet_option,
)
from .foundation import pick_input

METHODS_HELP = "Comma list of methods, or 'all': " + ", ".join(method_names()) + "."


def _methods(text: str) -> list[str]:
    names = method_names() if text.strip() == "all" else [m.strip() for m in text.split(",")]
    names = [n for n in names if n]
    if not names:
        raise UnknownNameError(f"no heatmap methods given; choose from {', '.join(method_names())}")
    for name in names:
        get_method(name)  # one-line error listing the valid methods
    return names


def _options(baseline: str, masks: int | None, signed: bool = False) -> dict[str, dict[str, Any]]:
    opts: dict[str, dict[str, Any]] = {"integrated_gradients": {"baseline": baseline}}
    if masks is not None:
        opts["rise"] = {"masks": masks}
    if signed:  # CAM maps keep their negative part (evidence against the class)
        opts.update({name: {"relu": False} for name in method_names()
                     if "relu" in get_method(name).defaults})  # fmt: skip
    return opts


def _target(text: str | None) -> int | str | None:
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


@cli.command("explain")
@lens_argument
@input_options
@click.option("--methods", default="all", show_default=True, help=METHODS_HELP)
@click.option(
    "--target",
    default=None,
    help="Class to explain, by index or name. Default: the predicted class.",
)
@click.option(
    "--layer", default=None, help="Conv layer for the CAM methods. Default: the last conv layer."
)
@click.option(
    "--baseline",
    type=click.Choice(BASELINES),
    default="black",
    show_default=True,
    help="Integrated gradients' baseline (black is blind on a black background).",
)
@click.option("--masks", type=count(20_000), default=None, help="RISE: number of masks.")
@click.option(
    "--signed",
    is_flag=True,
    help="CAM methods (gradcam, gradcampp, layercam): keep the negative part of the map "
    "(evidence against the class) instead of its positive part, the papers' default.",
)
@click.option(
    "--shared-scale",
    is_flag=True,
    help="Draw every method on one scale: each map divided by its total |value|.",
)
@click.option(
    "--steps",
    default=DEFAULT_STEPS,
    show_default=True,
    type=count(1000),
    help="Deletion/insertion: pixels are changed in this many equal steps.",
)
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--out", type=OutputPath("dir"), required=True, help="Output folder.")
@quiet_option
def explain_command(
    lens: Lens,
    index: int | None,
    image_path: Path | None,
    data: str | None,
    methods: str,
    target: str | None,
    layer: str | None,
    baseline: str,
    masks: int | None,
    signed: bool,
    shared_scale: bool,
    steps: int,
    seed: int,
    out: Path,
    quiet: bool,
) -> None:
    """Heatmaps of why the model decides as it does on one image, with their evidence.

    Writes one PNG per method (input, overlay, map, and CAM maps at their native resolution;
    red is evidence for the class, blue against; CAM maps show their positive part unless
    --signed), a side-by-side panel of all methods, and explain.json with each method's
    deletion and insertion AUC beside the random-order AUC it must beat (lower deletion, higher
    insertion is better). A map that does not beat the random order is framed in red.
    """  # fmt: skip
    names = _methods(methods)
    x, label, what = pick_input(lens, index, image_path, data)
    probs = lens.predict(x)[0]
    pred = int(probs.argmax())
    class_names = list(lens.class_names) or [str(i) for i in range(len(probs))]
    with progress_bar(len(names), desc="explain", unit="method", progress=not quiet) as bar:
        results = explain(lens, x, names, _target(target), layer=layer, seed=seed, steps=steps,
                          options=_options(baseline, masks, signed),
                          progress=lambda n: (bar.set_postfix_str(n), bar.update(1)))  # fmt: skip
    tgt = int(next(iter(results.values())).heatmap.target[0])
    head = f"{what}: predicted {class_names[pred]} ({probs[pred]:.1%})"
    if label is not None:
        head += f", label {class_names[label]}"
    head += f"; explaining class {class_names[tgt]} (p = {probs[tgt]:.3f})"
    click.echo(head)

    shared = None
    maps: dict[str, torch.Tensor] = {}
    natives: dict[str, torch.Tensor | None] = {}
    for name, ev in results.items():
        v, nat = ev.heatmap.values[0], ev.heatmap.native
        if shared_scale:  # unit total mass, so maps in different units share one scale
            mass = float(v.abs().sum()) or 1.0
            v = v / mass
            nat = None if nat is None else nat / mass  # same units as its upsampled values
        maps[name], natives[name] = v, None if nat is None else nat[0]
    if shared_scale:
        shared = max(float(m.abs().max()) for m in maps.values()) or 1.0

    rnd = next(iter(results.values())).faithfulness
    r_del, r_ins = float(rnd.random_deletion_auc[0]), float(rnd.random_insertion_auc[0])  # type: ignore[index]
    click.echo(f"{'method':<22} {'deletion AUC':>12} {'insertion AUC':>14}   (random order: "
               f"deletion {r_del:.3f}, insertion {r_ins:.3f})")  # fmt: skip
    paths, entries, report = [], [], {}
    subtitle_base = f"{what}; class {class_names[tgt]} (p = {probs[tgt]:.3f})"
    for name, ev in results.items():
        f = ev.faithfulness
        d, i = float(f.deletion_auc[0]), float(f.insertion_auc[0])
        click.echo(f"{name:<22} {d:>12.3f} {i:>14.3f}   {_beats(d, i, r_del, r_ins)}")
        caption = [f"{d:.2f} (random {r_del:.2f})", f"{i:.2f} (random {r_ins:.2f})"]
        warning = faithfulness_warning(d, i, r_del, r_ins)
        label = map_label(ev.heatmap.options)
        entries.append(PanelEntry(name, maps[name], natives[name], caption, map_label=label,
                                  warning=warning))  # fmt: skip
        opts = ev.heatmap.describe().partition(" · ")[2]
        fig = heatmap_figure(
            x[0], maps[name], native=natives[name], scale=shared, title=name, label=label,
            warning=warning,
            subtitle=[f"{subtitle_base}; red: evidence for the class, blue: against; "
                      f"map: {label}", f"options: {opts or 'none'}",
                      f"deletion AUC {d:.3f} (random order {r_del:.3f}, lower is better); "
                      f"insertion AUC {i:.3f} (random {r_ins:.3f}, higher is better)"],
        )  # fmt: skip
        file = images.save_figure(fig, out / f"heatmap_{name}.png")
        paths.append(file)
        report[name] = {
            "options": ev.heatmap.options,
            "deletion_auc": d,
            "insertion_auc": i,
            "random_deletion_auc": r_del,
            "random_insertion_auc": r_ins,
            "beats_random": {"deletion": d < r_del, "insertion": i > r_ins},
            "map": label,
            "warning": warning,
            "max_abs": float(ev.heatmap.values.abs().max()),
            "native_shape": None if ev.heatmap.native is None
            else list(ev.heatmap.native.shape[1:]),
            "seconds": round(ev.seconds, 4),
            "file": file.name,
        }  # fmt: skip
    scale_note = (
        "one shared scale: each map divided by its total |value|"
        if shared_scale
        else "each map relative to its own largest |value| (zero is always white)"
    )
    panel = heatmap_panel(
        x[0], entries, title=f"Why {class_names[tgt]}? {len(entries)} attribution methods",
        subtitle=[subtitle_base + "; red: evidence for the class, blue: against; " + scale_note,
                  "Under each column: deletion AUC (the class probability as the pixels the map "
                  "ranks first are removed: lower is better) and insertion AUC (as they are "
                  "restored: higher is better), each beside the random order's, which a "
                  "faithful map beats. Red frame: it does not."],
        shared_scale=shared, caption_labels=PANEL_CAPTIONS,
    )  # fmt: skip
    paths.append(images.save_figure(panel, out / "panel.png"))
    paths.append(write_json(out / "explain.json", {
        "input": what,
        "label": label,
        "predicted": pred,
        "probabilities": [round(float(p), 6) for p in probs],
        "target": tgt,
        "target_name": class_names[tgt],
        "protocol": rnd.protocol,
        "random_order": {"deletion_auc": r_del, "insertion_auc": r_ins},
        "shared_scale": shared_scale,
        "methods": report,
        "panel": "panel.png",
    }))  # fmt: skip
    echo_written(paths)


def _beats(d: float, i: float, r_del: float, r_ins: float) -> str:
    """Plain words for the comparison with the random order (the baseline a map must beat)."""
    dw = "better" if d < r_del else "NOT better"
    iw = "better" if i > r_ins else "NOT better"
    return f"vs random: deletion {dw}, insertion {iw}"


def _sanity_inputs(lens: Lens, index: tuple[int, ...], image_path: Path | None, n: int,
                   data: str | None) -> tuple[torch.Tensor, str]:  # fmt: skip
    """The images a sanity check runs on: chosen indices, one file, or the first n validation."""
    if image_path is not None or len(index) == 1:
        x, _, what = pick_input(lens, index[0] if index else None, image_path, data)
        return x, what
    name = data or lens.source.get("config", {}).get("data", {}).get("name")
    if not name:
        raise DataError("this model does not record its dataset; pass --data NAME")
    seed = lens.source.get("config", {}).get("data", {}).get("split_seed", 0)
    dataset = load_dataset(name, split_seed=seed, size=lens.spec.height)
    check_fits(dataset, lens)
    count = len(dataset.x_val)
    chosen = list(index) or list(range(min(n, count)))
    bad = [i for i in chosen if i >= count]
    if bad:
        raise DataError(f"--index {bad[0]} is out of range: the validation split has {count} "
                        f"images (0-{count - 1})")  # fmt: skip
    return dataset.x_val[chosen], f"{len(chosen)} validation images of {name}"


@cli.command("sanity")
@lens_argument
@click.option("--methods", default="all", show_default=True, help=METHODS_HELP)
@click.option(
    "--index",
    type=count(10**9, 0),
    multiple=True,
    help="Validation image to use (repeatable). Default: the first --n.",
)
@click.option(
    "--image",
    "image_path",
    type=InputPath(),
    help="Check on this one image file instead.",
)
@click.option(
    "--n",
    "count",
    default=8,
    show_default=True,
    type=count(10_000),
    help="How many validation images (when no --index or --image is given).",
)
@click.option("--data", default=None, help="Dataset. Default: the one the model was trained on.")
@click.option("--layer", default=None, help="Conv layer for the CAM methods.")
@click.option("--masks", type=count(20_000), default=None, help="RISE: number of masks.")
@click.option(
    "--threshold",
    default=DEFAULT_THRESHOLD,
    show_default=True,
    type=FiniteFloat(-1.0, 1.0),
    help="Pass when the mean Spearman of |map| over the cascade is below this.",
)
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--out", type=OutputPath("file"), help="Also write the tables as JSON.")
@quiet_option
def sanity_command(
    lens: Lens,
    methods: str,
    index: tuple[int, ...],
    image_path: Path | None,
    count: int,
    data: str | None,
    layer: str | None,
    masks: int | None,
    threshold: float,
    seed: int,
    out: Path | None,
    quiet: bool,
) -> None:
    """Model-randomization sanity check (Adebayo et al. 2018) of each heatmap method.

    Re-initializes the layers of a copy of the model from the top (logits) down, one more per
    stage, and compares each stage's maps with the trained model's: Spearman rank correlation
    of |map| and SSIM. A method whose maps stay the same while the model is destroyed shows the
    input, not the model: it passes only when the mean Spearman over the cascade is below
    --threshold.
    """  # fmt: skip
    names = _methods(methods)
    x, what = _sanity_inputs(lens, index, image_path, count, data)
    click.echo(f"sanity check on {what}; Spearman and SSIM of |map| against the trained model")
    summary, report = [], {}
    for name in track(names, desc="sanity", unit="method", progress=not quiet):
        opts: dict[str, Any] = {}
        allowed = set(get_method(name).defaults)
        if layer is not None and "layer" in allowed:
            opts["layer"] = layer
        if name == "rise" and masks is not None:
            opts["masks"] = masks
        result = sanity_check(lens, x, name, threshold=threshold, seed=seed, **opts)
        click.echo(f"\n{name}")
        click.echo(f"  {'stage':>5}  {'randomized':<18} {'Spearman':>9} {'SSIM':>7}")
        for row in result.rows():
            click.echo(f"  {row['stage']:>5}  {row['randomized']:<18} {row['spearman']:>9.3f} "
                       f"{row['ssim']:>7.3f}")  # fmt: skip
        click.echo(f"  {result.verdict()}")
        summary.append((name, result))
        report[name] = {"stages": result.rows(), "mean_spearman": result.mean_spearman,
                        "final_spearman": result.final_spearman, "final_ssim": result.final_ssim,
                        "passed": result.passed, "options": result.options}  # fmt: skip
    click.echo(f"\n{'method':<22} {'mean Spearman':>13} {'final Spearman':>15} {'final SSIM':>11}"
               "  verdict")  # fmt: skip
    for name, r in summary:
        click.echo(f"{name:<22} {r.mean_spearman:>13.3f} {r.final_spearman:>15.3f} "
                   f"{r.final_ssim:>11.3f}  {'pass' if r.passed else 'FAIL'}")  # fmt: skip
    if out is not None:
        echo_written([write_json(out, {"images": what, "threshold": threshold,
                                       "methods": report})])  # fmt: skip
