"""Keras files as people have them: Keras 3 auto names, augmentation layers, depthwise and
separable convolutions, the model's own name, the logits layer, and convert --data."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

if "keras" in sys.modules and sys.modules["keras"].backend.backend() != "torch":
    pytest.skip("keras was imported with a non-torch backend", allow_module_level=True)
os.environ["KERAS_BACKEND"] = "torch"
keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install '.[keras]')")
pytest.importorskip("h5py", reason="h5py is not installed (pip install '.[keras]')")

import convlens as cl  # noqa: E402
from convlens.models.keras_bridge import PASS_THROUGH  # noqa: E402

L = keras.layers
TOL = 1e-4
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def tutorial_model() -> keras.Model:
    """A keras.io-style model: augmentation in the model, Keras 3's automatic layer names,
    depthwise and separable convolutions, a separate softmax Activation."""
    keras.backend.clear_session()  # automatic names count from a fresh session: conv2d, conv2d_1
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        L.RandomFlip("horizontal"),
        L.RandomRotation(0.1),
        L.RandomZoom(0.1),
        L.Rescaling(1 / 255.0),
        L.Conv2D(8, 3, padding="same", activation="relu"),
        L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu"),
        L.SeparableConv2D(12, 3, strides=2, padding="same", depth_multiplier=2),
        L.BatchNormalization(),
        L.GaussianNoise(0.1),
        L.Conv2D(6, 3, padding="valid", activation="relu"),
        L.GlobalAveragePooling2D(),
        L.Dense(4),
        L.Activation("softmax"),
    ])  # fmt: skip


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    model = tutorial_model()
    folder = tmp_path_factory.mktemp("keras-tutorial")
    path = folder / "flowers.keras"
    model.save(path)
    return model, path


@pytest.fixture(scope="module")
def lens(saved):
    return cl.load(saved[1])


def test_augmentation_layers_are_identity_at_inference_in_keras() -> None:
    """The claim PASS_THROUGH rests on, checked against Keras itself for the common ones."""
    x = np.random.default_rng(0).random((2, 12, 12, 3)).astype("float32")
    layers = [
        L.RandomFlip(),
        L.RandomRotation(0.2),
        L.RandomZoom(0.2),
        L.RandomContrast(0.3),
        L.RandomTranslation(0.1, 0.1),
        L.GaussianNoise(0.5),
        L.GaussianDropout(0.3),
    ]
    for layer in layers:
        assert type(layer).__name__ in PASS_THROUGH
        assert np.allclose(np.asarray(layer(x, training=False)), x), type(layer).__name__
    assert "RandomCrop" not in PASS_THROUGH  # it changes the image size


def test_tutorial_model_converts_and_matches_keras(saved, lens) -> None:
    model, _ = saved
    names = [layer.name for layer in model.layers]
    passed = [n for n in names if n.startswith(("random_", "gaussian_noise"))]
    assert len(passed) == 4 and not set(passed) & set(lens.layer_names)
    assert lens.source["graph"]["passed_through"] == passed
    # Keras 3 names: conv2d, depthwise_conv2d, separable_conv2d (+ its per-channel part), conv2d_1
    convs = [i.name for i in lens.conv_layers()]
    assert convs == ["conv2d", "depthwise_conv2d", "separable_conv2d_depthwise",
                     "separable_conv2d", "conv2d_1"]  # fmt: skip
    x = torch.rand(3, 3, 16, 16) * 255
    # each row of the table is its last Keras part's output (a conv merges its batch norm)
    rows = {i.name: (i.parts[-1] if i.parts else i.name) for i in lens.layers}
    kept = [n for n in rows if rows[n] in names]
    probe = keras.Model(model.inputs, [model.get_layer(rows[n]).output for n in kept])
    outs = probe.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
    with torch.no_grad():
        got = lens.forward(x, kept)
    assert "separable_conv2d" in kept and rows["separable_conv2d"] != "separable_conv2d"
    for name, want in zip(kept, outs, strict=True):
        want = want.transpose(0, 3, 1, 2) if want.ndim == 4 else want
        assert got[name].shape == want.shape, name
        assert np.abs(got[name].numpy() - want).max() < TOL * max(1.0, np.abs(want).max()), name


def test_model_is_called_by_its_file_name_and_logits_sit_before_the_softmax(saved, lens) -> None:
    model, path = saved
    assert model.name.startswith("sequential")  # Keras named it itself ...
    assert lens.name == "flowers"  # ... so the file's name is used, never "GraphModel"
    assert lens.logits_layer == "activation" and lens.logits_from_input
    assert lens.logits_source == "dense"
    keras.backend.clear_session()
    named = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(2, 3), L.Flatten(),
                              L.Dense(3, activation="softmax")], name="digits_net")  # fmt: skip
    named.save(path.with_name("n.keras"))
    other = cl.load(path.with_name("n.keras"))
    assert other.name == "digits_net"
    assert other.logits_layer == "dense" and other.logits_source == "dense_logits"


def test_normalization_layer_converts(tmp_path) -> None:
    keras.utils.set_random_seed(0)
    norm = L.Normalization()
    data = (np.random.default_rng(1).random((20, 8, 8, 3)) * [1, 4, 9]).astype("float32")
    norm.adapt(data)
    model = keras.Sequential([keras.Input((8, 8, 3)), norm, L.Conv2D(2, 3), L.Flatten(),
                              L.Dense(2)])  # fmt: skip
    model.save(tmp_path / "norm.keras")
    lens = cl.load(tmp_path / "norm.keras")
    x = torch.from_numpy(data[:4]).permute(0, 3, 1, 2)
    want = model.predict(data[:4], verbose=0)
    assert np.abs(lens.logits(x).detach().numpy() - want).max() < TOL


def test_convert_records_data_so_the_checkpoint_needs_it_no_more(tmp_path, capsys) -> None:
    from cli_helpers import run_cli

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(4, 3, activation="relu"),
                              L.GlobalAveragePooling2D(),
                              L.Dense(10, activation="softmax")])  # fmt: skip
    model.save(tmp_path / "tiny.h5")
    code, out, err = run_cli(["render", str(tmp_path / "tiny.h5"), "--units", "conv2d:0-1",
                              "--steps", "2", "--out", str(tmp_path / "r0")], capsys)  # fmt: skip
    assert code == 0, err
    assert "unverified: no dataset to compare with; pass --data" in out and "nan" not in out
    assert "2 units rendered" in out
    folder = tmp_path / "ckpt"
    code, _, err = run_cli(["convert", str(tmp_path / "tiny.h5"), "--data", "mnist", "--out",
                            str(folder)], capsys)  # fmt: skip
    assert code == 0, err
    config = json.loads((folder / "config.json").read_text())
    assert config["data"]["name"] == "mnist" and config["data"]["split_seed"] == 0
    assert cl.load(folder).name == "tiny"
    code, out, err = run_cli(["render", str(folder), "--units", "conv2d:0", "--steps", "2",
                              "--out", str(tmp_path / "r1")], capsys)  # fmt: skip
    assert code == 0, err
    assert "unverified" not in out and "1 unit rendered" in out
    code, _, err = run_cli(["convert", str(tmp_path / "tiny.h5"), "--data", "npz:/nonexistent.npz",
                            "--out", str(tmp_path / "bad")], capsys)  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "bad").exists()
