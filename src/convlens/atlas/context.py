"""What every stage of a build shares: the Lens, the data, the options, and how to write files.

Expensive shared inputs (the dataset, the sample images, per-unit statistics, snapshot Lenses)
are computed lazily and at most once per build, so a resumed build pays only for what its
unfinished stages need.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from PIL import Image

from ..data import Dataset
from ..images import save_figure, save_png
from ..lens import Lens
from ..units import UNIT_LAYER_KINDS  # conv, dense and residual blocks
from .options import AtlasOptions
from .sprites import tile_refs, write_sprite


@dataclass
class BuildContext:
    """Shared state of one atlas build (one instance per :func:`build_atlas` call)."""

    lens: Lens
    out: Path
    options: AtlasOptions
    data_spec: str | None = None
    dataset_override: Dataset | None = None
    progress: bool = True
    executor: Any = None  # where render chunks and mining shards run (convlens.distributed)
    bar: Any = None  # the current stage's tqdm bar (or None)
    _snapshots: dict[int, Lens] = field(default_factory=dict, repr=False)

    # --- data ----------------------------------------------------------------------------
    @cached_property
    def dataset(self) -> Dataset:
        """The dataset to mine: given, named (``--data``), or the one the checkpoint trained on."""
        if self.dataset_override is not None:
            return self.dataset_override
        from ..data import dataset_for

        return dataset_for(self.lens, self.data_spec)

    @property
    def data_name(self) -> str:
        return self.dataset.name

    @cached_property
    def samples(self) -> list[tuple[int, int]]:
        """(class, validation index) of the sample images of each class, seeded, class order."""
        y = self.dataset.y_val
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(self.options.seed))
        picked: list[tuple[int, int]] = []
        for c in range(self.lens.num_classes):
            hits = [int(i) for i in order if int(y[i]) == c][: self.options.samples_per_class]
            picked.extend((c, i) for i in hits)
        return picked

    @cached_property
    def unit_stats(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per unit layer: mean activation, peak, share of validation images it fires on.

        One no-grad pass over the validation images. A unit whose peak is <= 0 never fires:
        it is *dead*, and later stages skip what would only show noise for it.
        """
        lens, x = self.lens, self.dataset.x_val
        size = self.options.batch_size
        sums: dict[str, torch.Tensor] = {}
        peaks: dict[str, torch.Tensor] = {}
        fires: dict[str, torch.Tensor] = {}
        with self.no_grad_eval():
            for start in range(0, len(x), size):
                maps = lens.forward(x[start : start + size].to(lens.device), self.unit_layers)
                for name, t in maps.items():
                    flat = t.detach().float().flatten(2) if t.dim() == 4 else t.detach()[..., None]
                    peak = flat.amax(2)
                    mean = flat.mean(2).sum(0).cpu()
                    top = peak.amax(0).cpu()
                    sums[name] = sums[name] + mean if name in sums else mean
                    peaks[name] = torch.maximum(peaks[name], top) if name in peaks else top
                    count = (peak > 0).sum(0).cpu()
                    fires[name] = fires[name] + count if name in fires else count
        n = max(len(x), 1)
        return {
            name: {"mean": sums[name] / n, "max": peaks[name], "active": fires[name].float() / n}
            for name in sums
        }

    def live_units(self, layer: str) -> list[int]:
        """The shown units of ``layer`` that fire on at least one validation image."""
        peak = self.unit_stats[layer]["max"]
        return [i for i in self.unit_indices(layer) if float(peak[i]) > 0.0]

    # --- units ---------------------------------------------------------------------------
    @cached_property
    def unit_layers(self) -> list[str]:
        """Layers with a page: conv layers and hidden dense layers (the logits are classes)."""
        if self.options.layers:
            return [self.lens.layer(name).name for name in self.options.layers]
        return [
            info.name
            for info in self.lens.layers
            if info.kind in UNIT_LAYER_KINDS
            and info.name not in (self.lens.logits_layer, self.lens.logits_source)
        ]

    def unit_indices(self, layer: str) -> list[int]:
        """The units of ``layer`` the atlas shows: all, or up to the option's limit, live units
        first (a small atlas of dead units shows nothing), in index order."""
        info = self.lens.layer(layer)
        limit = self.options.max_units if info.is_spatial else self.options.max_dense_units
        if not info.is_spatial and self.options.max_units is not None:
            limit = min(limit or self.options.max_units, self.options.max_units)
        n = info.channels
        if limit is None or limit >= n:
            return list(range(n))
        peak = self.unit_stats[layer]["max"]
        live = [i for i in range(n) if float(peak[i]) > 0.0]
        dead = [i for i in range(n) if float(peak[i]) <= 0.0]
        return sorted((live + dead)[:limit])

    def unit_spec(self, layer: str) -> str:
        idx = self.unit_indices(layer)
        if idx == list(range(idx[0], idx[-1] + 1)):
            return f"{layer}:{idx[0]}-{idx[-1]}"
        return ",".join(f"{layer}:{i}" for i in idx)

    # --- snapshots -----------------------------------------------------------------------
    def snapshot_lens(self, epoch: int) -> Lens:
        """The Lens with the weights kept after ``epoch``, sharing this Lens's layer table.

        Built by swapping the model rather than calling ``load(path, epoch=...)``: the layer
        table and receptive fields are the same for every epoch, and probing them again for
        each snapshot costs seconds per epoch.
        """
        if epoch not in self._snapshots:
            from ..models import load_checkpoint

            assert self.lens.path is not None
            model, _ = load_checkpoint(self.lens.path, epoch=epoch)
            model.to(self.lens.device)
            self._snapshots[epoch] = self.lens.with_model(model, epoch=epoch)
        return self._snapshots[epoch]

    # --- writing -------------------------------------------------------------------------
    def figure(
        self, fid: str, rel: str, fig: Figure | Image.Image, *, title: str, caption: str = ""
    ) -> dict[str, Any]:
        """Save a figure (matplotlib or PIL) atomically; return its ``figures`` fragment."""
        path = self.out / rel
        if isinstance(fig, Image.Image):
            save_png(fig, path)
            width, height = fig.size
        else:
            save_figure(fig, path)
            width = round(fig.get_figwidth() * fig.dpi)
            height = round(fig.get_figheight() * fig.dpi)
            with Image.open(path) as im:
                width, height = im.size
        return {fid: {"file": rel, "width": width, "height": height, "title": title,
                      "caption": caption}}  # fmt: skip

    def sprite(
        self, sid: str, rel: str, tiles: Any, **options: Any
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Write a sprite sheet; return its ``sprites`` fragment and its tile references."""
        entry, boxes = write_sprite(self.out, rel, tiles, **options)
        return {sid: entry}, tile_refs(sid, boxes)

    def tick(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    @contextlib.contextmanager
    def no_grad_eval(self) -> Iterator[None]:
        was = self.lens.model.training
        self.lens.model.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            self.lens.model.train(was)
