"""PyTorch model files: TorchScript archives, ``state_dict`` files with ``--arch``, and (only
with ``--trust-pickle``) whole pickled modules.

A loaded TorchScript module runs compiled code, which Python forward hooks cannot see. So it is
*mirrored*: standard ``torch.nn`` leaves (Conv2d, Linear, BatchNorm, pooling, activations)
become ordinary modules with the same weights, and every other module runs its TorchScript
graph through a small interpreter that calls child modules through Python. Hooks, pre-activation
reads and receptive-field probes then work as on any eager model, with the original module
paths (``layer1.0.conv1``) as layer names.
"""

from __future__ import annotations

import importlib
import operator
import os
import pickle
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConvlensError
from ..lens import Lens
from .keras_bridge import build_lens
from .options import LoadOptions, make_spec
from .script_ops import (
    ScriptRefused,
    aten_allowed,
    check_script,
    compiled_function,
    function_name,
    functional,
    refuse_function,
)
from .zoo import build_model, model_names

# --- entry point --------------------------------------------------------------------------


def load_torch_lens(path: Path, kind: str, options: LoadOptions) -> Lens:
    """A Lens on a TorchScript, torch.save or safetensors file (``kind`` from the loader)."""
    if kind == "torchscript":
        if options.arch or options.trust_pickle:
            raise CheckpointError(f"{path} is TorchScript (it holds its own code): drop --arch")
        script, unit = _jit_load(path)
        check_script(script, unit, path, trusted=options.trust_torchscript)
        model: nn.Module = mirror_script(
            script, unit=unit, trusted=options.trust_torchscript, path=str(path)
        )
        source = {"kind": "torchscript", "file": str(path)}
    else:
        obj = _read_safetensors(path) if kind == "safetensors" else _torch_load(path, options)
        if isinstance(obj, nn.Module):
            model, source = obj, {"kind": "pickled-module", "file": str(path)}
            if options.arch:
                raise CheckpointError(f"{path} holds a whole module; drop --arch")
        else:
            state = state_dict_of(obj, path)
            model = build_arch(options, path)
            _load_state(model, state, path, options.arch or "")
            source = {"kind": "state-dict", "file": str(path), "arch": options.arch,
                      "arch_args": options.arch_args}  # fmt: skip
    model = model.float().eval()
    if options.input_shape is None:
        raise CheckpointError(f"{path} does not say its input size: pass --input-shape CxHxW")
    probe = make_spec(replace(options, classes=None), shape=None, num_classes=1, source=str(path))
    num_classes = _output_size(model, probe, path)
    spec = make_spec(options, shape=None, num_classes=num_classes, source=str(path))
    return build_lens(model, spec, source=source, what=str(path))


def _count(classes: tuple[str, ...] | int) -> int:
    return classes if isinstance(classes, int) else len(classes)


