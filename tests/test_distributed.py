"""Scale-out: shards read from files equal the loaded Dataset; chunked jobs equal in-process ones
on a 2-worker local Ray, also when a worker is killed mid-job; a killed driver resumes from its
finished chunks; without Ray, --ray says how to install it."""

from __future__ import annotations

import gzip
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from PIL import Image

import convlens as cl
from convlens.atlas import AtlasOptions, build_atlas, load_manifest
from convlens.atlas.state import CHUNKS
from convlens.data import load_dataset, open_source, source_of
from convlens.distributed import ChunkStore, InProcess, jobs, shard_ranges
from convlens.distributed.store import decode, encode
from convlens.errors import ConvlensError, DataError
from convlens.lens import InputSpec, Lens
from convlens.models import build_model
from convlens.units import resolve_units
from convlens.viz.examples import mine

RENDER = {"steps": 6, "restarts": 0, "seed": 3}
JOB_TIMEOUT = 90  # seconds any one Ray job may take here before the test fails


@pytest.fixture(scope="module")
def tiny_lens() -> Lens:
    torch.manual_seed(0)
    spec = InputSpec(1, 28, 28, class_names=tuple(str(i) for i in range(10)))
    return Lens.from_module(build_model("simple2"), spec)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("mnist")


def same_records(a, b) -> None:
    """Two RenderResults agree bit for bit (NaN where the other has NaN)."""
    for name in (
        "images",
        "curves",
        "activation",
        "reference",
        "ratio",
        "r_mean",
        "match",
        "probability",
    ):
        x, y = getattr(a, name), getattr(b, name)
        assert torch.equal(x.nan_to_num(7.0), y.nan_to_num(7.0)), name
    assert a.names == b.names and a.status == b.status and a.reason == b.reason
    assert a.to_records() == b.to_records()


