"""What a TorchScript file may make convlens run: an explicit allowlist of tensor operations.

convlens re-executes a TorchScript model's graphs in Python (so hooks can see every layer).
Everything a graph names is checked here *before* anything runs, and again when it runs:

- ``aten::`` operators must be on :data:`ALLOWED_ATEN`, pure tensor and number operations
  (no file, process or network access). ``--trust-torchscript`` lets other registered torch
  operators run; it never lets a file import or call a Python function.
- A called function (``prim::CallFunction``) is either one of the host's own
  ``torch.nn.functional`` operations on :data:`ALLOWED_FUNCTIONAL`, or the file's own compiled
  function, whose body is checked by these same rules. A compiled function that claims the name
  of a standard-library or builtin function (``os.system``, ``builtins.exec``) or of a torch
  function outside ``torch.nn`` (``torch.load``) is a file made to look as if it calls them, and
  the file is refused.
- Only the interpreter's own ``prim::`` nodes are run; anything else refuses the file.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import CheckpointError


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Pure tensor / number operators, by base name (an in-place "name_" is allowed with "name").
ALLOWED_ATEN: frozenset[str] = _words(
    """
    add sub rsub mul div true_divide floor_divide floordiv remainder fmod neg negative abs pow
    sqrt rsqrt square exp exp2 expm1 log log2 log10 log1p reciprocal sign sgn clamp clamp_min
    clamp_max clip floor ceil round trunc frac sin cos tan tanh sinh cosh asin acos atan atan2
    erf erfc erfinv lerp addmm addmv addbmm addcmul addcdiv matmul mm bmm baddbmm einsum dot mv
    outer maximum minimum hypot lgamma digamma
    eq ne lt le gt ge where logical_and logical_or logical_not logical_xor bitwise_and
    bitwise_or bitwise_not bitwise_xor isnan isinf isfinite nan_to_num equal allclose
    __and__ __or__ __xor__ __not__ __is__ __isnot__ __contains__ __range_length __derive_index
    __getitem__ __round_to_zero_floordiv
    sum mean max min amax amin aminmax argmax argmin prod std var std_mean var_mean norm
    frobenius_norm linalg_vector_norm logsumexp cumsum cumprod all any median topk sort argsort
    count_nonzero
    relu relu6 leaky_relu elu selu celu gelu silu mish sigmoid hardsigmoid hardswish hardtanh
    softplus softsign softmax log_softmax _softmax _log_softmax prelu rrelu glu tanhshrink
    hardshrink softshrink threshold log_sigmoid
    conv1d conv2d conv3d _convolution convolution conv_transpose1d conv_transpose2d
    conv_transpose3d linear bilinear batch_norm instance_norm layer_norm group_norm
    dropout feature_dropout alpha_dropout feature_alpha_dropout max_pool1d max_pool2d
    max_pool3d max_pool1d_with_indices max_pool2d_with_indices max_pool3d_with_indices
    avg_pool1d avg_pool2d avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d
    adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d pad
    constant_pad_nd reflection_pad1d reflection_pad2d replication_pad1d replication_pad2d
    circular_pad upsample_nearest1d upsample_nearest2d upsample_nearest3d upsample_linear1d
    upsample_bilinear2d upsample_bicubic2d upsample_trilinear3d _upsample_nearest_exact1d
    _upsample_nearest_exact2d _upsample_nearest_exact3d _upsample_bilinear2d_aa
    _upsample_bicubic2d_aa _upsample_lanczos2d_aa pixel_shuffle pixel_unshuffle
    channel_shuffle embedding one_hot cosine_similarity pairwise_distance
    scaled_dot_product_attention _pad_circular
    view reshape flatten unflatten squeeze unsqueeze permute transpose t contiguous expand
    expand_as repeat repeat_interleave narrow slice select index_select gather chunk split
    split_with_sizes tensor_split unbind stack cat concat concatenate flip roll view_as
    reshape_as numel size dim stride is_contiguous is_floating_point item index masked_fill
    masked_select clone detach to type_as float double half int long bool copy fill zero
    new_zeros new_ones new_full new_empty zeros ones full zeros_like ones_like full_like empty
    empty_like arange linspace tensor scalar_tensor tril triu diag eye movedim swapaxes
    list len append format warn str Int Float Bool ScalarImplicit IntImplicit FloatImplicit
    _infer_size _set_item extend insert pop
    rand randn rand_like randn_like bernoulli
    """
)

# The host's torch.nn.functional operations a TorchScript graph may call by name.
ALLOWED_FUNCTIONAL: frozenset[str] = _words(
    """
    relu relu6 elu selu celu gelu silu mish leaky_relu hardtanh hardswish hardsigmoid sigmoid
    tanh softplus softsign softmax softmin log_softmax logsigmoid prelu rrelu glu threshold
    tanhshrink hardshrink softshrink
    max_pool1d max_pool2d max_pool3d max_pool1d_with_indices max_pool2d_with_indices
    max_pool3d_with_indices _max_pool1d _max_pool2d _max_pool3d avg_pool1d avg_pool2d
    avg_pool3d adaptive_avg_pool1d adaptive_avg_pool2d adaptive_avg_pool3d adaptive_max_pool1d
    adaptive_max_pool2d adaptive_max_pool3d _adaptive_max_pool1d _adaptive_max_pool2d
    _adaptive_max_pool3d adaptive_max_pool1d_with_indices adaptive_max_pool2d_with_indices
    lp_pool1d lp_pool2d
    dropout dropout1d dropout2d dropout3d alpha_dropout feature_alpha_dropout
    batch_norm instance_norm layer_norm group_norm local_response_norm normalize
    linear bilinear conv1d conv2d conv3d conv_transpose1d conv_transpose2d conv_transpose3d
    pad interpolate upsample upsample_nearest upsample_bilinear pixel_shuffle pixel_unshuffle
    embedding one_hot cosine_similarity pairwise_distance
    """
)

# prim:: nodes the interpreter itself runs (see torchscript.py); nothing else is accepted.
INTERPRETER_PRIMS: frozenset[str] = _words(
    """
    Constant GetAttr CallMethod CallFunction If Loop ListConstruct TupleConstruct DictConstruct
    ListUnpack TupleUnpack TupleIndex RaiseException Uninitialized unchecked_cast device dtype
    NumToTensor min max requires_grad is_cuda data
    """
)

_FUNCTIONAL_PREFIX = "torch.nn.functional."
# Compiled torch helpers that TorchScript inlines as functions of the file (their bodies are
# checked op by op, like the file's own functions).
_TORCH_COMPILED_PREFIXES = ("torch.nn.", "torch.functional.")
_REFUSED_ROOTS = frozenset(sys.stdlib_module_names) | {"builtins", "__builtin__"}


class ScriptRefused(CheckpointError):
    """A TorchScript file names something that is not a tensor operation."""


def aten_allowed(name: str, *, trusted: bool = False) -> bool:
    """Whether ``aten::name`` may run (in-place ``name_`` follows ``name``)."""
    if trusted or name in ALLOWED_ATEN:
        return True
    return name.endswith("_") and not name.endswith("__") and name[:-1] in ALLOWED_ATEN


def functional(qualified: str) -> Callable[..., Any] | None:
    """The host's ``torch.nn.functional`` operation a graph names, or None if not allowlisted."""
    if not qualified.startswith(_FUNCTIONAL_PREFIX):
        return None
    name = qualified[len(_FUNCTIONAL_PREFIX) :]
    if name not in ALLOWED_FUNCTIONAL:
        return None
    function = getattr(F, name, None)
    return function if callable(function) else None


