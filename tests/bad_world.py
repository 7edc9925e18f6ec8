"""A small world of bad inputs for the bad-input suite, built once: broken checkpoints, model
files, images, datasets and a folder of a user's own files.

Each broken checkpoint is the good one with one thing wrong, so a refusal can only come from
that one thing. Paths are substituted into the suite's command lines by name (``{bad}/no_arch``).
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

Config = dict[str, Any]


def _set(*path: str, value: Any) -> Callable[[Config], Config]:
    def mutate(config: Config) -> Config:
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return config

    return mutate


def _pop(*path: str) -> Callable[[Config], Config]:
    def mutate(config: Config) -> Config:
        node = config
        for key in path[:-1]:
            node = node[key]
        node.pop(path[-1])
        return config

    return mutate


def _both(*mutations: Callable[[Config], Config]) -> Callable[[Config], Config]:
    def mutate(config: Config) -> Config:
        for m in mutations:
            config = m(config)
        return config

    return mutate


def _graph(nodes: list[dict[str, Any]]) -> Callable[[Config], Config]:
    graph = {
        "format": "convlens-graph",
        "version": 1,
        "input": "input",
        "output": nodes[-1].get("name", "out"),
        "nodes": nodes,
    }
    return _both(
        _set("architecture", "name", value="graph"),
        _set("architecture", "args", value={"graph": graph}),
    )


CONV = {
    "name": "conv",
    "op": "conv2d",
    "inputs": ["input"],
    "in_channels": 1,
    "out_channels": 4,
    "kernel": 3,
    "stride": 1,
}

# name -> (what is wrong with config.json, a phrase the one-line error must contain)
# fmt: off
CONFIGS: dict[str, tuple[Callable[[Config], Config], str]] = {
    "no_arch": (_pop("architecture"), "architecture: field required"),
    "no_spec": (_pop("input_spec"), "input_spec: field required"),
    "no_format": (_pop("format"), "format missing"),
    "format_other": (_set("format", value="keras"), "format missing"),
    "version_null": (_set("version", value=None), "version: input should be a valid integer"),
    "version_str": (_set("version", value="1"), "version: input should be a valid integer"),
    "version_0": (_set("version", value=0), "version: input should be greater"),
    "version_newer": (_set("version", value=9), "newer convlens"),
    "channels_abc": (_set("input_spec", "channels", value="abc"), "input_spec.channels"),
    "channels_0": (_set("input_spec", "channels", value=0), "input_spec.channels"),
    "channels_float": (_set("input_spec", "channels", value=1.5), "input_spec.channels"),
    "channels_3": (_set("input_spec", "channels", value=3), "input_spec.channels is 3"),
    "channels_3_both": (
        _both(_set("input_spec", "channels", value=3),
              _set("architecture", "args", "in_channels", value=3)),
        "do not fit the architecture",
    ),
    "height_32": (_set("input_spec", "height", value=32), "input_spec.height is 32"),
    "width_32": (_set("input_spec", "width", value=32), "input_spec.width is 32"),
    "size_32_both": (
        _both(_set("input_spec", "height", value=32), _set("input_spec", "width", value=32),
              _set("architecture", "args", "image_size", value=32)),
        "do not fit the architecture",
    ),
    "height_huge": (_set("input_spec", "height", value=10**9), "less than or equal to 4096"),
    "size_huge_both": (
        _both(_set("input_spec", "height", value=4000), _set("input_spec", "width", value=4000),
              _set("architecture", "args", "image_size", value=4000)),
        "more than convlens builds",
    ),
    "range_str": (_set("input_spec", "value_range", value="0,1"), "input_spec.value_range"),
    "range_backwards": (_set("input_spec", "value_range", value=[1, 0]), "low < high"),
    "range_three": (_set("input_spec", "value_range", value=[0, 1, 2]), "value_range"),
    "range_nan": (_set("input_spec", "value_range", value=[float("nan"), 1]), "finite number"),
    "mean_str": (_set("input_spec", "mean", value="abc"), "input_spec.mean"),
    "mean_two": (_set("input_spec", "mean", value=[0, 0]), "mean has 2 values"),
    "mean_empty": (_set("input_spec", "mean", value=[]), "input_spec.mean"),
    "std_zero": (_set("input_spec", "std", value=[0]), "greater than 0"),
    "std_negative": (_set("input_spec", "std", value=[-1]), "greater than 0"),
    "std_inf": (_set("input_spec", "std", value=[float("inf")]), "finite number"),
    "names_3": (_set("input_spec", "class_names", value=["a", "b", "c"]), "class_names is 3"),
    "names_3_both": (
        _both(_set("input_spec", "class_names", value=["a", "b", "c"]),
              _set("architecture", "args", "num_classes", value=3)),
        "do not fit the architecture",
    ),
    "names_duplicate": (_set("input_spec", "class_names", value=["a"] * 10), "duplicates"),
    "names_empty": (_set("input_spec", "class_names", value=[]), "input_spec.class_names"),
    "names_ints": (_set("input_spec", "class_names", value=list(range(10))), "valid string"),
    "names_blank": (_set("input_spec", "class_names", value=["", *"123456789"]),
                    "input_spec.class_names.0"),
    "names_missing": (_pop("input_spec", "class_names"), "class_names: field required"),
    "split_seed_zero": (_set("data", "split_seed", value="zero"), "data.split_seed"),
    "split_seed_negative": (_set("data", "split_seed", value=-1), "data.split_seed"),
    "data_str": (_set("data", value="abc"), "data: input should be"),
    "history_str": (_set("history", value="abc"), "history: input should be"),
    "history_item": (_set("history", value=["x"]), "history.0"),
    "history_epoch": (_set("history", value=[{"epoch": "one"}]), "history.0.epoch"),
    "history_nan": (_set("history", value=[{"epoch": 1, "loss": float("nan")}]), "finite"),
    "spec_list": (_set("input_spec", value=[1, 28, 28]), "input_spec: input should be"),
    "arch_null": (_set("architecture", value=None), "architecture: input should be"),
    "arch_unknown": (_set("architecture", "name", value="resnet999"), "unknown model"),
    "arch_os_system": (_set("architecture", "name", value="os:system"), "unknown model"),
    "arch_args_str": (_set("architecture", "args", value="abc"), "architecture.args"),
    "arch_args_extra": (_set("architecture", "args", "width", value=3), "cannot build"),
    "arch_args_missing": (_pop("architecture", "args", "in_channels"), "in_channels: field"),
    "arch_args_float": (_set("architecture", "args", "image_size", value=28.0), "image_size"),
    "arch_args_bool": (_set("architecture", "args", "in_channels", value=True), "in_channels"),
    "graph_no_graph": (_set("architecture", "name", value="graph"), "args.graph: field required"),
    "graph_huge_node": (_graph([{**CONV, "out_channels": 10**9}]), "out of range"),
    "graph_many_nodes": (
        _graph([{**CONV, "name": f"n{i}", "inputs": ["input"]} for i in range(10_001)]),
        "at most 10000",
    ),
    "graph_node_no_name": (_graph([{k: v for k, v in CONV.items() if k != "name"}]), "name"),
    "graph_lambda": (
        _graph([{"name": "fn", "op": "keras_layer", "inputs": ["input"]}]),
        "lambda layer, whose code is not stored",
    ),
    "graph_params": (_graph([{**CONV, "in_channels": 16_000, "out_channels": 16_000}]),
                     "more than convlens builds"),
}

# fmt: on

# name -> (raw text of config.json, phrase)
RAW_CONFIGS: dict[str, tuple[bytes, str]] = {
    "config_not_json": (b"{not json", "corrupt"),
    "config_empty": (b"", "corrupt"),
    "config_binary": (b"\xff\xfe\x00\x01", "corrupt"),
    "config_list": (b"[1, 2, 3]", "not a convlens checkpoint config"),
    "config_deep": (b"[" * 100_000 + b"]" * 100_000, "corrupt"),
}


def _weights_variants(good: Path) -> dict[str, tuple[Callable[[Path], None], str]]:
    state = load_file(str(good / "model.safetensors"))

    def save(mutate: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            changed = {k: v.clone() for k, v in state.items()}
            mutate(changed)
            save_file(changed, str(path))

        return write

    raw = (good / "model.safetensors").read_bytes()
    first = next(iter(state))

    def nan_all(s: dict[str, torch.Tensor]) -> None:
        for v in s.values():
            v.fill_(float("nan"))

    def inf_one(s: dict[str, torch.Tensor]) -> None:
        s[first].view(-1)[0] = float("inf")

    def drop(s: dict[str, torch.Tensor]) -> None:
        s.pop(first)

    def extra(s: dict[str, torch.Tensor]) -> None:
        s["stowaway.weight"] = torch.zeros(3)

    def other_model(path: Path) -> None:
        from convlens.models import build_model

        torch.manual_seed(0)
        save_file(build_model("kaggle4").state_dict(), str(path))

    def as_dir(path: Path) -> None:
        path.mkdir()

    return {
        "weights_missing": (lambda p: None, "is missing"),
        "weights_empty": (lambda p: p.write_bytes(b""), "corrupt"),
        "weights_garbage": (lambda p: p.write_bytes(os.urandom(4000)), "corrupt"),
        "weights_truncated": (lambda p: p.write_bytes(raw[: len(raw) // 2]), "corrupt"),
        "weights_header_only": (lambda p: p.write_bytes(raw[:200]), "corrupt"),
        "weights_nan": (save(nan_all), "nan or infinite"),
        "weights_inf": (save(inf_one), "nan or infinite"),
        "weights_drop_tensor": (save(drop), "is missing"),
        "weights_extra_tensor": (save(extra), "unexpected tensor"),
        "weights_other_model": (other_model, "do not fit the architecture"),
        "weights_folder": (as_dir, "is missing"),
    }


def build_checkpoints(good: Path, root: Path) -> dict[str, str]:
    """Every broken checkpoint under ``root``; returns name -> expected phrase."""
    expected: dict[str, str] = {}
    config = json.loads((good / "config.json").read_text())
    for name, (mutate, phrase) in CONFIGS.items():
        folder = root / name
        folder.mkdir(parents=True)
        os.link(good / "model.safetensors", folder / "model.safetensors")
        text = json.dumps(mutate(copy.deepcopy(config)))
        (folder / "config.json").write_text(text)
        expected[name] = phrase
    for name, (raw, phrase) in RAW_CONFIGS.items():
        folder = root / name
        folder.mkdir(parents=True)
        os.link(good / "model.safetensors", folder / "model.safetensors")
        (folder / "config.json").write_bytes(raw)
        expected[name] = phrase
    for name, (write, phrase) in _weights_variants(good).items():
        folder = root / name
        folder.mkdir(parents=True)
        shutil.copy(good / "config.json", folder / "config.json")
        write(folder / "model.safetensors")
        expected[name] = phrase
    (root / "empty_folder").mkdir()
    expected["empty_folder"] = "not a convlens checkpoint"
    (root / "config_is_folder" / "config.json").mkdir(parents=True)
    expected["config_is_folder"] = "not a convlens checkpoint"
    return expected


# --- model files -----------------------------------------------------------------------------


class Boom:
    """A pickle whose loading would run ``os.system`` (never run: loading is refused)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