def _output_size(model: nn.Module, spec: Any, path: Path) -> int:
    """Number of model outputs, from one forward pass on zeros (checks the input shape too)."""
    try:
        with torch.no_grad():
            out = model(spec.normalize(torch.zeros(1, *spec.shape)))
    except ConvlensError:
        raise
    except Exception as exc:  # any failure here means the shape (or the file) does not fit
        text = str(exc).strip().splitlines()
        raise CheckpointError(
            f"input {'x'.join(map(str, spec.shape))} does not fit {path}: "
            f"{(text[0] if text else type(exc).__name__)[:200]}; check --input-shape"
        ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise CheckpointError(
            f"{path} returns {shape}, not class scores (N, classes); convlens reads classifiers"
        )
    return int(out.shape[1])


# --- reading files ------------------------------------------------------------------------


def _jit_load(path: Path) -> tuple[torch.jit.ScriptModule, Any]:
    """The scripted module and its compilation unit (where the file's own functions live).

    This is what ``torch.jit.load`` does, keeping the compilation unit it would drop, so that
    functions the file calls are run from its compiled code, never imported by name.
    """
    from torch.jit._recursive import wrap_cpp_module

    try:
        unit = torch._C.CompilationUnit()
        module = torch._C.import_ir_module(unit, str(path), torch.device("cpu"), {}, False)
        return wrap_cpp_module(module), unit
    except (RuntimeError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(
            f"{path} is a truncated or corrupt TorchScript file ({_first(exc)})"
        ) from None


def _torch_load(path: Path, options: LoadOptions) -> Any:
    """``torch.load`` with ``weights_only`` unless the user trusts the pickle."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" not in str(exc) and "Weights only" not in str(exc):
            raise CheckpointError(f"{path} is truncated or corrupt ({_first(exc)})") from None
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
        if "magic number" in str(exc):  # a plain pickle.dump, not torch.save's layout
            raise CheckpointError(_not_torch_save(path)) from None
        raise CheckpointError(f"{path} is truncated or corrupt ({_first(exc)})") from None
    if not options.trust_pickle:
        raise CheckpointError(
            f"{path} holds pickled Python objects (a whole model, not just weights); unpickling "
            "can run arbitrary code, so it is refused: pass --trust-pickle if you trust the "
            "file, or save model.state_dict() and load it with --arch"
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError) as exc:
        raise CheckpointError(
            f"{path} needs the code that defined the model ({_first(exc)}); make it importable "
            "(PYTHONPATH) or save a state_dict and use --arch"
        ) from None
    except Exception as exc:  # a trusted pickle can fail in arbitrary ways
        if "magic number" in str(exc):
            raise CheckpointError(_not_torch_save(path)) from None
        raise CheckpointError(f"cannot unpickle {path}: {_first(exc)}") from None
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, dict):
        for key in ("model", "module", "net"):
            if isinstance(obj.get(key), nn.Module):
                return obj[key]
    return obj


def _not_torch_save(path: Path) -> str:
    return (
        f"{path} is a Python pickle but not a file written by torch.save; give a model saved "
        "with torch.save, TorchScript, safetensors or Keras"
    )


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is a truncated or corrupt safetensors file ({_first(exc)})"
        ) from None


def state_dict_of(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a saved state_dict, unwrapped from the usual training-checkpoint dicts."""
    if isinstance(obj, dict) and not _all_tensors(obj):
        for key in ("state_dict", "model_state_dict", "model", "net", "weights"):
            if isinstance(obj.get(key), dict) and _all_tensors(obj[key]):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not _all_tensors(obj):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a state_dict of tensors (nor a module)"
        )
    keys = list(obj)
    if all(k.startswith("module.") for k in keys):  # saved from DataParallel
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return dict(obj)


def _all_tensors(obj: dict[Any, Any]) -> bool:
    return bool(obj) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                             for k, v in obj.items())  # fmt: skip


def build_arch(options: LoadOptions, path: Path) -> nn.Module:
    """The module named by ``--arch`` (``module.path:ClassName`` or a zoo name)."""
    arch, args = options.arch, dict(options.arch_args)
    if not arch:
        raise CheckpointError(
            f"{path} holds only weights (a state_dict): pass --arch module.path:ClassName "
            "(and --arch-args JSON) to say which network they belong to"
        )
    if ":" not in arch:
        if arch not in model_names():
            raise CheckpointError(
                f"--arch {arch!r} is neither module.path:ClassName nor a zoo model "
                f"({', '.join(model_names())})"
            )
        if options.input_shape:
            channels, height, _ = options.input_shape
            args.setdefault("in_channels", channels)
            args.setdefault("image_size", height)
        if options.classes is not None:
            args.setdefault("num_classes", _count(options.classes))
        factory: Callable[..., Any] = lambda **kw: build_model(arch, **kw)  # noqa: E731
    else:
        factory = _import_factory(arch)
    try:
        model = factory(**args)
    except ConvlensError:
        raise
    except Exception as exc:  # user code: any error is a bad --arch/--arch-args
        raise CheckpointError(f"cannot build --arch {arch} with {args}: {_first(exc)}") from None
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"--arch {arch} returned a {type(model).__name__}, not an nn.Module")
    return model


def _import_factory(arch: str) -> Callable[..., Any]:
    module_name, _, attr = arch.partition(":")
    added = os.getcwd() not in sys.path
    if added:  # like 'python -m': modules next to the user resolve
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CheckpointError(
            f"--arch {arch}: cannot import {module_name!r} ({_first(exc)})"
        ) from None
    finally:
        if added:
            sys.path.remove(os.getcwd())
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CheckpointError(f"--arch {arch}: {module_name!r} has no {attr!r}")
        target = getattr(target, part)
    if not callable(target):
        raise CheckpointError(f"--arch {arch}: {attr!r} is not a class or function")
    return target


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else "mismatch"
        raise CheckpointError(
            f"the weights in {path} do not fit --arch {arch}: {detail[:300]}"
        ) from None


