"""The Lens: layer table, truncated forward, pre-activations, and no leaking hooks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlens.errors import UnknownNameError
from convlens.lens import InputSpec, Lens


def test_layer_table_has_keras_names_and_shapes(random_lens):
    names = random_lens.layer_names
    assert names[:4] == ["conv2d_1", "conv2d_2", "max_pooling2d_1", "dropout_1"]
    assert names[-1] == "dense_3"
    assert random_lens.layer("conv2d_3").output_shape == (64, 14, 14)
    assert random_lens.layer("conv2d_1").params == 32 * 9 + 32
    assert random_lens.layer("dense_1").rf is None
    assert [i.name for i in random_lens.conv_layers()] == [f"conv2d_{i}" for i in range(1, 5)]


def test_forward_returns_requested_layers_and_matches_model(random_lens):
    x = torch.rand(4, 1, 28, 28)
    acts = random_lens.forward(x, ["conv2d_1", "dense_3"])
    with torch.no_grad():
        full = random_lens.model(x)
    assert torch.allclose(acts["dense_3"], full)
    assert acts["conv2d_1"].shape == (4, 32, 28, 28)
    assert (acts["conv2d_1"] >= 0).all()  # post-ReLU, like Keras' layer output


def test_forward_stops_at_the_deepest_requested_layer(random_lens):
    calls = []
    handle = random_lens.module("dense_1").register_forward_hook(lambda *a: calls.append(1))
    try:
        random_lens.forward(torch.rand(2, 1, 28, 28), ["conv2d_2"])
    finally:
        handle.remove()
    assert calls == []


def test_pre_activation_is_the_value_before_relu(random_lens):
    x = torch.rand(2, 1, 28, 28)
    pre = random_lens.forward(x, ["conv2d_2"], pre_activation=True)["conv2d_2"]
    post = random_lens.forward(x, ["conv2d_2"])["conv2d_2"]
    assert (pre < 0).any()
    assert torch.allclose(torch.relu(pre), post)


def test_no_hooks_leak_across_calls(random_lens):
    def hook_count() -> int:
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks)
                   for m in random_lens.model.modules())  # fmt: skip

    before = hook_count()
    for _ in range(100):
        random_lens.forward(torch.rand(1, 1, 28, 28), ["conv2d_3"], pre_activation=True)
    with pytest.raises(UnknownNameError):
        random_lens.forward(torch.rand(1, 1, 28, 28), ["nope"])
    assert hook_count() == before


def test_unknown_layer_lists_what_exists(random_lens):
    with pytest.raises(UnknownNameError, match=r"conv2d_5.*Did you mean.*conv2d_"):
        random_lens.layer("conv2d_5")


def test_normalization_is_applied_by_the_lens():
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))
    spec = InputSpec(3, 8, 8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), class_names=("a", "b"))
    lens = Lens.from_module(model, spec)
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(lens.logits(x), model((x - 0.5) / 0.25))


def test_final_softmax_is_skipped_for_logits():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3), nn.Softmax(dim=1))
    lens = Lens.from_module(model, InputSpec(1, 4, 4, class_names=("a", "b", "c")))
    assert lens.logits_from_input
    x = torch.rand(5, 1, 4, 4)
    assert torch.allclose(lens.logits(x), model[1](x.flatten(1)))
    assert torch.allclose(lens.probabilities(x), model(x), atol=1e-6)


def test_first_forward_on_an_expanded_or_cropped_batch_reads_that_batch(kaggle4_ckpt) -> None:
    """The layout probe (a 2-image pass) once ran inside the capture of the first forward with
    a non-default layout, so that forward returned the probe's activations (batch 2)."""
    import convlens as cl

    x = torch.linspace(0, 1, 5).view(-1, 1, 1, 1).expand(-1, 1, 28, 28)
    lens = cl.load(kaggle4_ckpt)  # fresh: its layout has not been probed yet
    got = lens.forward(x, ["conv2d_1", "dense_1"])
    plain = lens.forward(x.contiguous(), ["conv2d_1", "dense_1"])
    for name in ("conv2d_1", "dense_1"):
        assert got[name].shape[0] == 5
        assert torch.allclose(got[name], plain[name], atol=1e-6)
    crop = torch.rand(3, 1, 29, 29, generator=torch.Generator().manual_seed(0))[:, :, 1:, 1:]
    fresh = cl.load(kaggle4_ckpt)
    with fresh.tap(["dense_1"]) as seen:
        fresh.logits(crop)
    assert [v.shape[0] for v in seen["dense_1"]] == [3]  # the caller's pass only
