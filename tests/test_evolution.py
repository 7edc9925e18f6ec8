"""The evolution page: change figures between epochs, from the same start, resumable."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from convlens.atlas import AtlasOptions, build_atlas, load_manifest, validate
from convlens.atlas import build as build_module
from convlens.atlas.guide import change_claims
from convlens.atlas.stages.evolution import picture_change, weight_change

STAGES = ["overview", "evolution"]


def evolution_options() -> AtlasOptions:
    """First and last conv layer, two units each, every epoch of the 3-epoch fixture."""
    return AtlasOptions.preset(
        quick=True,
        layers=("conv2d_1", "conv2d_4"),
        max_units=2,
        evolution_units=2,
        evolution_layers=2,
        evolution_epochs=None,
    )


def test_picture_change_is_zero_for_the_same_picture_and_grows_with_change() -> None:
    rng = np.random.default_rng(0)
    picture = (rng.random((28, 28)) > 0.7).astype(float)
    assert picture_change(picture, picture.copy()) == 0.0
    flat = np.ones((28, 28))
    assert picture_change(flat, flat) == 0.0  # defined for flat pictures (unlike a correlation)
    changes = []
    for flipped in (1, 50, 200, 784):
        other = picture.copy().ravel()
        other[:flipped] = 1.0 - other[:flipped]
        changes.append(picture_change(picture, other.reshape(28, 28)))
    assert changes == sorted(changes) and changes[0] > 0.0
    # Black and white: the share of pixels that flipped; black to white is 1.
    assert changes[1] == pytest.approx(50 / 784)
    assert picture_change(np.zeros((28, 28)), flat) == 1.0
    with pytest.raises(ValueError):
        picture_change(picture, picture[:14])


def test_weight_change_is_relative_zero_when_unchanged_and_grows_with_the_step() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(3, 3, 3))
    step = rng.normal(size=w.shape)
    assert weight_change(w, w.copy()) == 0.0
    sizes = [weight_change(w, w + k * step) for k in (0.01, 0.1, 1.0)]
    assert sizes == sorted(sizes) and sizes[0] > 0.0
    assert weight_change(10 * w, 10 * (w + 0.1 * step)) == pytest.approx(sizes[1])  # relative
    assert weight_change(w, 1.1 * w) == pytest.approx(0.1)
    assert weight_change(np.zeros(4), np.zeros(4)) == 0.0


def test_claims_follow_the_numbers() -> None:
    def manifest(pictures: list, frozen_change: list) -> dict:
        return {
            "evolution": {
                "epochs": [1, 2, 3, 4],
                "rows": [
                    {"unit": "c:0", "kind": "channel", "change": [None, 0.3, 0.2, 0.1]},
                    {"unit": "c:1", "kind": "channel", "change": frozen_change},
                ],
                "layers": [
                    {
                        "layer": "c",
                        "units": [0, 1],
                        "render_change": pictures,
                        "kernel_change": [None, 0.2, 0.1, 0.15],
                    }
                ],
            }
        }

    (claim,) = change_claims(manifest([None, 0.4, 0.2, 0.1], [None, 0.02, 0.0, 0.001]))
    assert claim["pictures"]["settled"] and claim["pictures"]["factor"] == pytest.approx(4.0)
    assert claim["pictures"]["first_pair"] == [1, 2] and claim["pictures"]["last_pair"] == [3, 4]
    kernels = claim["kernels"]
    assert kernels["falls"] and not kernels["settled"]  # 0.15 is more than half of 0.2
    assert claim["frozen"] == ["c:1"] and claim["units"] == 2
    (claim,) = change_claims(manifest([None, 0.1, 0.2, 0.3], [None, 0.02, 0.0, 0.01]))
    assert not claim["pictures"]["falls"] and not claim["pictures"]["settled"]
    assert claim["frozen"] == []
    (claim,) = change_claims(manifest([None, 0.1, None, None], [None] * 4))
    assert claim["pictures"] is None  # one measured pair says nothing about a trend


def _build(lens, data, out: Path) -> dict:
    build_atlas(lens, out, data=data, options=evolution_options(), stages=STAGES, progress=False)
    return load_manifest(out)


@pytest.fixture(scope="module")
def evolution_atlas(kaggle4_lens, mnist_small, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evo") / "atlas"
    _build(kaggle4_lens, mnist_small, out)
    return out


def test_atlas_has_per_layer_change_figures_in_manifest_and_page(evolution_atlas: Path) -> None:
    manifest = load_manifest(evolution_atlas)
    assert validate(manifest, evolution_atlas) == []
    evolution = manifest["evolution"]
    assert evolution["epochs"] == [1, 2, 3]
    layers = {rec["layer"]: rec for rec in evolution["layers"]}
    assert list(layers) == ["conv2d_1", "conv2d_4"]
    for rec in layers.values():
        assert rec["units"], "no live unit followed"
        for key in ("render_change", "kernel_change"):
            values = rec[key]
            assert len(values) == 3 and values[0] is None
            assert all(isinstance(v, float) and v >= 0.0 for v in values[1:]), (key, values)
        # The kernels of a model in training move.
        assert all(v > 0.0 for v in rec["kernel_change"][1:])
    channel_rows = [r for r in evolution["rows"] if r["kind"] == "channel"]
    assert channel_rows and all(len(r["change"]) == 3 for r in channel_rows)
    # The layer figure is the mean over its live units' own figures.
    conv1 = [r for r in channel_rows if r["unit"].startswith("conv2d_1:")]
    mean = np.mean([r["change"][1] for r in conv1 if int(r["unit"].split(":")[1]) in
                    layers["conv2d_1"]["units"]])  # fmt: skip
    assert layers["conv2d_1"]["render_change"][1] == pytest.approx(mean)
    page = (evolution_atlas / "evolution.html").read_text(encoding="utf-8")
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "How much changes from one epoch to the next" in text
    assert "mean absolute pixel difference" in text
    figure = f"{layers['conv2d_4']['render_change'][2]:.3f}"
    assert re.search(rf"conv2d_4 pictures – [0-9.]+ {re.escape(figure)}", text), figure
    assert f"{layers['conv2d_1']['kernel_change'][1]:.3f}" in text


def test_interrupted_build_resumes_to_the_same_change_figures(
    kaggle4_lens, mnist_small, evolution_atlas: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "atlas"
    real_run_task = build_module._run_task

    def interrupt(ctx, state, task):
        if task.key == "evolution/epoch_003":
            raise KeyboardInterrupt
        real_run_task(ctx, state, task)

    monkeypatch.setattr(build_module, "_run_task", interrupt)
    with pytest.raises(KeyboardInterrupt):
        _build(kaggle4_lens, mnist_small, out)
    partial = load_manifest(out)
    assert validate(partial, out) == [] and partial["stages"]["evolution"] == "partial"
    monkeypatch.setattr(build_module, "_run_task", real_run_task)
    build_atlas(kaggle4_lens, out, data=mnist_small, options=evolution_options(), stages=STAGES,
                resume=True, progress=False)  # fmt: skip
    resumed, whole = load_manifest(out), load_manifest(evolution_atlas)
    assert json.dumps(resumed["evolution"], sort_keys=True) == json.dumps(
        whole["evolution"], sort_keys=True
    )
    for sprite in whole["sprites"].values():
        if sprite["file"].startswith("img/evolution/"):
            assert (out / sprite["file"]).read_bytes() == (
                evolution_atlas / sprite["file"]
            ).read_bytes(), sprite["file"]
    assert (out / "evolution.html").read_text() == (evolution_atlas / "evolution.html").read_text()
