"""Keras models (``.keras`` and legacy Keras 2 ``.h5``) as plain PyTorch modules.

Keras 3 reads the file on its torch backend (no TensorFlow); the model is then *converted*
layer by layer into a :mod:`convlens.models.graph` description plus weights, so the Lens sees
an ordinary ``nn.Module`` (NCHW inside, NHWC only at this bridge) with the model's own layer
names, and hooks, receptive fields and gradients work as for the zoo. A Dense or Conv2D with
``activation="softmax"`` is split into ``NAME_logits`` and a softmax layer ``NAME``, so every
Keras name still means what it meant in Keras and the pre-softmax scores are readable.

Before Keras is imported the file's JSON config is read directly: truncated files, Lambda
layers (refused unless the user trusts the file's code) and unsupported layer types fail fast
with one line.
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError
from ..lens import InputSpec, Lens
from .graph import GRAPH_FORMAT, GRAPH_VERSION, GraphModel, activation_names
from .options import LoadOptions, make_spec

# Keras class names we convert (aliases are stored under their class name).
SUPPORTED = frozenset({
    "InputLayer", "Conv2D", "Dense", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "Dropout", "SpatialDropout2D", "Flatten", "BatchNormalization",
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Add", "Concatenate", "ZeroPadding2D",
    "Rescaling", "DepthwiseConv2D", "SeparableConv2D", "Normalization",
})  # fmt: skip
# Layers that leave an image unchanged at inference (augmentation, noise, regularizers): they
# pass through, so a model saved with its augmentation pipeline converts as it predicts.
# RandomCrop is not among them: its output size differs from its input's.
PASS_THROUGH = frozenset({
    "RandomBrightness", "RandomColorDegeneration", "RandomColorJitter", "RandomContrast",
    "RandomElasticTransform", "RandomErasing", "RandomFlip", "RandomGaussianBlur",
    "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective", "RandomPosterization",
    "RandomRotation", "RandomSaturation", "RandomSharpness", "RandomShear", "RandomTranslation",
    "RandomZoom", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "Identity",
})  # fmt: skip
MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})
TRUST_FLAG = "--trust-keras-code"


# --- Keras itself ---------------------------------------------------------------------------
def import_keras() -> Any:
    """Keras 3 on the torch backend; one-line errors if it is missing or already on another."""
    if "keras" in sys.modules:
        keras = sys.modules["keras"]
        backend = keras.backend.backend() if hasattr(keras, "backend") else "unknown"
        if backend != "torch":
            raise CheckpointError(
                f"keras was already imported with the {backend!r} backend; convlens reads Keras "
                "models on the torch backend: set KERAS_BACKEND=torch before importing keras"
            )
        return keras
    os.environ["KERAS_BACKEND"] = "torch"
    try:
        import keras
    except ImportError:
        raise CheckpointError(
            "reading Keras models needs Keras 3 and h5py: pip install 'convlens[keras]'"
        ) from None
    major = int(str(getattr(keras, "__version__", "0")).split(".")[0] or 0)
    if major < 3:
        raise CheckpointError(f"Keras {keras.__version__} is too old; install Keras 3")
    return keras


# --- reading the config without Keras ------------------------------------------------------
def read_config(path: Path, kind: str) -> dict[str, Any]:
    """The model's JSON config from a ``.keras`` zip or an ``.h5`` file; one line if unreadable."""
    if kind == "keras":
        try:
            with zipfile.ZipFile(path) as archive:
                text = archive.read("config.json").decode("utf-8")
        except KeyError:
            raise CheckpointError(
                f"{path} is a zip archive without config.json: not a .keras model"
            ) from None
        except (zipfile.BadZipFile, OSError, EOFError, UnicodeDecodeError) as exc:
            raise CheckpointError(
                f"{path} is truncated or corrupt ({_line(exc)}); re-save it"
            ) from None
    else:
        h5py = _import_h5py()
        try:
            with h5py.File(path, "r") as handle:
                raw = handle.attrs.get("model_config")
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"{path} is truncated or corrupt ({_line(exc)}); re-save it"
            ) from None
        if raw is None:
            raise CheckpointError(
                f"{path} holds only weights, no architecture; save the whole model with "
                "model.save('model.h5') or model.save('model.keras')"
            )
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"{path} has a corrupt model config ({exc.msg}); re-save it"
        ) from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} has a corrupt model config (not a JSON object); re-save it")
    return config