def _first(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


# --- TorchScript mirror -------------------------------------------------------------------

_EAGER: dict[str, Callable[[Any], nn.Module]] = {
    "Conv2d": lambda m: nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                  m.padding, m.dilation, m.groups, bias=m.bias is not None,
                                  padding_mode=m.padding_mode),
    "Linear": lambda m: nn.Linear(m.in_features, m.out_features, bias=m.bias is not None),
    "BatchNorm2d": lambda m: nn.BatchNorm2d(m.num_features, m.eps, m.momentum, m.affine,
                                            m.track_running_stats),
    "BatchNorm1d": lambda m: nn.BatchNorm1d(m.num_features, m.eps, m.momentum, m.affine,
                                            m.track_running_stats),
    "MaxPool2d": lambda m: nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation,
                                        ceil_mode=m.ceil_mode),
    "AvgPool2d": lambda m: nn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode,
                                        m.count_include_pad, m.divisor_override),
    "AdaptiveAvgPool2d": lambda m: nn.AdaptiveAvgPool2d(m.output_size),
    "AdaptiveMaxPool2d": lambda m: nn.AdaptiveMaxPool2d(m.output_size),
    "Flatten": lambda m: nn.Flatten(m.start_dim, m.end_dim),
    "Dropout": lambda m: nn.Dropout(m.p),
    "Dropout2d": lambda m: nn.Dropout2d(m.p),
    "ReLU": lambda m: nn.ReLU(),  # never in place: hooks keep what they captured
    "ReLU6": lambda m: nn.ReLU6(),
    "LeakyReLU": lambda m: nn.LeakyReLU(m.negative_slope),
    "ELU": lambda m: nn.ELU(m.alpha),
    "GELU": lambda m: nn.GELU(approximate=m.approximate),
    "SiLU": lambda m: nn.SiLU(),
    "Sigmoid": lambda m: nn.Sigmoid(),
    "Tanh": lambda m: nn.Tanh(),
    "Softmax": lambda m: nn.Softmax(m.dim),
    "LogSoftmax": lambda m: nn.LogSoftmax(m.dim),
    "Identity": lambda m: nn.Identity(),
}  # fmt: skip


@dataclass(frozen=True)
class ScriptContext:
    """What the interpreter needs besides a graph: the file's compiled functions and trust."""

    unit: Any = None
    trusted: bool = False
    path: str = "the TorchScript model"


def mirror_script(
    script: torch.jit.ScriptModule,
    *,
    unit: Any = None,
    trusted: bool = False,
    path: str = "the TorchScript model",
) -> nn.Module:
    """An eager module equivalent to ``script`` whose submodules accept Python hooks.

    ``unit`` is the compilation unit the script was loaded into (for functions it calls).
    """
    return _mirror(script, ScriptContext(unit=unit, trusted=trusted, path=path))


def _mirror(script: torch.jit.ScriptModule, context: ScriptContext) -> nn.Module:
    eager = _eager_leaf(script)
    return eager if eager is not None else ScriptMirror(script, context)


def _eager_leaf(script: Any) -> nn.Module | None:
    qualified = script._c._type().qualified_name()
    name = getattr(script, "original_name", "")
    if "torch.nn.modules." not in qualified or name not in _EAGER:
        return None
    for view in (script, _traced_view(script, name)):
        try:
            module = _EAGER[name](view)
            module.load_state_dict(script.state_dict())
        except (AttributeError, RuntimeError, TypeError, ValueError, IndexError):
            continue  # scripted modules keep their attributes; traced ones only their graph
        return module.train(script.training)
    return None  # interpret the compiled code instead


