"""Training writes a real checkpoint; loading it gives the same model; bad folders fail cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import convlens as cl
from convlens.errors import CheckpointError, UnknownNameError
from convlens.models import build_model, snapshot_epochs


def test_checkpoint_folder_contents(kaggle4_ckpt: Path):
    config = json.loads((kaggle4_ckpt / "config.json").read_text())
    assert config["architecture"] == {
        "name": "kaggle4",
        "args": {"in_channels": 1, "image_size": 28, "num_classes": 10},
    }
    assert config["input_spec"]["class_names"] == [str(i) for i in range(10)]
    assert config["data"]["name"] == "mnist" and config["data"]["split_seed"] == 0
    assert [h["epoch"] for h in config["history"]] == [1, 2, 3]
    assert {"loss", "train_acc", "val_acc"} <= set(config["history"][0])
    weights = load_file(str(kaggle4_ckpt / "model.safetensors"))
    assert weights["conv2d_1.weight"].shape == (32, 1, 3, 3)
    assert snapshot_epochs(kaggle4_ckpt) == [1, 2, 3]
    assert not list(kaggle4_ckpt.rglob("*.tmp"))


def test_training_learns_real_digits(kaggle4_ckpt: Path):
    history = json.loads((kaggle4_ckpt / "config.json").read_text())["history"]
    assert history[-1]["val_acc"] > 0.85  # 3 short epochs on 3000 digits; chance is 0.10
    assert history[-1]["loss"] < history[0]["loss"]


def test_loaded_lens_reproduces_training_accuracy(kaggle4_lens, mnist_small, kaggle4_ckpt):
    history = json.loads((kaggle4_ckpt / "config.json").read_text())["history"]
    probs = kaggle4_lens.predict(mnist_small.x_val)
    acc = (probs.argmax(1) == mnist_small.y_val).float().mean().item()
    assert acc == pytest.approx(history[-1]["val_acc"], abs=1e-6)


def test_snapshot_loads_other_weights(kaggle4_ckpt: Path):
    first = cl.load(kaggle4_ckpt, epoch=1)
    last = cl.load(kaggle4_ckpt)
    w1, w2 = cl.kernels(first, "conv2d_1"), cl.kernels(last, "conv2d_1")
    assert w1.shape == w2.shape and not torch.equal(w1, w2)
    with pytest.raises(CheckpointError, match="kept epochs: \\[1, 2, 3\\]"):
        cl.load(kaggle4_ckpt, epoch=7)


def test_training_is_reproducible(mnist_small):
    a = cl.train("simple2", mnist_small, epochs=1, seed=3, progress=False)
    b = cl.train("simple2", mnist_small, epochs=1, seed=3, progress=False)
    assert a.history[0]["val_acc"] == b.history[0]["val_acc"]
    for (k, va), (_, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert torch.equal(va, vb), k


@pytest.mark.parametrize("arch", ["kaggle4", "simple2", "fcn", "oip3"])
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_zoo_takes_channels_size_classes(arch, channels, size):
    model = build_model(arch, in_channels=channels, image_size=size, num_classes=7)
    assert model(torch.rand(2, channels, size, size)).shape == (2, 7)


def test_unknown_model_name():
    with pytest.raises(UnknownNameError, match=r"unknown model 'kagle4'.*Did you mean 'kaggle4'"):
        build_model("kagle4")


def test_missing_and_corrupt_checkpoints(tmp_path: Path, kaggle4_ckpt: Path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        cl.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a convlens checkpoint"):
        cl.load(tmp_path / "empty")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((kaggle4_ckpt / "config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt"):
        cl.load(broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        cl.load(broken)