def _import_h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise CheckpointError(
            "reading .h5 models needs h5py (and Keras 3): pip install 'convlens[keras]'"
        ) from None
    return h5py


def layer_configs(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The layer entries of a model config (Keras 2 and 3, Sequential and Functional)."""
    inner = config.get("config", {})
    layers = inner if isinstance(inner, list) else inner.get("layers", [])
    return [layer for layer in layers if isinstance(layer, dict)]


def check_config(config: dict[str, Any], path: Path, *, trust_code: bool) -> None:
    """Refuse Lambda layers (unless trusted), nested models and layer types we cannot convert."""
    if config.get("class_name") not in MODEL_CLASSES:
        raise CheckpointError(
            f"{path} holds a {config.get('class_name')!r}, not a Sequential or Functional model"
        )
    unsupported: list[str] = []
    for layer in layer_configs(config):
        kind = str(layer.get("class_name"))
        name = (layer.get("config") or {}).get("name", "?")
        if kind == "Lambda":
            if not trust_code:
                raise CheckpointError(
                    f"{path} has a Lambda layer ({name!r}) whose Python code would run on load; "
                    f"refused for safety: pass {TRUST_FLAG} if you trust this file"
                )
        elif kind in MODEL_CLASSES:
            raise CheckpointError(
                f"{path} nests a model ({kind} {name!r}) inside the model; nested models are "
                "not supported yet: rebuild it as one flat model"
            )
        elif kind not in SUPPORTED | PASS_THROUGH and kind not in unsupported:
            unsupported.append(kind)
    if unsupported:
        raise CheckpointError(
            f"{path} has layer types convlens cannot convert: {', '.join(unsupported)} "
            f"(supported: {', '.join(sorted(SUPPORTED - {'InputLayer'}))})"
        )


def load_keras_model(path: Path, kind: str, *, trust_code: bool = False) -> Any:
    """The Keras model in ``path`` (checked first, then read by Keras with safe_mode on)."""
    config = read_config(path, kind)
    check_config(config, path, trust_code=trust_code)
    keras = import_keras()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust_code)
    except Exception as exc:  # Keras raises many kinds; the user needs one line either way
        raise CheckpointError(f"Keras cannot read {path}: {_line(exc)}") from None


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# --- conversion --------------------------------------------------------------------------
class KerasLayer(nn.Module):
    """Runs a live Keras layer (a trusted Lambda) on NCHW tensors through NHWC.

    On the torch backend Keras ops are torch ops, so gradients flow through it; it cannot be
    stored in a checkpoint (the code lives only in the Keras file).
    """

    convlens_kind = "other"

    def __init__(self, layer: Any) -> None:
        super().__init__()
        object.__setattr__(self, "keras_layer", layer)  # not a child: keep Keras out of the tree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        out = self.keras_layer(x)
        out = out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))
        return out.permute(0, 3, 1, 2) if out.dim() == 4 else out


class _Converter:
    """Walks a Keras model once, collecting graph nodes and their torch weights."""

    def __init__(self, model: Any, path: Path) -> None:
        self.model = model
        self.path = path
        self.nodes: list[dict[str, Any]] = []
        self.weights: dict[str, dict[str, np.ndarray]] = {}
        self.live: dict[str, nn.Module] = {}
        self.rank: dict[str, int] = {}
        self.rename: dict[str, str] = {}  # Keras name -> our node name holding its output
        self.passed: list[str] = []  # layers that are the identity at inference
        self.input_name = "input"

    def fail(self, layer: Any, why: str) -> CheckpointError:
        return CheckpointError(f"{self.path}: layer {layer.name!r} ({type(layer).__name__}) {why}")

    # wiring ---------------------------------------------------------------------------------
    def layers_with_inputs(self) -> list[tuple[Any, list[str]]]:
        keras = sys.modules["keras"]
        if isinstance(self.model, keras.Sequential):
            chain, previous = [], self.input_name
            for layer in self.model.layers:
                if type(layer).__name__ == "InputLayer":
                    continue
                chain.append((layer, [previous]))
                previous = layer.name
            return chain
        config = self.model.get_config()
        inputs, outputs = config.get("input_layers", []), config.get("output_layers", [])
        if _count(inputs) != 1 or _count(outputs) != 1:
            raise CheckpointError(
                f"{self.path} has {_count(inputs)} inputs and {_count(outputs)} outputs; "
                "convlens reads models with one image input and one output"
            )
        wired = []
        for entry in config["layers"]:
            layer = self.model.get_layer(entry["name"])
            if entry["class_name"] == "InputLayer":
                self.rename[entry["name"]] = self.input_name
                continue
            nodes = entry.get("inbound_nodes", [])
            if len(nodes) != 1:
                raise self.fail(layer, "is used more than once (shared layers are not supported)")
            wired.append((layer, _history_names(nodes[0])))
        return wired

    def output_name(self) -> str:
        keras = sys.modules["keras"]
        if isinstance(self.model, keras.Sequential):
            last = [layer for layer in self.model.layers if type(layer).__name__ != "InputLayer"]
            return self.rename.get(last[-1].name, last[-1].name)
        outputs = self.model.get_config()["output_layers"]
        name = outputs[0][0] if isinstance(outputs[0], list) else outputs[0]
        return self.rename.get(name, name)

    def run(self) -> dict[str, Any]:
        self.rank[self.input_name] = 4
        for layer, inputs in self.layers_with_inputs():
            sources = [self.rename.get(name, name) for name in inputs]
            self.convert(layer, sources)
        return {
            "format": GRAPH_FORMAT,
            "version": GRAPH_VERSION,
            "source": "keras",
            "name": model_name(self.model, self.path),
            "input": self.input_name,
            "output": self.output_name(),
            "nodes": self.nodes,
            "passed_through": self.passed,
        }

    def add(self, name: str, op: str, inputs: list[str], rank: int, **args: Any) -> str:
        name = name.replace(".", "_")
        if name in self.rank:
            raise CheckpointError(f"{self.path}: two layers are named {name!r}; rename one")
        self.nodes.append({"name": name, "op": op, "inputs": inputs, **args})
        self.rank[name] = rank
        return name

    # layers ---------------------------------------------------------------------------------
    def convert(self, layer: Any, inputs: list[str]) -> None:
        kind = type(layer).__name__
        cfg = layer.get_config()
        in_rank = self.rank[inputs[0]]
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise self.fail(layer, "uses channels_first; only channels_last models are supported")
        if kind in PASS_THROUGH:
            self.rename[layer.name] = inputs[0]  # later layers read its input directly
            self.passed.append(layer.name)
        elif kind in ("Lambda",):
            name = self.add(layer.name, "keras_layer", inputs, _out_rank(layer, in_rank))
            self.live[name] = KerasLayer(layer)
        elif kind == "Conv2D":
            self.conv(layer, cfg, inputs, in_rank)
        elif kind == "DepthwiseConv2D":
            self.depthwise(layer, cfg, inputs, in_rank)
        elif kind == "SeparableConv2D":
            self.separable(layer, cfg, inputs, in_rank)
        elif kind == "Normalization":
            self.normalization(layer, cfg, inputs, in_rank)
        elif kind == "Dense":
            self.dense(layer, cfg, inputs, in_rank)
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            op = "max_pool2d" if kind == "MaxPooling2D" else "avg_pool2d"
            strides = cfg.get("strides") or cfg["pool_size"]
            self.add(layer.name, op, inputs, 4, kernel=list(cfg["pool_size"]),
                     stride=list(strides), padding=cfg.get("padding", "valid"))  # fmt: skip
        elif kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            op = "global_avg_pool2d" if kind == "GlobalAveragePooling2D" else "global_max_pool2d"
            keep = bool(cfg.get("keepdims", False))
            self.add(layer.name, op, inputs, 4 if keep else 2, keepdims=keep)
        elif kind in ("Dropout", "SpatialDropout2D"):
            self.add(layer.name, "dropout", inputs, in_rank, rate=float(cfg.get("rate", 0.5)),
                     spatial=kind == "SpatialDropout2D")  # fmt: skip
        elif kind == "Flatten":
            self.add(layer.name, "flatten", inputs, 2, channels_last=in_rank == 4)
        elif kind == "BatchNormalization":
            self.batch_norm(layer, cfg, inputs, in_rank)
        elif kind in ("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax"):
            self.activation(layer, kind, cfg, inputs, in_rank)
        elif kind == "Add":
            self.add(layer.name, "add", inputs, in_rank)
        elif kind == "Concatenate":
            axis = int(cfg.get("axis", -1))
            if axis not in (-1, in_rank - 1):
                raise self.fail(layer, f"concatenates along axis {axis}; only channels (-1) work")
            self.add(layer.name, "concat", inputs, in_rank, dim=1)
        elif kind == "ZeroPadding2D":
            (top, bottom), (left, right) = cfg["padding"]
            self.add(layer.name, "zero_pad2d", inputs, 4, padding=[left, right, top, bottom])
        elif kind == "Rescaling":
            self.add(layer.name, "rescale", inputs, in_rank, scale=_number(cfg["scale"]),
                     offset=_number(cfg.get("offset", 0.0)))  # fmt: skip
        else:
            raise self.fail(layer, "cannot be converted (unsupported layer type)")

    def conv(self, layer: Any, cfg: dict[str, Any], inputs: list[str], in_rank: int) -> None:
        if in_rank != 4:
            raise self.fail(layer, "gets a non-image input")
        padding = cfg.get("padding", "valid")
        if padding not in ("same", "valid"):
            raise self.fail(layer, f"uses padding {padding!r}; only 'same' and 'valid' work")
        kernel = _numpy(layer.kernel)  # (kh, kw, in / groups, out)
        groups = int(cfg.get("groups", 1))
        activation = _activation_name(layer, cfg)
        name = f"{layer.name}_logits" if activation == "softmax" else layer.name
        node = self.add(
            name, "conv2d", inputs, 4, in_channels=kernel.shape[2] * groups,
            out_channels=kernel.shape[3], kernel=list(kernel.shape[:2]),
            stride=list(cfg.get("strides", (1, 1))),
            dilation=list(cfg.get("dilation_rate", (1, 1))), padding=padding, groups=groups,
            bias=bool(cfg.get("use_bias", True)),
            activation="linear" if activation == "softmax" else activation,
        )  # fmt: skip
        self.weights[node] = {"weight": kernel.transpose(3, 2, 0, 1)}
        if cfg.get("use_bias", True):
            self.weights[node]["bias"] = _numpy(layer.bias)
        if activation == "softmax":
            self.add(layer.name, "activation", [node], 4, activation="softmax")

    def depthwise(self, layer: Any, cfg: dict[str, Any], inputs: list[str], in_rank: int) -> None:
        """DepthwiseConv2D: a grouped conv with one group per input channel."""
        padding = self._conv_padding(layer, cfg, in_rank)
        kernel = _numpy(layer.kernel)  # (kh, kw, in, depth_multiplier)
        use_bias = bool(cfg.get("use_bias", True))
        node = self._grouped(layer.name, layer, cfg, inputs, kernel, padding, use_bias,
                             _activation_name(layer, cfg))  # fmt: skip
        if use_bias:
            self.weights[node]["bias"] = _numpy(layer.bias)

    def separable(self, layer: Any, cfg: dict[str, Any], inputs: list[str], in_rank: int) -> None:
        """SeparableConv2D as two nodes: ``NAME_depthwise`` (per channel), then ``NAME`` (1x1
        across channels, with the bias and activation), so ``NAME`` means what it means in Keras."""
        padding = self._conv_padding(layer, cfg, in_rank)
        depth = _numpy(layer.depthwise_kernel)  # (kh, kw, in, depth_multiplier)
        point = _numpy(layer.pointwise_kernel)  # (1, 1, in * depth_multiplier, filters)
        first = self._grouped(f"{layer.name}_depthwise", layer, cfg, inputs, depth, padding,
                              False, "linear")  # fmt: skip
        use_bias = bool(cfg.get("use_bias", True))
        node = self.add(
            layer.name, "conv2d", [first], 4, in_channels=point.shape[2],
            out_channels=point.shape[3], kernel=[1, 1], stride=[1, 1], dilation=[1, 1],
            padding="valid", groups=1, bias=use_bias, activation=_activation_name(layer, cfg),
        )  # fmt: skip
        self.weights[node] = {"weight": point.transpose(3, 2, 0, 1)}
        if use_bias:
            self.weights[node]["bias"] = _numpy(layer.bias)

    def _conv_padding(self, layer: Any, cfg: dict[str, Any], in_rank: int) -> str:
        if in_rank != 4:
            raise self.fail(layer, "gets a non-image input")
        padding = cfg.get("padding", "valid")
        if padding not in ("same", "valid"):
            raise self.fail(layer, f"uses padding {padding!r}; only 'same' and 'valid' work")
        return str(padding)

    def _grouped(self, name: str, layer: Any, cfg: dict[str, Any], inputs: list[str],
                 kernel: np.ndarray, padding: str, bias: bool, activation: str) -> str:  # fmt: skip
        """A depthwise kernel (kh, kw, in, m) as a conv with ``in`` groups; Keras orders the
        outputs channel-major (channel c's m filters are outputs c*m .. c*m + m - 1), as torch."""
        kh, kw, channels, multiplier = kernel.shape
        node = self.add(
            name, "conv2d", inputs, 4, in_channels=channels, out_channels=channels * multiplier,
            kernel=[kh, kw], stride=list(cfg.get("strides", (1, 1))),
            dilation=list(cfg.get("dilation_rate", (1, 1))), padding=padding, groups=channels,
            bias=bias, activation=activation,
        )  # fmt: skip
        weight = kernel.reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)[:, None]
        self.weights[node] = {"weight": weight}
        return node

    def normalization(
        self, layer: Any, cfg: dict[str, Any], inputs: list[str], in_rank: int
    ) -> None:
        """Keras ``Normalization`` (x - mean) / sqrt(var) per channel, as a rescale node."""
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
        if axis not in (-1, in_rank - 1) or cfg.get("invert"):
            raise self.fail(layer, "normalizes another axis than the channels, or inverts; "
                            "only Normalization(axis=-1) is supported")  # fmt: skip
        mean = _numpy(layer.mean).reshape(-1)
        std = np.maximum(np.sqrt(_numpy(layer.variance).reshape(-1)), 1e-7)
        scale, offset = (1.0 / std).tolist(), (-mean / std).tolist()
        self.add(layer.name, "rescale", inputs, in_rank,
                 scale=scale[0] if len(scale) == 1 else scale,
                 offset=offset[0] if len(offset) == 1 else offset)  # fmt: skip

    def dense(self, layer: Any, cfg: dict[str, Any], inputs: list[str], in_rank: int) -> None:
        if in_rank != 2:
            raise self.fail(layer, "is applied to an image-shaped input; add a Flatten before it")
        kernel = _numpy(layer.kernel)  # (in, out)
        activation = _activation_name(layer, cfg)
        name = f"{layer.name}_logits" if activation == "softmax" else layer.name
        node = self.add(
            name, "dense", inputs, 2, in_features=kernel.shape[0], out_features=kernel.shape[1],
            bias=bool(cfg.get("use_bias", True)),
            activation="linear" if activation == "softmax" else activation,
        )  # fmt: skip
        self.weights[node] = {"weight": kernel.T}
        if cfg.get("use_bias", True):
            self.weights[node]["bias"] = _numpy(layer.bias)
        if activation == "softmax":
            self.add(layer.name, "activation", [node], 2, activation="softmax")

    def batch_norm(self, layer: Any, cfg: dict[str, Any], inputs: list[str], in_rank: int) -> None:
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, in_rank - 1):
            raise self.fail(layer, f"normalizes axis {axis}; only the channel axis (-1) works")
        mean = _numpy(layer.moving_mean)
        features = mean.shape[0]
        node = self.add(layer.name, "batch_norm", inputs, in_rank, features=features,
                        spatial=in_rank == 4, eps=float(cfg.get("epsilon", 1e-3)))  # fmt: skip
        gamma = getattr(layer, "gamma", None)
        beta = getattr(layer, "beta", None)
        self.weights[node] = {
            "weight": _numpy(gamma) if gamma is not None else np.ones(features, np.float32),
            "bias": _numpy(beta) if beta is not None else np.zeros(features, np.float32),
            "running_mean": mean,
            "running_var": _numpy(layer.moving_variance),
        }

    def activation(
        self, layer: Any, kind: str, cfg: dict[str, Any], inputs: list[str], in_rank: int
    ) -> None:
        if kind == "Activation":
            name = _activation_name(layer, cfg)
        elif kind == "ReLU":
            relu = (cfg.get("max_value"), float(cfg.get("negative_slope") or 0),
                    float(cfg.get("threshold") or 0))  # fmt: skip
            if relu[1:] != (0.0, 0.0) or relu[0] not in (None, 6, 6.0):
                raise self.fail(layer, f"has max_value/negative_slope/threshold {relu}; "
                                "only plain ReLU and ReLU(6) are supported")  # fmt: skip
            name = "relu" if relu[0] is None else "relu6"
        elif kind == "Softmax":
            axis = cfg.get("axis", -1)
            if axis not in (-1, in_rank - 1, [-1]):
                raise self.fail(layer, f"takes the softmax over axis {axis}; only -1 works")
            name = "softmax"
        elif kind == "LeakyReLU":
            slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
            self.add(layer.name, "activation", inputs, in_rank, activation="leaky_relu",
                     negative_slope=float(slope))  # fmt: skip
            return
        else:  # ELU
            if float(cfg.get("alpha", 1.0)) != 1.0:
                raise self.fail(layer, "has alpha != 1, which is not supported")
            name = "elu"
        self.add(layer.name, "activation", inputs, in_rank, activation=name)

    def state_dict(self, model: GraphModel) -> dict[str, torch.Tensor]:
        state = model.state_dict()
        for node, tensors in self.weights.items():
            for key, value in tensors.items():
                full = f"{node}.{key}"
                if tuple(state[full].shape) != value.shape:
                    raise CheckpointError(
                        f"{self.path}: weights of {node!r} have shape {value.shape}, expected "
                        f"{tuple(state[full].shape)}"
                    )
                state[full] = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        return state


