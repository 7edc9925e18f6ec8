"""Feature visualization: objectives, parameterizations, the batched loop, verification, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

from convlens.errors import ConvlensError, UnitError
from convlens.units import Unit, resolve_units
from convlens.viz.maxima import compute_maxima, dataset_maxima
from convlens.viz.render import channel, class_score, custom, neuron, render
from convlens.viz.render import params as P
from convlens.viz.render import regularizers as R
from convlens.viz.render import transforms as T
from convlens.viz.render.loop import diversity_similarity, optimize
from convlens.viz.render.objectives import compile_objectives
from convlens.viz.render.recipe import Recipe


def fake_acts() -> dict:
    torch.manual_seed(0)
    a = torch.randn(3, 4, 5, 5)
    return {"conv": a, ("conv", "pre"): a - 1.0, "logits": torch.randn(3, 10)}


# --- objectives ------------------------------------------------------------------------------


def test_objectives_compose_linearly() -> None:
    acts = fake_acts()
    a, b = channel("conv", 1), neuron("conv", 2, (3, 4))
    mean1 = acts["conv"][:, 1].mean((1, 2))
    n2 = acts["conv"][:, 2, 3, 4]
    assert torch.allclose((a + 0.5 * b)(acts), mean1 + 0.5 * n2)
    assert torch.allclose((a - b)(acts), mean1 - n2)
    assert torch.allclose((-a)(acts), -mean1)
    assert torch.allclose(sum([a, b])(acts), mean1 + n2)
    peak = channel("conv", 0, pool="max", pre_activation=True)
    assert torch.allclose(peak(acts), (acts["conv"][:, 0] - 1.0).flatten(1).amax(1))
    assert torch.allclose(class_score("logits", 7)(acts), acts["logits"][:, 7])
    assert set((a + b).layers) == {"conv"}


def test_batch_of_different_objectives_compiles_to_per_item_scores() -> None:
    acts = fake_acts()
    objs = [
        channel("conv", 3),
        neuron("conv", 0, (1, 1)) + 2 * channel("conv", 1),
        class_score("logits", 4),
    ]
    scores = compile_objectives(objs)(acts)
    expected = torch.stack([objs[i](acts)[i] for i in range(3)])
    assert torch.allclose(scores, expected)


def test_custom_objective_called_once_per_batch() -> None:
    calls = []

    def fn(acts: dict) -> torch.Tensor:
        calls.append(1)
        return acts["conv"].sum((1, 2, 3))

    obj = custom(fn, ["conv"])
    scores = compile_objectives([obj, obj, channel("conv", 0)])(fake_acts())
    assert len(calls) == 1 and scores.shape == (3,)


# --- parameterizations, transforms, regularizers ---------------------------------------------


@pytest.mark.parametrize("kind", ["box", "pixel", "fourier"])
def test_parameterizations_stay_inside_the_value_range(kind: str) -> None:
    vr = (-1.0, 2.0)
    build = {"box": P.box, "pixel": P.pixel, "fourier": P.fourier}[kind]
    tensor, image_fn = build(4, (1, 9, 9), value_range=vr, std=3.0, seeds=[0, 1, 2, 3])
    x = image_fn(tensor * 50)  # far outside: still inside the range
    assert x.shape == (4, 1, 9, 9)
    assert float(x.detach().min()) >= vr[0] and float(x.detach().max()) <= vr[1]
    (image_fn(tensor).sum()).backward()
    assert tensor.grad is not None and torch.isfinite(tensor.grad).all()


def test_squash_reaches_the_bounds_and_keeps_gradients_there() -> None:
    t = torch.tensor([-8.0, 0.0, 8.0], requires_grad=True)
    x = P.squash((0.0, 1.0))(t)
    assert x.tolist() == [0.0, 0.5, 1.0]
    x.sum().backward()
    assert bool((t.grad > 0).all())  # a saturated pixel can still come back


def test_seeded_rows_do_not_depend_on_their_batch() -> None:
    a, _ = P.pixel(3, (1, 4, 4), seeds=[5, 6, 7])
    b, _ = P.pixel(1, (1, 4, 4), seeds=[6])
    assert torch.equal(a[1], b[0])


def test_fourier_scale_decay_controls_smoothness() -> None:
    flat, smooth = P.fourier_scale(16, 16, 0.0), P.fourier_scale(16, 16, 2.0)
    assert torch.allclose(flat, torch.ones_like(flat))
    assert float(smooth[0, 0]) > float(smooth[8, 8]) * 10  # low frequencies dominate


def test_jitter_shifts_by_whole_pixels_and_is_seeded() -> None:
    x = torch.arange(2 * 36, dtype=torch.float32).view(2, 1, 6, 6)
    y1 = T.jitter(1, fill=-1.0)(x, torch.Generator().manual_seed(3))
    y2 = T.jitter(1, fill=-1.0)(x, torch.Generator().manual_seed(3))
    assert torch.equal(y1, y2)
    for i in range(2):  # each image is its own exact shift of the original
        found = any(
            torch.equal(y1[i, 0, 1:-1, 1:-1], x[i, 0, 1 + dy : 5 + dy, 1 + dx : 5 + dx])
            for dy in (-1, 0, 1)
            for dx in (-1, 0, 1)
        )
        assert found


def test_affine_without_motion_is_identity() -> None:
    x = torch.rand(2, 1, 8, 8)
    y = T.Affine()(x, torch.Generator().manual_seed(0))
    assert torch.allclose(x, y, atol=1e-5)


def test_regularizers() -> None:
    flat = torch.full((2, 1, 5, 5), 0.3)
    assert torch.allclose(R.total_variation(flat), torch.zeros(2))
    assert torch.allclose(R.blur(flat), torch.zeros(2), atol=1e-7)
    assert torch.allclose(R.l2(flat), torch.full((2,), 0.09))
    stripes = torch.zeros(1, 1, 4, 4)
    stripes[..., ::2] = 1.0
    assert float(R.total_variation(stripes)) > 0.5


def test_diversity_similarity_only_within_groups() -> None:
    f = torch.rand(4, 3, 5, 5)
    f[1] = f[0]
    sim = diversity_similarity(f, torch.tensor([0, 0, 1, 2]))
    assert math.isclose(float(sim[0]), 1.0, rel_tol=1e-5) and float(sim[1]) > 0.999
    assert float(sim[2]) == 0.0 and float(sim[3]) == 0.0


# --- the loop --------------------------------------------------------------------------------


def test_non_finite_gradient_stops_only_that_unit(random_lens) -> None:
    def poisoned(acts: dict) -> torch.Tensor:  # NaN score (log of a negative number)
        return torch.log(acts["conv2d_1"].mean((1, 2, 3)) - 1e6)

    good = channel("conv2d_1", 0)
    objs = [good, custom(poisoned, ["conv2d_1"]), good]
    out = optimize(random_lens, objs, (1, 28, 28), Recipe(steps=6, param="box"), seeds=[0, 1, 2])
    assert out.status[1] == "failed" and "non-finite" in out.reason[1]
    assert out.steps.tolist() == [6, 1, 6]
    assert out.status[0] == out.status[2] == "done"
    assert torch.isfinite(out.images).all()


def test_weights_untouched_and_restored(random_lens) -> None:
    before = {k: v.clone() for k, v in random_lens.model.state_dict().items()}
    flags = [p.requires_grad for p in random_lens.model.parameters()]
    render(random_lens, "conv2d_2:0-1", steps=4, restarts=0)
    after = random_lens.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [p.requires_grad for p in random_lens.model.parameters()] == flags
    assert all(p.is_contiguous() for p in random_lens.model.parameters())


# --- render on a trained model ---------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(kaggle4_lens):
    spec = "conv2d_1:0-5,conv2d_4:0-3,conv2d_3:5@7,7,conv2d_1:2@0,0,class:3"
    return render(kaggle4_lens, spec, steps=24, batch_size=5)


def test_render_channels_rise_and_are_verified(rendered, kaggle4_lens) -> None:
    rows = rendered.rows("conv2d_1", "channel") + rendered.rows("conv2d_4", "channel")
    assert len(rows) == 10
    lo, hi = kaggle4_lens.spec.value_range
    assert float(rendered.images.min()) >= lo and float(rendered.images.max()) <= hi
    maxima = dataset_maxima(kaggle4_lens)
    for i in rows:
        unit = rendered.units[i]
        steps = int(rendered.steps[i])
        curve = rendered.curves[i, :steps]
        assert 1 <= steps <= 24 * 4 and torch.isfinite(curve).all()  # restarts double steps
        assert float(curve[-1]) > float(curve[0])  # the objective rose
        ref = float(maxima.channel[unit.layer][unit.channel])
        assert math.isclose(float(rendered.reference[i]), ref, rel_tol=1e-5)
        if ref > 0:
            assert rendered.status[i] != "dead"
            assert math.isclose(
                float(rendered.ratio[i]), float(rendered.activation[i]) / ref, rel_tol=1e-4
            )
        else:
            assert rendered.status[i] == "dead" and math.isnan(float(rendered.ratio[i]))
    live = [i for i in rows if rendered.status[i] != "dead"]
    assert float(rendered.ratio[live].median()) > 0.9  # close to or above the best real image


def test_neuron_rendered_on_its_receptive_field_and_placed(rendered, kaggle4_lens) -> None:
    (i,) = rendered.rows("conv2d_3", "neuron")
    info = kaggle4_lens.layer("conv2d_3")
    top, left, bottom, right = info.rf.window(7, 7)
    assert rendered.windows[i] == (top, left, bottom, right)
    crop = rendered.crops[i]
    assert crop.shape == (1, info.rf.size[0], info.rf.size[1])
    placed = rendered.images[i]
    outside = placed.clone()
    outside[:, top:bottom, left:right] = float("nan")
    assert bool((outside[~torch.isnan(outside)] == 0).all())  # background elsewhere
    # The neuron's value depends on its field only: the crop alone gives the same value.
    with torch.no_grad():
        full = kaggle4_lens.forward(placed[None], ["conv2d_3"])["conv2d_3"][0, 5, 7, 7]
        local = kaggle4_lens.forward(crop[None], ["conv2d_3"])["conv2d_3"][0, 5, 2, 2]
    assert math.isclose(float(full), float(local), rel_tol=1e-4, abs_tol=1e-5)
    assert math.isclose(float(rendered.activation[i]), float(full), rel_tol=1e-4, abs_tol=1e-5)


def test_border_neuron_keeps_only_its_clipped_field(rendered) -> None:
    (i,) = rendered.rows("conv2d_1", "neuron")
    assert rendered.windows[i] == (0, 0, 2, 2)  # a 3x3 field cut by the corner
    assert rendered.crops[i].shape == (1, 2, 2)
    assert float(rendered.images[i][:, 2:, :].abs().sum()) == 0.0


def test_class_unit_is_classified_as_its_class(rendered) -> None:
    (i,) = rendered.rows(kind="class")
    assert int(rendered.predicted[i]) == 3 and float(rendered.probability[i]) > 0.9
    assert math.isnan(float(rendered.ratio[i]))


def test_records_are_json_ready(rendered) -> None:
    records = json.loads(json.dumps(rendered.to_records()))
    assert len(records) == len(rendered)
    assert {
        "unit",
        "r_peak",
        "r_mean",
        "match",
        "reference",
        "status",
        "loss_curve",
        "steps",
    } <= set(records[0])
    assert records[0]["unit"] == "conv2d_1:0"
    assert len(records[0]["loss_curve"]) == records[0]["steps"]
    assert "conv2d_1" in rendered.summary() and "class" in rendered.summary()


def test_same_seed_same_images_other_seed_other_images(kaggle4_lens) -> None:
    a = render(kaggle4_lens, "conv2d_1:0-2", steps=8, seed=1, restarts=0)
    b = render(kaggle4_lens, "conv2d_1:0-2", steps=8, seed=1, restarts=0)
    c = render(kaggle4_lens, "conv2d_1:0-2", steps=8, seed=2, restarts=0)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


def test_diversity_gives_several_different_images(kaggle4_lens) -> None:
    res = render(kaggle4_lens, "conv2d_2:1", steps=10, diversity=3, restarts=0)
    assert len(res) == 3 and res.copies == [0, 1, 2]
    assert not torch.allclose(res.images[0], res.images[1])
    assert res.names == ["conv2d_2:1"] * 3


def test_seed_preset_is_the_blog_recipe(kaggle4_lens) -> None:
    res = render(kaggle4_lens, "conv2d_1:0-1", preset="seed", steps=6)
    assert res.preset == "seed" and res.steps.tolist() == [6, 6]
    assert res.recipe["units"]["optimizer"] == "normalized"
    assert not res.recipe["units"]["squash"]
    # gray + uniform noise in the blog's 0-255 units, moved by RMS-normalized steps of 1/255
    assert 0.4 < float(res.images.mean()) < 0.65


def test_bad_units_are_one_line_errors(kaggle4_lens) -> None:
    for spec, word in [
        ("conv2d_9:1", "conv2d_1"),
        ("conv2d_3:99", "64 channels"),
        ("conv2d_3:1@20,3", "outside"),
        ("max_pooling2d_1:0", "pool"),
    ]:
        with pytest.raises(UnitError) as err:
            render(kaggle4_lens, spec, steps=2)
        assert "\n" not in str(err.value) and word in str(err.value)
    with pytest.raises(ConvlensError, match="unknown render option"):
        render(kaggle4_lens, "conv2d_1:0", steps=2, lrate=0.1)
    with pytest.raises(ConvlensError, match="preset"):
        render(kaggle4_lens, "conv2d_1:0", preset="fancy")


def test_units_objects_and_objectives_are_accepted(kaggle4_lens) -> None:
    obj = channel("conv2d_2", 0) - 0.5 * channel("conv2d_2", 1)
    res = render(kaggle4_lens, [Unit("channel", "conv2d_2", 3), obj], steps=4, restarts=0)
    assert res.names == ["conv2d_2:3", str(obj)] and "conv2d_2:1" in str(obj)
    assert res.units[1] is None and res.status[1] == "ok" and math.isnan(float(res.ratio[1]))


# --- dataset maxima --------------------------------------------------------------------------


def test_maxima_cached_keyed_and_dead_reported(kaggle4_lens, mnist_small, monkeypatch) -> None:
    m = dataset_maxima(kaggle4_lens, ["conv2d_2", "dense_1"], mnist_small)
    direct = compute_maxima(kaggle4_lens, mnist_small.x_val, ["conv2d_2"])
    assert torch.allclose(m.channel["conv2d_2"], direct.channel["conv2d_2"])
    assert m.neuron["conv2d_2"].shape == (32, 28, 28)
    assert m.dead("dense_1") == [int(i) for i in torch.nonzero(m.channel["dense_1"] <= 0)]
    cached = list((kaggle4_lens.path / "cache").glob("maxima_*.safetensors"))
    assert cached
    import convlens.viz.maxima as mod

    monkeypatch.setattr(mod, "compute_maxima", lambda *a, **k: pytest.fail("cache not used"))
    again = dataset_maxima(kaggle4_lens, ["conv2d_2"], mnist_small)
    assert torch.equal(again.channel["conv2d_2"], m.channel["conv2d_2"])
    # other weights: another key, so a fresh computation (here: refused)
    with torch.no_grad():
        kaggle4_lens.module("conv2d_1").bias.add_(1.0)
    try:
        with pytest.raises(pytest.fail.Exception):
            dataset_maxima(kaggle4_lens, ["conv2d_2"], mnist_small)
    finally:
        with torch.no_grad():
            kaggle4_lens.module("conv2d_1").bias.sub_(1.0)


# --- command line ----------------------------------------------------------------------------


def test_cli_render_writes_grids_arrays_and_json(kaggle4_ckpt: Path, tmp_path, capsys) -> None:
    from PIL import Image

    out = tmp_path / "viz"
    argv = [
        "render",
        str(kaggle4_ckpt),
        "--units",
        "conv2d_1:0-3,conv2d_3:2@7,7",
        "--steps",
        "6",
        "--out",
        str(out),
    ]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    data = json.loads((out / "render.json").read_text())
    assert [u["unit"] for u in data["units"]] == [
        "conv2d_1:0",
        "conv2d_1:1",
        "conv2d_1:2",
        "conv2d_1:3",
        "conv2d_3:2@7,7",
    ]
    assert np.load(out / "conv2d_1.npy").shape == (4, 1, 28, 28)
    assert np.load(out / "conv2d_3_neurons_crops.npy").shape == (1, 1, 10, 10)
    for name in ("conv2d_1.png", "conv2d_3_neurons.png"):
        with Image.open(out / name) as im:
            assert im.width > 100 and im.height > 80
    assert "conv2d_1:" in stdout and "r_peak >= 1" in stdout and "r_mean >= 1" in stdout
    assert "conv2d_3 neurons:" in stdout and "; r >= 1 for" in stdout  # a neuron: one value


def test_cli_prototypes_prints_verification_row(kaggle4_ckpt: Path, tmp_path, capsys) -> None:
    out = tmp_path / "proto"
    argv = ["prototypes", str(kaggle4_ckpt), "--only", "0-2", "--steps", "20", "--out", str(out)]
    code, stdout, err = run_cli(argv, capsys)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].split()[1:] == ["0", "1", "2"]
    assert lines[1].startswith("predicted") and len(lines[1].split()) == 4
    assert lines[2].startswith("p(class)")
    data = json.loads((out / "prototypes.json").read_text())
    assert [p["class"] for p in data["prototypes"]] == ["0", "1", "2"]
    raw = np.load(out / "prototypes.npy")
    deav = np.load(out / "prototypes_deaveraged.npy")
    assert np.allclose(deav, raw - raw.mean(0, keepdims=True), atol=1e-6)
    assert (out / "prototypes.png").exists() and (out / "prototypes_deaveraged.png").exists()


def test_cli_bad_unit_is_one_line_exit_2(kaggle4_ckpt: Path, tmp_path, capsys) -> None:
    argv = ["render", str(kaggle4_ckpt), "--units", "dense_9:1", "--out", str(tmp_path / "x")]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "dense_9" in err
    assert not (tmp_path / "x").exists()


def test_resolve_units_grammar_reaches_render(kaggle4_lens) -> None:
    units = resolve_units(kaggle4_lens, "conv2d_1:0-1,class:*")
    assert len(units) == 12


def test_fourier_rgb_is_colour_decorrelated_and_gray_is_untouched():
    rgb = P.fourier(64, (3, 16, 16), seeds=list(range(64)), std=1.0)
    tensor, image_fn = rgb
    x = image_fn(tensor).detach()
    flat = x.permute(1, 0, 2, 3).reshape(3, -1)
    corr = torch.corrcoef(flat)
    # Luminance dominates: the three colour channels move together, unlike independent noise.
    assert corr[0, 1] > 0.4 and corr[0, 2] > 0.4 and corr[1, 2] > 0.4
    gray = P.fourier(2, (1, 16, 16), seeds=[0, 1])
    assert gray[1](gray[0]).shape == (2, 1, 16, 16)


def test_render_works_on_an_rgb_model_of_another_size():
    from convlens.lens import InputSpec, Lens
    from convlens.models import build_model

    torch.manual_seed(0)
    model = build_model("kaggle4", in_channels=3, image_size=36, num_classes=5)
    lens = Lens.from_module(model, InputSpec(3, 36, 36, class_names=tuple("abcde")))
    from convlens.data import Dataset

    images, labels = torch.rand(40, 3, 36, 36), torch.arange(40) % 5
    data = Dataset("random", images, labels, images, labels, tuple("abcde"), 0)
    for param in ("box", "fourier"):
        res = render(lens, "conv2d_3:0-3,conv2d_2:1@center,class:2", steps=12, param=param,
                     data=data, restarts=0)  # fmt: skip
        assert res.images.shape == (6, 3, 36, 36)
        assert torch.isfinite(res.images).all()
        assert res.images.min() >= 0.0 and res.images.max() <= 1.0
