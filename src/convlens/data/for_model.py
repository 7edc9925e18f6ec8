"""The dataset a model was trained on, recovered from its checkpoint config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from convlens.data.dataset import Dataset
from convlens.data.registry import load_dataset
from convlens.errors import DataError

if TYPE_CHECKING:
    from convlens.lens import Lens


def dataset_for(lens: Lens, name: str | None = None, *, limit: int | None = None) -> Dataset:
    """``name`` (or the model's own training data, with its split seed) at the model's input size.

    The split seed is reused only for the model's own dataset, so its validation images are
    the ones it was validated on.
    """
    recorded = lens.source.get("config", {}).get("data", {})
    if name is not None and not name.strip():
        raise DataError("--data is empty; give a dataset name (see 'convlens datasets')")
    chosen = name or recorded.get("name")
    if not chosen:
        raise DataError("this model does not record its dataset; pass --data NAME")
    seed = int(recorded.get("split_seed", 0)) if chosen == recorded.get("name") else 0
    dataset = load_dataset(chosen, split_seed=seed, size=lens.spec.height, limit=limit)
    check_fits(dataset, lens)
    return dataset


def check_fits(dataset: Dataset, lens: Lens) -> None:
    """One line when a dataset cannot be fed to the model (channels, size, more classes)."""
    spec = lens.spec
    have = (dataset.channels, dataset.height, dataset.width)
    if have != spec.shape:
        raise DataError(
            f"{dataset.name} has {'x'.join(map(str, have))} images but the model takes "
            f"{'x'.join(map(str, spec.shape))}; give a dataset of the model's kind (--data)"
        )
    if len(dataset.class_names) > lens.num_classes:
        raise DataError(
            f"{dataset.name} has {len(dataset.class_names)} classes but the model has "
            f"{lens.num_classes} outputs; give a dataset with at most {lens.num_classes} classes"
        )
