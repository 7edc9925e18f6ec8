"""Keras models (.keras and legacy .h5) read through the torch-backend bridge, checked against
Keras' own predictions; conversion to a checkpoint; Lambda refusal; bad files from the CLI."""

from __future__ import annotations

import json
import os
import shutil
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
from convlens.cli import main  # noqa: E402
from convlens.errors import CheckpointError  # noqa: E402

L = keras.layers
TOL = 1e-4
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def kaggle4_keras() -> keras.Model:
    """The blog's kaggle4 in Keras, with Keras 2's layer names (conv2d_1 ...)."""
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        L.Conv2D(32, 3, padding="same", activation="relu", name="conv2d_1"),
        L.Conv2D(32, 3, padding="same", activation="relu", name="conv2d_2"),
        L.MaxPooling2D(name="max_pooling2d_1"),
        L.Dropout(0.25, name="dropout_1"),
        L.Conv2D(64, 3, padding="same", activation="relu", name="conv2d_3"),
        L.Conv2D(64, 3, padding="same", activation="relu", name="conv2d_4"),
        L.MaxPooling2D(name="max_pooling2d_2"),
        L.Dropout(0.25, name="dropout_2"),
        L.Flatten(name="flatten_1"),
        L.Dense(256, activation="relu", name="dense_1"),
        L.Dropout(0.5, name="dropout_3"),
        L.Dense(128, activation="relu", name="dense_2"),
        L.Dropout(0.5, name="dropout_4"),
        L.Dense(10, activation="softmax", name="dense_3"),
    ])  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_small):
    """kaggle4 trained one epoch on 400 real digits, saved as .keras and as legacy .h5."""
    keras.utils.set_random_seed(0)
    x = mnist_small.x_train[:400].permute(0, 2, 3, 1).numpy()
    y = mnist_small.y_train[:400].numpy()
    model = kaggle4_keras()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=50, verbose=0)
    folder = tmp_path_factory.mktemp("keras")
    model.save(folder / "kaggle4.keras")
    model.save(folder / "kaggle4.h5")
    x_val = mnist_small.x_val[:24]
    return model, folder, x_val


@pytest.fixture(scope="module")
def lenses(trained):
    """Each saved file loaded once (building a Lens probes every layer's receptive field)."""
    _, folder, _ = trained
    return {suffix: cl.load(folder / f"kaggle4{suffix}") for suffix in (".keras", ".h5")}


def keras_outputs(model: keras.Model, names: list[str], x: torch.Tensor) -> dict[str, np.ndarray]:
    """Every named layer's output as Keras computes it, NHWC turned to NCHW for comparison."""
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = probe.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
    return {
        n: (o.transpose(0, 3, 1, 2) if o.ndim == 4 else o) for n, o in zip(names, outs, strict=True)
    }


