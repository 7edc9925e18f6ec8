"""The cascading randomization check: gradients decorrelate, gradient x input does not on MNIST."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convlens.lens import Lens
from convlens.viz.sanity import (
    average_ranks,
    copy_lens,
    randomize,
    sanity_check,
    spearman,
    ssim,
    weighted_layers,
)


def test_spearman_uses_average_ranks_for_ties() -> None:
    a = torch.tensor([[1.0, 2.0, 2.0, 3.0, 0.0]])
    b = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0]])
    assert average_ranks(a.double()).tolist() == [[1.0, 2.5, 2.5, 4.0, 0.0]]
    expected = np.corrcoef([1.0, 2.5, 2.5, 4.0, 0.0], [0, 1, 2, 3, 4])[0, 1]
    assert abs(float(spearman(a, b)[0]) - expected) < 1e-6
    x = torch.rand(3, 5, 5)
    torch.testing.assert_close(spearman(x, x**3), torch.ones(3))
    torch.testing.assert_close(spearman(x, -x), -torch.ones(3))
    assert (
        float(spearman(torch.zeros(1, 4), torch.rand(1, 4))[0]) == 0.0
    )  # constant: no shared order


def test_ssim_is_one_for_equal_maps_and_low_for_unrelated_ones() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 12, 12)
    torch.testing.assert_close(ssim(x, x), torch.ones(2))
    assert float(ssim(x, torch.rand(2, 12, 12)).max()) < 0.3
    assert float(ssim(x, 1 - x).max()) < 0


def test_copy_is_deep_and_points_at_its_own_modules(kaggle4_lens: Lens) -> None:
    work = copy_lens(kaggle4_lens)
    assert work.model is not kaggle4_lens.model
    assert work.module("conv2d_3") is not kaggle4_lens.module("conv2d_3")
    assert dict(work.model.named_modules())["conv2d_3"] is work.module("conv2d_3")
    assert weighted_layers(kaggle4_lens) == [
        "dense_3", "dense_2", "dense_1", "conv2d_4", "conv2d_3", "conv2d_2", "conv2d_1",
    ]  # fmt: skip


@pytest.mark.slow
def test_randomizing_decorrelates_gradients_but_not_gradient_x_input(
    kaggle4_lens: Lens, mnist_small
) -> None:
    x = mnist_small.x_val[:4]
    before = {k: v.clone() for k, v in kaggle4_lens.model.state_dict().items()}
    grad = sanity_check(kaggle4_lens, x, "gradient")
    assert [s.layer for s in grad.stages] == weighted_layers(kaggle4_lens)
    assert grad.final_spearman < 0.3 and grad.final_ssim < 0.3 and grad.passed
    assert grad.stages[-1].spearman.shape == (4,)
    gxi = sanity_check(kaggle4_lens, x, "gradient_x_input")
    assert gxi.final_spearman > 0.8 and not gxi.passed  # black background: the input decides
    assert "FAILS" in gxi.verdict() and "passes" in grad.verdict()
    on_digit = sanity_check(kaggle4_lens, x, "gradient_x_input", where=x[:, 0] > 0)
    assert on_digit.final_spearman < gxi.final_spearman - 0.2  # the black zero set was the reason
    for k, v in kaggle4_lens.model.state_dict().items():
        assert torch.equal(v, before[k]), f"the user's model changed: {k}"


def test_randomizing_is_seeded() -> None:
    a, b = torch.nn.Conv2d(2, 3, 3), torch.nn.Conv2d(2, 3, 3)
    randomize(a, 5)
    randomize(b, 5)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    randomize(b, 6)
    assert not torch.equal(a.weight, b.weight)


def test_methods_that_draw_noise_take_the_sanity_seed(kaggle4_lens, kaggle4_ckpt, capsys) -> None:
    """Regression: the CLI passed ``seed`` twice (TypeError) for smoothgrad, rise and 'all'."""
    from cli_helpers import run_cli

    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    result = sanity_check(kaggle4_lens, x, "smoothgrad", seed=3, samples=4)
    assert result.options["seed"] == 3
    argv = ["sanity", str(kaggle4_ckpt), "--methods", "smoothgrad,rise", "--n", "1",
            "--masks", "16", "--seed", "2", "--quiet"]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert "\nsmoothgrad " in out and "\nrise " in out
