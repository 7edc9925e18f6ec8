"""The ``examples`` command: the real images that excite each unit most, as pictures and JSON."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..data import dataset_for
from ..errors import DataError
from ..fileio import write_json
from ..images import save_png
from ..images.examples import is_dead, layer_examples_picture, unit_examples_picture
from ..lens import Lens
from ..units import Unit, resolve_units
from ..viz.examples import SPLITS, examples
from .app import OutputPath, cli, count, echo_written, lens_argument, quiet_option
from .executor import executor_for, ray_option


@cli.command("examples")
@lens_argument
@click.option(
    "--units",
    "unit_spec",
    default=None,
    help="Units, e.g. 'conv2d_2:*', 'conv2d_4:0-7', 'conv2d_3:5@7,7', 'dense_1:3', "
    "'class:3'. Default: every channel of every conv layer.",
)
@click.option("--k", default=9, show_default=True, type=count(1000), help="Images kept per unit.")
@click.option(
    "--data",
    default=None,
    help="Dataset to mine. Default: the one the model was trained on (same split).",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="val",
    show_default=True,
    help="Which part of the dataset to mine ('all': train then val).",
)
@click.option(
    "--bottom",
    is_flag=True,
    help="Keep the most negative pre-activations instead of the largest values.",
)
@click.option("--batch-size", default=256, show_default=True, type=count(65_536))
@click.option(
    "--grid",
    "grid_show",
    type=click.Choice(["crops", "images"]),
    default="crops",
    show_default=True,
    help="What the per-layer grid shows for each unit.",
)
@click.option("--out", type=OutputPath("dir"), required=True, help="Output folder.")
@quiet_option
@ray_option
def examples_command(
    lens: Lens,
    unit_spec: str | None,
    k: int,
    data: str | None,
    split: str,
    bottom: bool,
    batch_size: int,
    grid_show: str,
    out: Path,
    quiet: bool,
    ray_spec: str | None,
) -> None:
    """Find the top-k real images of each unit in one pass over a dataset.

    A channel scores an image by the max of its feature map; the neuron where the max sits is
    kept, and its receptive field is boxed on the image and cut out. Writes one PNG per unit
    (OUT/LAYER/...), one grid per layer (OUT/grid_LAYER.png: a row of crops per unit) and
    OUT/examples.json (values, image indices, labels, locations, windows).
    """  # fmt: skip
    spec = unit_spec or ",".join(f"{info.name}:*" for info in lens.conv_layers())
    if not spec:
        raise DataError("this model has no conv layers; pass --units (e.g. 'dense_1:*')")
    units = resolve_units(lens, spec)  # bad units fail fast, before the dataset loads
    dataset = dataset_for(lens, data)
    with executor_for(ray_spec) as executor:
        result = examples(lens, units, dataset, k=k, bottom=bottom, split=split,  # type: ignore[arg-type]
                          batch_size=batch_size, progress=not quiet, executor=executor)  # fmt: skip
    click.echo(
        f"mined {len(result)} units over {result.num_images} {dataset.name} {result.split} "
        f"images ({'bottom' if bottom else 'top'}-{k})"
    )
    vr = lens.spec.value_range
    names = lens.class_names or result.class_names
    paths = [write_json(out / "examples.json", result.to_dict())]
    unit_paths = []
    for layer in result.layers:
        exs = result.for_layer(layer)
        grid = layer_examples_picture(exs, layer=layer, num_images=result.num_images,
                                      split=result.split, value_range=vr, show=grid_show,
                                      bottom=bottom, class_names=names)  # fmt: skip
        paths.append(save_png(grid, out / f"grid_{_safe(layer)}.png"))
        for ex in exs:
            picture = unit_examples_picture(
                ex, num_images=result.num_images, split=result.split, class_names=names,
                value_range=vr, bottom=bottom,
            )  # fmt: skip
            unit_paths.append(save_png(picture, out / _safe(layer) / f"{unit_file(ex.unit)}.png"))
    dead = [str(ex.unit) for ex in result if is_dead(ex, bottom)]
    if dead:
        shown = ", ".join(dead[:8]) + (f" and {len(dead) - 8} more" if len(dead) > 8 else "")
        click.echo(f"{len(dead)} dead unit{'s' if len(dead) > 1 else ''} (never active on these "
                   f"images, so no examples): {shown}")  # fmt: skip
    echo_written(paths)
    folders = sorted({str(p.parent) for p in unit_paths})
    click.echo(f"wrote {len(unit_paths)} unit pictures in {', '.join(folders)}")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def unit_file(unit: Unit) -> str:
    """File stem of a unit's picture: conv2d_2_5, conv2d_3_5_at_7_7, class_3."""
    if unit.kind == "class":
        return f"class_{unit.channel}"
    stem = f"{unit.layer}_{unit.channel}"
    if unit.position is not None:
        stem += f"_at_{unit.position[0]}_{unit.position[1]}"
    return _safe(stem)
