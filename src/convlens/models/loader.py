"""One entry point from a path to a Lens, whatever kind of model file it is.

The kind is read from the file's first bytes (zip, HDF5, pickle, safetensors) and its zip
listing, not trusted from the name: a renamed file gets one line saying what it really is.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..lens import InputSpec, Lens
from .checkpoint import (
    CONFIG,
    load_checkpoint,
)
from .options import LoadOptions, parse_options

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"

# What each kind is called in messages, and the suffix it should have.
KIND_NAMES = {
    "keras": ("a Keras .keras archive", ".keras"),
    "h5": ("an HDF5 (Keras .h5) file", ".h5"),
    "torchscript": ("a TorchScript archive", ".pt"),
    "torch": ("a PyTorch torch.save file", ".pt"),
    "safetensors": ("a safetensors weights file", ".safetensors"),
}
SUFFIX_KINDS = {
    ".keras": {"keras"},
    ".h5": {"h5"},
    ".hdf5": {"h5"},
    ".pt": {"torch", "torchscript"},
    ".pth": {"torch", "torchscript"},
    ".ts": {"torchscript"},
    ".jit": {"torchscript"},
    ".tar": {"torch"},
    ".ckpt": {"torch"},
    ".bin": {"torch"},
    ".safetensors": {"safetensors"},
}


def load(path: str | Path, *, epoch: int | None = None, **options: Any) -> Lens:
    """Open a model as a Lens.

    ``path``: a convlens checkpoint folder (``epoch`` picks a snapshot), a Keras ``.keras`` or
    ``.h5`` file, a TorchScript file, or a PyTorch ``state_dict`` file (with ``arch``).
    ``options`` (see :mod:`convlens.models.options`): ``input_shape`` "3x32x32",
    ``value_range`` "0,255", ``mean``, ``std``, ``classes`` (names or a count), ``arch``
    "module.path:ClassName" or a zoo name, ``arch_args`` (dict or JSON), ``trust_pickle``,
    ``trust_keras_code``, ``trust_torchscript``. Every failure is one line (a
    :class:`CheckpointError`).
    """
    path = Path(path)
    parsed = parse_options(options)
    if not path.exists() and path.suffix.lower() in SUFFIX_KINDS:
        raise CheckpointError(f"{path} does not exist; check the path")
    if path.is_dir() or not path.exists() or (path / CONFIG).exists():
        if parsed.given():
            raise CheckpointError(
                f"options {parsed.given()} do not apply to a convlens checkpoint folder"
            )
        return load_checkpoint_lens(path, epoch=epoch)
    if epoch is not None:
        raise CheckpointError("--epoch applies only to convlens checkpoint folders with snapshots")
    kind = detect_kind(path)
    if kind in ("keras", "h5"):
        from .keras_bridge import load_keras_lens

        _refuse(parsed, ("arch", "arch_args", "trust_pickle", "trust_torchscript"), kind)
        return load_keras_lens(path, kind, parsed)
    from .torchscript import load_torch_lens

    _refuse(parsed, ("trust_keras_code",), kind)
    if kind != "torchscript":
        _refuse(parsed, ("trust_torchscript",), kind)
    return load_torch_lens(path, kind, parsed)


def _refuse(options: LoadOptions, names: tuple[str, ...], kind: str) -> None:
    wrong = [name for name in options.given() if name in names]
    if wrong:
        flags = ", ".join("--" + name.replace("_", "-") for name in wrong)
        raise CheckpointError(f"{flags} do not apply to {KIND_NAMES[kind][0]}")


def sniff(path: Path) -> str | None:
    """The kind of model file by content: keras, h5, torchscript, torch, safetensors or None."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror}") from None
    if head.startswith(HDF5_SIGNATURE):
        return "h5"
    if head.startswith(ZIP_SIGNATURE):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError):
            return "zip"
        if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
            return "keras"
        if any("/code/" in n or n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "torch"  # legacy (non-zip) torch.save: a pickle stream
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    return None


def detect_kind(path: Path) -> str:
    """The file's kind, checked against its suffix; one line for renamed, truncated or unknown."""
    kind = sniff(path)
    suffix = path.suffix.lower()
    expected = SUFFIX_KINDS.get(suffix)
    if kind == "zip":
        what = f"a {suffix} file" if expected else "a zip archive"
        raise CheckpointError(
            f"{path} is {what} that cannot be read (truncated or corrupt, or not a model); "
            "re-save or re-download it"
        )
    if kind is None:
        if path.stat().st_size == 0:
            raise CheckpointError(f"{path} is empty; re-save or re-download it")
        hint = f"a {suffix} file" if expected else "a model file"
        raise CheckpointError(
            f"{path} is not {hint} convlens can read (unknown or corrupt content); expected a "
            "checkpoint folder, .keras, .h5, TorchScript or PyTorch file"
        )
    if expected is not None and kind not in expected:
        what, right = KIND_NAMES[kind]
        raise CheckpointError(
            f"{path} is {what}, not a {suffix} file; rename it to {path.stem}{right}"
        )
    return kind


def load_checkpoint_lens(folder: Path, *, epoch: int | None = None) -> Lens:
    model, config = load_checkpoint(folder, epoch=epoch)
    spec = InputSpec.from_dict(config["input_spec"])
    source = {"kind": "checkpoint", "config": config, "epoch": epoch}
    return Lens.from_module(model, spec, source=source, path=folder)
