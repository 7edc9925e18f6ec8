"""Benchmark: scale-out on Ray. Mining (images/s) and rendering (units/s) in this process vs a
local Ray with 1 and with 2 workers, on a wide model, checking that every result is identical.

    python bench/scale.py          # Fashion-MNIST's 70,000 images, 512 units (~20 min, 2 cores)
    python bench/scale.py --quick  # mnist's 5,000 images, 128 units: a check that it all runs

The model is a 4-layer CNN of 256 channels per layer on 1x28x28 (random, seeded), each conv
followed by 2x2 pooling. Mining reads all units of every conv layer over the dataset's train and
test images; Ray workers read their own shards from the dataset's files. Rendering optimizes
channel units of the 2nd and 3rd layers with a fixed number of steps and no restarts.

Printed per job: seconds and throughput of each run, the Ray overhead (local:1 time /
in-process time, target <= 1.15: the same work on one core, plus scheduling, shipping and
merging) and the scaling (local:1 time / local:2 time; 2.0 is perfect on 2 cores). Every run
uses one torch thread per worker (and in-process), so the comparison is core for core. Cluster
start (ray.init plus the first task of each worker) is reported apart: a cluster is started once.
On a shared machine read the ratios, not the absolute figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import convlens as cl
from convlens.data import load_dataset
from convlens.distributed import Executor, InProcess, RayExecutor
from convlens.lens import InputSpec, Lens
from convlens.viz.maxima import dataset_maxima


class Wide4(nn.Module):
    """Four 3x3 conv layers of ``width`` channels, each followed by ReLU and 2x2 max pooling."""

    def __init__(self, width: int = 256, classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 1
        for _ in range(4):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(width, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def wide_lens(width: int, class_names: tuple[str, ...]) -> Lens:
    torch.manual_seed(0)
    return Lens.from_module(
        Wide4(width, len(class_names)), InputSpec(1, 28, 28, class_names=class_names)
    )


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def run_jobs(
    executor: Executor, lens: Lens, data: Any, units: dict[str, str], render: dict
) -> dict:
    """Mining and rendering on ``executor``; their times and results."""

    def mining() -> Any:
        return cl.examples(
            lens, units["mine"], data, split="all", k=9, progress=False, executor=executor
        )

    mining_s, mined = _timed(mining)
    render_s, rendered = _timed(
        lambda: cl.render(lens, units["render"], executor=executor, **render)
    )
    return {"mining_s": mining_s, "mined": mined, "render_s": render_s, "rendered": rendered}


def same(a: dict, b: dict) -> bool:
    ta, tb = a["mined"].topk, b["mined"].topk
    mining = all(
        torch.equal(getattr(ta, n), getattr(tb, n)) for n in ("values", "indices", "rows", "cols")
    )
    ra, rb = a["rendered"], b["rendered"]
    return mining and torch.equal(ra.images, rb.images) and ra.to_records() == rb.to_records()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data and few units (a check)")
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()

    name = "mnist" if args.quick else "fashion-mnist"
    data = load_dataset(name)
    images = len(data.x_train) + len(data.x_val)
    lens = wide_lens(args.width, data.class_names)
    layers = [info.name for info in lens.conv_layers()]
    units = {
        "mine": ",".join(f"{n}:*" for n in layers),
        "render": f"{layers[1]}:0-127" if args.quick else f"{layers[1]}:*,{layers[2]}:*",
    }
    n_render = len(cl.resolve_units(lens, units["render"]))
    maxima = dataset_maxima(lens, None, data, cache=False)  # once, outside every timing
    # Pixel renders (clear): the random model records no training data for an image prior, and
    # the prior's one-time training happens on the driver, outside the map being measured.
    render = {"steps": 4 if args.quick else 32, "restarts": 0, "seed": 0, "data": maxima,
              "preset": "clear"}  # fmt: skip
    params = sum(p.numel() for p in lens.model.parameters())
    n_mine = len(cl.resolve_units(lens, units["mine"]))
    print(f"model: 4 conv layers x {args.width} channels on 1x28x28 ({params:,} parameters)")
    print(f"mining: {n_mine} units over {images:,} {name} images (train + test)")
    print(f"render: {n_render} channel units, preset clear, {render['steps']} steps, no restarts")

    torch.set_num_threads(1)
    runs: dict[str, dict] = {}
    runs["in-process"] = run_jobs(InProcess(threads=1), lens, data, units, render)
    starts: dict[str, float] = {}
    for workers in (1, 2):
        label = f"local:{workers}"
        t0 = time.perf_counter()
        with RayExecutor(local_workers=workers) as executor:
            # Warm-up: every worker imports convlens and fetches the Lens once.
            cl.examples(lens, f"{layers[0]}:0", data.x_val[: 256 * 2 * workers], batch_size=64,
                        progress=False, executor=executor)  # fmt: skip
            starts[label] = time.perf_counter() - t0
            runs[label] = run_jobs(executor, lens, data, units, render)

    base = runs["in-process"]
    print(f"\n{'run':<12}{'mining s':>10}{'images/s':>11}{'render s':>10}{'units/s':>9}  identical")
    for label, r in runs.items():
        ok = "reference" if r is base else ("yes" if same(r, base) else "NO")
        print(f"{label:<12}{r['mining_s']:>10.1f}{images / r['mining_s']:>11.0f}"
              f"{r['render_s']:>10.1f}{n_render / r['render_s']:>9.2f}  {ok}")  # fmt: skip
    one, two = runs["local:1"], runs["local:2"]
    for job in ("mining", "render"):
        overhead = one[f"{job}_s"] / base[f"{job}_s"]
        scaling = one[f"{job}_s"] / two[f"{job}_s"]
        print(f"{job:<7} Ray overhead local:1/in-process {overhead:.2f} (target <= 1.15)   "
              f"scaling local:1/local:2 {scaling:.2f} (2 cores: <= 2)")  # fmt: skip
    print("cluster start (ray.init + first task per worker): "
          + ", ".join(f"{k} {v:.1f} s" for k, v in starts.items()))  # fmt: skip


if __name__ == "__main__":
    main()