def _count(entries: Any) -> int:
    if not entries:
        return 0
    return 1 if isinstance(entries[0], str) else len(entries)


def _history_names(node: Any) -> list[str]:
    """Layer names a Keras 3 inbound node reads, in argument order (nested lists flattened)."""
    names: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            history = (value.get("config") or {}).get("keras_history")
            if value.get("class_name") == "__keras_tensor__" and history:
                names.append(history[0])
                return
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(node.get("args", node) if isinstance(node, dict) else node)
    return names


def _activation_name(layer: Any, cfg: dict[str, Any]) -> str:
    value = cfg.get("activation", "linear")
    if isinstance(value, dict):
        value = value.get("config", value).get("name", value.get("class_name"))
    name = str(value)
    if name not in activation_names():
        supported = ", ".join(activation_names())
        raise CheckpointError(
            f"layer {layer.name!r} uses activation {name!r}; supported: {supported}"
        )
    return name


def _out_rank(layer: Any, default: int) -> int:
    try:
        return len(layer.output.shape) if len(layer.output.shape) in (2, 4) else default
    except (AttributeError, ValueError):
        return default


def _number(value: Any) -> float | list[float]:
    if isinstance(value, list | tuple):
        return [float(v) for v in value]
    return float(value)


def _numpy(variable: Any) -> np.ndarray:
    value = variable.value if hasattr(variable, "value") else variable
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().astype(np.float32)
    return np.asarray(value, dtype=np.float32)


