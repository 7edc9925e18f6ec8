"""Live app latency and throughput, against the bare computation measured in the same run.

    .venv/bin/python bench/serve.py                      # runs/kaggle4 (make demo)
    .venv/bin/python bench/serve.py --ckpt runs/kaggle4 --requests 300 --clients 8

Starts ``convlens serve CKPT --no-browser`` (the real command, in its own process, on 127.0.0.1
and a free port), drives it with loopback clients (a fixed number of requests, each with a
timeout; the client refuses non-loopback addresses), stops it, and prints:

- p50/p95/p99 of "new drawing -> prediction + every conv map + the dense layers + one heatmap"
  as the client sees it (the round trip), for gradient (target p95 <= 50 ms on a 2-core CPU),
  Grad-CAM and occlusion, each request a different validation image;
- the server's own time per request (message in -> frame out), apart from the round trip,
  which also holds the Python client's own receiving and decoding of the ~80 KB frame;
- the same computation called in process (the engine alone, on a thread set up like the
  server's; bare and served requests alternate so both see the same machine), and the overhead
  share = (round trip - bare) / round trip at the median (target <= 30%);
- throughput with 8 concurrent clients against one client (drawings batched across clients).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def percentiles(seconds: list[float]) -> tuple[float, float, float]:
    a = np.asarray(seconds) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def stats(url: str) -> dict:
    with urllib.request.urlopen(url + "api/stats", timeout=30) as res:
        return json.load(res)


def bare_runner(lens):
    """The engine alone, in this process, on one thread set up like the server's worker."""
    from convlens.server.details import private_copy
    from convlens.server.engine import Engine, Request
    from convlens.server.worker import single_threaded

    engine = Engine(private_copy(lens))
    pool = ThreadPoolExecutor(1, initializer=single_threaded)

    def run(x: np.ndarray, method: str) -> float:
        def once() -> float:
            start = time.perf_counter()
            engine.run([Request(x=x, method=method)])
            return time.perf_counter() - start

        return pool.submit(once).result()

    return run, pool


def drive_concurrently(url: str, images: list[np.ndarray], method: str, clients: int, total: int):
    from convlens.server.client import LiveClient

    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def drive(c: int) -> None:
        try:
            with LiveClient(url, timeout=60) as client:
                for k in range(c, total, clients):
                    start = time.perf_counter()
                    client.infer(images[k % len(images)], method=method)
                    with lock:
                        lat.append(time.perf_counter() - start)
        except Exception as error:
            with lock:
                errors.append(f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=drive, args=(c,), daemon=True) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return lat, errors, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=str(ROOT / "runs" / "kaggle4"))
    parser.add_argument("--requests", type=int, default=300, help="per method, one client")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--concurrent-requests", type=int, default=1600, help="in all, N clients")
    parser.add_argument("--methods", default="gradient,gradcam,occlusion")
    args = parser.parse_args()

    import convlens as cl
    from convlens.data.for_model import dataset_for
    from convlens.server.client import LiveClient

    if not Path(args.ckpt).exists():
        print(f"{args.ckpt} not found; run 'make demo' (or convlens train) first", file=sys.stderr)
        return 2
    lens = cl.load(args.ckpt)
    data = dataset_for(lens).x_val
    images = [np.clip(np.rint(x.numpy() * 255), 0, 255).astype(np.uint8) for x in data]
    floats = [im.astype(np.float32) / 255.0 for im in images]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    n = args.requests
    print(
        f"model {args.ckpt}: input {lens.spec.describe()}, {len(lens.conv_layers())} conv layers; "
        f"{n} requests per method, each a different validation image"
    )
    bare_run, pool = bare_runner(lens)
    bare: dict[str, list[float]] = {}
    served: dict[str, list[float]] = {}
    inside: dict[str, list[float]] = {}
    cmd = [sys.executable, "-u", "-c", "from convlens.cli import main; main()", "serve",
           args.ckpt, "--no-browser"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("convlens live app: http://127.0.0.1:"):
            print(f"the server did not start: {line!r}", file=sys.stderr)
            return 2
        url = line.split()[3]
        print(f"server at {url} (pid {proc.pid}); bare and served requests alternate")
        with LiveClient(url, timeout=60) as client:
            for method in methods:
                for k in range(10):
                    client.infer(images[k], method=method)
                    bare_run(floats[k], method)
                times, server_side, alone = [], [], []
                for k in range(n):
                    # alternate, so both see the same (possibly shared) machine
                    alone.append(bare_run(floats[k % len(floats)], method))
                    start = time.perf_counter()
                    update = client.infer(images[k % len(images)], method=method)
                    times.append(time.perf_counter() - start)
                    server_side.append(update["a"].header["server_seconds"])
                    assert "heat" in update["a"].arrays
                served[method], inside[method], bare[method] = times, server_side, alone
        pool.shutdown()
        single = n / sum(served[methods[0]])
        before = stats(url)["models"]["a"]["batches"]
        lat, errors, wall = drive_concurrently(
            url, images, methods[0], args.clients, args.concurrent_requests
        )
        batches = stats(url)["models"]["a"]["batches"] - before
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    print()
    print(
        f"{'method':<12} {'round trip p50':>14} {'p95':>7} {'p99':>7}   {'in server p50':>13}"
        f"   {'bare p50':>8} {'p95':>7}   {'overhead':>8}"
    )
    shares = {}
    for method in methods:
        s50, s95, s99 = percentiles(served[method])
        b50, b95, _ = percentiles(bare[method])
        i50 = percentiles(inside[method])[0]
        shares[method] = (s50 - b50) / s50
        print(
            f"{method:<12} {s50:>12.1f}ms {s95:>5.1f}ms {s99:>5.1f}ms   {i50:>11.1f}ms"
            f"   {b50:>6.1f}ms {b95:>5.1f}ms   {shares[method]:>7.0%}"
        )
    first = methods[0]
    p95 = percentiles(served[first])[1]
    print()
    print(
        f"target: {first} p95 <= 50 ms -> {p95:.1f} ms ({'met' if p95 <= 50 else 'NOT met'}); "
        f"overhead <= 30% -> {shares[first]:.0%} ({'met' if shares[first] <= 0.30 else 'NOT met'})"
    )
    c50, c95, c99 = percentiles(lat) if lat else (float("nan"),) * 3
    rate = len(lat) / wall
    print(
        f"{args.clients} concurrent clients, {len(lat)} requests ({first}): {rate:.0f} requests/s "
        f"vs {single:.0f} with one client ({rate / single:.1f}x; "
        f"{len(lat) / max(batches, 1):.1f} drawings per batch); latency p50 {c50:.1f} ms, "
        f"p95 {c95:.1f} ms, p99 {c99:.1f} ms; errors {len(errors)}"
    )
    if errors:
        print("first error:", errors[0])
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
