"""Deletion/insertion AUC: a perfect map beats random, which beats the reversed map."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from convlens.lens import InputSpec, Lens
from convlens.viz.attribution import attribute
from convlens.viz.faithfulness import auc, faithfulness, pixel_ranks


@pytest.fixture(scope="module")
def toy() -> tuple[Lens, torch.Tensor, torch.Tensor]:
    """Class 0's logit is a weighted sum of 16 pixels of an 8x8 image; class 1's is constant.

    The images are sparse like MNIST (bright weighted pixels and bright distractors on black),
    so both black (deletion) and blur (insertion's start) remove the evidence.
    """
    torch.manual_seed(0)
    w = torch.zeros(64)
    w[torch.randperm(64)[:16]] = torch.linspace(0.2, 1.6, 16)
    x = torch.zeros(6, 64)
    x[:, w > 0] = 0.5 + 0.5 * torch.rand(6, 16)
    unused = torch.nonzero(w == 0).squeeze(1)
    for row in x:
        row[unused[torch.randperm(len(unused))[:12]]] = 0.8  # bright pixels the model ignores
    lin = nn.Linear(64, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.stack([w, torch.zeros(64)]))
        lin.bias.copy_(torch.tensor([-0.5 * float((x @ w).mean()), 0.0]))
    spec = InputSpec(1, 8, 8, class_names=("a", "b"))
    lens = Lens.from_module(nn.Sequential(nn.Flatten(), lin), spec)
    return lens, x.view(6, 1, 8, 8), w.view(8, 8)


def test_perfect_map_beats_random_which_beats_the_reversed_map(toy) -> None:
    lens, x, w = toy
    perfect = w * x[:, 0]  # each pixel's exact contribution to the logit
    good = faithfulness(lens, x, perfect, target=0, steps=16)
    bad = faithfulness(lens, x, -perfect, target=0, steps=16)
    assert good.random_deletion_auc is not None and good.random_insertion_auc is not None
    assert torch.all(good.deletion_auc < good.random_deletion_auc)
    assert torch.all(good.random_deletion_auc < bad.deletion_auc)
    assert torch.all(good.insertion_auc > good.random_insertion_auc)
    assert torch.all(good.random_insertion_auc > bad.insertion_auc)
    torch.testing.assert_close(good.random_deletion_auc, bad.random_deletion_auc)  # seeded
    s = good.summary()
    assert s["deletion_auc"] < s["random_deletion_auc"] < 1.0


def test_curves_start_and_end_where_the_protocol_says(toy) -> None:
    lens, x, w = toy
    f = faithfulness(lens, x, w.expand(6, 8, 8), target=0, steps=8, baseline=0.0, blur_sigma=1.0)
    assert f.fractions[0] == 0 and f.fractions[-1] == 1 and len(f.fractions) == 9
    p = lens.probabilities(x)[:, 0].detach()
    torch.testing.assert_close(f.deletion_curve[:, 0], p)
    torch.testing.assert_close(f.insertion_curve[:, -1], p)
    black = lens.probabilities(torch.zeros_like(x))[:, 0].detach()
    torch.testing.assert_close(f.deletion_curve[:, -1], black)
    torch.testing.assert_close(f.deletion_auc, auc(f.deletion_curve, f.fractions))
    assert f.protocol == {"steps": 8, "baseline": 0.0, "blur_sigma": 1.0, "seed": 0,
                          "score": "softmax probability of the target"}  # fmt: skip


def test_batching_does_not_change_the_answer(toy) -> None:
    lens, x, w = toy
    a = faithfulness(lens, x, w * x[:, 0], target=0, steps=10, batch_size=7)
    b = faithfulness(lens, x, w * x[:, 0], target=0, steps=10, batch_size=1000)
    torch.testing.assert_close(a.deletion_curve, b.deletion_curve)
    torch.testing.assert_close(a.insertion_auc, b.insertion_auc)


def test_ties_are_broken_at_random_not_by_position() -> None:
    ranks = pixel_ranks(torch.zeros(2, 8, 8), seed=3)
    assert sorted(ranks[0].tolist()) == list(range(64))
    assert ranks[0].tolist() != list(range(64)) and ranks[0].tolist() != ranks[1].tolist()
    torch.testing.assert_close(ranks, pixel_ranks(torch.zeros(2, 8, 8), seed=3))
    signed = pixel_ranks(torch.tensor([[[-5.0, 1.0], [3.0, 0.0]]]))
    assert signed.tolist() == [[3, 1, 0, 2]]  # highest first, the negative one last


def test_a_heatmap_carries_its_target(toy) -> None:
    lens, x, _ = toy
    hm = attribute(lens, x, target=1, method="gradient_x_input")
    f = faithfulness(lens, x, hm, steps=4, random_order=False)
    assert f.target is not None and f.target.tolist() == [1] * 6
    assert f.method == "gradient_x_input" and f.random_deletion_auc is None
    with pytest.raises(ValueError, match="does not match"):
        faithfulness(lens, x, hm.values[:2], steps=4)
