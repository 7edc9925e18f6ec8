"""Commands of feature visualization: render (units) and prototypes (classes)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from .. import images
from ..fileio import atomic_path, write_json
from ..images.render import neurons_grid, units_grid
from ..lens import Lens
from ..viz.prototypes import prototypes
from ..viz.render import PRESETS, RenderResult, get_preset, render
from .app import SEED, OutputPath, cli, count, echo_written, lens_argument

PRESET_HELP = "; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values())


def _options(func):
    """The options render and prototypes share."""
    opts = [
        click.option(
            "--preset",
            default="clear",
            show_default=True,
            type=click.Choice(sorted(PRESETS)),
            help=PRESET_HELP,
        ),
        click.option(
            "--steps",
            type=count(100_000),
            help="Most optimization steps per unit "
            "(default: the preset's; 'clear' stops each unit once it has converged).",
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
            type=click.Choice(["box", "pixel", "fourier"]),
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
) -> None:
    """Show what units want to see: optimize an input for each, all in one batched run.

    Every tile carries its evidence: r = the activation the picture reaches / the largest
    activation of the same unit over the validation images (r >= 1: it beats every real
    image); class tiles carry the model's probability. Dead units (never active on real data)
    are labelled so. Writes per layer a grid PNG, the raw images (.npy, pixel space) and
    render.json with one record per unit.
    """
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
        progress=True,
    )
    written = write_render(lens, result, out)
    for line in summary_lines(result):
        click.echo(line)
    click.echo(f"{len(result)} units rendered in {result.seconds:.1f} s")
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
        progress=True,
    )
    chosen = get_preset(preset)
    vr = lens.spec.value_range
    names = [lens.class_names[int(t)] for t in protos.targets]
    labels = [
        f"{n} p={float(p):.2f}" + ("" if ok else " ✗")
        for n, p, ok in zip(names, protos.probability, protos.correct, strict=True)
    ]
    ncols = len(protos.classes) if diversity > 1 else None
    order = _copy_major(len(protos.classes), diversity)
    raw = units_grid(
        protos.images[order],
        [labels[i] for i in order],
        display="blog" if chosen.display == "blog" else "plain",
        value_range=vr,
        title=f"class prototypes ({chosen.name})",
        ncols=ncols,
    )
    deav = units_grid(
        protos.deaveraged[order],
        [names[i] for i in order],
        display="signed",
        title="de-averaged (each minus the mean of all classes)",
        ncols=ncols,
    )
    out = Path(out)
    written = [
        images.save_png(raw, out / "prototypes.png"),
        images.save_png(deav, out / "prototypes_deaveraged.png"),
        _save_npy(out / "prototypes.npy", protos.images.numpy()),
        _save_npy(out / "prototypes_deaveraged.npy", protos.deaveraged.numpy()),
        write_json(out / "prototypes.json", protos.to_json()),
    ]
    for line in protos.table():
        click.echo(line)
    verdict = "all" if protos.ok else f"{int(protos.correct.sum())} of {len(protos.correct)}"
    click.echo(
        f"{verdict} prototypes classified as their class with p >= 0.99 "
        f"({protos.result.seconds:.1f} s)"
    )
    echo_written([Path(p) for p in written])


def _copy_major(k: int, diversity: int) -> list[int]:
    """Rows to show copy 0 of every class, then copy 1, ... (one row per copy)."""
    return [c * diversity + d for d in range(diversity) for c in range(k)]


# --- writing ---------------------------------------------------------------------------------


def panels(result: RenderResult) -> dict[str, list[int]]:
    """Rows of the result by picture: one per layer and unit kind."""
    out: dict[str, list[int]] = {}
    for i, unit in enumerate(result.units):
        if unit is None:
            key = "objectives"
        elif unit.kind == "class":
            key = "class"
        elif unit.kind == "neuron":
            key = f"{unit.layer}_neurons"
        else:
            key = unit.layer
        out.setdefault(key, []).append(i)
    return out


def tile_label(result: RenderResult, i: int, class_names: tuple[str, ...]) -> str:
    unit = result.units[i]
    copy = f"#{result.copies[i]}" if result.recipe.get("diversity", 1) > 1 else ""
    if unit is None:
        return result.names[i][:18]
    if unit.kind == "class":
        name = class_names[unit.channel] if unit.channel < len(class_names) else unit.channel
        return f"{name}{copy} p={float(result.probability[i]):.2f}"
    where = f"@{unit.position[0]},{unit.position[1]}" if unit.position else ""
    if result.status[i] == "dead":
        return f"{unit.channel}{where}{copy} dead"
    if result.status[i] == "failed":
        return f"{unit.channel}{where}{copy} failed"
    ratio = float(result.ratio[i])
    return f"{unit.channel}{where}{copy} r={ratio:.2f}" if ratio == ratio else f"{unit.channel}"


def write_render(lens: Lens, result: RenderResult, out: Path) -> list[Path]:
    """Grid PNGs, .npy arrays and render.json for a render result."""
    out = Path(out)
    preset = get_preset(result.preset)
    display = "blog" if preset.display == "blog" else "plain"
    vr = lens.spec.value_range
    written: list[Path] = []
    for key, rows in panels(result).items():
        labels = [tile_label(result, i, lens.class_names) for i in rows]
        summary = result.summary()
        title = _title(key, rows, result, summary)
        if key.endswith("_neurons"):
            crops = [result.crops[i] for i in rows]
            picture = neurons_grid(
                crops,
                result.images[rows],
                [result.windows[i] for i in rows],
                labels,
                display=display,
                value_range=vr,
                title=title,
            )
            shapes = {tuple(c.shape) for c in crops if c is not None}
            if len(shapes) == 1:
                written.append(
                    _save_npy(
                        out / f"{key}_crops.npy",
                        np.stack([c.numpy() for c in crops if c is not None]),
                    )
                )
        else:
            picture = units_grid(
                result.images[rows], labels, display=display, value_range=vr, title=title
            )
        written.append(Path(images.save_png(picture, out / f"{key}.png")))
        written.append(_save_npy(out / f"{key}.npy", result.images[rows].numpy()))
        if key == "class" and preset.de_average_classes and len(rows) > 1:
            deav = units_grid(
                result.images[rows] - result.images[rows].mean(0, keepdim=True),
                labels,
                display="signed",
                title="classes, de-averaged",
            )
            written.append(Path(images.save_png(deav, out / "class_deaveraged.png")))
    written.append(Path(write_json(out / "render.json", result.to_json())))
    return written


def _title(key: str, rows: list[int], result: RenderResult, summary: dict) -> str:  # type: ignore[type-arg]
    if key == "class":
        return f"classes ({result.preset}): probability of the class"
    if key == "objectives":
        return f"objectives ({result.preset})"
    label = key.replace("_neurons", " neurons")
    stats = summary.get(label) or summary.get(key) or {}
    if stats.get("live"):
        return (
            f"{label} ({result.preset}): r = reached / best real image; r >= 1 for "
            f"{stats['r_ge_1']} of {stats['live']} live, {stats['dead']} dead"
        )
    return f"{label} ({result.preset})"


def summary_lines(result: RenderResult) -> list[str]:
    lines = []
    for label, s in result.summary().items():
        if label == "class":
            lines.append(
                f"{label}: {s['passed']} of {s['units']} classified as their class with "
                f"p >= 0.99 (lowest p {s['min_probability']:.3f})"
            )
        elif s.get("live"):
            lines.append(
                f"{label}: {s['units']} units, {s['live']} live, {s['dead']} dead; "
                f"r >= 1 for {s['r_ge_1']} of {s['live']} live "
                f"({100 * s['share_r_ge_1']:.0f}%), median r {s['median_r']:.2f}"
            )
        else:
            lines.append(f"{label}: {s['units']} units, none active on the validation images")
    return lines


def _save_npy(path: Path, array: np.ndarray) -> Path:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)
    return Path(path)