def function_name(node: Any) -> str:
    """The qualified name a ``prim::CallFunction`` node calls (``torch.nn.functional.relu``)."""
    return str(node.inputsAt(0).type()).removeprefix("__torch__.")


def refuse_function(qualified: str, path: object) -> None:
    """Raise when a called function's name is a host function that is not a tensor operation."""
    root = qualified.split(".", 1)[0]
    foreign_torch = root == "torch" and not qualified.startswith(_TORCH_COMPILED_PREFIXES)
    if root in _REFUSED_ROOTS or foreign_torch:
        raise ScriptRefused(
            f"{path} is refused: its TorchScript code calls {qualified!r}, which is not a tensor "
            "operation (a model file must never make convlens run Python functions)"
        )


def check_script(script: torch.jit.ScriptModule, unit: Any, path: object, *,
                 trusted: bool = False) -> None:  # fmt: skip
    """Refuse ``script`` (with ``unit``, its compilation unit) unless every node is allowed.

    Walks every method of every submodule and every function they reach, before anything runs.
    """
    seen: set[str] = set()
    pending = [graph for module in _modules(script) for graph in _method_graphs(module)]
    while pending:
        graph = pending.pop()
        for node in _nodes(graph):
            kind = node.kind()
            namespace, _, name = kind.partition("::")
            if namespace == "aten":
                if not aten_allowed(name, trusted=trusted):
                    raise ScriptRefused(
                        f"{path} is refused: its TorchScript code uses {kind!r}, which is not on "
                        "convlens's list of tensor operations; pass --trust-torchscript to let "
                        "torch's other operators run (Python functions never run)"
                    )
            elif namespace != "prim" or name not in INTERPRETER_PRIMS:
                raise ScriptRefused(
                    f"{path} is refused: its TorchScript code uses {kind!r}, which convlens "
                    "does not run"
                )
            elif name == "CallFunction":
                qualified = function_name(node)
                if qualified in seen or functional(qualified) is not None:
                    continue
                refuse_function(qualified, path)
                compiled = compiled_function(unit, qualified)
                if compiled is None:
                    raise ScriptRefused(
                        f"{path} is refused: its TorchScript code calls {qualified!r}, which is "
                        "neither a tensor operation nor compiled into the file"
                    )
                seen.add(qualified)
                pending.append(compiled.graph)


def compiled_function(unit: Any, qualified: str) -> Any:
    """The file's own compiled function ``qualified`` (a ScriptFunction), or None."""
    if unit is None:
        return None
    try:
        return unit.find_function("__torch__." + qualified)
    except RuntimeError:
        return None


def _modules(script: torch.jit.ScriptModule) -> Iterator[Any]:
    yield script
    for child in script.children():
        yield from _modules(child)


def _method_graphs(module: Any) -> Iterator[Any]:
    for name in module._c._method_names():
        yield module._c._get_method(name).graph


def _nodes(block: Any) -> Iterator[Any]:
    for node in block.nodes():
        yield node
        for inner in node.blocks():
            yield from _nodes(inner)
