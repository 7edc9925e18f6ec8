"""Dataset examples: the real images that excite a unit most (Zeiler & Fergus), in one pass.

One streaming, no-grad pass over the images feeds every requested unit at once into a
:class:`TopK`, a per-unit best-k table that is *mergeable*: mining two disjoint shards and
merging gives exactly the table of one pass over both (ties go to the lower image index), so
the same code runs sharded (``executor=``, :mod:`convlens.distributed`). :func:`examples`
then cuts out, for each unit, its k images and the receptive-field crops around the neuron
that fired.

Scores: a channel unit scores an image by the spatial max of its map (the argmax is kept), a
neuron unit by its value, a dense unit by its value, a class unit by its pre-softmax logit.
``bottom=True`` ranks by the *most negative pre-activation* instead (spatial min for channels).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..data import Dataset, dataset_for
from ..display.base import Pictured, Summarized
from ..errors import DataError, UnitError
from ..lens import Lens
from ..progress import track
from ..units import Unit, resolve_units

Split = Literal["val", "train", "all"]
SPLITS: tuple[str, ...] = ("val", "train", "all")


class TopK(Summarized):
    """The k best (value, image index, row, col) of every unit, best first; mergeable.

    Rows are units, columns the kept candidates ordered by value (descending for ``largest``,
    ascending otherwise), ties by ascending image index. That total order makes the table a
    function of the *set* of candidates seen, so the order of updates and merges never matters.
    ``rows``/``cols`` are the location in the layer's map (-1 for dense units). Image indices
    must be distinct across the shards merged. NaN scores never win.
    """

    def __init__(
        self,
        values: torch.Tensor,
        indices: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        *,
        k: int,
        largest: bool = True,
    ) -> None:
        if k < 1:
            raise ValueError(f"TopK needs k >= 1, got {k}")
        self.values, self.indices, self.rows, self.cols = values, indices, rows, cols
        self.k = k
        self.largest = largest

    @classmethod
    def empty(
        cls, num_units: int, k: int, *, largest: bool = True, device: torch.device | str = "cpu"
    ) -> TopK:
        """A table for ``num_units`` units that has seen nothing yet."""
        ints = torch.empty(num_units, 0, dtype=torch.int64, device=device)
        values = torch.empty(num_units, 0, dtype=torch.float32, device=device)
        return cls(values, ints, ints.clone(), ints.clone(), k=k, largest=largest)

    @property
    def num_units(self) -> int:
        return int(self.values.shape[0])

    @property
    def count(self) -> int:
        """Candidates kept per unit: ``min(k, images seen)``."""
        return int(self.values.shape[1])

    def update(
        self,
        values: torch.Tensor,
        indices: torch.Tensor,
        rows: torch.Tensor | None = None,
        cols: torch.Tensor | None = None,
    ) -> TopK:
        """Offer a batch of candidates (U, B); ``indices`` may be (B,) shared by all units.

        Fully vectorized: the kept table and the batch are concatenated and re-ranked with two
        stable sorts (by index, then by value), so no unit or image is visited in Python.
        Returns ``self`` (updated in place).
        """
        values = values.to(self.values.device, torch.float32)
        shape = values.shape
        if values.dim() != 2 or shape[0] != self.num_units:
            raise ValueError(
                f"TopK.update: need values of shape ({self.num_units}, B), got {shape}"
            )
        dev = self.values.device

        def full(t: torch.Tensor | None) -> torch.Tensor:
            if t is None:
                return torch.full(shape, -1, dtype=torch.int64, device=dev)
            t = t.to(dev, torch.int64)
            return t.expand(shape) if t.dim() == 1 else t

        self._keep(
            torch.cat([self.values, values], 1),
            torch.cat([self.indices, full(indices)], 1),
            torch.cat([self.rows, full(rows)], 1),
            torch.cat([self.cols, full(cols)], 1),
        )
        return self

    def merge(self, other: TopK) -> TopK:
        """A new table holding the best k of both (equal to one pass over both shards)."""
        if (other.num_units, other.k, other.largest) != (self.num_units, self.k, self.largest):
            raise ValueError(
                "TopK.merge: tables differ in units, k or direction "
                f"({self.num_units}, {self.k}, {self.largest}) vs "
                f"({other.num_units}, {other.k}, {other.largest})"
            )
        dev = self.values.device
        merged = TopK.empty(self.num_units, self.k, largest=self.largest, device=dev)
        merged._keep(
            torch.cat([self.values, other.values.to(dev)], 1),
            torch.cat([self.indices, other.indices.to(dev)], 1),
            torch.cat([self.rows, other.rows.to(dev)], 1),
            torch.cat([self.cols, other.cols.to(dev)], 1),
        )
        return merged

    def select(self, units: Sequence[int] | torch.Tensor) -> TopK:
        """The rows of some units, as a new table (e.g. back to the caller's unit order)."""
        idx = torch.as_tensor(units, dtype=torch.int64, device=self.values.device)
        return TopK(
            self.values[idx], self.indices[idx], self.rows[idx], self.cols[idx],
            k=self.k, largest=self.largest,
        )  # fmt: skip

    def to(self, device: torch.device | str) -> TopK:
        return TopK(
            self.values.to(device), self.indices.to(device), self.rows.to(device),
            self.cols.to(device), k=self.k, largest=self.largest,
        )  # fmt: skip

    def _keep(
        self, values: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
    ) -> None:
        worst = float("-inf") if self.largest else float("inf")
        values = torch.where(torch.isnan(values), torch.full_like(values, worst), values)
        # Stable sort by index, then stable sort by value: ties in value stay index-ascending.
        by_index = torch.argsort(indices, dim=1, stable=True)
        by_value = torch.argsort(
            values.gather(1, by_index), dim=1, descending=self.largest, stable=True
        )
        order = by_index.gather(1, by_value[:, : self.k])
        self.values, self.indices, self.rows, self.cols = (
            t.gather(1, order) for t in (values, indices, rows, cols)
        )


# --- mining: one streaming pass, all units at once -------------------------------------------
@dataclass(frozen=True)
class _Group:
    """Units of one layer scored the same way, with their slots in the caller's unit list."""

    layer: str
    how: Literal["channel", "neuron", "dense"]
    pre: bool  # read the pre-activation (bottom-k, class logits)
    slots: torch.Tensor
    channels: torch.Tensor
    every_channel: bool  # channels == 0..C-1 in order: no copy needed
    rows: torch.Tensor | None = None
    cols: torch.Tensor | None = None


def _plan(lens: Lens, units: Sequence[Unit], bottom: bool, device: torch.device) -> list[_Group]:
    keyed: dict[tuple[str, str, bool], list[tuple[int, Unit]]] = {}
    for slot, unit in enumerate(units):
        how = "dense" if unit.kind == "class" else unit.kind
        if how == "channel" and not lens.layer(unit.layer).is_spatial:
            how = "dense"
        pre = bottom or unit.kind == "class" or unit.pre
        keyed.setdefault((unit.layer, how, pre), []).append((slot, unit))
    groups = []
    for (layer, how, pre), members in keyed.items():
        channels = [u.channel for _, u in members]
        ints = {"dtype": torch.int64, "device": device}
        positions = [u.position or (0, 0) for _, u in members]
        groups.append(
            _Group(
                layer=layer,
                how=how,  # type: ignore[arg-type]
                pre=pre,
                slots=torch.tensor([s for s, _ in members], **ints),
                channels=torch.tensor(channels, **ints),
                every_channel=channels == list(range(lens.layer(layer).channels)),
                rows=torch.tensor([p[0] for p in positions], **ints) if how == "neuron" else None,
                cols=torch.tensor([p[1] for p in positions], **ints) if how == "neuron" else None,
            )
        )
    return groups


def _score(
    group: _Group, t: torch.Tensor, largest: bool
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(B, n) scores of a group's units, with their (B, n) rows and cols where spatial."""
    if group.how == "dense":
        return (t if group.every_channel else t.index_select(1, group.channels)), None, None
    if group.how == "neuron":
        assert group.rows is not None and group.cols is not None
        values = t[:, group.channels, group.rows, group.cols]
        b = t.shape[0]
        return values, group.rows.expand(b, -1), group.cols.expand(b, -1)
    maps = t if group.every_channel else t.index_select(1, group.channels)
    width = maps.shape[3]
    flat = maps.flatten(2)
    values, where = flat.max(2) if largest else flat.min(2)
    return values, where // width, where % width


def _batch_scores(
    lens: Lens, groups: list[_Group], x: torch.Tensor, num_units: int, largest: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(U, B) scores, rows and cols of every unit for one batch, from ONE forward pass."""
    pre = any(g.pre for g in groups)
    captured = lens.forward(x, [g.layer for g in groups], pre_activation=pre)
    post: dict[str, torch.Tensor] = {}
    b = x.shape[0]
    values = torch.empty(b, num_units, device=x.device)
    rows = torch.full((b, num_units), -1, dtype=torch.int64, device=x.device)
    cols = rows.clone()
    for g in groups:
        t = captured[g.layer]
        if pre and not g.pre:
            if g.layer not in post:
                post[g.layer] = lens.output_from_pre(g.layer, t)
            t = post[g.layer]
        v, r, c = _score(g, t, largest)
        values[:, g.slots] = v.float()
        if r is not None and c is not None:
            rows[:, g.slots] = r
            cols[:, g.slots] = c
    return values.T, rows.T, cols.T


def as_units(lens: Lens, units: str | Unit | Sequence[str | Unit]) -> list[Unit]:
    """Units from a unit string, a Unit, or a list of either (checked against the Lens)."""
    if isinstance(units, Unit):
        return [units]
    if isinstance(units, str):
        return resolve_units(lens, units)
    out: list[Unit] = []
    for u in units:
        out.extend([u] if isinstance(u, Unit) else resolve_units(lens, u))
    if not out:
        raise UnitError("no units given; write e.g. 'conv2d_1:*', 'conv2d_3:12@7,7' or 'class:3'")
    for u in out:
        lens.layer(u.layer)
    return out


def check_images(lens: Lens, images: torch.Tensor) -> torch.Tensor:
    """Pixel-space images (N, C, H, W) that fit the model; (N, H, W) is fine for one channel."""
    if not isinstance(images, torch.Tensor):
        raise DataError(f"images must be a torch tensor or a Dataset, got {type(images).__name__}")
    if images.dim() == 3 and lens.spec.channels == 1:
        images = images.unsqueeze(1)
    want = "x".join(str(v) for v in lens.spec.shape)
    if images.dim() != 4 or tuple(images.shape[1:]) != lens.spec.shape:
        got = "x".join(str(v) for v in images.shape)
        raise DataError(f"images of shape {got} do not fit the model, which takes Nx{want}")
    if not images.is_floating_point():
        lo, hi = lens.spec.value_range
        raise DataError(
            f"images are {images.dtype}; pass float pixels in the model's range [{lo:g}, {hi:g}]"
        )
    if len(images) == 0:
        raise DataError("no images to mine; the dataset split is empty")
    return images


def _batches(n: int, batch_size: int, progress: bool | None, what: str) -> Iterator[int]:
    return track(range(0, n, batch_size), desc=what, unit="batch", progress=progress)


@torch.no_grad()
def mine(
    lens: Lens,
    units: str | Unit | Sequence[str | Unit],
    images: torch.Tensor,
    *,
    k: int = 9,
    bottom: bool = False,
    batch_size: int = 256,
    index_offset: int = 0,
    progress: bool | None = False,
) -> TopK:
    """The streaming pass alone: a :class:`TopK` (rows in unit order) over ``images``.

    Image ``i`` is recorded as index ``index_offset + i``, so shards mined separately with their
    offsets merge (:meth:`TopK.merge`) into exactly the table of one pass over all of them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    chosen = as_units(lens, units)
    images = check_images(lens, images)
    device = lens.device
    groups = _plan(lens, chosen, bottom, device)
    table = TopK.empty(len(chosen), k, largest=not bottom, device=device)
    was_training = lens.model.training
    lens.model.eval()
    try:
        for start in _batches(len(images), batch_size, progress, "mining"):
            # Standard strides: a channels-last-looking batch would be convolved in another
            # summation order, and a shard read elsewhere must give the very same floats.
            x = images[start : start + batch_size].to(
                device, torch.float32, memory_format=torch.contiguous_format
            )
            values, rows, cols = _batch_scores(lens, groups, x, len(chosen), not bottom)
            idx = torch.arange(start, start + len(x), device=device) + index_offset
            table.update(values, idx, rows, cols)
    finally:
        lens.model.train(was_training)
    return table


# --- results ---------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class UnitExamples(Summarized):
    """One unit's best images: values, where the unit fired, the images and the field crops."""

    unit: Unit
    score: str  # how an image was scored, e.g. "spatial max" (for labels and JSON)
    values: torch.Tensor  # (n,) best first
    indices: torch.Tensor  # (n,) int64, into the mined images
    locations: torch.Tensor | None  # (n, 2) row, col in the layer's map; None when not spatial
    windows: torch.Tensor  # (n, 4) top, left, bottom, right input window (unclipped, half-open)
    images: torch.Tensor  # (n, C, H, W) pixel space
    crops: torch.Tensor  # (n, C, rh, rw) the receptive field; padded with the background value
    crop_mask: torch.Tensor  # (n, rh, rw) bool: True inside the image, False on the padding
    labels: torch.Tensor | None = None  # (n,) class labels of the images, when known

    @property
    def name(self) -> str:
        return str(self.unit)

    def to_record(self) -> dict[str, Any]:
        u = self.unit
        return {
            "unit": str(u),
            "kind": u.kind,
            "layer": u.layer,
            "channel": u.channel,
            "position": list(u.position) if u.position is not None else None,
            "score": self.score,
            "values": [_finite(v) for v in self.values.tolist()],
            "indices": self.indices.tolist(),
            "labels": self.labels.tolist() if self.labels is not None else None,
            "locations": self.locations.tolist() if self.locations is not None else None,
            "windows": self.windows.tolist(),
            "crop_size": list(self.crops.shape[-2:]),
        }


def _finite(v: float) -> float | None:
    return v if v == v and abs(v) != float("inf") else None


@dataclass(frozen=True, repr=False)
class ExamplesResult(Pictured):
    """Per unit, the top-k (or bottom-k) images of a dataset, with the mergeable table behind it."""

    examples: tuple[UnitExamples, ...]
    k: int
    bottom: bool
    split: str  # "val", "train", "all", or "images" when a tensor was given
    source: str  # dataset name, or "tensor"
    num_images: int
    topk: TopK = field(repr=False)  # rows in unit order; merge shards here, then rebuild
    train_size: int | None = None  # split "all": indices >= train_size are validation images
    class_names: tuple[str, ...] = ()

    @property
    def units(self) -> list[Unit]:
        return [e.unit for e in self.examples]

    @property
    def layers(self) -> list[str]:
        return list(dict.fromkeys(e.unit.layer for e in self.examples))

    def for_layer(self, layer: str) -> list[UnitExamples]:
        return [e for e in self.examples if e.unit.layer == layer]

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[UnitExamples]:
        return iter(self.examples)

    def __getitem__(self, key: int | str | Unit) -> UnitExamples:
        if isinstance(key, int):
            return self.examples[key]
        for e in self.examples:
            if e.unit == key or str(e.unit) == key:
                return e
        raise UnitError(f"unit {key!s} was not mined; mined units: {self.examples[0].name} ...")

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per unit (values, image indices, labels, locations, windows)."""
        return [e.to_record() for e in self.examples]

    def to_dict(self) -> dict[str, Any]:
        """The whole result as JSON-ready data: what was mined, how, and the per-unit records."""
        return {
            "source": self.source,
            "split": self.split,
            "num_images": self.num_images,
            "train_size": self.train_size,
            "k": self.k,
            "bottom": self.bottom,
            "class_names": list(self.class_names),
            "units": self.to_records(),
        }


def _split_images(
    dataset: Dataset | torch.Tensor, split: str
) -> tuple[torch.Tensor, torch.Tensor | None, str, str, int | None, tuple[str, ...]]:
    """(images, labels, split, source, train_size, class names) for what :func:`examples` mines."""
    if isinstance(dataset, torch.Tensor):
        return dataset, None, "images", "tensor", None, ()
    if not isinstance(dataset, Dataset):
        raise DataError(f"need a Dataset or a tensor of images, got {type(dataset).__name__}")
    names = tuple(dataset.class_names)
    if split == "val":
        return dataset.x_val, dataset.y_val, split, dataset.name, None, names
    if split == "train":
        return dataset.x_train, dataset.y_train, split, dataset.name, None, names
    if split == "all":
        x = torch.cat([dataset.x_train, dataset.x_val])
        y = torch.cat([dataset.y_train, dataset.y_val])
        return x, y, split, dataset.name, len(dataset.x_train), names
    raise DataError(f"unknown split {split!r}; use one of: {', '.join(SPLITS)}")


def _score_name(unit: Unit, spatial: bool, bottom: bool) -> str:
    if unit.kind == "class":
        return "logit (pre-softmax)"
    if bottom:
        spatial_min = unit.kind == "channel" and spatial
        return "spatial min of the pre-activation" if spatial_min else "pre-activation"
    return "spatial max" if unit.kind == "channel" and spatial else "value"


def background_value(lens: Lens, channels: int) -> torch.Tensor:
    """The pixel value the model's zero padding stands for (the normalization mean)."""
    mean = list(lens.spec.mean)
    if len(mean) != channels:
        mean = (mean * channels)[:channels]
    return torch.tensor(mean, dtype=torch.float32).view(channels, 1, 1)


def build_result(
    lens: Lens,
    units: Sequence[Unit],
    table: TopK,
    images: torch.Tensor,
    *,
    labels: torch.Tensor | None = None,
    split: str = "images",
    source: str = "tensor",
    train_size: int | None = None,
    class_names: Sequence[str] = (),
) -> ExamplesResult:
    """Turn a (possibly merged) table into per-unit images, locations and field crops."""
    table = table.to("cpu")
    background = background_value(lens, lens.spec.channels)
    out = []
    for u, unit in enumerate(units):
        info = lens.layer(unit.layer)
        idx = table.indices[u]
        imgs = images[idx].float().cpu()
        spatial = info.is_spatial and unit.kind != "class" and info.rf is not None
        locations = torch.stack([table.rows[u], table.cols[u]], 1) if spatial else None
        rf = info.rf if spatial else None
        crops, mask, windows = field_crops(imgs, rf, locations, background)
        out.append(
            UnitExamples(
                unit=unit,
                score=_score_name(unit, spatial, not table.largest),
                values=table.values[u].clone(),
                indices=idx.clone(),
                locations=locations,
                windows=windows,
                images=imgs,
                crops=crops,
                crop_mask=mask,
                labels=labels[idx].clone() if labels is not None else None,
            )
        )
    return ExamplesResult(
        examples=tuple(out),
        k=table.k,
        bottom=not table.largest,
        split=split,
        source=source,
        num_images=len(images),
        topk=table,
        train_size=train_size,
        class_names=tuple(class_names),
    )


def field_crops(
    imgs: torch.Tensor,
    rf: Any,
    locations: torch.Tensor | None,
    background: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Receptive-field crops of a unit's images, all of the field's size (padded at borders)."""
    n, c, height, width = imgs.shape
    if rf is None or locations is None:  # not spatial: the whole image is the field
        windows = torch.tensor([[0, 0, height, width]] * n, dtype=torch.int64).view(n, 4)
        return imgs.clone(), torch.ones(n, height, width, dtype=torch.bool), windows
    rh, rw = rf.size
    crops = background.expand(c, rh, rw).repeat(n, 1, 1, 1)
    mask = torch.zeros(n, rh, rw, dtype=torch.bool)
    windows = torch.zeros(n, 4, dtype=torch.int64)
    for j, (i, jj) in enumerate(locations.tolist()):
        top, left, bottom, right = rf.window(i, jj)
        ct, cl, cb, cr = rf.clipped_window(i, jj, height, width)
        windows[j] = torch.tensor([top, left, bottom, right])
        if cb > ct and cr > cl:
            crops[j, :, ct - top : cb - top, cl - left : cr - left] = imgs[j, :, ct:cb, cl:cr]
            mask[j, ct - top : cb - top, cl - left : cr - left] = True
    return crops, mask, windows


def examples(
    lens: Lens,
    units: str | Unit | Sequence[str | Unit],
    dataset: Dataset | torch.Tensor | str | None = None,
    *,
    k: int = 9,
    bottom: bool = False,
    split: Split = "val",
    batch_size: int = 256,
    progress: bool | None = None,
    executor: Any = None,
) -> ExamplesResult:
    """The k real images that excite each unit most, found in one streaming pass.

    ``units``: a unit string (``"conv2d_2:*"``) or a list of Units. ``dataset``: a Dataset
    (``split`` picks val, train or all = train then val), a tensor of pixel-space images, a
    dataset name, or None for the checkpoint's own data and split (as :func:`render` does).
    ``bottom=True`` ranks by the most negative pre-activation instead. For each unit the result
    holds the k values, image indices, max locations, the images and the receptive-field crops
    of the neuron that fired (padded with the background value where the field leaves the image).
    ``executor`` (a :class:`convlens.distributed.Executor`): mine in shards of whole batches,
    in this process or on Ray workers that read their own shard; the table is the same.
    """
    if k < 1:
        raise DataError(f"k must be at least 1, got {k}")
    chosen = as_units(lens, units)
    if dataset is None or isinstance(dataset, str):
        dataset = dataset_for(lens, dataset)
    images, labels, split_name, source, train_size, names = _split_images(dataset, split)
    images = check_images(lens, images)
    if executor is None:
        table = mine(lens, chosen, images, k=k, bottom=bottom, batch_size=batch_size,
                     progress=progress)  # fmt: skip
    else:
        table = executor.mine(
            lens, chosen, images, dataset=dataset if isinstance(dataset, Dataset) else None,
            split=split_name, k=k, bottom=bottom, batch_size=batch_size, progress=progress,
        )  # fmt: skip
    return build_result(
        lens, chosen, table, images, labels=labels, split=split_name, source=source,
        train_size=train_size, class_names=names or lens.class_names,
    )  # fmt: skip
