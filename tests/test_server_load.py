"""The live app under load, on loopback only: bounded request counts, clients that come and go.

- 10,000 requests from clients that connect, draw and disconnect: afterwards no hook is left
  on any module, no job waits, no connection is counted, no tensor is kept, and the resident
  memory grows by less than a stated bound between the first thousand requests and the end.
- 8 concurrent clients, 2,000 requests on the trained kaggle4: no error, p95 printed.

Every client talks to 127.0.0.1 (the client refuses anything else); every loop has a fixed
count and a timeout, and the server is stopped at the end.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import warnings

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("websockets")

RSS_BOUND_MB = 40  # resident memory growth allowed between request 1,000 and request 10,000


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


def live_tensors() -> int:
    gc.collect()
    count = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # isinstance on deprecated torch objects warns
        for obj in gc.get_objects():
            try:
                if isinstance(obj, torch.Tensor):
                    count += 1
            except ReferenceError:
                pass
    return count


def tiny_lens():
    """A small conv net on 8x8 inputs: the mechanics of the server, not the model, are tested."""
    from convlens.lens import InputSpec, Lens

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    )
    return Lens.from_module(model, InputSpec(1, 8, 8, class_names=tuple("0123456789")))


def drive(
    url: str, clients: int, requests: int, per_connection: int, shape, method: str, seed: int = 0
) -> tuple[list[float], list[str]]:
    """``requests`` in all from ``clients`` threads, reconnecting every ``per_connection``."""
    from convlens.server.client import LiveClient

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def run(k: int) -> None:
        rng = np.random.default_rng(seed + k)
        done = 0
        share = requests // clients + (k < requests % clients)
        while done < share:
            try:
                with LiveClient(url, timeout=30) as c:
                    for _ in range(min(per_connection, share - done)):
                        x = rng.integers(0, 256, size=shape, dtype=np.uint8)
                        start = time.perf_counter()
                        update = c.infer(x, method=method)
                        took = time.perf_counter() - start
                        assert update["a"].arrays["heat"].shape == shape[1:]
                        with lock:
                            latencies.append(took)
                        done += 1
            except Exception as error:  # counted, reported by the test
                with lock:
                    errors.append(f"{type(error).__name__}: {error}")
                return

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return latencies, errors


@pytest.mark.slow
def test_no_growth_after_10000_requests() -> None:
    from convlens.server import start_background

    lens = tiny_lens()
    with start_background(lens) as bg:
        live = bg.app.state.live
        served = live.models["a"]
        lat, errors = drive(bg.url, 4, 1000, 100, (1, 8, 8), "gradient")
        assert not errors, errors[:3]
        gc.collect()
        before_rss, before_tensors = rss_mb(), live_tensors()
        lat, errors = drive(bg.url, 8, 9000, 250, (1, 8, 8), "gradient", seed=100)
        assert not errors, errors[:3]
        assert len(lat) == 9000
        deadline = time.monotonic() + 10
        while (live.connections or served.worker.waiting) and time.monotonic() < deadline:
            time.sleep(0.05)
        gc.collect()
        grown = rss_mb() - before_rss
        tensors = live_tensors() - before_tensors
        print(
            f"\n10,000 requests: RSS grew {grown:+.1f} MB after the first 1,000 "
            f"(bound {RSS_BOUND_MB} MB), live tensors {tensors:+d}, "
            f"batches {served.worker.batches}, p95 {np.percentile(lat, 95) * 1e3:.1f} ms"
        )
        assert served.worker.requests >= 10_000
        assert live.connections == 0 and served.worker.waiting == 0
        assert (
            hook_count(served.engine.lens.model) == 0 and hook_count(served.details.lens.model) == 0
        )
        assert len(served.engine._units) <= 512
        assert tensors <= 16, f"{tensors} tensors more than after the first 1,000 requests"
        assert grown < RSS_BOUND_MB


@pytest.mark.slow
def test_eight_clients_2000_requests_on_kaggle4(kaggle4_lens) -> None:
    from convlens.server import start_background

    with start_background(kaggle4_lens) as bg:
        served = bg.app.state.live.models["a"]
        start_rss = rss_mb()
        start = time.perf_counter()
        lat, errors = drive(bg.url, 8, 2000, 500, (1, 28, 28), "gradient")
        wall = time.perf_counter() - start
        grown = rss_mb() - start_rss
    assert not errors, errors[:3]
    assert len(lat) == 2000
    p50, p95, p99 = (np.percentile(lat, q) * 1e3 for q in (50, 95, 99))
    print(
        f"\n8 clients x 250 requests on kaggle4: {2000 / wall:.0f} requests/s, "
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, "
        f"{served.worker.batches} batches, RSS {grown:+.1f} MB (bound {RSS_BOUND_MB * 2} MB; "
        "machine shared)"
    )
    assert grown < RSS_BOUND_MB * 2
    assert hook_count(served.engine.lens.model) == 0
