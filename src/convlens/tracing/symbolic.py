"""The op graph of a model by torch.fx symbolic tracing (no data flows; one shape pass).

fx sees what hooks cannot: functional activations (``F.relu(self.conv(x))``), tensor methods
(``x.relu()``), operators (``out + identity``). Layer modules stay single operations (see
:func:`kinds.is_leaf`). Models fx cannot trace (data-dependent control flow, ``*args``
forwards) raise here; :mod:`.trace` then records a forward pass instead.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata

from .graph import BlockCall, Op, OpGraph
from .kinds import function_name, is_inplace_name, is_leaf


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf(m) or super().is_leaf_module(m, module_qualified_name)


def _nodes_in(value: Any) -> list[fx.Node]:
    out: list[fx.Node] = []
    fx.node.map_arg(value, lambda n: out.append(n) or n)
    return out


def _is_tensor(node: fx.Node) -> bool:
    meta = node.meta.get("tensor_meta")
    if isinstance(meta, TensorMetadata):
        return True
    return isinstance(meta, list | tuple) and any(isinstance(m, TensorMetadata) for m in meta)


def fx_graph(model: nn.Module, example: torch.Tensor) -> OpGraph:
    """Trace ``model`` symbolically and read its tensor operations; raises if fx cannot."""
    tracer = _Tracer()
    graph = tracer.trace(model)
    module = fx.GraphModule(tracer.root, graph)
    with torch.no_grad():
        ShapeProp(module).propagate(example)
    modules = dict(model.named_modules())
    ops: list[Op] = []
    index: dict[fx.Node, int] = {}
    calls: Counter[str] = Counter()
    output: int | None = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if not ops:
                index[node] = 0
                ops.append(Op(0, "input", "input", "input"))
            continue
        if node.op == "output":
            found = [index[n] for n in _nodes_in(node.args) if n in index]
            output = found[0] if len(found) == 1 else None
            continue
        if node.op not in ("call_module", "call_function", "call_method") or not _is_tensor(node):
            continue
        inputs = tuple(dict.fromkeys(index[n] for n in _nodes_in((node.args, node.kwargs))
                                     if n in index))  # fmt: skip
        stack = list(node.meta.get("nn_module_stack", {}).values())
        scope = tuple(path for path, _ in stack if path and path != node.target)
        op_index = len(ops)
        if node.op == "call_module":
            path = str(node.target)
            op = Op(op_index, "module", path, path, call=calls[path], inputs=inputs, scope=scope,
                    inplace=bool(getattr(modules.get(path), "inplace", False)))  # fmt: skip
            calls[path] += 1
        else:
            target = node.target
            rest, kwargs = tuple(node.args[1:]), dict(node.kwargs)
            replayable = not _nodes_in((rest, kwargs))
            op = Op(
                op_index, "function", function_name(target), node.name, inputs=inputs,
                scope=scope, inplace=is_inplace_name(target) or kwargs.get("inplace") is True,
                func=target if replayable else None, args=rest if replayable else (),
                kwargs=kwargs if replayable else {},
            )  # fmt: skip
        ops.append(op)
        index[node] = op_index
    return OpGraph(ops, _block_calls(ops, output), output, "torch.fx")


def _block_calls(ops: list[Op], output: int | None) -> list[BlockCall]:
    """Calls of non-leaf modules: maximal runs of consecutive ops with the module in scope."""
    runs: dict[str, list[list[int]]] = {}
    for op in ops:
        for path in op.scope:
            spans = runs.setdefault(path, [])
            if spans and spans[-1][-1] == op.index - 1:
                spans[-1].append(op.index)
            else:
                spans.append([op.index])
    readers: dict[int, set[int]] = {}
    for op in ops:
        for source in op.inputs:
            readers.setdefault(source, set()).add(op.index)
    blocks = []
    for path, spans in runs.items():
        for call, members in enumerate(spans):
            inside = set(members)
            leaving = [i for i in members
                       if i == output or readers.get(i, set()) - inside]  # fmt: skip
            blocks.append(
                BlockCall(path, call, tuple(members), leaving[0] if len(leaving) == 1 else None)
            )
    return blocks