SCRIPT_SOURCE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 26 * 26, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


class Maps(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Flat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(28 * 28, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(x, 1))
"""


def _import_source(folder: Path, name: str, source: str) -> Any:
    import importlib.util

    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def build_files(folder: Path, good: Path) -> None:
    """Model files that are wrong in one way each."""
    folder.mkdir(parents=True)
    (folder / "renamed.pt").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(600))
    (folder / "truncated.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(600))
    with zipfile.ZipFile(folder / "notes.keras", "w") as archive:
        archive.writestr("notes.txt", "not a model")
    (folder / "cut.keras").write_bytes((folder / "notes.keras").read_bytes()[:30])
    (folder / "empty.pt").write_bytes(b"")
    (folder / "random.pt").write_bytes(os.urandom(3000))
    (folder / "text.bin").write_text("hello, I am a text file\n")
    (folder / "plain.pt").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    (folder / "boom.pt").write_bytes(pickle.dumps(Boom(folder / "PWNED"), protocol=2))
    torch.save([1, 2, 3], folder / "list.pt")
    torch.save(torch.nn.Linear(2, 2), folder / "module.pt")  # pickled class: torch.nn.Linear
    state = load_file(str(good / "model.safetensors"))
    torch.save(state, folder / "state.pt")
    save_file(state, str(folder / "weights.safetensors"))
    raw = (folder / "weights.safetensors").read_bytes()
    (folder / "cut.safetensors").write_bytes(raw[: len(raw) // 3])
    built = _import_source(folder, "bad_world_nets", SCRIPT_SOURCE)
    torch.jit.script(built.Net()).save(str(folder / "net.pt"))
    torch.jit.script(built.Maps()).save(str(folder / "maps.pt"))
    torch.jit.script(built.Flat()).save(str(folder / "flat.pt"))
    script = (folder / "net.pt").read_bytes()
    (folder / "cut_script.pt").write_bytes(script[: len(script) // 2])


# --- images -----------------------------------------------------------------------------------


def build_images(folder: Path) -> None:
    folder.mkdir(parents=True)
    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[6:22, 12:16] = 255
    Image.fromarray(digit).save(folder / "digit.png")
    png = (folder / "digit.png").read_bytes()
    for name, cut in (
        ("head", 20),
        ("data", len(png) // 2),
        ("end", len(png) - 12),
        ("crc", len(png) - 4),
    ):
        (folder / f"cut_{name}.png").write_bytes(png[:cut])
    flipped = bytearray(png)
    flipped[len(png) // 2] ^= 0xFF
    (folder / "bad_crc.png").write_bytes(bytes(flipped))
    Image.fromarray(digit).save(folder / "digit.jpg", quality=90)
    jpg = (folder / "digit.jpg").read_bytes()
    (folder / "cut_half.jpg").write_bytes(jpg[: len(jpg) // 2])
    (folder / "cut_end.jpg").write_bytes(jpg[:-2])
    Image.new("L", (5000, 4000)).save(folder / "huge.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    (folder / "loop.png").symlink_to("loop.png")


# --- datasets ---------------------------------------------------------------------------------


def _class_folder(
    root: Path, names: list[str], images: int = 3, size: int = 28, colour: bool = False
) -> Path:
    rng = np.random.default_rng(0)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(images):
            shape = (size, size, 3) if colour else (size, size)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    return root


def build_datasets(folder: Path, images: Path) -> None:
    folder.mkdir(parents=True)
    _class_folder(folder / "eleven", [f"c{i:02d}" for i in range(11)])
    _class_folder(folder / "rgb", ["red", "green"], colour=True)
    _class_folder(folder / "outside", ["mine"])
    linked = _class_folder(folder / "linked", ["a", "b"])
    (linked / "stolen").symlink_to(folder / "outside" / "mine", target_is_directory=True)
    one_link = _class_folder(folder / "linked_file", ["a", "b"])
    (one_link / "a" / "secret.png").symlink_to(folder / "outside" / "mine" / "0.png")
    (folder / "empty").mkdir()
    noimg = _class_folder(folder / "no_images", ["a"])
    (noimg / "b").mkdir()
    mixed = _class_folder(folder / "mixed", ["a", "b"])
    _class_folder(mixed / "b", ["big"], size=40)
    broken = _class_folder(folder / "broken_image", ["a", "b"])
    shutil.copy(images / "cut_data.png", broken / "a" / "cut.png")
    huge = _class_folder(folder / "huge_image", ["a", "b"])
    shutil.copy(images / "huge.png", huge / "b" / "huge.png")
    _class_folder(folder / "singletons", ["a", "b"], images=1)
    np.savez(
        folder / "objects.npz",
        x_train=np.array([{"a": 1}], dtype=object),
        y_train=np.zeros(1),
        x_test=np.zeros(1),
        y_test=np.zeros(1),
    )
    np.save(folder / "array.npy", np.zeros(3))
    np.savez(folder / "keys.npz", images=np.zeros((2, 28, 28)))
    (folder / "not.npz").write_text("not a zip")
    idx = folder / "idx"
    idx.mkdir()
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (idx / name).write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # header cut short


def build_user(folder: Path) -> None:
    """A user's own folder: files that no command may touch."""
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "index.html").write_text("<p>my home page</p>\n")
    (folder / "img").mkdir()
    (folder / "img" / "cat.png").write_bytes(b"\x89PNG not really")


def snapshot(*folders: Path) -> dict[str, tuple[int, int, str]]:
    """Size, mtime and kind of everything under ``folders`` (to prove nothing changed)."""
    seen: dict[str, tuple[int, int, str]] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                st = path.lstat()
                kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
                seen[str(path)] = (st.st_size if kind == "file" else 0, st.st_mtime_ns, kind)
    return seen


def tiny(dataset: Any, train: int = 400, val: int = 200) -> Any:
    """The first images of a dataset: enough to train a model that loads, in a second."""
    from convlens.data import Dataset

    return Dataset(dataset.name, dataset.x_train[:train], dataset.y_train[:train],
                   dataset.x_val[:val], dataset.y_val[:val], dataset.class_names,
                   dataset.split_seed)  # fmt: skip
