"""The schema of a checkpoint's ``config.json``: declared once, checked when a folder is opened.

A config is read from disk, so it is input like any other: every field has a type and bounds
(pydantic, strict JSON mode, no NaN), the zoo arguments must agree with the input spec, and a
converted model's layer graph is bounded in size. What passes here can be built without
surprises; what fails gets one line naming the field (``input_spec.channels: Input should be a
valid integer``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..errors import CheckpointError

FORMAT = "convlens-checkpoint"
VERSION = 1
MAX_SIDE = 4096  # input height and width, in pixels
MAX_CHANNELS = 64  # input channels
MAX_CLASSES = 100_000
MAX_NAME = 200  # characters of a class, layer or architecture name
MAX_NODES = 10_000  # layer nodes of a converted model's graph
MAX_NODE_INT = 1 << 24  # any integer argument of a graph node (channels, features, kernel ...)
MAX_PARAMETERS = 500_000_000  # weights of a model convlens will build (2 GB of float32)
MAX_SEED = 2**32 - 1

Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
Count = Annotated[int, Field(ge=0)]


class _Record(BaseModel):
    """Strict types, finite floats; unknown keys are kept (newer writers may add fields)."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="allow")


class InputSpecConfig(_Record):
    channels: int = Field(ge=1, le=MAX_CHANNELS)
    height: int = Field(ge=1, le=MAX_SIDE)
    width: int = Field(ge=1, le=MAX_SIDE)
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: list[float] = Field(default=[0.0], min_length=1, max_length=MAX_CHANNELS)
    std: list[Annotated[float, Field(gt=0)]] = Field(
        default=[1.0], min_length=1, max_length=MAX_CHANNELS
    )
    class_names: list[Name] = Field(min_length=1, max_length=MAX_CLASSES)

    @model_validator(mode="after")
    def _consistent(self) -> InputSpecConfig:
        lo, hi = self.value_range
        if not lo < hi:
            raise ValueError(f"value_range {[lo, hi]} must be [LOW, HIGH] with LOW < HIGH")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                raise ValueError(
                    f"{name} has {len(values)} values for {self.channels} channels (give 1 or "
                    f"{self.channels})"
                )
        if len(set(self.class_names)) != len(self.class_names):
            raise ValueError("class_names has duplicates")
        return self


class ZooArgs(_Record):
    in_channels: int = Field(ge=1, le=MAX_CHANNELS)
    image_size: int = Field(ge=1, le=MAX_SIDE)
    num_classes: int = Field(ge=1, le=MAX_CLASSES)


class GraphNode(_Record):
    name: Name
    op: Name
    inputs: list[Name] = Field(max_length=64)

    @model_validator(mode="after")
    def _bounded(self) -> GraphNode:
        for key, value in (self.model_extra or {}).items():
            _check_value(f"{key}", value)
        return self


class GraphConfig(_Record):
    format: Literal["convlens-graph"]
    version: int = Field(ge=1)
    input: Name
    output: Name
    nodes: list[GraphNode] = Field(min_length=1, max_length=MAX_NODES)


class GraphArgs(_Record):
    graph: GraphConfig


class Architecture(_Record):
    name: Name
    args: dict[str, Any] = {}


class HistoryRecord(_Record):
    epoch: int = Field(ge=1)
    loss: float | None = None
    train_acc: float | None = None
    val_loss: float | None = None
    val_acc: float | None = None
    seconds: float | None = None


class DataInfo(_Record):
    name: Name | None = None
    split_seed: int = Field(default=0, ge=0, le=MAX_SEED)
    train_size: Count | None = None
    val_size: Count | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    epochs: int | None = Field(default=None, ge=1)
    batch_size: int | None = Field(default=None, ge=1)
    lr: float | None = Field(default=None, gt=0)
    converted_from: str | None = None


class CheckpointConfig(_Record):
    format: Literal["convlens-checkpoint"]
    version: int = Field(ge=1, le=VERSION)
    architecture: Architecture
    input_spec: InputSpecConfig
    history: list[HistoryRecord] = []
    data: DataInfo = DataInfo()
    created: str | None = None


def _check_value(where: str, value: Any, depth: int = 0) -> None:
    """Graph node arguments: JSON scalars and short lists, integers and floats bounded."""
    if depth > 3:
        raise ValueError(f"{where} is nested too deeply")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > MAX_NODE_INT:
            raise ValueError(f"{where} = {value} is out of range (at most {MAX_NODE_INT})")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} = {value} is not a finite number")
    elif isinstance(value, str):
        if len(value) > MAX_NAME:
            raise ValueError(f"{where} is longer than {MAX_NAME} characters")
    elif isinstance(value, list):
        if len(value) > 64:
            raise ValueError(f"{where} has more than 64 values")
        for i, item in enumerate(value):
            _check_value(f"{where}[{i}]", item, depth + 1)
    elif isinstance(value, dict):
        if len(value) > 64:
            raise ValueError(f"{where} has more than 64 keys")
        for key, item in value.items():
            _check_value(f"{where}.{key}", item, depth + 1)
    else:
        raise ValueError(f"{where} has an unexpected type {type(value).__name__}")


def validate_config(text: str, where: str) -> None:
    """Check the config ``text`` read from ``where``; one CheckpointError naming the field."""
    try:
        config = CheckpointConfig.model_validate_json(text, strict=True)
    except ValidationError as exc:
        raise _invalid(where, describe(exc)) from None
    arch, spec = config.architecture, config.input_spec
    try:
        if arch.name == "graph":
            GraphArgs.model_validate(arch.args, strict=True)
            return
        args = ZooArgs.model_validate(arch.args, strict=True)
    except ValidationError as exc:
        raise _invalid(where, "architecture.args." + describe(exc)) from None
    told = [
        ("in_channels", args.in_channels, spec.channels, "input_spec.channels"),
        ("image_size", args.image_size, spec.height, "input_spec.height"),
        ("image_size", args.image_size, spec.width, "input_spec.width"),
        ("num_classes", args.num_classes, len(spec.class_names), "the number of class_names"),
    ]
    for key, have, want, field in told:
        if have != want:
            raise _invalid(where, f"architecture.args.{key} is {have} but {field} is {want}")


def _invalid(where: str, problem: str) -> CheckpointError:
    return CheckpointError(
        f"{where} is not a valid checkpoint config: {problem}; retrain, or fix the file"
    )


def describe(exc: ValidationError) -> str:
    """The first problem of a validation error as ``field.path: message (got VALUE)``."""
    first = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or first["type"] == "missing" else repr(got)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    text = f"{loc}: {msg}" if loc else msg
    return f"{text} (got {shown})" if shown else text
