"""The learned image prior and the latent parameterization (the natural preset's pictures)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

import convlens as cl
from convlens.errors import DataError
from convlens.viz.render import params as P
from convlens.viz.render import prior as prior_module
from convlens.viz.render import render
from convlens.viz.render.prior import Decoder, PriorConfig, image_prior, train_prior

TINY = PriorConfig(epochs=6, max_images=3000)
"""A prior trained for a moment: enough to draw blurry strokes, fast enough for every test
(the one conftest.py gives every render of the test session)."""


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_prior_trains_caches_and_reloads(kaggle4_ckpt: Path, tmp_path: Path) -> None:
    folder = tmp_path / "kaggle4"
    shutil.copytree(kaggle4_ckpt, folder, ignore=shutil.ignore_patterns("cache"))
    trained = image_prior(cl.load(folder), config=TINY, progress=False)
    files = list((folder / "cache").glob("prior_mnist_*.safetensors"))
    assert files == [trained.path] and trained.seconds > 0 and trained.images == 3000
    # Another Lens of the folder (another snapshot: the key holds no weights) reads the file.
    again = image_prior(cl.load(folder, epoch=1), config=TINY)
    assert again.seconds == 0 and again.path == trained.path
    assert _same_weights(trained.decoder, again.decoder)
    # Other settings are another prior, never the cached one.
    other = image_prior(cl.load(folder), config=PriorConfig(epochs=1, max_images=300))
    assert other.path != trained.path and not _same_weights(trained.decoder, other.decoder)


def test_prior_of_a_lens_without_folder_stays_in_memory(random_lens, mnist_small) -> None:
    first = image_prior(random_lens, mnist_small, config=TINY, progress=False)
    assert first.path is None
    assert image_prior(random_lens, mnist_small, config=TINY) is first
    with pytest.raises(DataError, match="training images"):
        image_prior(random_lens, config=TINY)  # records no data and none given


def test_training_is_deterministic_and_decoders_fit_any_size() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 32, 32, generator=gen)
    cfg = PriorConfig(epochs=1, batch_size=32)
    a, b = train_prior(x, config=cfg, progress=False), train_prior(x, config=cfg, progress=False)
    assert _same_weights(a.decoder, b.decoder)
    z = torch.randn(5, a.latent, generator=gen)
    images = a.decode(z)
    assert images.shape == (5, 3, 32, 32) and 0 <= float(images.min()) <= float(images.max()) <= 1
    for shape in [(1, 28, 28), (1, 20, 30), (3, 9, 64)]:
        assert Decoder(*shape)(z[:, :32]).shape == (5, *shape)


def test_latent_param_stays_in_range_and_rows_own_their_seeds() -> None:
    decoder = Decoder(1, 28, 28).eval()
    param = P.latent(3, (1, 28, 28), decoder, 32, value_range=(-1.0, 2.0), residual=0.3,
                     seeds=[1, 2, 3])  # fmt: skip
    with torch.no_grad():
        param.tensor[:, 32:] = 50.0  # residuals at their limit
        image = param.image_fn(param.tensor)
    assert image.shape == (3, 1, 28, 28)
    assert float(image.min()) >= -1.0 and float(image.max()) <= 2.0
    alone = P.latent(1, (1, 28, 28), decoder, 32, residual=0.3, seeds=[2]).tensor
    assert torch.equal(alone[0, :32], param.tensor[1, :32].detach())


def _one_value(image: torch.Tensor) -> float:
    q = torch.round(image.flatten() * 255).long()
    return float(torch.bincount(q, minlength=256).max()) / q.numel()


def test_latent_render_is_not_binary_not_flat_and_reproducible(kaggle4_lens) -> None:
    assert prior_module.DEFAULT_CONFIG == TINY
    units = "conv2d_2:0-3,conv2d_3:0-1"
    res = render(kaggle4_lens, units, preset="natural", steps=16, restarts=0, progress=False)
    assert res.preset == "natural" and res.recipe["units"]["param"] == "latent"
    images = res.images
    at_limits = float(((images <= 0) | (images >= 1)).float().mean())
    assert at_limits < 0.5
    for k, image in enumerate(images):  # none constant (a unit may want a dot on black)
        assert float(image.std()) > 0.05, res.names[k]
    assert sum(_one_value(image) for image in images) / len(images) < 0.8
    assert torch.isfinite(res.ratio).all() and torch.isfinite(res.mean_activation).all()
    # The same figures as render.json records them: both ratios, pixels at the limits, flatness.
    assert torch.isfinite(res.r_mean).all() and torch.isfinite(res.r_peak).all()
    assert float(res.at_limits.mean()) < 0.5 and float(res.flat.mean()) < 0.8
    pixels = render(kaggle4_lens, units, preset="clear", steps=16, restarts=0, progress=False)
    assert float(res.at_limits.mean()) < float(pixels.at_limits.mean())  # clear is binary
    again = render(kaggle4_lens, units, preset="natural", steps=16, restarts=0, progress=False)
    assert torch.equal(res.images, again.images)
    # A unit's image does not depend on its batch mates.
    alone = render(kaggle4_lens, "conv2d_3:1", preset="natural", steps=16, restarts=0)
    assert torch.allclose(alone.images[0], res.images[5], atol=1e-4)


def test_natural_falls_back_to_clear_without_training_data(random_lens) -> None:
    with pytest.warns(UserWarning, match="rendering with 'clear'"):
        res = render(random_lens, "conv2d_1:0", steps=3, restarts=0, progress=False)
    assert res.preset == "clear"
    with pytest.raises(DataError, match="training images"):
        render(random_lens, "conv2d_1:0", steps=3, param="latent", progress=False)


def test_the_prior_does_not_depend_on_the_callers_thread_count() -> None:
    """Ray workers run one torch thread, notebooks several: the same data gives one prior."""
    x = torch.rand(96, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    cfg = PriorConfig(epochs=2, batch_size=32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = train_prior(x, config=cfg, progress=False)
        torch.set_num_threads(2)
        two = train_prior(x, config=cfg, progress=False)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(threads)
    assert _same_weights(one.decoder, two.decoder)