# Where a traced leaf's constructor arguments sit in its graph: op -> {attribute: input index}.
_TRACED_ARGS: dict[str, tuple[tuple[str, ...], dict[str, int]]] = {
    "Conv2d": (("aten::_convolution", "aten::conv2d"),
               {"stride": 3, "padding": 4, "dilation": 5}),
    "BatchNorm2d": (("aten::batch_norm",), {"momentum": 6, "eps": 7}),
    "BatchNorm1d": (("aten::batch_norm",), {"momentum": 6, "eps": 7}),
    "MaxPool2d": (("aten::max_pool2d",),
                  {"kernel_size": 1, "stride": 2, "padding": 3, "dilation": 4, "ceil_mode": 5}),
    "AvgPool2d": (("aten::avg_pool2d",), {"kernel_size": 1, "stride": 2, "padding": 3,
                  "ceil_mode": 4, "count_include_pad": 5, "divisor_override": 6}),
    "AdaptiveAvgPool2d": (("aten::adaptive_avg_pool2d",), {"output_size": 1}),
    "AdaptiveMaxPool2d": (("aten::adaptive_max_pool2d",), {"output_size": 1}),
    "Flatten": (("aten::flatten",), {"start_dim": 1, "end_dim": 2}),
    "Dropout": (("aten::dropout", "aten::dropout_"), {"p": 1}),
    "Dropout2d": (("aten::feature_dropout", "aten::dropout"), {"p": 1}),
    "LeakyReLU": (("aten::leaky_relu", "aten::leaky_relu_"), {"negative_slope": 1}),
    "ELU": (("aten::elu", "aten::elu_"), {"alpha": 1}),
    "GELU": (("aten::gelu",), {"approximate": 1}),
    "Softmax": (("aten::softmax",), {"dim": 1}),
    "LogSoftmax": (("aten::log_softmax",), {"dim": 1}),
}  # fmt: skip


def _traced_view(script: Any, name: str) -> SimpleNamespace:
    """A traced leaf's constructor arguments, read from its weights and its graph's constants."""
    view = SimpleNamespace(padding_mode="zeros", affine=True, track_running_stats=True)
    weight = getattr(script, "weight", None)
    if isinstance(weight, torch.Tensor):
        if name == "Conv2d":
            view.out_channels, per_group, *kernel = weight.shape
            view.kernel_size = tuple(kernel)
        elif name == "Linear":
            view.out_features, view.in_features = weight.shape
        else:
            view.num_features = weight.shape[0]
        view.bias = getattr(script, "bias", None)
    ops, positions = _TRACED_ARGS.get(name, ((), {}))
    node = next((n for n in script.graph.nodes() if n.kind() in ops), None)
    if node is not None:
        inputs = list(node.inputs())
        for attr, index in positions.items():
            setattr(view, attr, _constant(inputs[index]))
        if name == "Conv2d":
            view.groups = _constant(inputs[8 if node.kind() == "aten::_convolution" else 6])
            view.in_channels = per_group * view.groups
    return view


def _constant(value: Any) -> Any:
    node = value.node()
    if node.kind() == "prim::Constant":
        return value.toIValue()
    if node.kind() == "prim::ListConstruct":
        return [_constant(v) for v in node.inputs()]
    raise ValueError("not a constant")


class ScriptMirror(nn.Module):
    """Runs a TorchScript module's graphs in Python, calling children through their mirrors."""

    # The layer table is found by recording a forward pass through this interpreter.
    convlens_trace_note = "TorchScript runs in convlens's interpreter, which torch.fx cannot trace"

    def __init__(
        self, script: torch.jit.ScriptModule, context: ScriptContext | None = None
    ) -> None:
        super().__init__()
        object.__setattr__(self, "script", script)
        object.__setattr__(self, "context", context or ScriptContext())
        self.convlens_type = getattr(script, "original_name", "ScriptModule")
        for name, child in script.named_children():
            self.add_module(name, _mirror(child, self.context))
        for name, param in script.named_parameters(recurse=False):
            self.register_parameter(name, nn.Parameter(param, requires_grad=param.requires_grad))
        for name, buffer in script.named_buffers(recurse=False):
            self.register_buffer(name, buffer)
        self.train(script.training)

    def forward(self, *args: Any) -> Any:
        return self.call_method("forward", args)

    def call_method(self, name: str, args: tuple[Any, ...]) -> Any:
        graph = self.script._c._get_method(name).graph
        return run_graph(graph, (self, *args), self.context)

    def attribute(self, name: str) -> Any:
        if name in self._modules or name in self._parameters or name in self._buffers:
            return getattr(self, name)
        if name == "training":
            return self.training
        return getattr(self.script, _attribute_name(name))


