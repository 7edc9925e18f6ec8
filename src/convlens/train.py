"""Training and evaluation of zoo models, with progress and per-epoch snapshots.

Kept deliberately plain (Adam, cross-entropy, no augmentation): the aim is the classic blog
models, trained reproducibly, not state-of-the-art accuracy.

Safe to run against a user's folders: the output folder is checked before any work (writable,
empty, or an earlier checkpoint with ``overwrite``); training that diverges (a NaN or infinite
loss or weight) stops at once; and a checkpoint is published only when training succeeded.
Snapshots are kept in a hidden staging folder until then, so a failed or interrupted run leaves
the folder as it was (an earlier checkpoint in it intact).

Torch is imported inside the functions: ``convlens.train`` is imported with the package, and
``convlens --help`` must not pay for torch.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .display.base import Summarized
from .errors import DataError, OutputError, TrainingError
from .progress import bar as progress_bar
from .progress import write

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .data import Dataset
    from .lens import InputSpec

# What a checkpoint folder may hold; anything else in it belongs to someone else.
CHECKPOINT_PARTS = ("config.json", "model.safetensors", "snapshots", "cache")
STAGING_PREFIX = ".train-"


@dataclass(repr=False)
class TrainResult(Summarized):
    model: nn.Module
    history: list[dict[str, float]]
    folder: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def val_accuracy(self) -> float:
        return self.history[-1]["val_acc"] if self.history else float("nan")


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (eval mode) on pixel-space images."""
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            logits = model(x[i : i + batch_size])
            target = y[i : i + batch_size]
            total_loss += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
    model.train(was_training)
    n = max(len(x), 1)
    return total_loss / n, correct / n


def check_hyperparameters(epochs: int, batch_size: int, lr: float) -> None:
    """One line for settings training cannot run with (before any data is loaded)."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TrainingError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        raise TrainingError(f"the learning rate must be a positive finite number, got {lr!r}")


def fit(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool | None = True,
    on_epoch: Callable[[int, nn.Module, dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train in place with Adam; returns one history record per epoch.

    Raises :class:`TrainingError` as soon as the loss or, after an epoch, any weight is not
    finite: a diverged model is of no use, and nothing more is computed or written.
    """
    import torch
    import torch.nn.functional as F

    check_hyperparameters(epochs, batch_size, lr)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    n = len(data.x_train)
    steps = (n + batch_size - 1) // batch_size
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator)
        loss_sum, correct = 0.0, 0
        bar = progress_bar(
            steps, desc=f"epoch {epoch}/{epochs}", unit="batch", progress=progress, line=False
        )  # the epoch line below says it all
        try:
            for step in range(steps):
                idx = order[step * batch_size : (step + 1) * batch_size]
                xb, yb = data.x_train[idx], data.y_train[idx]
                logits = model(xb)
                loss = F.cross_entropy(logits, yb)
                value = loss.item()
                if not math.isfinite(value):
                    raise _diverged(f"the loss is {value}", epoch, step + 1, lr)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += value * len(idx)
                correct += (logits.argmax(1) == yb).sum().item()
                if step % 10 == 0:
                    bar.set_postfix_str(f"loss={value:.3f}")
                bar.update(1)
        finally:
            bar.close()
        state = model.state_dict().items()
        bad = next((k for k, p in state if p.is_floating_point() and not p.isfinite().all()), None)
        if bad is not None:
            raise _diverged(f"weight {bad} is not finite", epoch, steps, lr)
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val)
        record = {
            "epoch": epoch,
            "loss": loss_sum / n,
            "train_acc": correct / n,
            "val_loss": val_loss,
            "val_acc": val_acc,
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        if progress is not False:
            write(
                f"epoch {epoch}/{epochs}  loss {record['loss']:.4f}  train acc "
                f"{record['train_acc']:.4f}  val acc {val_acc:.4f}  ({record['seconds']:.1f} s)"
            )
        if on_epoch is not None:
            on_epoch(epoch, model, record)
    model.eval()
    return history


def _diverged(what: str, epoch: int, step: int, lr: float) -> TrainingError:
    return TrainingError(
        f"training diverged at epoch {epoch}, batch {step}: {what} (learning rate {lr:g}); "
        "no checkpoint was written: try a smaller --lr"
    )


def input_spec_for(data: Dataset) -> InputSpec:
    from .lens import InputSpec

    return InputSpec(
        channels=data.channels,
        height=data.height,
        width=data.width,
        value_range=(0.0, 1.0),
        class_names=tuple(data.class_names),
    )


def prepare_folder(out: str | Path, *, overwrite: bool = False) -> Path:
    """Check a checkpoint folder before training into it (nothing is written yet).

    The folder must be writable and empty, or, with ``overwrite``, hold only an earlier
    checkpoint (whose parts, old snapshots included, are replaced when training succeeds).
    """
    from .fileio import check_output

    folder = check_output(out, kind="dir")
    if not folder.is_dir():
        return folder
    entries = sorted(p.name for p in folder.iterdir() if not _staging(p))
    if not entries:
        return folder
    foreign = [name for name in entries if name not in CHECKPOINT_PARTS]
    if foreign:
        raise OutputError(
            f"{folder} is not empty and not a checkpoint (it holds {foreign[0]!r}"
            f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); choose a new or "
            "empty --out folder"
        )
    if not overwrite:
        raise OutputError(
            f"{folder} already holds a checkpoint; pass --overwrite to replace it (its snapshots "
            "and caches too), or choose another --out folder"
        )
    return folder