def same_table(a, b) -> None:
    for name in ("values", "indices", "rows", "cols"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# --- data read by shard ----------------------------------------------------------------------
def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def _formats(tmp: Path) -> list[tuple[str, dict]]:
    rng = np.random.default_rng(0)
    idx = tmp / "idx"
    idx.mkdir()
    for stem, n, gz in (("train", 300, True), ("t10k", 120, False)):
        _write_idx(idx / f"{stem}-images-idx3-ubyte{'.gz' if gz else ''}",
                   rng.integers(0, 256, (n, 28, 28)), gz)  # fmt: skip
        _write_idx(idx / f"{stem}-labels-idx1-ubyte", rng.integers(0, 10, n), False)
    np.savez(tmp / "k.npz", x_train=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 200), x_test=rng.integers(0, 256, (90, 28, 28, 1),
             dtype=np.uint8), y_test=rng.integers(0, 10, 90))  # fmt: skip
    folder = tmp / "folder"
    for c in ("cat", "dog"):
        (folder / c).mkdir(parents=True)
        for i in range(25):
            pixels = rng.integers(0, 256, (20 + i % 3, 24, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / c / f"{i:02d}.png")
    shards = tmp / "shards"
    for part, files in (("train", 4), ("test", 2)):
        (shards / part).mkdir(parents=True)
        for i in range(files):
            n = 60 + 7 * i
            np.savez(shards / part / f"part-{i:05d}.npz",
                     x=rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                     y=rng.integers(0, 10, n))  # fmt: skip
    return [
        (f"idx:{idx}", {}),
        (f"npz:{tmp / 'k.npz'}", {}),
        (f"folder:{folder}", {"size": 16}),
        (f"shards:{shards}", {}),
        (f"shards:{shards}", {"size": 14, "split_seed": 2}),
        ("mnist", {"split_seed": 1}),
    ]


def test_every_format_reads_by_shard_exactly_as_loaded(tmp_path: Path) -> None:
    for spec, kw in _formats(tmp_path):
        data = load_dataset(spec, **kw)
        whole = {"val": data.x_val, "train": data.x_train,
                 "all": torch.cat([data.x_train, data.x_val])}  # fmt: skip
        for split, x in whole.items():
            found = source_of(data, split)
            assert found is not None, (spec, split)
            source = open_source(found)
            n = len(x)
            for a, b in ((0, 64), (n // 3, n // 3 + 50), (max(0, n - 20), n + 5)):
                assert torch.equal(source.read(split, a, b), x[a:b]), (spec, split, a)
            picks = [n - 1, 0, n // 2, 0]
            assert torch.equal(source.take(split, picks), x[picks]), (spec, split)


def test_a_subset_is_not_mistaken_for_its_source_and_bad_shards_say_why(tmp_path: Path) -> None:
    limited = load_dataset("mnist", limit=900)
    assert source_of(limited, "train") is None  # a limit changes train: mine from memory
    assert source_of(limited, "val") is not None
    (tmp_path / "train").mkdir()
    np.savez(tmp_path / "train" / "a.npz", x=np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(DataError, match="lacks x or y"):
        load_dataset(f"shards:{tmp_path}")
    with pytest.raises(DataError, match="no train/ folder"):
        load_dataset(f"shards:{tmp_path / 'train'}")


def test_pixels_have_standard_strides_so_every_path_convolves_alike(tiny_lens) -> None:
    from convlens.data.transforms import uint8_to_float

    odd = np.zeros((5, 28, 28), np.uint8)[:, None]  # numpy: a stride-0 channel axis
    assert uint8_to_float(odd).stride() == (784, 784, 28, 1)
    x = torch.rand(300, 1, 28, 28)
    ambiguous = x.as_strided(x.shape, (784, 1, 28, 1))  # reads as channels-last to torch
    units = resolve_units(tiny_lens, "conv2d_2:*")
    same_table(mine(tiny_lens, units, ambiguous, batch_size=100), mine(tiny_lens, units, x))


# --- in-process chunks -----------------------------------------------------------------------
def test_shards_are_whole_batches_and_sharded_mining_equals_one_pass(tiny_lens, digits) -> None:
    starts = [a for a, _ in shard_ranges(1000, 64, 2)]
    assert starts == list(range(0, 1000, 128)) and shard_ranges(1000, 64, 2)[-1] == (896, 1000)
    units = resolve_units(tiny_lens, "conv2d_2:*,class:*")
    one = mine(tiny_lens, units, digits.x_val, k=5, batch_size=64)
    for workers in (1, 3):
        ex = InProcess()
        ex.workers = workers
        same_table(ex.mine(tiny_lens, units, digits.x_val, k=5, batch_size=64), one)


def test_chunked_render_keeps_request_order_and_round_trips_the_store(
    tiny_lens, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "RENDER_CHUNK_UNITS", 3)
    spec = "conv2d_1:0-3,conv2d_2:5@6,6,class:2"
    result = cl.render(tiny_lens, spec, data=digits, executor=InProcess(), **RENDER)
    assert result.names == [str(u) for u in resolve_units(tiny_lens, spec)]
    alone = cl.render(  # on its own, as a chunk runs: one torch thread
        tiny_lens, "conv2d_1:3,conv2d_2:5@6,6,class:2", data=digits, executor=InProcess(), **RENDER
    )
    same_records(alone, _rows(result, [3, 4, 5]))  # the last chunk, rendered on its own
    # The Lens records no training data: the chunks draw with the prior the driver made from
    # ``data`` (they see only its maxima), not with the pixel fallback.
    assert result.preset == alone.preset == "natural"
    back = decode(encode(result))
    same_records(back, result)
    assert back.units == result.units and back.crops[4] is not None


def _rows(result, rows: list[int]):
    """Rows of a RenderResult, as a RenderResult (per-item fields cut, the rest kept)."""
    from dataclasses import fields

    from convlens.viz.render.result import RenderResult

    picked = {}
    for f in fields(RenderResult):
        v = getattr(result, f.name)
        if isinstance(v, torch.Tensor) and v.dim() and v.shape[0] == len(result):
            picked[f.name] = v[rows]
        elif isinstance(v, list) and len(v) == len(result):
            picked[f.name] = [v[i] for i in rows]
        else:
            picked[f.name] = v
    return RenderResult(**picked)


class _KilledAfter(InProcess):
    """A driver that dies (Ctrl-C or kill) after finishing ``n`` chunks; counts what it ran
    (in a list, shared with the copies the atlas makes via ``with_store``)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.limit, self.runs = n, []

    @property
    def ran(self) -> int:
        return len(self.runs)

    def _run(self, fn, shared, indexed):
        for i, arg in indexed:
            if self.ran == self.limit:
                raise KeyboardInterrupt
            self.runs.append(i)
            yield i, fn(shared, arg)


def test_killed_driver_resumes_from_finished_chunks(
    tmp_path: Path, tiny_lens, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "RENDER_CHUNK_UNITS", 4)
    opts = AtlasOptions.preset(quick=True, layers=("conv2d_1",), max_units=6, render_steps=5)
    whole = build_atlas(tiny_lens, tmp_path / "whole", data=digits, stages=["render"],
                        options=opts, progress=False)  # fmt: skip
    # 6 channels + 6 neurons = 12 units = 3 chunks; the driver dies after 2 of them.
    out = tmp_path / "atlas"
    dying = _KilledAfter(2)
    with pytest.raises(KeyboardInterrupt):
        build_atlas(tiny_lens, out, data=digits, stages=["render"], options=opts,
                    progress=False, executor=dying)  # fmt: skip
    assert len(ChunkStore(out / CHUNKS)) == 2
    resumed = _KilledAfter(99)
    build_atlas(tiny_lens, out, data=digits, stages=["render"], options=opts, progress=False,
                resume=True, executor=resumed)  # fmt: skip
    assert resumed.ran == 1  # only the chunk that never finished
    assert not (out / CHUNKS).exists()  # cleared once the task was recorded
    a, b = load_manifest(whole.parent), load_manifest(out)
    a.pop("created"), b.pop("created")
    assert a == b
    for rel in ("img/conv2d_1/channels.png", "img/conv2d_1/neurons.png"):
        assert (out / rel).read_bytes() == (whole.parent / rel).read_bytes()


# --- without Ray -----------------------------------------------------------------------------
def test_ray_option_without_ray_says_how_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code, _, err = run_cli(["render", "no-such-ckpt", "--units", "conv2d_1:0", "--out", "x",
                            "--ray", "local:2"], capsys)  # fmt: skip
    assert code == 2 and "pip install 'convlens[ray]'" in err and len(err.splitlines()) == 1
    code, _, err = run_cli(["examples", "no-such-ckpt", "--out", "x", "--ray", "local"], capsys)
    assert code == 2 and "auto, ray://HOST:PORT or local:N" in err
    with pytest.raises(ConvlensError, match="convlens\\[ray\\]"):
        cl.executor_from_spec("local:1")


# --- on a local Ray cluster with 2 workers ---------------------------------------------------
ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'convlens[ray]'")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray with 2 worker processes, shut down whatever happens."""
    executor = cl.RayExecutor(local_workers=2, object_store_mb=96)
    try:
        yield executor
    finally:
        executor.close()


def _bounded(job):
    """Run ``job()`` in a thread; fail (instead of hanging) past JOB_TIMEOUT."""
    out: dict = {}

    def target() -> None:
        try:
            out["result"] = job()
        except BaseException as error:  # reported in the test's thread
            out["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _finish(thread: threading.Thread, out: dict):
    thread.join(JOB_TIMEOUT)
    assert not thread.is_alive(), f"the Ray job took more than {JOB_TIMEOUT} s"
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_ray_mining_reads_its_own_shards_and_equals_in_process(
    cluster, tiny_lens, digits, tmp_path_factory: pytest.TempPathFactory
):
    units = "conv2d_1:*,conv2d_2:3@5,5,dense_1:0-9,class:*"
    local = cl.examples(tiny_lens, units, digits, k=4, batch_size=50, progress=False,
                        executor=InProcess())  # fmt: skip
    ours = _finish(*_bounded(lambda: cl.examples(tiny_lens, units, digits, k=4, batch_size=50,
                                                  progress=False, executor=cluster)))  # fmt: skip
    same_table(ours.topk, local.topk)
    assert ours.to_dict() == local.to_dict()
    idx = tmp_path_factory.mktemp("formats")
    spec = _formats(idx)[0][0]  # IDX files (numpy gives their channel axis odd strides)
    data = load_dataset(spec)
    a = cl.examples(tiny_lens, units, data, k=3, batch_size=32, progress=False)
    b = _finish(*_bounded(lambda: cl.examples(tiny_lens, units, data, k=3, batch_size=32,
                                               progress=False, executor=cluster)))  # fmt: skip
    same_table(a.topk, b.topk)
    tensor = digits.x_val[:300]  # no files behind it: sent to the object store once
    a = cl.examples(tiny_lens, units, tensor, k=3, batch_size=40, progress=False)
    b = _finish(*_bounded(lambda: cl.examples(tiny_lens, units, tensor, k=3, batch_size=40,
                                               progress=False, executor=cluster)))  # fmt: skip
    same_table(a.topk, b.topk)


def _ray_workers() -> list[tuple[int, str]]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, UnicodeDecodeError):
            continue
        if title.startswith("ray::convlens_chunk"):
            found.append((int(pid), title))
    return found


def test_ray_render_survives_a_killed_worker_with_nothing_lost_or_duplicated(
    cluster, tiny_lens, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "RENDER_CHUNK_UNITS", 2)
    spec = "conv2d_1:0-5,conv2d_2:0-3@6,6,class:0-1"
    settings = {**RENDER, "steps": 25}
    local = cl.render(tiny_lens, spec, data=digits, executor=InProcess(), **settings)
    thread, out = _bounded(
        lambda: cl.render(tiny_lens, spec, data=digits, executor=cluster, **settings)
    )
    killed = None
    deadline = time.monotonic() + JOB_TIMEOUT
    while thread.is_alive() and killed is None and time.monotonic() < deadline:
        busy = _ray_workers()
        if busy:
            killed = busy[0][0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    ours = _finish(thread, out)
    assert killed is not None, "no worker was running a chunk to kill"
    assert not Path(f"/proc/{killed}").exists() or _is_zombie(killed)
    same_records(ours, local)  # every chunk once, in order: nothing lost, nothing doubled
    assert len(ours) == len(local) == 12


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
