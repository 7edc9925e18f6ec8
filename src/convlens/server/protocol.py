"""The wire format of the live app: one binary WebSocket frame = a JSON header + raw arrays.

A frame is ``uint32 little-endian n | n bytes of UTF-8 JSON | zero padding to 4 bytes | payload``.
The header's ``arrays`` list says where each array lies in the payload (``offset``, ``nbytes``,
``dtype`` ``u8`` or ``f32``, ``shape``), every offset 4-byte aligned so the browser can view the
bytes as a ``Float32Array`` without copying. Why this and not JSON or PNG: an update of kaggle4
(every conv map of 4 layers, the dense layers, a heatmap) is ~80 KB as one byte per activation
and costs the server one quantization and one ``bytes.join``; JSON would be ~1 MB to write and
parse, and PNG encoding would spend server CPU on zlib for pixels that never leave loopback.

Client messages are validated here, at the edge, by pydantic models that refuse unknown fields,
so every malformed message becomes one readable line and never an exception in the server.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConvlensError

MAX_HEADER_BYTES = 16 * 1024
MAX_FRAME_BYTES = 1024 * 1024  # a client frame: a header and one input image (<= 256K floats)
DTYPES: dict[str, np.dtype] = {"u8": np.dtype(np.uint8), "f32": np.dtype("<f4")}


class ProtocolError(ConvlensError):
    """A client message that cannot be read or does not fit the model (answered, then ignored)."""


@dataclass(frozen=True)
class Blob:
    """One array of a frame: its name, what it is (``kind``) and any extra header fields."""

    name: str
    array: np.ndarray
    kind: str = ""
    meta: dict[str, Any] | None = None


def _align(n: int) -> int:
    return (n + 3) & ~3


def pack(header: dict[str, Any], blobs: Sequence[Blob] = ()) -> bytes:
    """One frame: ``header`` plus the arrays of ``blobs`` (listed under ``header["arrays"]``)."""
    specs: list[dict[str, Any]] = []
    parts: list[bytes] = []
    offset = 0
    for blob in blobs:
        a = blob.array
        code = next((k for k, v in DTYPES.items() if v == a.dtype), None)
        if code is None:
            a = a.astype(DTYPES["f32"])
            code = "f32"
        raw = np.ascontiguousarray(a).tobytes()
        spec = {
            "name": blob.name,
            "kind": blob.kind,
            "dtype": code,
            "shape": list(a.shape),
            "offset": offset,
            "nbytes": len(raw),
            **(blob.meta or {}),
        }
        specs.append(spec)
        parts.append(raw)
        pad = _align(len(raw)) - len(raw)
        if pad:
            parts.append(b"\0" * pad)
        offset += len(raw) + pad
    return frame({**header, "arrays": specs}, *parts)


def frame(header: dict[str, Any], *payload: bytes) -> bytes:
    """Header and raw payload bytes as one frame (what a client sends: header + pixels)."""
    head = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    pad = _align(4 + len(head)) - 4 - len(head)
    return b"".join([struct.pack("<I", len(head)), head, b" " * pad, *payload])


def unpack(frame: bytes) -> tuple[dict[str, Any], memoryview]:
    """Header and payload of a frame; ProtocolError for anything that is not one."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError(f"message of {len(frame)} bytes is over the {MAX_FRAME_BYTES} limit")
    if len(frame) < 4:
        raise ProtocolError("message too short: a frame starts with a 4-byte header length")
    (n,) = struct.unpack_from("<I", frame, 0)
    if n > MAX_HEADER_BYTES or 4 + n > len(frame):
        raise ProtocolError(f"bad header length {n} in a message of {len(frame)} bytes")
    try:
        header = json.loads(bytes(frame[4 : 4 + n]).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"message header is not JSON ({error.__class__.__name__})") from None
    if not isinstance(header, dict):
        raise ProtocolError("message header must be a JSON object")
    return header, memoryview(frame)[_align(4 + n) :]


