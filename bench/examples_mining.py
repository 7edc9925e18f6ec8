"""Benchmark: dataset-example mining against plain forward throughput, in the same run.

Mining every conv channel of kaggle4 (top-9) costs one forward pass plus a spatial max and a
top-k merge per batch; the target is mining at >= 70% of the images per second of a plain
no-grad forward to the deepest conv layer at the same batch size.

The figure ("mining speed": mining images/s as a percentage of plain-forward images/s, on all
5,000 digits at batch 256) has ONE definition, :func:`mining_figure`, which
``bench/attribution.py`` prints too, so the two benchmarks report the same number the same way.

    python bench/examples_mining.py [--ckpt runs/kaggle4] [--batch-size 256] [--repeats 3]

The machine may be shared: the two measurements are interleaved and each keeps its best run,
so background load hits both alike; still, read the ratio rather than absolute figures.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

import convlens as cl
from convlens.lens import Lens
from convlens.viz.examples import mine


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_mining(
    lens: Lens, images: torch.Tensor, batch_size: int, *, k: int = 9, repeats: int = 3
) -> dict[str, Any]:
    """Images per second of mining all conv channels (top-k) vs a plain forward, same run.

    Returns ``{"images", "units", "batch_size", "forward_ips", "mining_ips", "ratio"}``; the
    baseline is a no-grad forward of the same batches to the deepest conv layer.
    """
    convs = lens.conv_layers()
    if not convs:
        raise ValueError("measure_mining needs a model with conv layers")
    units = ",".join(f"{info.name}:*" for info in convs)
    deepest = convs[-1].name
    images = images.to(lens.device)
    lens.model.eval()

    @torch.no_grad()
    def forward() -> None:
        for start in range(0, len(images), batch_size):
            lens.forward(images[start : start + batch_size], [deepest])

    def mining() -> None:
        mine(lens, units, images, k=k, batch_size=batch_size)

    forward()  # warm-up (allocator, kernels)
    mining()
    t_forward, t_mining = float("inf"), float("inf")
    for _ in range(repeats):  # interleaved so load spikes hit both
        t_forward = min(t_forward, _seconds(forward))
        t_mining = min(t_mining, _seconds(mining))
    n = len(images)
    return {
        "images": n,
        "units": sum(info.channels for info in convs),
        "batch_size": batch_size,
        "forward_ips": n / t_forward,
        "mining_ips": n / t_mining,
        "ratio": t_forward / t_mining,
    }


def format_mining(m: dict[str, Any]) -> str:
    return (
        f"examples mining: {m['units']} conv channels, top-9, {m['images']} images, batch "
        f"{m['batch_size']}\n"
        f"  plain forward (no grad, to the deepest conv layer): {m['forward_ips']:9.0f} images/s\n"
        f"  mining (forward + max/argmax + top-k merge):        {m['mining_ips']:9.0f} images/s\n"
        f"  {speed_line(m)}"
    )


def speed_line(m: dict[str, Any]) -> str:
    """The one way the figure is printed, by this benchmark and by bench/attribution.py."""
    return f"mining speed: {m['ratio']:.0%} of plain-forward images/s (target >= 70%)"


BATCH = 256


def mining_figure(lens: Lens, *, repeats: int = 3) -> dict[str, Any]:
    """The figure both benchmarks print: all conv channels of ``lens`` mined over every mnist
    digit (train + validation, 5,000) at batch 256, against a plain forward in the same run."""
    data = cl.load_dataset("mnist")
    images = torch.cat([data.x_train, data.x_val])
    return measure_mining(lens, images, BATCH, repeats=repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="runs/kaggle4")
    parser.add_argument("--batch-size", type=int, default=BATCH)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lens = cl.load(args.ckpt)
    print(f"device {lens.device}, torch threads {torch.get_num_threads()}")
    if args.batch_size == BATCH:
        print(format_mining(mining_figure(lens, repeats=args.repeats)))
        return
    data = cl.load_dataset("mnist")
    images = torch.cat([data.x_train, data.x_val])
    print(format_mining(measure_mining(lens, images, args.batch_size, repeats=args.repeats)))


if __name__ == "__main__":
    main()
