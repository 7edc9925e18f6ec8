"""``shards:DIR``: a dataset kept as a folder of many shard files, the way large datasets are.

Layout: ``DIR/train/*.npz`` and optionally ``DIR/test/*.npz`` (an official test split; without
it a stratified share of train is held out), each file holding ``x`` (uint8 images, N x H x W,
N x H x W x C or N x C x H x W) and ``y`` (integer labels), taken in file-name order; an
optional ``DIR/classes.txt`` names the classes, one per line. Loading whole concatenates every
file; a scale-out worker (:mod:`convlens.data.source`) opens only the files of its range.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from convlens.data.dataset import RawSplits, as_labels, default_class_names
from convlens.data.npz import to_nchw
from convlens.data.registry import register_dataset
from convlens.data.source import NpyMember, SourceSpec, records_opener
from convlens.errors import DataError

PARTS = ("train", "test")


class ShardFolder:
    """The shard files of each part, their record counts (from the .npy headers) and labels."""

    def __init__(self, root: Path) -> None:
        if not (root / "train").is_dir():
            raise DataError(
                f"{root} has no train/ folder; shards:DIR needs DIR/train/*.npz "
                "(and optionally DIR/test/*.npz), each with arrays x and y"
            )
        self.root = root
        self.name = f"shards:{root}"
        self.files: dict[str, list[Path]] = {}
        self.members: dict[str, list[NpyMember]] = {}
        self._y: dict[str, np.ndarray] = {}
        for part in PARTS:
            folder = root / part
            if not folder.is_dir():
                continue
            files = sorted(p for p in folder.glob("*.npz") if not p.name.startswith("."))
            if not files:
                raise DataError(f"{folder} has no .npz shard files; add some or remove it")
            members, labels = [], []
            for path in files:
                member, y = _open_shard(path)
                members.append(member)
                labels.append(y)
            self.files[part], self.members[part] = files, members
            self._y[part] = np.concatenate(labels)
        self.parts = tuple(p for p in PARTS if p in self.files)
        self.class_names = _class_names(root, *self._y.values())
        self._starts = {
            part: np.cumsum([0] + [len(m) for m in members[:-1]])
            for part, members in self.members.items()
        }

    def labels(self, part: str) -> np.ndarray:
        return self._y[part]

    def read(self, part: str, idx: np.ndarray) -> np.ndarray:
        """Pixels of records ``idx`` of ``part``: only the shard files that hold them are read."""
        starts = self._starts[part]
        which = np.searchsorted(starts, idx, side="right") - 1
        out: np.ndarray | None = None
        for f in np.unique(which):
            rows = np.flatnonzero(which == f)
            member = self.members[part][int(f)]
            local, where = idx[rows] - starts[f], str(self.files[part][int(f)])
            if member.rowwise:
                pixels = to_nchw(member.rows(local), where)
            else:  # float pixels are scaled by the whole file's range, as when loading whole
                pixels = to_nchw(member.whole(), where)[local]
            if out is None:
                out = np.empty((len(idx), *pixels.shape[1:]), dtype=np.uint8)
            elif pixels.shape[1:] != out.shape[1:]:
                raise DataError(
                    f"{self.files[part][int(f)]}: images are {pixels.shape[1:]}, other shards "
                    f"{out.shape[1:]}; every shard must hold images of one size"
                )
            out[rows] = pixels
        if out is None:
            return np.zeros((0, 1, 1, 1), dtype=np.uint8)
        return out


def _open_shard(path: Path) -> tuple[NpyMember, np.ndarray]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
        if {"x.npy", "y.npy"} - names:
            raise DataError(
                f"{path} lacks x or y; save each shard with np.savez(path, x=..., y=...)"
            )
        member = NpyMember(path, "x.npy")
        with np.load(path, allow_pickle=False) as archive:
            y = as_labels(archive["y"], f"{path}:y")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path} is not a readable .npz shard ({reason})") from None
    if len(member) != len(y):
        raise DataError(f"{path} has {len(member)} images but {len(y)} labels")
    return member, y


def _class_names(root: Path, *labels: np.ndarray) -> tuple[str, ...]:
    listing = root / "classes.txt"
    if not listing.is_file():
        return default_class_names(*labels)
    names = tuple(line.strip() for line in listing.read_text().splitlines() if line.strip())
    if not names:
        raise DataError(f"{listing} is empty; write one class name per line or remove it")
    return names


@register_dataset("shards:DIR")
def load_shards(arg: str, /, *, size: int | None) -> RawSplits:
    folder = ShardFolder(Path(arg).expanduser().resolve())

    def whole(part: str) -> np.ndarray:
        return folder.read(part, np.arange(len(folder.labels(part))))

    has_test = "test" in folder.parts
    return RawSplits(
        name=folder.name,
        x=whole("train"),
        y=folder.labels("train"),
        class_names=folder.class_names,
        x_val=whole("test") if has_test else None,
        y_val=folder.labels("test") if has_test else None,
    )


@records_opener("shards")
def _records(arg: str, spec: SourceSpec) -> ShardFolder:
    return ShardFolder(Path(arg).expanduser().resolve())
