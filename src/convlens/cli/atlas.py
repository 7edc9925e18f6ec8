"""The ``atlas`` command: one model in, one browsable folder out (opens from disk)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..atlas import STAGE_ORDER, build_atlas, load_manifest
from ..lens import Lens
from .app import OutputPath, cli, count, lens_argument
from .executor import executor_for, ray_option


@cli.command("atlas")
@lens_argument
@click.option(
    "--out",
    type=OutputPath("dir"),
    default="atlas",
    show_default=True,
    help="Folder to write (created). An atlas there is rebuilt (only its own files are removed) "
    "unless --resume; a folder holding other files, or an atlas of other options, needs --force.",
)
@click.option("--quick", is_flag=True, help="A small atlas in well under a minute: fewer units, "
              "steps and examples.")  # fmt: skip
@click.option("--resume", is_flag=True, help="Keep what an interrupted build in --out finished "
              "(same weights, data and options) and compute only the rest.")  # fmt: skip
@click.option("--data", default=None, help="Dataset for examples and statistics (default: the "
              "one the model was trained on, same split).")  # fmt: skip
@click.option(
    "--stages",
    default=None,
    metavar="LIST",
    help=f"Comma list of stages to run: {','.join(STAGE_ORDER)} (default: all).",
)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=count(256, 0),
    help="Torch threads during the build (0: torch's default). Small batches run fastest on one.",
)
@ray_option
@click.option(
    "--force",
    is_flag=True,
    help="Build into a folder that holds other files (they are kept), or replace an atlas built "
    "with other options (e.g. a full one by --quick).",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def atlas_command(
    lens: Lens,
    out: Path,
    quick: bool,
    resume: bool,
    data: str | None,
    stages: str | None,
    threads: int,
    ray_spec: str | None,
    force: bool,
    quiet: bool,
) -> None:
    """Build the atlas of a model: an HTML report that opens from disk, no server needed.

    \b
    Stages: overview (layer table, receptive fields, training curves), kernels, activations
    (unit statistics, dead units, feature maps), render (channel and neuron images), examples
    (top real images and their receptive-field crops), classes (prototypes, verdicts, heatmaps
    with deletion/insertion), evolution (the same units after each epoch, from snapshots).
    Ctrl-C leaves a consistent folder; run again with --resume to finish it. With --ray, the
    renders (in chunks of units) and the mining (in shards of the dataset) run on Ray workers;
    the atlas is the same.
    """
    chosen = [s.strip() for s in stages.split(",") if s.strip()] if stages else None
    start = time.perf_counter()
    try:
        with executor_for(ray_spec) as executor:
            index = build_atlas(lens, out, data=data, quick=quick, resume=resume, stages=chosen,
                                progress=not quiet, threads=threads or None, executor=executor,
                                force=force)  # fmt: skip
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished parts are kept; continue with "
                   f"'convlens atlas ... --out {out} --resume'", err=True)  # fmt: skip
        raise
    seconds = time.perf_counter() - start
    manifest = load_manifest(out)
    units = sum(len(row["units"]) for row in manifest["layers"])
    pages = len(manifest.get("pages", []))
    done = [s for s, v in manifest["stages"].items() if v == "done"]
    click.echo(
        f"atlas of {manifest['model']['name']}: {units} units on {pages} pages, stages "
        f"{', '.join(done) or 'none'} ({seconds:.0f} s)"
    )
    missing = [s for s, v in manifest["stages"].items() if v in ("pending", "partial")]
    if missing:
        click.echo(f"not finished: {', '.join(missing)} (run again with --resume)")
    click.echo(f"open {index.resolve().as_uri()}")