def _attribute_name(name: str) -> str:
    """Only plain attribute names: a graph never reaches Python internals through GetAttr."""
    if name.startswith("__") or not name.isidentifier():
        raise ScriptRefused(f"the TorchScript model reads attribute {name!r}; refused")
    return name


def run_graph(graph: Any, inputs: tuple[Any, ...], context: ScriptContext | None = None) -> Any:
    """Interpret a TorchScript graph on Python values; returns its output (a tuple if several)."""
    context = context or ScriptContext()
    env: dict[int, Any] = {}
    for value, arg in zip(graph.inputs(), inputs, strict=True):
        env[value.unique()] = arg
    outputs = _run_block(graph, env, context)
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


def _run_block(block: Any, env: dict[int, Any], context: ScriptContext) -> list[Any]:
    for node in block.nodes():
        results = _run_node(node, env, context)
        outs = list(node.outputs())
        if len(outs) == 1:
            env[outs[0].unique()] = results
        elif outs:
            for value, result in zip(outs, results, strict=True):
                env[value.unique()] = result
    end = block.returnNode() if hasattr(block, "returnNode") else block.return_node()
    return [env[v.unique()] for v in end.inputs()]


def _run_node(node: Any, env: dict[int, Any], context: ScriptContext) -> Any:
    kind = node.kind()
    args = [env[v.unique()] for v in node.inputs()]
    if kind == "prim::Constant":
        out = node.output()
        if out.type().kind() == "FunctionType":
            return str(out.type())
        return out.toIValue()
    if kind == "prim::GetAttr":
        owner, name = args[0], node.s("name")
        if isinstance(owner, ScriptMirror):
            return owner.attribute(name)
        return getattr(_method_owner(owner, kind), _attribute_name(name))
    if kind == "prim::CallMethod":
        owner, name = args[0], node.s("name")
        if name == "forward" and isinstance(owner, nn.Module):
            return owner(*args[1:])  # through __call__, so hooks fire
        if isinstance(owner, ScriptMirror):
            return owner.call_method(name, tuple(args[1:]))
        return getattr(_method_owner(owner, kind), _attribute_name(name))(*args[1:])
    if kind == "prim::CallFunction":
        return _call_function(function_name(node), args[1:], context)
    if kind == "prim::If":
        blocks = list(node.blocks())
        return _block_result(blocks[0] if args[0] else blocks[1], env, context)
    if kind == "prim::Loop":
        return _run_loop(node, args, env, context)
    if kind in _PRIMS:
        return _PRIMS[kind](*args)
    if kind.startswith("aten::"):
        return _aten(node, kind[len("aten::") :], args, context)
    raise ScriptRefused(f"the TorchScript model uses {kind!r}, which convlens does not run")


def _method_owner(owner: Any, kind: str) -> Any:
    """The objects whose attributes and methods a graph may use: torch.nn leaves (mirrored)."""
    if isinstance(owner, nn.Module) and type(owner).__module__.startswith("torch.nn."):
        return owner
    raise ScriptRefused(
        f"the TorchScript model applies {kind} to a {type(owner).__name__}; refused"
    )


def _call_function(qualified: str, args: list[Any], context: ScriptContext) -> Any:
    """A called function: the host's allowlisted torch.nn.functional op, or the file's own code.

    Nothing is imported: a function that is not an allowlisted operation runs from the graph
    compiled into the file, under the same allowlist.
    """
    host = functional(qualified)
    if host is not None:  # the Python-level op, which TorchFunctionModes (the RF probe) see
        return host(*args)
    refuse_function(qualified, context.path)
    compiled = compiled_function(context.unit, qualified)
    if compiled is None:
        raise ScriptRefused(
            f"the TorchScript model calls {qualified!r}, which is neither a tensor operation "
            "nor compiled into the file; load the file with convlens.load"
        )
    return run_graph(compiled.graph, tuple(args), context)


def _block_result(block: Any, env: dict[int, Any], context: ScriptContext) -> Any:
    outputs = _run_block(block, env, context)
    return outputs[0] if len(outputs) == 1 else outputs