def read_array(payload: memoryview, spec: dict[str, Any]) -> np.ndarray:
    """An array a header describes (the inverse of :func:`pack`, for clients and tests)."""
    dtype = DTYPES[spec["dtype"]]
    raw = payload[spec["offset"] : spec["offset"] + spec["nbytes"]]
    return np.frombuffer(raw, dtype=dtype).reshape(spec["shape"])


# --- client -> server -------------------------------------------------------------------------
class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Infer(_Message):
    """Analyse one input on some models: prediction, activations, one heatmap (and its curves).

    The pixels follow the header as ``dtype`` (``u8``: 0-255 mapped onto the model's value
    range, what the browser's canvas holds; ``f32``: pixel values themselves) in ``shape``
    C x H x W. ``target`` None explains the predicted class; ``focus`` maps a model to a unit
    string whose exact value and receptive field come back with that model's update;
    ``faith`` asks for the heatmap's deletion/insertion curves as a second message.
    """

    type: Literal["infer"]
    id: int = Field(ge=0, le=2**53)
    models: list[str] = Field(min_length=1, max_length=4)
    method: str = Field(default="gradient", min_length=1, max_length=40)
    target: int | None = Field(default=None, ge=0, le=1_000_000)
    layer: str | None = Field(default=None, max_length=200)
    focus: dict[str, str] | None = Field(default=None, max_length=4)
    faith: bool = False
    dtype: Literal["u8", "f32"]
    shape: list[int] = Field(min_length=3, max_length=3)


def parse_infer(header: dict[str, Any]) -> Infer:
    """The header as an :class:`Infer`, or a ProtocolError naming the first bad field."""
    kind = header.get("type")
    if kind != "infer":
        raise ProtocolError(f"unknown message type {kind!r}; the app sends 'infer'")
    try:
        return Infer.model_validate(header)
    except ValidationError as error:
        raise ProtocolError(validation_line(error)) from None


def validation_line(error: ValidationError) -> str:
    """pydantic's first complaint as one line: ``field 'target': Input should be ...``."""
    first = error.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "message"
    return f"field {where!r}: {first.get('msg', 'invalid')}"


def decode_pixels(
    message: Infer,
    payload: memoryview,
    shape: tuple[int, int, int],
    value_range: tuple[float, float],
) -> np.ndarray:
    """The input as float32 C x H x W pixel values; ProtocolError for wrong sizes, NaN, range."""
    if tuple(message.shape) != tuple(shape):
        want = "x".join(map(str, shape))
        got = "x".join(map(str, message.shape))
        raise ProtocolError(f"input of shape {got} does not fit the model, which takes {want}")
    dtype = DTYPES[message.dtype]
    count = shape[0] * shape[1] * shape[2]
    if len(payload) < count * dtype.itemsize or len(payload) > _align(count * dtype.itemsize):
        raise ProtocolError(
            f"expected {count * dtype.itemsize} bytes of {message.dtype} pixels, got {len(payload)}"
        )
    raw = np.frombuffer(payload[: count * dtype.itemsize], dtype=dtype).reshape(shape)
    lo, hi = value_range
    if message.dtype == "u8":
        return (raw.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)).astype(
            np.float32
        )
    if not np.isfinite(raw).all():
        raise ProtocolError("input holds NaN or infinite values; send finite pixel values")
    slack = 1e-3 * (hi - lo)
    if float(raw.min()) < lo - slack or float(raw.max()) > hi + slack:
        raise ProtocolError(
            f"pixel values span [{float(raw.min()):.3g}, {float(raw.max()):.3g}], "
            f"outside the model's range [{lo:g}, {hi:g}]"
        )
    return np.array(raw, dtype=np.float32)


def to_u8(pixels: np.ndarray, value_range: tuple[float, float]) -> np.ndarray:
    """Pixel values -> 0-255 (what the browser's canvas shows); the inverse of ``u8`` decoding."""
    lo, hi = value_range
    scaled = (np.asarray(pixels, dtype=np.float64) - lo) / ((hi - lo) or 1.0) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
