"""Evidence beside r: both ratios, the match with real examples, pixels at the limits, flat
pictures and the best constant image, each checked against a direct computation."""

from __future__ import annotations

import math

import pytest
import torch

import convlens as cl
from convlens.viz.maxima import MATCH_K, compute_maxima
from convlens.viz.render import render
from convlens.viz.render.evidence import (
    CONSTANT_LEVELS,
    best_constant,
    match,
    pixel_figures,
)

LAYERS = ["conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4"]


@pytest.fixture(scope="module")
def maxima(kaggle4_lens, mnist_small):
    return compute_maxima(kaggle4_lens, mnist_small.x_val, [*LAYERS, "dense_1"])


def test_channel_means_are_the_largest_spatial_mean_over_the_images(
    kaggle4_lens, mnist_small, maxima
) -> None:
    with torch.no_grad():
        acts = kaggle4_lens.forward(mnist_small.x_val, ["conv2d_2", "dense_1"])
    direct = acts["conv2d_2"].flatten(2).mean(2).amax(0)
    assert torch.allclose(maxima.channel_mean["conv2d_2"], direct, rtol=1e-5, atol=1e-6)
    assert torch.allclose(maxima.channel_mean["dense_1"], acts["dense_1"].amax(0))
    assert "dense_1" not in maxima.crops  # crops belong to conv layers


def test_crops_are_the_mean_field_crop_of_each_channels_top_examples(
    kaggle4_lens, mnist_small, maxima
) -> None:
    mined = cl.examples(kaggle4_lens, "conv2d_3:0-3", mnist_small, k=MATCH_K, split="val")
    for ex in mined:
        expected = ex.crops.mean(0)
        got = maxima.crops["conv2d_3"][ex.unit.channel]
        assert got.shape == expected.shape == (1, *kaggle4_lens.layer("conv2d_3").rf.size)
        assert torch.allclose(got, expected, atol=1e-6)


def test_a_units_own_real_examples_match_it_and_noise_does_not(
    kaggle4_lens, mnist_small, maxima
) -> None:
    """Each live unit's best validation image, as if it were the render: its own examples are
    the closest for most units; uniform noise rarely."""
    layer = "conv2d_4"
    live = maxima.live(layer)
    with torch.no_grad():
        acts = kaggle4_lens.forward(mnist_small.x_val, [layer])[layer]
    best = acts.flatten(2).amax(2).argmax(0)  # (C,) image index of each channel's peak
    images = mnist_small.x_val[best[live]]
    maps = acts[best[live], live]
    own, top1 = match(kaggle4_lens, layer, images, live, maps, maxima)
    assert float(own.mean()) > 0.9 and float(top1.float().mean()) > 0.6  # measured 0.997, 0.87
    noise = torch.rand(
        len(live), *kaggle4_lens.spec.shape, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        noise_maps = kaggle4_lens.forward(noise, [layer])[layer][torch.arange(len(live)), live]
    _chance, chance_top1 = match(kaggle4_lens, layer, noise, live, noise_maps, maxima)
    # Noise cut at the unit's own strongest position already leans towards the unit (mean rank
    # 0.8 here), so the top-1 rate is what tells pictures apart: measured 0.21.
    assert float(chance_top1.float().mean()) < 0.4
    assert float(top1.float().mean()) > 2 * float(chance_top1.float().mean())


def test_pixel_figures_count_limits_and_one_value_shares() -> None:
    binary = (torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    ramp = torch.linspace(0.05, 0.95, 28 * 28).view(1, 1, 28, 28)
    flat = torch.full((1, 1, 28, 28), 0.3)
    flat[..., 0, 0] = 1.0
    at_limits, one_value = pixel_figures(torch.cat([binary, ramp, flat]), (0.0, 1.0))
    assert float(at_limits[0]) == 1.0 and float(at_limits[1]) == 0.0
    assert math.isclose(float(at_limits[2]), 1 / 784, rel_tol=1e-5)
    assert math.isclose(float(one_value[2]), 783 / 784, rel_tol=1e-5) and float(one_value[1]) < 0.01
    # The same on another value range.
    at_limits2, _ = pixel_figures(torch.cat([binary, ramp]) * 2 - 1, (-1.0, 1.0))
    assert torch.equal(at_limits2, at_limits[:2])


def test_best_constant_is_the_best_of_the_constant_images(kaggle4_lens) -> None:
    peak, mean = best_constant(kaggle4_lens, "conv2d_1")
    levels = torch.linspace(0, 1, CONSTANT_LEVELS)
    with torch.no_grad():
        a = kaggle4_lens.forward(levels.view(-1, 1, 1, 1).expand(-1, 1, 28, 28), ["conv2d_1"])
    maps = a["conv2d_1"].flatten(2)
    assert torch.allclose(peak, maps.amax(2).amax(0)) and torch.allclose(mean, maps.mean(2).amax(0))


def test_render_records_both_ratios_and_the_evidence(kaggle4_lens, mnist_small, maxima) -> None:
    res = render(kaggle4_lens, "conv2d_2:0-5,conv2d_2:1@5,5", steps=12, data=mnist_small)
    channels = res.rows("conv2d_2", "channel")
    for i in channels:
        if res.status[i] == "dead":
            assert math.isnan(float(res.r_mean[i])) and math.isnan(float(res.match[i]))
            continue
        ch = res.units[i].channel
        mean_ref = float(maxima.channel_mean["conv2d_2"][ch])
        assert math.isclose(float(res.mean_reference[i]), mean_ref, rel_tol=1e-5)
        assert math.isclose(
            float(res.r_mean[i]), float(res.mean_activation[i]) / mean_ref, rel_tol=1e-4
        )
        assert math.isclose(float(res.r_peak[i]), float(res.ratio[i]))
        assert 0.0 <= float(res.match[i]) <= 1.0
        assert 0.0 <= float(res.at_limits[i]) <= 1.0 and 0.0 < float(res.flat[i]) <= 1.0
        assert float(res.constant_r_peak[i]) >= 0.0
        assert bool(res.passed[i]) == (
            float(res.r_peak[i]) >= 1 - 1e-4 and float(res.r_mean[i]) >= 1 - 1e-4
        )
    (n,) = res.rows("conv2d_2", "neuron")
    assert math.isnan(float(res.r_mean[n])) and math.isnan(float(res.match[n]))
    assert not math.isnan(float(res.at_limits[n]))  # measured on the neuron's field
    stats = res.summary()["conv2d_2"]
    assert {"r_peak_ge_1", "r_mean_ge_1", "median_match", "match_top1", "at_limits", "flat"} <= set(
        stats
    )
    record = res.to_records()[channels[0]]
    assert {
        "r_peak",
        "r_mean",
        "match",
        "match_top1",
        "at_limits",
        "flat",
        "constant_r_peak",
    } <= set(record)