def _run_loop(node: Any, args: list[Any], env: dict[int, Any], context: ScriptContext) -> Any:
    trips, cond, carried = args[0], args[1], list(args[2:])
    (body,) = list(node.blocks())
    params = list(body.inputs())
    i = 0
    while cond and i < trips:
        for value, arg in zip(params, [i, *carried], strict=True):
            env[value.unique()] = arg
        cond, *carried = _run_block(body, env, context)
        i += 1
    return carried[0] if len(carried) == 1 else carried


def _raise(*args: Any) -> None:
    raise CheckpointError(f"the TorchScript model raised an error: {args[0] if args else ''}")


def _unpack(value: Any) -> Any:
    return tuple(value)


def _format(template: str, *args: Any) -> str:
    """TorchScript's ``"{}".format(...)``: each ``{}`` in turn, nothing else interpreted."""
    pieces = template.split("{}")
    out = [pieces[0]]
    for i, piece in enumerate(pieces[1:]):
        out.append(str(args[i]) if i < len(args) else "{}")
        out.append(piece)
    return "".join(out)


_PRIMS: dict[str, Callable[..., Any]] = {
    "prim::ListConstruct": lambda *a: list(a),
    "prim::TupleConstruct": lambda *a: tuple(a),
    "prim::DictConstruct": lambda *a: dict(zip(a[::2], a[1::2], strict=True)),
    "prim::ListUnpack": _unpack,
    "prim::TupleUnpack": _unpack,
    "prim::TupleIndex": lambda t, i: t[i],
    "prim::RaiseException": _raise,
    "prim::Uninitialized": lambda: None,
    "prim::unchecked_cast": lambda x: x,
    "prim::device": lambda x: x.device,
    "prim::dtype": lambda x: x.dtype,
    "prim::NumToTensor": torch.scalar_tensor,
    "prim::min": min,
    "prim::max": max,
    "prim::requires_grad": lambda x: x.requires_grad,
    "prim::is_cuda": lambda x: x.is_cuda,
    "prim::data": lambda x: x.detach(),
    "aten::__is__": operator.is_,
    "aten::__isnot__": operator.is_not,
    "aten::__not__": operator.not_,
    "aten::Int": int,
    "aten::Float": float,
    "aten::Bool": bool,
    "aten::ScalarImplicit": lambda x: x.item(),
    "aten::len": len,
    "aten::__getitem__": operator.getitem,
    "aten::append": lambda lst, x: lst.append(x) or lst,
    "aten::format": _format,
    "aten::warn": lambda *a: None,
    "aten::dim": lambda x: x.dim(),
    "aten::size": lambda x, *d: x.size(*d) if d else list(x.size()),
    "aten::list": list,
}

# Operators on Python numbers (TorchScript uses aten::add etc. for ints and floats too).
_NUMBER_OPS: dict[str, Callable[..., Any]] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "floordiv": operator.floordiv, "remainder": operator.mod, "neg": operator.neg,
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "gt": operator.gt,
    "le": operator.le, "ge": operator.ge, "__and__": operator.and_, "__or__": operator.or_,
}  # fmt: skip


def _aten(node: Any, name: str, args: list[Any], context: ScriptContext) -> Any:
    if not aten_allowed(name, trusted=context.trusted):  # checked at load; checked again here
        raise ScriptRefused(
            f"the TorchScript model uses 'aten::{name}', which is not on convlens's list of "
            "tensor operations; pass --trust-torchscript to let torch's other operators run"
        )
    if not any(isinstance(a, torch.Tensor) for a in args) and name in _NUMBER_OPS:
        return _NUMBER_OPS[name](*args)
    schema = torch._C.parse_schema(node.schema())
    positional, keywords = [], {}
    for spec, value in zip(schema.arguments, args, strict=False):
        if spec.kwarg_only:
            keywords[spec.name] = value
        else:
            positional.append(value)
    function = getattr(torch, name, None)
    if callable(function) and not name.endswith("_"):
        try:  # the Python-level function, which TorchFunctionModes (the RF probe) can see
            return function(*positional, **keywords)
        except TypeError:
            pass
    packet = getattr(torch.ops.aten, name)
    overload = getattr(packet, schema.overload_name or "default")
    return overload(*positional, **keywords)