_AUTO_NAME = re.compile(r"(sequential|functional|model)(_\d+)?")


def model_name(model: Any, path: Path) -> str:
    """What to call a Keras model: its own name, or the file's when Keras named it itself
    (``sequential_3``, ``functional``), so pages and messages never say "GraphModel"."""
    name = str(getattr(model, "name", "") or "")
    return Path(path).stem if not name or _AUTO_NAME.fullmatch(name) else name


def keras_to_torch(model: Any, path: Path) -> tuple[GraphModel, dict[str, Any]]:
    """Convert a live Keras model: the equivalent torch module (eval mode) and its graph."""
    converter = _Converter(model, path)
    graph = converter.run()
    if not any(node["op"] == "conv2d" for node in graph["nodes"]):
        raise CheckpointError(
            f"{path} has no Conv2D layer; convlens shows what convolutional networks learn"
        )
    torch_model = GraphModel(graph, live=converter.live)
    torch_model.load_state_dict(converter.state_dict(torch_model))
    return torch_model.eval(), graph


def keras_input(model: Any) -> tuple[int | None, int | None, int | None]:
    """(C, H, W) from the Keras input shape (None where the model accepts any size)."""
    shape = model.input_shape
    shape = shape[0] if isinstance(shape, list) else shape
    if len(shape) != 4:
        raise CheckpointError(f"the model takes inputs of shape {shape}, not images (N, H, W, C)")
    _, height, width, channels = shape
    return channels, height, width


