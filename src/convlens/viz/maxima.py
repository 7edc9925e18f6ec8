"""Dataset maxima: the largest activation of every unit over real images (the verification bar).

A rendered unit is judged by two ratios against the validation images: r_peak = the largest value
of its map / the largest such peak over the images, and r_mean = the spatial mean of its map /
the largest spatial mean over the images (the classic objective); r >= 1 means the picture beats
every real image. The same pass keeps, per conv channel, the mean receptive-field crop of its
top-9 real images: the reference a render's own crop is compared with (its *match*). One batched,
no-grad pass computes the maxima of all conv and dense layers at once; the result is cached in
the checkpoint folder under a key made of the weights and the data, so another snapshot, model
or dataset never reuses a stale file. Channels whose maximum is <= 0 are *dead*: no real image
ever switches them on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..data import Dataset, load_dataset
from ..display.base import Summarized
from ..errors import DataError
from ..lens import Lens
from ..units import UNIT_LAYER_KINDS
from .cache import cache_file, load_tensors, save_tensors
from .examples import TopK, background_value, field_crops

CACHE_VERSION = "2"
MATCH_K = 9
"""Real images per channel whose mean receptive-field crop a render is matched against."""


@dataclass(frozen=True, repr=False)
class Maxima(Summarized):
    """Per-layer maxima over ``images`` real images of ``dataset``.

    ``channel[layer]``: (C,) largest value anywhere in each channel's map (a dense layer: (F,)
    per feature). ``neuron[layer]``: (C, H, W) largest value of each position (dense: (F,)).
    ``channel_mean[layer]``: (C,) largest spatial mean of each channel's map (dense: the value).
    ``crops[layer]``: (C, c, rh, rw) conv layers only: the mean receptive-field crop, around the
    strongest position, of each channel's top-:data:`MATCH_K` images (background-padded).
    """

    dataset: str
    images: int
    channel: dict[str, torch.Tensor]
    neuron: dict[str, torch.Tensor]
    channel_mean: dict[str, torch.Tensor] = field(default_factory=dict)
    crops: dict[str, torch.Tensor] = field(default_factory=dict)

    def dead(self, layer: str) -> list[int]:
        """Channels (features) of ``layer`` that no real image drives above zero."""
        return [int(i) for i in torch.nonzero(self.channel[layer] <= 0).flatten()]

    def live(self, layer: str) -> list[int]:
        return [int(i) for i in torch.nonzero(self.channel[layer] > 0).flatten()]

    def summary(self) -> dict[str, dict[str, int]]:
        return {
            layer: {"channels": int(v.numel()), "dead": len(self.dead(layer))}
            for layer, v in self.channel.items()
        }


def default_dataset(lens: Lens) -> tuple[str, int]:
    """The dataset (name, split seed) the checkpoint was trained on, from its config."""
    data = (lens.source.get("config") or {}).get("data") or {}
    name = data.get("name")
    if not name:
        raise DataError(
            "the model does not record its training data; pass a dataset (e.g. data='mnist')"
        )
    return str(name), int(data.get("split_seed", 0))


def dataset_maxima(
    lens: Lens,
    layers: Sequence[str] | None = None,
    dataset: str | Dataset | None = None,
    *,
    batch_size: int = 250,
    cache: bool = True,
) -> Maxima:
    """Largest activation of every channel and neuron of ``layers`` over the validation images.

    ``layers``: default every conv and dense layer; ``dataset``: a name (``"mnist"``), a loaded
    :class:`Dataset`, or None for the checkpoint's own training data. Cached in
    ``lens.path / "cache"`` when the Lens has a folder.
    """
    all_layers = [info.name for info in lens.layers if info.kind in UNIT_LAYER_KINDS]
    wanted = [lens.layer(name).name for name in layers] if layers else all_layers
    extra = [name for name in wanted if name not in all_layers]
    compute = all_layers + extra

    if isinstance(dataset, Dataset):
        data: Dataset | None = dataset
        name, key_data = dataset.name, _tensor_digest(dataset.x_val)
    else:
        if dataset is None:
            name, split_seed = default_dataset(lens)
        else:
            name, split_seed = dataset, _split_seed(lens, dataset)
        data, key_data = None, f"{name}|split{split_seed}"
    key = hashlib.sha256(
        f"{CACHE_VERSION}|{_weights_digest(lens)}|{key_data}|{','.join(compute)}".encode()
    ).hexdigest()[:16]
    path = cache_file(lens, "maxima", name, key) if cache else None
    if path is not None and path.exists():
        try:
            return _subset(_load(path), wanted)
        except Exception:
            pass
    if data is None:
        from ..data.for_model import check_fits

        data = load_dataset(name, split_seed=split_seed, size=lens.spec.height)
        check_fits(data, lens)
    maxima = compute_maxima(lens, data.x_val, compute, dataset=data.name, batch_size=batch_size)
    if path is not None:
        _save(path, maxima)
    return _subset(maxima, wanted)


@torch.no_grad()
def compute_maxima(
    lens: Lens, x: torch.Tensor, layers: Sequence[str], *, dataset: str = "", batch_size: int = 250
) -> Maxima:
    """Maxima of ``layers`` over images ``x`` (pixel space), in batches, one pass for all."""
    if len(x) == 0:
        raise DataError("no images to compute dataset maxima from")
    neuron: dict[str, torch.Tensor] = {}
    means: dict[str, torch.Tensor] = {}
    tops: dict[str, TopK] = {}
    for start in range(0, len(x), batch_size):
        acts = lens.forward(x[start : start + batch_size].to(lens.device), layers)
        for layer, a in acts.items():
            a = a.float()
            m = a.amax(0).cpu()
            neuron[layer] = m if layer not in neuron else torch.maximum(neuron[layer], m)
            mean = (a.flatten(2).mean(2) if a.dim() > 2 else a).amax(0).cpu()
            means[layer] = mean if layer not in means else torch.maximum(means[layer], mean)
            if a.dim() == 4 and lens.layer(layer).rf is not None:
                flat = a.flatten(2)
                values, where = flat.max(2)
                table = tops.setdefault(layer, TopK.empty(a.shape[1], MATCH_K))
                index = torch.arange(start, start + a.shape[0])
                width = a.shape[3]
                table.update(
                    values.T.cpu(), index, (where // width).T.cpu(), (where % width).T.cpu()
                )
    channel = {k: (v.flatten(1).amax(1) if v.dim() > 1 else v.clone()) for k, v in neuron.items()}
    background = background_value(lens, lens.spec.channels)
    crops = {}
    for layer, table in tops.items():
        rf = lens.layer(layer).rf
        per_channel = []
        for ch in range(table.num_units):
            locations = torch.stack([table.rows[ch], table.cols[ch]], 1)
            imgs = x[table.indices[ch]].float().cpu()
            cut, _mask, _windows = field_crops(imgs, rf, locations, background)
            per_channel.append(cut.mean(0))
        crops[layer] = torch.stack(per_channel)
    return Maxima(
        dataset=dataset, images=len(x), channel=channel, neuron=neuron, channel_mean=means,
        crops=crops,
    )  # fmt: skip


def _split_seed(lens: Lens, name: str) -> int:
    try:
        trained, seed = default_dataset(lens)
    except DataError:
        return 0
    return seed if trained == name else 0


def _subset(maxima: Maxima, layers: Sequence[str]) -> Maxima:
    return Maxima(
        dataset=maxima.dataset,
        images=maxima.images,
        channel={k: maxima.channel[k] for k in layers},
        neuron={k: maxima.neuron[k] for k in layers},
        channel_mean={k: maxima.channel_mean[k] for k in layers if k in maxima.channel_mean},
        crops={k: maxima.crops[k] for k in layers if k in maxima.crops},
    )


def _weights_digest(lens: Lens) -> str:
    h = hashlib.sha256()
    for name, tensor in lens.model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _tensor_digest(x: torch.Tensor) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()


def _save(path: Path, maxima: Maxima) -> None:
    tensors = {f"channel/{k}": v for k, v in maxima.channel.items()}
    tensors.update({f"neuron/{k}": v for k, v in maxima.neuron.items()})
    tensors.update({f"mean/{k}": v for k, v in maxima.channel_mean.items()})
    tensors.update({f"crops/{k}": v for k, v in maxima.crops.items()})
    meta = {"dataset": maxima.dataset, "images": str(maxima.images), "version": CACHE_VERSION}
    save_tensors(path, tensors, meta)  # a read-only checkpoint folder: no cache, same results


def _load(path: Path) -> Maxima:
    tensors, meta = load_tensors(path)

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k.split("/", 1)[1]: v for k, v in tensors.items() if k.startswith(prefix + "/")}

    if meta.get("version") != CACHE_VERSION:
        raise ValueError("stale maxima cache")  # recomputed by the caller
    return Maxima(
        meta.get("dataset", ""), int(meta.get("images", 0)), part("channel"), part("neuron"),
        part("mean"), part("crops"),
    )  # fmt: skip