def _staging(path: Path) -> bool:
    """A hidden folder where an earlier, killed run kept its snapshots (ours to remove)."""
    return path.name.startswith(STAGING_PREFIX) and path.is_dir()


def train(
    model_name: str = "kaggle4",
    data: str | Dataset = "mnist",
    *,
    out: str | Path | None = None,
    epochs: int = 8,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    snapshots: bool = False,
    limit: int | None = None,
    size: int | None = None,
    progress: bool | None = True,
    overwrite: bool = False,
) -> TrainResult:
    """Train a zoo model on a dataset and (with ``out``) write a checkpoint folder.

    ``overwrite``: replace an earlier checkpoint in ``out`` (otherwise a non-empty folder is
    refused before any work). The folder is written only when training succeeded.
    """
    import torch

    from .data import Dataset, load_dataset
    from .models.zoo import build_model

    check_hyperparameters(epochs, batch_size, lr)
    folder = prepare_folder(out, overwrite=overwrite) if out is not None else None
    dataset = data if isinstance(data, Dataset) else load_dataset(data, size=size, limit=limit)
    if dataset.height != dataset.width:
        raise DataError(
            f"{dataset.name} has {dataset.width}x{dataset.height} images; zoo models take "
            "square images: pass --size"
        )
    torch.manual_seed(seed)
    arch_args = {
        "in_channels": dataset.channels,
        "image_size": dataset.height,
        "num_classes": len(dataset.class_names),
    }
    model = build_model(model_name, **arch_args)
    staging: list[Path] = []  # the hidden folder holding this run's snapshots, once made

    def keep_snapshot(epoch: int, m: nn.Module, _record: dict[str, float]) -> None:
        from .models.checkpoint import save_weights, snapshot_path

        if folder is None or not snapshots:
            return
        if not staging:
            staging.append(_make_staging(folder))
        save_weights(m, snapshot_path(staging[0], epoch))

    created = folder is not None and not folder.exists()
    try:
        history = fit(
            model, dataset, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
            progress=progress, on_epoch=keep_snapshot,
        )  # fmt: skip
        if folder is not None:
            settings = {"seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr}
            _publish(folder, staging[0] if staging else None, model, model_name, arch_args,
                     dataset, history, **settings)  # fmt: skip
    except BaseException:
        if created and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        for path in staging:
            shutil.rmtree(path, ignore_errors=True)
    return TrainResult(model=model, history=history, folder=folder)


def _make_staging(folder: Path) -> Path:
    from .fileio import ensure_dir, output_errors

    ensure_dir(folder)
    with output_errors(folder):
        return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))


def _publish(
    folder: Path,
    staging: Path | None,
    model: nn.Module,
    model_name: str,
    arch_args: dict[str, Any],
    dataset: Dataset,
    history: list[dict[str, float]],
    **settings: Any,
) -> None:
    """Replace the folder's checkpoint parts by this run's: the old config goes first (a folder
    without a config is no checkpoint), then old snapshots and caches; the config comes last."""
    from .fileio import ensure_dir, output_errors
    from .models.checkpoint import SNAPSHOTS, save_checkpoint

    ensure_dir(folder)
    with output_errors(folder):
        (folder / "config.json").unlink(missing_ok=True)
        for name in ("snapshots", "cache"):
            if (folder / name).is_dir():
                shutil.rmtree(folder / name)
        for old in folder.iterdir():
            if _staging(old) and old != staging:
                shutil.rmtree(old, ignore_errors=True)
        if staging is not None and (staging / SNAPSHOTS).is_dir():
            (staging / SNAPSHOTS).rename(folder / SNAPSHOTS)
    save_checkpoint(
        folder,
        model,
        architecture=model_name,
        arch_args=arch_args,
        input_spec=input_spec_for(dataset).to_dict(),
        history=history,
        data={
            "name": dataset.name,
            "split_seed": dataset.split_seed,
            "train_size": len(dataset.x_train),
            "val_size": len(dataset.x_val),
            **settings,
        },
    )