def infer_value_range(graph: dict[str, Any]) -> tuple[float, float]:
    """[0, 255] when the model starts by rescaling 8-bit pixels (Rescaling(1/255)), else [0, 1]."""
    first = graph["nodes"][0] if graph["nodes"] else {}
    scale = first.get("scale") if first.get("op") == "rescale" else None
    if isinstance(scale, float) and min(abs(scale * 255 - 1), abs(scale * 127.5 - 1)) < 1e-6:
        return (0.0, 255.0)
    return (0.0, 1.0)


def convert_keras_file(
    path: Path, kind: str, options: LoadOptions
) -> tuple[GraphModel, dict[str, Any], InputSpec]:
    """The torch model, its graph and the input spec of the Keras model in ``path``."""
    model = load_keras_model(path, kind, trust_code=options.trust_keras_code)
    torch_model, graph = keras_to_torch(model, path)
    outputs = model.output_shape
    outputs = outputs[0] if isinstance(outputs, list) else outputs
    spec = make_spec(
        options,
        shape=keras_input(model),
        num_classes=int(outputs[-1]) if len(outputs) == 2 and outputs[-1] else None,
        value_range=infer_value_range(graph),
        source=str(path),
    )
    return torch_model, graph, spec


def load_keras_lens(path: Path, kind: str, options: LoadOptions) -> Lens:
    """A Lens on the Keras model in ``path`` (``kind``: "keras" or "h5")."""
    path = Path(path)
    torch_model, graph, spec = convert_keras_file(path, kind, options)
    source = {"kind": "keras", "file": str(path), "graph": graph, "live": sorted(torch_model.live),
              "name": graph["name"]}  # fmt: skip
    return build_lens(torch_model, spec, source=source, what=str(path))


def build_lens(model: nn.Module, spec: Any, *, source: dict[str, Any], what: str) -> Lens:
    """``Lens.from_module`` with one-line errors when the input spec does not fit the model."""
    try:
        lens = Lens.from_module(model, spec, source=source)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise CheckpointError(
            f"input {'x'.join(map(str, spec.shape))} does not fit {what}: {_line(exc)}; "
            "check --input-shape"
        ) from None
    if not lens.conv_layers():
        raise CheckpointError(f"{what} has no convolutional layers; convlens shows what CNNs learn")
    return lens
