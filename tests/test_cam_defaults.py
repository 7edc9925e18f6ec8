"""CAM heatmaps as the field expects them: positive part by default, signed on request, and
guided Grad-CAM clipped at the layer's resolution before upsampling (checked against a reference
computed here with plain autograd)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from convlens.lens import InputSpec, Lens
from convlens.models.layers import Conv2dAct
from convlens.viz.attribution import attribute


class Net(nn.Module):
    """Keras-like conv(relu) -> conv(relu) -> flatten -> dense: a Flatten + Dense head, as
    kaggle4; a conv layer's output is after its ReLU, so Grad-CAM reads post-ReLU maps."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = Conv2dAct(1, 4, 3, padding=1)
        self.c2 = Conv2dAct(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.c2(self.c1(x)).flatten(1))


def lens_and_input() -> tuple[Lens, torch.Tensor]:
    torch.manual_seed(0)
    model = Net().eval()
    return Lens.from_module(model, InputSpec(1, 12, 12, class_names=("a", "b", "c"))), torch.rand(
        4, 1, 12, 12
    )


def test_cam_methods_default_to_the_positive_map_and_keep_the_sign_on_request() -> None:
    lens, x = lens_and_input()
    for method in ("gradcam", "gradcampp", "layercam"):
        pos = attribute(lens, x, target=1, method=method, layer="c2")
        signed = attribute(lens, x, target=1, method=method, layer="c2", relu=False)
        assert pos.options["relu"] is True and signed.options["relu"] is False
        assert pos.native is not None and signed.native is not None
        torch.testing.assert_close(pos.native, signed.native.clamp(min=0))
        assert float(pos.values.min()) >= 0.0
    # Grad-CAM's signed map of this head has real negative evidence, which the default drops.
    signed = attribute(lens, x, target=1, method="gradcam", layer="c2", relu=False)
    assert signed.native is not None and float(signed.native.min()) < 0


def _reference_guided_gradcam(model: Net, x: torch.Tensor, target: int) -> torch.Tensor:
    """The paper's recipe by hand: Grad-CAM on c2, ReLU at 6x6, bilinear upsampling, times
    guided backprop (ReLU backward passes only positive gradients at positive inputs)."""

    class Guided(torch.autograd.Function):
        @staticmethod
        def forward(ctx, t):  # type: ignore[no-untyped-def, override]
            ctx.save_for_backward(t)
            return t.clamp(min=0)

        @staticmethod
        def backward(ctx, g):  # type: ignore[no-untyped-def, override]
            (t,) = ctx.saved_tensors
            return g.clamp(min=0) * (t > 0)

    def conv(layer: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:  # before the layer's ReLU
        return F.conv2d(t, layer.weight, layer.bias, layer.stride, layer.padding)

    a = F.relu(conv(model.c2, F.relu(conv(model.c1, x))))
    (grad,) = torch.autograd.grad(model.fc(a.flatten(1))[:, target].sum(), a)
    cam = (grad.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True).clamp(min=0)
    gate = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    xg = x.clone().requires_grad_(True)
    h = Guided.apply(conv(model.c2, Guided.apply(conv(model.c1, xg))))
    (guided,) = torch.autograd.grad(model.fc(h.flatten(1))[:, target].sum(), xg)
    return guided[:, 0] * gate.detach()


def test_guided_gradcam_clips_the_coarse_map_first_like_the_paper() -> None:
    lens, x = lens_and_input()
    model = lens.model
    assert isinstance(model, Net)
    for target in range(3):
        got = attribute(lens, x, target=target, method="guided_gradcam", layer="c2").values
        want = _reference_guided_gradcam(model, x, target)
        torch.testing.assert_close(got, want, atol=1e-5 * float(want.abs().max()), rtol=1e-4)
    # Clipping after upsampling instead gives a different (sparser) map on this model.
    a = attribute(lens, x, target=0, method="gradcam", layer="c2", relu=False)
    assert a.native is not None
    late = F.interpolate(a.native[:, None], size=(12, 12), mode="bilinear")[:, 0].clamp(min=0)
    early = F.interpolate(a.native.clamp(min=0)[:, None], size=(12, 12), mode="bilinear")[:, 0]
    assert (early > 0).sum() > (late > 0).sum()


def _texts(fig) -> str:  # type: ignore[no-untyped-def]
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts) + " ".join(
        t.get_text() for t in fig.texts
    )


def test_pictures_say_which_map_and_carry_the_faithfulness_warning() -> None:
    from convlens.images.heatmaps import (
        WARN,
        PanelEntry,
        heatmap_figure,
        heatmap_panel,
        map_label,
    )

    lens, x = lens_and_input()
    cam = attribute(lens, x[:1], target=1, method="gradcam", layer="c2")
    signed = attribute(lens, x[:1], target=1, method="gradient")
    assert (
        map_label(cam.options) == "positive part (ReLU)" and map_label(signed.options) == "signed"
    )
    warning = "not faithful: no better than random on insertion"
    fig = heatmap_figure(x[0], cam.values[0], native=cam.native[0], title="gradcam",  # type: ignore[index]
                         label=map_label(cam.options), warning=warning)  # fmt: skip
    text = _texts(fig)
    assert "map: positive part (ReLU)" in text and "⚠ " + warning in text
    entries = [
        PanelEntry("gradcam", cam.values[0], cam.native[0], ["0.80 (random 0.70)"],  # type: ignore[index]
                   map_label="positive part (ReLU)", warning=warning),
        PanelEntry("gradient", signed.values[0], None, ["0.10 (random 0.70)"]),
    ]  # fmt: skip
    panel = heatmap_panel(x[0], entries, title="t", caption_labels=["deletion AUC\nlower"])
    text = _texts(panel)
    assert "positive part (ReLU)" in text and "signed" in text and "deletion AUC" in text
    assert "⚠" in text and text.count("⚠") == 1  # only the failing method is flagged
    assert sum(ax.get_label() == "colorbar" for ax in panel.axes) == 3  # one per row of maps
    red = np.array([int(WARN[i : i + 2], 16) for i in (1, 3, 5)])
    pixels = np.asarray(panel.axes[0].images[0].get_array())
    assert (np.abs(pixels.reshape(-1, 3).astype(int) - red).sum(1) == 0).sum() > 100  # the frame


def test_explain_writes_which_map_and_the_warning(kaggle4_ckpt, tmp_path, capsys) -> None:
    import json

    from cli_helpers import run_cli

    for extra, want in (([], "positive part (ReLU)"), (["--signed"], "signed")):
        out = tmp_path / want.split()[0]
        code, _, err = run_cli(["explain", str(kaggle4_ckpt), "--index", "7", "--methods",
                                "gradcam,gradient", "--steps", "8", "--out", str(out), *extra],
                               capsys)  # fmt: skip
        assert code == 0, err
        report = json.loads((out / "explain.json").read_text())["methods"]
        assert report["gradcam"]["map"] == want and report["gradient"]["map"] == "signed"
        assert report["gradcam"]["options"]["relu"] is (not extra)
        for r in report.values():  # the warning is there exactly when the check fails
            fails = not (r["beats_random"]["deletion"] and r["beats_random"]["insertion"])
            assert (r["warning"] is not None) == fails
