"""``fashion-mnist``: Zalando's 70,000 clothing images from the Debian package.

Installed by ``apt-get install dataset-fashion-mnist`` as IDX files; ``CONVLENS_FASHION_MNIST_DIR``
points elsewhere. The official 10,000-image test set is the val split.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from convlens.data.dataset import RawSplits
from convlens.data.idx import missing_idx_files, read_idx_folder
from convlens.data.registry import register_dataset
from convlens.errors import DataError

ENV_VAR = "CONVLENS_FASHION_MNIST_DIR"
DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def fashion_mnist_dir() -> Path:
    """Where the IDX files are expected: ``$CONVLENS_FASHION_MNIST_DIR`` or the Debian path."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else DEFAULT_DIR


@register_dataset("fashion-mnist")
def load_fashion_mnist(arg: str, /, *, size: int | None) -> RawSplits:
    folder = fashion_mnist_dir()
    if not folder.is_dir() or missing_idx_files(folder):
        raise DataError(
            f"Fashion-MNIST not found in {folder}; run `sudo apt-get install "
            f"dataset-fashion-mnist`, set {ENV_VAR}, or load the IDX files with idx:DIR"
        )
    raw = read_idx_folder(folder, "fashion-mnist")
    return replace(raw, class_names=CLASS_NAMES)
