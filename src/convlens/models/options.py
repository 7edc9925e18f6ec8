"""Loading options for foreign model files: the input spec a file cannot tell us, and trust flags.

Options arrive as CLI strings (``"3x32x32"``, ``"0,255"``, ``"cat,dog"``) or as Python values
(tuples, ints); both parse here, once, into :class:`LoadOptions`, so every loader validates them
the same way and errors read the same.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import CheckpointError
from ..lens import InputSpec

SPEC_KEYS = ("input_shape", "value_range", "mean", "std", "classes")
TRUST_FLAGS = ("trust_pickle", "trust_keras_code", "trust_torchscript")
KNOWN = (*SPEC_KEYS, "arch", "arch_args", *TRUST_FLAGS)


@dataclass(frozen=True)
class LoadOptions:
    """Parsed loading options; ``None`` means "not given"."""

    input_shape: tuple[int, int, int] | None = None
    value_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    classes: tuple[str, ...] | int | None = None
    arch: str | None = None
    arch_args: dict[str, Any] = field(default_factory=dict)
    trust_pickle: bool = False
    trust_keras_code: bool = False
    trust_torchscript: bool = False

    def given(self) -> list[str]:
        """Names of the options that were set (for "does not apply" errors)."""
        flags = [k for k in KNOWN if k not in ("arch_args", *TRUST_FLAGS)]
        names = [k for k in flags if getattr(self, k) is not None]
        names += [k for k in TRUST_FLAGS if getattr(self, k)]
        return names + (["arch_args"] if self.arch_args else [])


def parse_options(options: dict[str, Any]) -> LoadOptions:
    """Validate raw options (strings or values); unknown names and bad values give one line."""
    unknown = sorted(set(options) - set(KNOWN))
    if unknown:
        raise CheckpointError(f"unknown loading options {unknown}; valid: {', '.join(KNOWN)}")
    opts = {k: v for k, v in options.items() if v is not None}
    return LoadOptions(
        input_shape=_shape(opts["input_shape"]) if "input_shape" in opts else None,
        value_range=_range(opts["value_range"]) if "value_range" in opts else None,
        mean=_floats(opts["mean"], "mean") if "mean" in opts else None,
        std=_std(opts["std"]) if "std" in opts else None,
        classes=_classes(opts["classes"]) if "classes" in opts else None,
        arch=str(opts["arch"]) if "arch" in opts else None,
        arch_args=_arch_args(opts.get("arch_args", {})),
        trust_pickle=bool(opts.get("trust_pickle", False)),
        trust_keras_code=bool(opts.get("trust_keras_code", False)),
        trust_torchscript=bool(opts.get("trust_torchscript", False)),
    )


def _shape(value: Any) -> tuple[int, int, int]:
    text = value if isinstance(value, str) else "x".join(str(v) for v in value)
    parts = text.lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise CheckpointError(f"--input-shape {text!r} is not CxHxW (e.g. 3x32x32)")
    if dims[0] > 4 and dims[2] <= 4:
        raise CheckpointError(
            f"--input-shape {text!r} looks like HxWxC; give channels first: "
            f"{dims[2]}x{dims[0]}x{dims[1]}"
        )
    return dims  # type: ignore[return-value]


def _floats(value: Any, what: str) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        floats = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        raise CheckpointError(f"--{what} {value!r} is not a comma list of numbers") from None
    if not all(math.isfinite(v) for v in floats):
        raise CheckpointError(f"--{what} {value!r}: every value must be a finite number")
    if not floats:
        raise CheckpointError(f"--{what} needs at least one number")
    return floats


def _range(value: Any) -> tuple[float, float]:
    lo_hi = _floats(value, "range")
    if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
        raise CheckpointError(f"--range {value!r} must be LOW,HIGH with LOW < HIGH (e.g. 0,255)")
    return lo_hi  # type: ignore[return-value]


def _std(value: Any) -> tuple[float, ...]:
    std = _floats(value, "std")
    if min(std) <= 0:
        raise CheckpointError(f"--std {value!r} must be positive")
    return std


def _classes(value: Any) -> tuple[str, ...] | int:
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, str) and value.strip().isdigit():
        count = int(value)
    else:
        names = value.split(",") if isinstance(value, str) else list(value)
        names = [str(n).strip() for n in names]
        if not names or any(not n for n in names) or len(set(names)) != len(names):
            raise CheckpointError(f"--classes {value!r}: give a count or distinct names a,b,c")
        return tuple(names)
    if count < 1:
        raise CheckpointError("--classes must be at least 1")
    return count


def _arch_args(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value)
    except RecursionError:
        raise CheckpointError("--arch-args is nested too deeply; give a flat JSON object") from None
    except (TypeError, json.JSONDecodeError) as exc:
        raise CheckpointError(
            f"--arch-args is not valid JSON ({exc}); e.g. '{{\"width\": 32}}'"
        ) from None
    if not isinstance(parsed, dict):
        raise CheckpointError("--arch-args must be a JSON object of keyword arguments")
    return parsed


def make_spec(
    options: LoadOptions,
    *,
    shape: tuple[int | None, int | None, int | None] | None,
    num_classes: int | None,
    value_range: tuple[float, float] = (0.0, 1.0),
    source: str,
) -> InputSpec:
    """The input spec: what the file says (``shape``, ``num_classes``), overridden by options.

    A file-given size must agree with ``--input-shape``; unknown sizes must be given.
    """
    given = options.input_shape
    if shape is not None and given is not None:
        for axis, (have, want) in enumerate(zip(shape, given, strict=True)):
            if have is not None and have != want:
                told = "x".join("?" if v is None else str(v) for v in shape)
                raise CheckpointError(
                    f"--input-shape {'x'.join(map(str, given))} does not fit {source}, which "
                    f"takes {told} (CxHxW, axis {axis} differs)"
                )
    dims = given or shape
    if dims is None or any(v is None for v in dims):
        told = "" if dims is None else " (the file says " + "x".join(
            "?" if v is None else str(v) for v in dims) + ")"  # fmt: skip
        raise CheckpointError(
            f"{source} does not say its input size{told}: pass --input-shape CxHxW"
        )
    channels, height, width = (int(v) for v in dims)  # type: ignore[arg-type]
    mean = options.mean or (0.0,)
    std = options.std or (1.0,)
    for name, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise CheckpointError(
                f"--{name} has {len(values)} values; the model has {channels} channels"
            )
    if len(mean) != len(std) and 1 not in (len(mean), len(std)):
        raise CheckpointError("--mean and --std must have the same number of values")
    if channels > 1 and (len(mean) == 1) != (len(std) == 1):
        mean = mean * channels if len(mean) == 1 else mean
        std = std * channels if len(std) == 1 else std
    return InputSpec(
        channels=channels,
        height=height,
        width=width,
        value_range=options.value_range or value_range,
        mean=tuple(mean),
        std=tuple(std),
        class_names=class_names(options.classes, num_classes, source),
    )


def class_names(
    classes: tuple[str, ...] | int | None, num_classes: int | None, source: str
) -> tuple[str, ...]:
    """Class names from ``--classes`` (names or a count) checked against the model's outputs."""
    if isinstance(classes, tuple):
        count = len(classes)
    else:
        count = classes if classes is not None else num_classes
    if num_classes is not None and count is not None and count != num_classes:
        raise CheckpointError(
            f"--classes gives {count} classes but {source} has {num_classes} outputs"
        )
    if count is None:
        raise CheckpointError(f"cannot tell how many classes {source} has: pass --classes N")
    return classes if isinstance(classes, tuple) else tuple(str(i) for i in range(count))