def keras_names(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_file_matches_keras_predict(trained, lenses, suffix):
    model, _, x = trained
    lens = lenses[suffix]
    assert lens.spec.shape == (1, 28, 28) and lens.num_classes == 10
    assert [i.name for i in lens.conv_layers()] == [f"conv2d_{i}" for i in range(1, 5)]
    assert lens.layer("conv2d_4").rf.size == (14, 14)  # receptive fields work on the bridge
    assert lens.logits_layer == "dense_3" and lens.logits_from_input
    names = keras_names(model)
    want = keras_outputs(model, names, x)
    with torch.no_grad():
        got = lens.forward(x, names)
        logits = lens.logits(x)
    for name in names:
        assert got[name].shape == want[name].shape, name
        assert np.abs(got[name].numpy() - want[name]).max() < TOL, name
    predicted = model.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
    assert np.abs(lens.predict(x).numpy() - predicted).max() < TOL
    # The class scores are pre-softmax: the split-off Dense holds them.
    assert torch.allclose(torch.softmax(logits, 1), torch.from_numpy(predicted), atol=TOL)
    assert lens.layer("dense_3_logits").kind == "dense"
    assert logits.std() > torch.softmax(logits, 1).std()  # not probabilities


def test_keras_lens_runs_attribution_and_examples(trained, lenses):
    _, _, x = trained
    lens = lenses[".keras"]
    attribution = pytest.importorskip("convlens.viz.attribution")
    heat = attribution.attribute(lens, x[:2], method="gradcam", layer="conv2d_4")
    assert heat.values.shape == (2, 28, 28) and torch.isfinite(heat.values).all()
    grad = attribution.attribute(lens, x[:2], target=3, method="gradient")
    assert grad.values.abs().sum() > 0
    examples = pytest.importorskip("convlens.viz.examples")
    table = examples.mine(lens, "conv2d_3:0,class:1", x, k=3)
    assert table is not None


def test_render_examples_and_explain_commands_run_on_a_legacy_h5(trained, tmp_path, capsys):
    from cli_helpers import run_cli

    h5 = str(trained[1] / "kaggle4.h5")
    out = tmp_path / "out"
    argv = ["render", h5, "--units", "conv2d_1:0-1,class:3", "--steps", "8", "--data", "mnist",
            "--out", str(out / "render")]  # fmt: skip
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    records = json.loads((out / "render" / "render.json").read_text())
    units = [r["unit"] for r in (records["units"] if isinstance(records, dict) else records)]
    assert units == ["conv2d_1:0", "conv2d_1:1", "class:3"]
    argv = ["examples", h5, "--units", "conv2d_2:0", "--k", "3", "--data", "mnist", "--out",
            str(out / "examples")]  # fmt: skip
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert (out / "examples" / "examples.json").is_file()
    argv = ["explain", h5, "--index", "0", "--data", "mnist", "--methods", "gradient,gradcam",
            "--out", str(out / "explain")]  # fmt: skip
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err
    assert {"heatmap_gradient.png", "heatmap_gradcam.png", "explain.json"} <= {
        p.name for p in (out / "explain").iterdir()
    }


def test_converted_checkpoint_gives_identical_activations(trained, lenses, tmp_path, capsys):
    _, folder, x = trained
    out = tmp_path / "ckpt"
    code = run(["convert", str(folder / "kaggle4.h5"), "--out", str(out), "--range", "0,255",
                "--classes", "zero,one,two,three,four,five,six,seven,eight,nine"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    original = lenses[".h5"]
    converted = cl.load(out)
    assert converted.class_names[7] == "seven" and converted.spec.value_range == (0.0, 255.0)
    assert converted.source["config"]["architecture"]["name"] == "graph"
    assert converted.layer_names == original.layer_names
    names = original.layer_names
    with torch.no_grad():
        a, b = original.forward(x, names), converted.forward(x, names)
    for name in names:
        assert torch.equal(a[name], b[name]), name
    assert torch.equal(original.logits(x), converted.logits(x))


def test_functional_graph_with_branches_strides_and_batchnorm(tmp_path):
    """Any size and RGB: a 33x31 colour model with every supported layer, against Keras."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((33, 31, 3))
    x = L.Rescaling(1 / 255.0)(inp)
    x = L.ZeroPadding2D(((1, 2), (0, 1)))(x)
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    a = L.Conv2D(8, 4, padding="same", activation="elu")(x)
    b = L.LeakyReLU(0.1)(L.Conv2D(8, 3, dilation_rate=2, padding="same")(x))
    x = L.MaxPooling2D(3, strides=2, padding="same")(L.Add()([a, b]))
    x = L.Concatenate()([x, L.AveragePooling2D(3, strides=1, padding="same")(x)])
    x = L.Conv2D(12, 3, strides=2, activation="gelu")(x)
    x = L.GlobalAveragePooling2D()(L.SpatialDropout2D(0.1)(x))
    x = L.BatchNormalization()(L.Dense(5)(x))
    model = keras.Model(inp, L.Activation("softmax")(x))
    for layer in model.layers:  # non-trivial normalization statistics
        if isinstance(layer, L.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(np.linspace(-0.5, 0.5, n).astype("float32"))
            layer.moving_variance.assign(np.linspace(0.5, 2.0, n).astype("float32"))
    model.save(tmp_path / "f.keras")
    lens = cl.load(tmp_path / "f.keras")
    assert lens.spec.shape == (3, 33, 31) and lens.spec.value_range == (0.0, 255.0)
    x_in = torch.rand(3, 3, 33, 31) * 255
    # Conv2D + BatchNormalization + ReLU is one layer, named conv2d, read after the ReLU; every
    # Keras layer is a row or a part of one, and each row equals the Keras layer it ends with.
    assert lens.layer("conv2d").parts == ("conv2d", "batch_normalization", "re_lu")
    assert lens.layer("conv2d_2").describe_activation("keras") == "leaky_relu (Keras layer " \
        "leaky_re_lu)"  # fmt: skip
    merged = {part for info in lens.layers for part in info.parts}
    assert merged == set(keras_names(model))
    names = lens.layer_names
    ends = {name: lens.layer(name).parts[-1] for name in names}
    want = keras_outputs(model, [*ends.values(), "batch_normalization"], x_in)
    with torch.no_grad():
        got = lens.forward(x_in, names)
        pre = lens.forward(x_in, ["conv2d"], pre_activation=True)["conv2d"]
    for name in names:
        assert np.abs(got[name].numpy() - want[ends[name]]).max() < TOL, name
    assert np.abs(pre.numpy() - want["batch_normalization"]).max() < TOL
    assert lens.layer("conv2d").rf.jump == (2, 2)
    with pytest.raises(cl.ConvlensError, match="'re_lu' is part of layer 'conv2d'"):
        lens.layer("re_lu")


def test_lambda_is_refused_unless_trusted(tmp_path, capsys):
    model = keras.Sequential([keras.Input((8, 8, 3)), L.Conv2D(4, 3, activation="relu"),
                              L.Lambda(lambda t: t * 2.0), L.Flatten(), L.Dense(3)])  # fmt: skip
    model.save(tmp_path / "l.keras")
    with pytest.raises(CheckpointError, match=r"Lambda.*--trust-keras-code"):
        cl.load(tmp_path / "l.keras")
    lens = cl.load(tmp_path / "l.keras", trust_keras_code=True)
    x = torch.rand(2, 3, 8, 8)
    want = model.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
    assert np.abs(lens.logits(x).detach().numpy() - want).max() < TOL
    code = run(["convert", str(tmp_path / "l.keras"), "--trust-keras-code", "--out",
                str(tmp_path / "c")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Lambda" in err and not (tmp_path / "c").exists()


def test_model_without_conv_layers_is_one_line(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(3)])
    model.save(tmp_path / "dense.keras")
    with pytest.raises(CheckpointError, match="no Conv2D"):
        cl.load(tmp_path / "dense.keras")


def test_unsupported_layer_is_named(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(2, 3), L.Conv2DTranspose(2, 3),
                              L.Flatten(), L.Dense(3)])  # fmt: skip
    model.save(tmp_path / "t.keras")
    with pytest.raises(CheckpointError, match="Conv2DTranspose"):
        cl.load(tmp_path / "t.keras")


def test_bad_files_are_one_line_exit_2_and_write_nothing(trained, tmp_path, capsys):
    _, folder, _ = trained
    keras_bytes = (folder / "kaggle4.keras").read_bytes()
    h5_bytes = (folder / "kaggle4.h5").read_bytes()
    cases = {
        "truncated.keras": keras_bytes[: len(keras_bytes) // 2],
        "truncated.h5": h5_bytes[: len(h5_bytes) // 2],
        "zip_as.h5": keras_bytes,
        "hdf5_as.keras": h5_bytes,
        "hdf5_as.pt": h5_bytes,
        "text.keras": b"not a model at all\n",
    }
    expected = {
        "truncated.keras": "truncated or corrupt",
        "truncated.h5": "truncated or corrupt",
        "zip_as.h5": "is a Keras .keras archive, not a .h5 file",
        "hdf5_as.keras": "is an HDF5 (Keras .h5) file, not a .keras file",
        "hdf5_as.pt": "is an HDF5 (Keras .h5) file, not a .pt file",
        "text.keras": "not a .keras file convlens can read",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        out = tmp_path / f"out_{name}"
        code = run(["convert", str(tmp_path / name), "--out", str(out)])
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, name
        assert len(lines) == 1 and expected[name] in lines[0], (name, lines)
        assert not out.exists(), name
    shutil.rmtree(tmp_path)


def test_input_shape_that_does_not_fit_is_refused(trained):
    _, folder, _ = trained
    with pytest.raises(CheckpointError, match="does not fit"):
        cl.load(folder / "kaggle4.keras", input_shape="3x28x28")
    with pytest.raises(CheckpointError, match=r"12 classes but .* has 10 outputs"):
        cl.load(folder / "kaggle4.h5", classes="12")


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
