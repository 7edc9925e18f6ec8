"""Commands of feature visualization: render (units) and prototypes (classes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np

from .. import images
from ..display.pictures import prototype_pictures, render_panels
from ..fileio import atomic_path, write_json
from ..lens import Lens
from ..viz.prototypes import Prototypes, prototypes
from ..viz.render import DEFAULT_PRESET, PRESETS, RenderResult, render
from .app import SEED, OutputPath, cli, count, echo_written, lens_argument, quiet_option
from .executor import executor_for, ray_option

PRESET_HELP = "; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values())


def _options(func):
    """The options render and prototypes share."""
    opts = [
        click.option(
            "--preset",
            default=DEFAULT_PRESET,
            show_default=True,
            type=click.Choice(sorted(PRESETS)),
            help=PRESET_HELP,
        ),
        click.option(
            "--steps",
            type=count(100_000),
            help="Most optimization steps per unit "
            "(default: the preset's; 'natural' and 'clear' stop each unit once it has "
            "converged).",
        ),
        click.option(
            "--diversity",
            default=1,
            show_default=True,
            type=count(64),
            help="Different images per unit, pushed apart by a diversity term.",
        ),
        click.option(
            "--batch-size",
            type=count(4096),
            help="Most images optimized at once (bounds memory; default 32 on CPU).",
        ),
        click.option(
            "--seed", default=0, show_default=True, type=SEED, help="Same seed, same images."
        ),
        click.option(
            "--param",
            type=click.Choice(["box", "pixel", "fourier", "latent"]),
            help="Image parameterization (default: the preset's).",
        ),
        click.option(
            "--data",
            default=None,
            help="Dataset whose validation images set the bar r is measured against "
            "(default: the one the model was trained on).",
        ),
        click.option(
            "--out",
            type=OutputPath("dir"),
            required=True,
            help="Folder to write the pictures, .npy arrays and JSON into.",
        ),
        quiet_option,
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


@cli.command("render")
@lens_argument
@click.option(
    "--units",
    "unit_spec",
    required=True,
    help="Units to render, e.g. 'conv2d_3:*', 'conv2d_1:*,conv2d_4:0-15,class:*', "
    "'conv2d_3:12@7,7' (a neuron) or 'conv2d_3:12@center'.",
)
@_options
@ray_option
def render_command(
    lens: Lens,
    unit_spec: str,
    preset: str,
    steps: int | None,
    diversity: int,
    batch_size: int | None,
    seed: int,
    param: str | None,
    data: str | None,
    out: Path,
    quiet: bool,
    ray_spec: str | None,
) -> None:
    """Show what units want to see: optimize an input for each, all in one batched run.

    Every tile carries its evidence, r_peak/r_mean: the strongest activation of the picture's
    map / the strongest over the validation images, and the map's mean / the largest mean over
    them (r >= 1: it beats every real image); a neuron tile its own value / its best; class
    tiles the model's probability. render.json adds the match with the unit's real examples,
    the share of pixels at the range limits and what the best constant image reaches. Dead
    units (never active on real data) are labelled so. Writes per layer a grid PNG, the raw
    images (.npy, pixel space) and render.json with one record per unit.
    """
    with executor_for(ray_spec) as executor:
        result = render(
            lens,
            unit_spec,
            preset=preset,
            steps=steps,
            batch_size=batch_size,
            seed=seed,
            diversity=diversity,
            param=param,
            data=data,
            progress=not quiet,
            executor=executor,
        )
    written = write_render(lens, result, out)
    for line in summary_lines(result):
        click.echo(line)
    count = len(result)
    click.echo(f"{count} unit{'' if count == 1 else 's'} rendered in {result.seconds:.1f} s")
    echo_written(written)


@cli.command("prototypes")
@lens_argument
@click.option(
    "--only",
    "only",
    default=None,
    help="Classes to render (default all), e.g. '3', '0-4' or 'seven'.",
)
@_options
def prototypes_command(
    lens: Lens,
    only: str | None,
    preset: str,
    steps: int | None,
    diversity: int,
    batch_size: int | None,
    seed: int,
    param: str | None,
    data: str | None,
    out: Path,
    quiet: bool,
) -> None:
    """Render "the perfect digit" of each class and verify it with the model.

    Prints the verification row (each class, the model's prediction for its prototype, and
    the probability of the class) and writes the prototypes raw and de-averaged (each minus
    the mean of all classes: what sets it apart) as PNG, .npy and prototypes.json.
    """
    protos = prototypes(
        lens,
        only,
        diversity=diversity,
        preset=preset,
        steps=steps,
        seed=seed,
        batch_size=batch_size,
        param=param,
        data=data,
        progress=not quiet,
    )
    raw, deav = prototype_pictures(protos)
    out = Path(out)
    written = [
        images.save_png(raw, out / "prototypes.png"),
        images.save_png(deav, out / "prototypes_deaveraged.png"),
        _save_npy(out / "prototypes.npy", protos.images.numpy()),
        _save_npy(out / "prototypes_deaveraged.npy", protos.deaveraged.numpy()),
        write_json(out / "prototypes.json", protos.to_json()),
    ]
    for line in prototype_table(protos):
        click.echo(line)
    verdict = "all" if protos.ok else f"{int(protos.correct.sum())} of {len(protos.correct)}"
    click.echo(
        f"{verdict} prototypes classified as their class with p >= 0.99 "
        f"({protos.result.seconds:.1f} s)"
    )
    echo_written([Path(p) for p in written])


WIDE = 100  # columns: a wider verification table is printed one row per class instead


def prototype_table(protos: Prototypes) -> list[str]:
    """The verification table: the three-row table (class, predicted, p) when it fits in
    ``WIDE`` columns, else one row per class and one column per copy (``--diversity``), so its
    width grows with the copies, not with classes times copies."""
    rows = protos.table()
    if max(len(line) for line in rows) <= WIDE:
        return rows
    d = max(1, int(protos.diversity))
    names = [protos.class_names[c] for c in protos.classes]
    width = max(5, *(len(n) for n in names))
    cells = [
        f"{protos.class_names[int(p)]} (p {q:.2f}){'' if ok else ' ✗'}"
        for p, q, ok in zip(protos.predicted.tolist(), protos.probability.tolist(),
                            protos.correct.tolist(), strict=True)
    ]  # fmt: skip
    cell_w = max(12, *(len(c) for c in cells))
    heads = ["verdict"] if d == 1 else [f"copy {i + 1}" for i in range(d)]
    lines = [
        "each prototype: the class the model predicts (p: probability of the class; ✗: p < 0.99)",
        f"{'class':<{width}}  " + "  ".join(f"{h:<{cell_w}}" for h in heads).rstrip(),
    ]
    for k, name in enumerate(names):
        row = cells[k * d : (k + 1) * d]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{c:<{cell_w}}" for c in row).rstrip())
    return lines


# --- writing ---------------------------------------------------------------------------------


def write_render(lens: Lens, result: RenderResult, out: Path) -> list[Path]:
    """Grid PNGs (the pictures a notebook shows too), .npy arrays and render.json."""
    out = Path(out)
    written: list[Path] = []
    for panel in render_panels(result):
        key, rows = panel.key, panel.rows
        if key.endswith("_neurons"):
            crops = [result.crops[i] for i in rows]
            shapes = {tuple(c.shape) for c in crops if c is not None}
            if len(shapes) == 1:
                written.append(
                    _save_npy(
                        out / f"{key}_crops.npy",
                        np.stack([c.numpy() for c in crops if c is not None]),
                    )
                )
        written.append(Path(images.save_png(panel.picture, out / f"{key}.png")))
        written.append(_save_npy(out / f"{key}.npy", result.images[rows].numpy()))
        if panel.deaveraged is not None:
            written.append(Path(images.save_png(panel.deaveraged, out / "class_deaveraged.png")))
    written.append(Path(write_json(out / "render.json", result.to_json())))
    return written


UNVERIFIED = "unverified: no dataset to compare with; pass --data DATASET (e.g. --data mnist)"


def summary_lines(result: RenderResult) -> list[str]:
    lines = []
    for label, s in result.summary().items():
        if label != "class" and result.dataset is None:
            lines.append(f"{label}: {s['units']} units, {UNVERIFIED}")
            continue
        if label == "class":
            lines.append(
                f"{label}: {s['passed']} of {s['units']} classified as their class with "
                f"p >= 0.99 (lowest p {s['min_probability']:.3f})"
            )
        elif s.get("live"):
            lines.append(
                f"{label}: {s['units']} units, {s['live']} live, {s['dead']} dead; "
                + ratio_counts(s)
                + evidence_text(s)
            )
        else:
            lines.append(f"{label}: {s['units']} units, none active on the validation images")
    return lines


def ratio_counts(s: dict[str, Any]) -> str:
    """'r_peak >= 1 for 31 of 31 live (100%), r_mean >= 1 for 29 (94%)' from a summary row."""
    name = "r_peak" if "r_mean_ge_1" in s else "r"  # a neuron has one value: its own r
    text = (
        f"{name} >= 1 for {s['r_peak_ge_1']} of {s['live']} live "
        f"({100 * s['share_r_peak_ge_1']:.0f}%, median {s['median_r_peak']:.2f})"
    )
    if "r_mean_ge_1" in s:
        text += (
            f", r_mean >= 1 for {s['r_mean_ge_1']} ({100 * s['share_r_mean_ge_1']:.0f}%, "
            f"median {s['median_r_mean']:.2f})"
        )
    return text


def evidence_text(s: dict[str, Any]) -> str:
    """'; match top-1 0.81; 12% of pixels at the limits; 2 flat' (what applies)."""
    parts = []
    top1 = s.get("match_top1")
    if top1 is not None and top1 == top1:
        parts.append(f"match top-1 {top1:.2f}")
    if s.get("at_limits") is not None and s["at_limits"] == s["at_limits"]:
        parts.append(f"{100 * s['at_limits']:.0f}% of pixels at the limits")
    if s.get("flat"):
        parts.append(f"{s['flat']} flat")
    return "; " + "; ".join(parts) if parts else ""


def _save_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)
