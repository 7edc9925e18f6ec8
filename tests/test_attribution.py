"""Attribution methods: known answers on tiny models, relu rules under any relu style, no leaks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_cli
from torch import nn

from convlens.errors import DataError, UnitError, UnknownNameError
from convlens.lens import InputSpec, Lens
from convlens.viz.attribution import Heatmap, attribute, method_names
from convlens.viz.attribution.relu_rules import RULES

CLASSES3 = ("a", "b", "c")


def lens_of(model: nn.Module, c: int = 1, h: int = 8, w: int = 8, **spec: object) -> Lens:
    names = spec.pop("class_names", CLASSES3)
    return Lens.from_module(model, InputSpec(c, h, w, class_names=names, **spec))  # type: ignore[arg-type]


# --- tiny models: the same conv net written three ways
class Separate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1, self.c2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.r1, self.r2, self.r3 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.fc1, self.fc2 = nn.Linear(4 * 8 * 8, 16), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.r2(self.c2(self.r1(self.c1(x))))
        return self.fc2(self.r3(self.fc1(x.flatten(1))))


class Reused(Separate):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.r1  # one ReLU module called three times
        x = r(self.c2(r(self.c1(x))))
        return self.fc2(r(self.fc1(x.flatten(1))))


class Functional(Separate):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c2(F.relu(self.c1(x))))
        return self.fc2(self.fc1(x.flatten(1)).relu())


class SwappedReference(Separate):
    """The classic implementation (replace each ReLU module), correct only for separate modules."""

    def __init__(self, rule: str) -> None:
        super().__init__()
        fn = RULES[rule]

        class Rule(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return fn.apply(x)

        self.r1, self.r2, self.r3 = Rule(), Rule(), Rule()


def same_weights(*models: nn.Module) -> None:
    torch.manual_seed(3)
    ref = Separate()
    with torch.no_grad():
        for p in ref.parameters():
            p.mul_(4.0)  # default init gives near-zero logits on 8x8 inputs; make them matter
    for m in models:
        m.load_state_dict(ref.state_dict())


@pytest.fixture(scope="module")
def random_lens() -> Lens:
    """An untrained kaggle4, built once for this module (conftest's is per test, and slow here)."""
    from convlens.models import build_model

    torch.manual_seed(0)
    spec = InputSpec(1, 28, 28, class_names=tuple(str(i) for i in range(10)))
    return Lens.from_module(build_model("kaggle4"), spec)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(4, 1, 8, 8)


# --- known answers
def test_gradient_of_linear_model_is_its_weights_in_pixel_space() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    lens = lens_of(model, 2, 4, 4, mean=(0.5, 0.5), std=(0.25, 0.25))
    x = torch.rand(5, 2, 4, 4)
    hm = attribute(lens, x, target=2, method="gradient")
    w = model[1].weight[2].detach().view(2, 4, 4) / 0.25  # pixel space: d/dx of (x - m) / s
    assert hm.values.shape == (5, 4, 4)
    torch.testing.assert_close(hm.values, w.sum(0).expand(5, 4, 4))
    gxi = attribute(lens, x, target=2, method="gradient_x_input")
    torch.testing.assert_close(gxi.values, (x * w).sum(1))


@pytest.mark.parametrize("baseline", ["black", "blurred", "uniform"])
def test_integrated_gradients_is_complete(images: torch.Tensor, baseline: str) -> None:
    model = Separate()
    same_weights(model)
    lens = lens_of(model)
    hm = attribute(lens, images, method="integrated_gradients", steps=256, baseline=baseline)
    gap = hm.extras["baseline_score_gap"]
    assert gap.abs().min() > 1e-3
    total = hm.values.flatten(1).sum(1)
    torch.testing.assert_close(total, gap, atol=0.03, rtol=0.0)  # gaps are ~0.5; relu kinks
    assert float(hm.extras["delta"].abs().max()) < 0.03
    assert hm.options["baseline"] == baseline


def test_integrated_gradients_black_is_blind_on_black_pixels(images: torch.Tensor) -> None:
    model = Separate()
    same_weights(model)
    x = images.clone()
    x[:, :, :3] = 0.0  # a black band, like MNIST's background
    black = attribute(lens_of(model), x, method="integrated_gradients", steps=8)
    assert torch.all(black.values[:, :3] == 0)
    noise = attribute(lens_of(model), x, method="integrated_gradients", steps=8, baseline="uniform")
    assert noise.values[:, :3].abs().sum() > 0


def test_gradcam_native_map_has_the_layer_resolution(random_lens: Lens) -> None:
    x = torch.rand(2, 1, 28, 28)
    for info in random_lens.conv_layers():
        hm = attribute(random_lens, x, method="gradcam", layer=info.name)
        assert hm.native is not None
        assert tuple(hm.native.shape[1:]) == info.output_shape[1:]
        assert hm.values.shape == (2, 28, 28)
    default = attribute(random_lens, x, method="gradcampp")
    assert default.options["layer"] == "conv2d_4"  # the last conv layer, recorded
    assert default.native is not None and default.native.shape[1:] == (14, 14)


def test_gradcam_of_a_pooled_channel_is_the_activation_itself() -> None:
    # logit_k = w_k * mean(relu(conv(x))) with an identity 1x1 conv: Grad-CAM = w_k * A / (h w).
    conv = nn.Conv2d(1, 1, 1, bias=False)
    conv.weight.data.fill_(1.0)
    head = nn.Linear(1, 3, bias=False)
    head.weight.data = torch.tensor([[2.0], [-1.0], [0.5]])
    model = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
    lens = lens_of(model)
    x = torch.rand(3, 1, 8, 8)
    for k, wk in enumerate((2.0, -1.0, 0.5)):
        hm = attribute(lens, x, target=k, method="gradcam", layer="0", relu=False)
        assert hm.native is not None
        torch.testing.assert_close(hm.native, wk * x[:, 0] / 64)  # sign kept (class 1 < 0)


class OnePixel(nn.Module):
    """Class 0's logit is 5 x pixel (5, 6); the others are constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = 5.0 * x[:, 0, 5, 6]
        return torch.stack([v, torch.zeros_like(v), torch.ones_like(v)], dim=1)


def test_occlusion_lights_up_the_one_pixel_the_model_reads() -> None:
    lens = lens_of(nn.Sequential(OnePixel()), h=12, w=12)
    x = torch.rand(2, 1, 12, 12) * 0.5 + 0.5
    hm = attribute(lens, x, target=0, method="occlusion", window=3, stride=1)
    for v, xi in zip(hm.values, x, strict=True):
        assert divmod(int(v.argmax()), 12) == (5, 6)
        torch.testing.assert_close(v[5, 6], 5.0 * xi[0, 5, 6])  # every window over it drops all
    far = hm.values[:, 9:, :]
    assert torch.all(far == 0)
    assert hm.extras["grid"].shape == (2, 10, 10)


def test_rise_finds_the_one_pixel_the_model_reads() -> None:
    lens = lens_of(nn.Sequential(OnePixel()), h=12, w=12)
    x = torch.ones(1, 1, 12, 12)
    hm = attribute(lens, x, target=0, method="rise", masks=400, cell=3, score="logit", seed=1)
    r, c = divmod(int(hm.values[0].argmax()), 12)
    assert abs(r - 5) <= 1 and abs(c - 6) <= 1
    assert hm.values[0].min() < 0  # centred: pixels far from it get negative weight


# --- guided backprop and deconvnet: any relu style
@pytest.mark.parametrize("method,rule", [("guided_backprop", "guided"), ("deconvnet", "deconvnet")])
def test_relu_rules_agree_for_reused_functional_and_separate_relus(
    images: torch.Tensor, method: str, rule: str
) -> None:
    models = [Separate(), Reused(), Functional()]
    same_weights(*models)
    maps = [attribute(lens_of(m), images, target=1, method=method).values for m in models]
    ref_model = SwappedReference(rule)
    same_weights(ref_model)
    ref = lens_of(ref_model)
    expected = attribute(ref, images, target=1, method="gradient").values
    for got in maps:
        torch.testing.assert_close(got, expected)
    plain = attribute(lens_of(models[0]), images, target=1, method="gradient").values
    assert not torch.allclose(plain, expected)  # the rule really changed something


def test_guided_backprop_matches_the_rule_by_hand() -> None:
    torch.manual_seed(0)
    fc1, fc2 = nn.Linear(16, 6), nn.Linear(6, 3)
    model = nn.Sequential(nn.Flatten(), fc1, nn.ReLU(), fc2)
    lens = lens_of(model, h=4, w=4)
    x = torch.rand(1, 1, 4, 4)
    pre = fc1(x.flatten(1))[0]
    g = fc2.weight[2].clamp(min=0) * (pre > 0)
    expected = (fc1.weight.t() @ g).view(4, 4)
    hm = attribute(lens, x, target=2, method="guided_backprop")
    torch.testing.assert_close(hm.values[0], expected.detach())
    dec = attribute(lens, x, target=2, method="deconvnet")
    expected = (fc1.weight.t() @ fc2.weight[2].clamp(min=0)).view(4, 4)
    torch.testing.assert_close(dec.values[0], expected.detach())


# --- no leaks, no side effects
def _hook_count(model: nn.Module) -> int:
    total = 0
    for m in model.modules():
        for d in (m._forward_hooks, m._forward_pre_hooks, m._backward_hooks,
                  m._backward_pre_hooks, m._state_dict_hooks):  # fmt: skip
            total += len(d)
    return total


@pytest.mark.parametrize("method", ["gradcam", "guided_backprop", "guided_gradcam", "occlusion"])
def test_no_hook_or_mode_growth_over_100_calls(method: str) -> None:
    model = Reused()
    lens = lens_of(model)
    x = torch.rand(1, 1, 8, 8)
    global_hooks = len(nn.modules.module._global_forward_hooks)
    opts = {"window": 4, "stride": 4} if method == "occlusion" else {}
    for _ in range(100):
        attribute(lens, x, method=method, **opts)
    assert _hook_count(model) == 0
    assert len(nn.modules.module._global_forward_hooks) == global_hooks
    assert torch._C._len_torch_function_stack() == 0


def test_model_mode_is_restored_and_dropout_is_off(random_lens: Lens) -> None:
    random_lens.model.train()
    x = torch.rand(2, 1, 28, 28)
    a = attribute(random_lens, x, method="gradient", target=3)
    b = attribute(random_lens, x, method="gradient", target=3)
    assert random_lens.model.training and random_lens.model[0].training
    torch.testing.assert_close(a.values, b.values)
    random_lens.model.eval()


def test_seeds_and_batch_size(images: torch.Tensor) -> None:
    model = Separate()
    same_weights(model)
    lens = lens_of(model)
    a = attribute(lens, images, method="smoothgrad", samples=4, seed=1)
    b = attribute(lens, images, method="smoothgrad", samples=4, seed=1, batch_size=5)
    c = attribute(lens, images, method="smoothgrad", samples=4, seed=2)
    torch.testing.assert_close(a.values, b.values)
    assert not torch.allclose(a.values, c.values)
    o1 = attribute(lens, images, method="occlusion", window=3, stride=2)
    o2 = attribute(lens, images, method="occlusion", window=3, stride=2, batch_size=3)
    torch.testing.assert_close(o1.values, o2.values, atol=1e-5, rtol=1e-5)
    r1 = attribute(lens, images, method="rise", masks=20, seed=4)
    r2 = attribute(lens, images, method="rise", masks=20, seed=4, batch_size=7)
    torch.testing.assert_close(r1.values, r2.values, atol=1e-5, rtol=1e-5)


def test_every_method_returns_one_signed_map_per_image(random_lens: Lens) -> None:
    x = torch.rand(2, 1, 28, 28)
    cheap = {"smoothgrad": {"samples": 2}, "integrated_gradients": {"steps": 2},
             "occlusion": {"window": 14, "stride": 14}, "rise": {"masks": 8}}  # fmt: skip
    for name in method_names():
        hm = attribute(random_lens, x, method=name, **cheap.get(name, {}))
        assert isinstance(hm, Heatmap) and hm.method == name
        assert hm.values.shape == (2, 28, 28) and hm.values.dtype == torch.float32
        assert torch.isfinite(hm.values).all()
        assert hm.target.tolist() == random_lens.predict(x).argmax(1).tolist()
    one = attribute(random_lens, x[0], method="gradient", target="7")
    assert len(one) == 1 and one.target.tolist() == [7]


# --- one-line errors
def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_errors_are_one_line_and_list_what_is_valid(random_lens: Lens) -> None:
    x = torch.rand(1, 1, 28, 28)
    with pytest.raises(UnknownNameError) as e:
        attribute(random_lens, x, method="gradcan")
    assert "gradcam" in _one_line(e) and "occlusion" in str(e.value)
    with pytest.raises(UnitError) as e:
        attribute(random_lens, x, target=10)
    assert "0-9" in _one_line(e)
    with pytest.raises(UnitError) as e:
        attribute(random_lens, x, target="eleven")
    assert "Valid" in _one_line(e)
    with pytest.raises(UnknownNameError) as e:
        attribute(random_lens, x, method="gradcam", layer="dense_1")
    assert "conv2d_1, conv2d_2, conv2d_3, conv2d_4" in _one_line(e)
    with pytest.raises(UnknownNameError) as e:
        attribute(random_lens, x, method="occlusion", windw=3)
    assert "window" in _one_line(e)
    with pytest.raises(DataError):
        attribute(random_lens, torch.rand(1, 3, 28, 28))


# --- the commands


def test_explain_writes_overlays_panel_and_evidence(kaggle4_ckpt, tmp_path, capsys) -> None:
    import json

    from PIL import Image

    out = tmp_path / "ex"
    argv = ["explain", str(kaggle4_ckpt), "--index", "7", "--out", str(out), "--steps", "5",
            "--methods", "gradient,gradcam,occlusion", "--layer", "conv2d_3", "--target", "3",
            "--shared-scale"]  # fmt: skip
    code, text, _ = run_cli(argv, capsys)
    assert code == 0, text
    assert "explaining class 3" in text and "random order" in text
    for name in ("gradient", "gradcam", "occlusion"):
        with Image.open(out / f"heatmap_{name}.png") as im:
            assert im.width > 500 and im.height > 200
    with Image.open(out / "panel.png") as im:
        assert im.width > 600
    report = json.loads((out / "explain.json").read_text())
    assert report["target"] == 3 and report["protocol"]["steps"] == 5
    cam = report["methods"]["gradcam"]
    assert cam["native_shape"] == [14, 14] and cam["options"]["layer"] == "conv2d_3"
    for m in report["methods"].values():
        assert 0 <= m["deletion_auc"] <= 1 and 0 <= m["insertion_auc"] <= 1
        assert m["random_deletion_auc"] == report["random_order"]["deletion_auc"]


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--methods", "gradcan"], "gradcam"),
        (["--methods", "gradcam", "--layer", "dense_1"], "conv2d_4"),
        (["--methods", "gradient", "--target", "12"], "0-9"),
    ],
)
def test_explain_bad_input_is_one_line_exit_2(kaggle4_ckpt, tmp_path, capsys, extra, needle):
    argv = ["explain", str(kaggle4_ckpt), "--index", "0", "--out", str(tmp_path / "e"), *extra]
    code, _, err = run_cli(argv, capsys)
    lines = [ln for ln in err.splitlines() if ln.startswith("convlens: error")]
    assert code == 2 and len(lines) == 1 and needle in lines[0]


@pytest.mark.slow
def test_sanity_prints_a_table_per_method(kaggle4_ckpt, tmp_path, capsys) -> None:
    argv = ["sanity", str(kaggle4_ckpt), "--methods", "gradient,deconvnet", "--n", "2",
            "--out", str(tmp_path / "s.json")]  # fmt: skip
    code, text, _ = run_cli(argv, capsys)
    assert code == 0, text
    assert "2 validation images" in text
    assert text.count("dense_3") >= 2 and "conv2d_1" in text
    summary = text.split("verdict")[-1]
    assert "gradient" in summary and "deconvnet" in summary
    assert (tmp_path / "s.json").is_file()
