"""Training and evaluation of zoo models, with progress and per-epoch snapshots.

Kept deliberately plain (Adam, cross-entropy, no augmentation): the aim is the classic blog
models, trained reproducibly, not state-of-the-art accuracy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .data import Dataset, load_dataset
from .display.base import Summarized
from .lens import InputSpec
from .models.checkpoint import save_checkpoint, save_weights, snapshot_path
from .models.zoo import build_model
from .progress import bar as progress_bar
from .progress import write


@dataclass(repr=False)
class TrainResult(Summarized):
    model: nn.Module
    history: list[dict[str, float]]
    folder: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def val_accuracy(self) -> float:
        return self.history[-1]["val_acc"] if self.history else float("nan")


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1000
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (eval mode) on pixel-space images."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size])
        target = y[i : i + batch_size]
        total_loss += F.cross_entropy(logits, target, reduction="sum").item()
        correct += (logits.argmax(1) == target).sum().item()
    model.train(was_training)
    n = max(len(x), 1)
    return total_loss / n, correct / n


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
    """Train in place with Adam; returns one history record per epoch."""
    if epochs < 1:
        raise ValueError("epochs must be at least 1")
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
        for step in range(steps):
            idx = order[step * batch_size : (step + 1) * batch_size]
            xb, yb = data.x_train[idx], data.y_train[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == yb).sum().item()
            if step % 10 == 0:
                bar.set_postfix_str(f"loss={loss.item():.3f}")
            bar.update(1)
        bar.close()
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


def input_spec_for(data: Dataset) -> InputSpec:
    return InputSpec(
        channels=data.channels,
        height=data.height,
        width=data.width,
        value_range=(0.0, 1.0),
        class_names=tuple(data.class_names),
    )


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
) -> TrainResult:
    """Train a zoo model on a dataset and (with ``out``) write a checkpoint folder."""
    dataset = data if isinstance(data, Dataset) else load_dataset(data, size=size, limit=limit)
    torch.manual_seed(seed)
    arch_args = {
        "in_channels": dataset.channels,
        "image_size": dataset.height,
        "num_classes": len(dataset.class_names),
    }
    if dataset.height != dataset.width:
        raise ValueError("zoo models take square images; pass --size")
    model = build_model(model_name, **arch_args)
    folder = Path(out) if out is not None else None

    def keep_snapshot(epoch: int, m: nn.Module, _record: dict[str, float]) -> None:
        if folder is not None and snapshots:
            save_weights(m, snapshot_path(folder, epoch))

    history = fit(
        model, dataset, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        progress=progress, on_epoch=keep_snapshot,
    )  # fmt: skip
    if folder is not None:
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
                "seed": seed,
                "epochs": epochs,
                "batch_size": batch_size,
                "lr": lr,
            },
        )
    return TrainResult(model=model, history=history, folder=folder)
