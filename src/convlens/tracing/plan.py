"""From an op graph to the layer table: the places in a network people mean.

- Every conv and dense module with the batch norm and the activation that follow it, wherever
  the activation is written (its own ``act`` child as in Keras' ``activation=``, an
  ``nn.ReLU`` module, ``F.relu``/``torch.relu``/``x.relu()`` in ``forward``). The row's value
  is after the activation, its ``pre`` value just before it.
- A module whose operations are exactly one such layer (a conv block) gives that layer its
  own path as name (``conv2d_1`` for ``conv2d_1.conv`` + ``F.relu``).
- A module ending in an addition, optionally followed by an activation (a residual block such
  as torchvision's ``BasicBlock``) is a row of kind ``block``: its output, and before the final
  activation.
- Pooling, flatten, dropout, normalization and activations not merged into a layer, and a final
  softmax (``nn.Softmax``, ``F.log_softmax``...), as modules or as function calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

from .graph import BlockCall, Op, OpGraph
from .kinds import (
    CORE_KINDS,
    MAX_POOL_ACTIVATIONS,
    MAX_POOLS,
    activation_name,
    function_kind,
    layer_kind,
    own_activation,
)

Anchor = tuple[str, int, str]  # (module path, call index, "in" or "out")


@dataclass(frozen=True)
class Point:
    """Where a value is read in the running model: a module call's input or output (or the
    model input, ``anchor=None``), then the functions applied to it in turn (``steps``)."""

    anchor: Anchor | None
    steps: tuple[str, ...] = ()

    def then(self, step: str) -> Point:
        return Point(self.anchor, (*self.steps, step))


@dataclass(frozen=True)
class Activation:
    """Where a layer's activation comes from, and how to apply it to a pre-activation."""

    name: str  # relu, leaky_relu, softmax, ...
    source: str  # "attribute" (the layer's act child), "module" or "functional"
    where: str  # the module path, or how the call is written ("F.relu()")
    module_path: str | None = None  # the module to apply (attribute and module sources)
    func: Callable[..., Any] | str | None = None  # functional: what to replay
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    """One row of the layer table, before shapes and receptive fields are measured."""

    name: str
    kind: str
    type_name: str
    post: Point
    pre: Point | None  # the value before the activation; None when there is none
    op: int  # op index of the row's value (execution order)
    module_path: str | None  # the module holding its weights, the block, or the layer module
    parts: tuple[str, ...] = ()  # what the row merges (module paths, function calls)
    params_from: tuple[str, ...] = ()  # modules whose parameters the row counts
    activation: Activation | None = None
    derived: bool = False  # the value is the activation applied to ``pre`` by convlens: the
    # model applies it after a max pooling, with which it commutes (F.relu(F.max_pool2d(conv)))


def point_of(graph: OpGraph, index: int) -> Point | None:
    """How to reach op ``index``'s value: from the nearest module call (or the input) through
    the functions in between, following each function's first tensor input."""
    steps: list[str] = []
    op = graph.ops[index]
    while op.kind == "function":
        steps.append(op.target)
        if not op.inputs:
            return None  # made from constants only: not reachable from the model's input
        op = graph.ops[op.inputs[0]]
    anchor = None if op.kind == "input" else (op.target, op.call, "out")
    return Point(anchor, tuple(reversed(steps)))


def spelling(op: Op) -> str:
    """How a function call is written in Python: ``F.relu()``, ``torch.relu()``, ``x.relu()``."""
    func = op.func
    if isinstance(func, str):
        return f"x.{func}()"
    module = getattr(func, "__module__", "") or ""
    qualified = getattr(func, "__qualname__", "") or ""
    name = getattr(func, "__name__", op.target)
    if module.startswith("torch.nn.functional"):
        return f"F.{name}()"
    if "TensorBase" in qualified or "Tensor." in qualified:
        return f"x.{name}()"
    if module == "_operator" or module == "operator":
        return {"add": "+", "iadd": "+="}.get(name, name)
    if "aten" in str(func) or module.startswith("torch._ops"):
        return f"aten::{op.target}"
    if module.startswith("torch") or qualified.startswith("_VariableFunctions"):
        return f"torch.{name}()"
    return f"{op.target}()"


class _Planner:
    def __init__(self, graph: OpGraph, modules: dict[str, nn.Module]) -> None:
        self.graph = graph
        self.modules = modules
        self.merged: set[int] = set()  # ops that are part of another row
        self.members: dict[int, set[int]] = {}  # core op -> the ops its row merges

    # --- what an op is --------------------------------------------------------------------
    def kind(self, op: Op) -> str | None:
        if op.kind == "module":
            return layer_kind(self.modules[op.target])
        if op.kind == "function":
            return function_kind(op.target)
        return None

    def is_activation(self, op: Op | None) -> bool:
        if op is None or self.kind(op) != "activation":
            return False
        if op.kind == "module":
            return not isinstance(self.modules[op.target], nn.Identity)
        return op.func is not None  # a functional activation must be replayable

    def is_max_pool(self, op: Op | None) -> bool:
        if op is None:
            return False
        if op.kind == "module":
            return isinstance(self.modules[op.target], nn.MaxPool2d | nn.AdaptiveMaxPool2d)
        return op.target in MAX_POOLS

    def activation_after_max_pool(self, op: Op | None) -> Op | None:
        """The activation right after max pool ``op``, if it commutes with it (relu)."""
        if not self.is_max_pool(op):
            return None
        assert op is not None
        act = self.graph.sole_consumer(op.index)
        if not self.is_activation(act):
            return None
        assert act is not None
        name = activation_name(self.modules[act.target]) if act.kind == "module" else act.target
        return act if name in MAX_POOL_ACTIVATIONS else None

    def is_batch_norm(self, op: Op | None) -> bool:
        if op is None:
            return False
        if op.kind == "module":
            return isinstance(self.modules[op.target], nn.BatchNorm1d | nn.BatchNorm2d)
        return op.target == "batch_norm" and op.func is not None

    def activation(self, op: Op) -> Activation:
        if op.kind == "module":
            name = activation_name(self.modules[op.target])
            return Activation(name, "module", op.target, module_path=op.target)
        return Activation(op.target, "functional", spelling(op), func=op.func, args=op.args,
                          kwargs=op.kwargs)  # fmt: skip

    # --- rows -----------------------------------------------------------------------------
    def core_row(self, op: Op) -> Row | None:
        """A conv or dense module with its batch norm and its activation."""
        module = self.modules[op.target]
        post = point_of(self.graph, op.index)
        assert post is not None
        parts, params = [op.target], [op.target]
        own = own_activation(module)
        if own is not None:
            path = f"{op.target}.act"
            act = Activation(activation_name(own), "attribute", path, module_path=path)
            return Row(op.target, self.kind(op) or "other", module_type(module), post,
                       Point((path, op.call, "in")), op.index, op.target, tuple(parts),
                       tuple(params), act)  # fmt: skip
        last = op
        members = self.members.setdefault(op.index, {op.index})
        follower = self.graph.sole_consumer(last.index)
        if self.is_batch_norm(follower):
            assert follower is not None
            last = follower
            self.merged.add(last.index)
            members.add(last.index)
            parts.append(last.name if last.kind == "function" else last.target)
            if last.kind == "module":
                params.append(last.target)
            follower = self.graph.sole_consumer(last.index)
        before = point_of(self.graph, last.index)
        pool_op = follower
        while pool_op is not None and self.kind(pool_op) == "dropout":  # identity when reading
            pool_op = self.graph.sole_consumer(pool_op.index)
        late = self.activation_after_max_pool(pool_op)
        if late is not None and before is not None and pool_op is not None:
            act = self.activation(late)
            pool = pool_op.target if pool_op.kind == "module" else pool_op.name
            act = replace(act, where=f"{act.where} after {pool}")
            return Row(op.target, self.kind(op) or "other", module_type(module), before,
                       before, last.index, op.target, tuple(parts), tuple(params), act,
                       derived=True)  # fmt: skip
        if not self.is_activation(follower):
            return Row(op.target, self.kind(op) or "other", module_type(module), before or post,
                       None, last.index, op.target, tuple(parts), tuple(params))  # fmt: skip
        assert follower is not None
        self.merged.add(follower.index)
        members.add(follower.index)
        after = point_of(self.graph, follower.index)
        if after is None:
            return None
        if follower.kind == "module":
            parts.append(follower.target)
            params.append(follower.target)
        else:
            parts.append(follower.name)
        return Row(op.target, self.kind(op) or "other", module_type(module), after, before,
                   follower.index, op.target, tuple(parts), tuple(params),
                   self.activation(follower))  # fmt: skip

    def block_row(self, block: BlockCall) -> Row | None:
        """A residual block: a module whose output is an addition, or an activation of one."""
        if block.output is None or block.call != 0:
            return None
        inside = set(block.ops)
        cores = [i for i in block.ops if self.kind(self.graph.ops[i]) in CORE_KINDS]
        if not cores:
            return None
        out = self.graph.ops[block.output]
        act: Op | None = None
        add = out
        if self.is_activation(out) and out.inputs:
            act, add = out, self.graph.ops[out.inputs[0]]
            if self.graph.sole_consumer(add.index) is not act:
                return None
        if not (add.kind == "function" and add.target == "add") and not (
            add.kind == "module" and type(self.modules[add.target]).__name__ == "Add"
        ):
            return None
        if add.index not in inside or len(add.inputs) < 2:
            return None
        if not add.scope or add.scope[-1] != block.path:
            return None  # the addition belongs to an inner block (a Sequential of blocks)
        module = self.modules[block.path]
        post = Point((block.path, 0, "out"))
        pre = point_of(self.graph, add.index) if act is not None else None
        if act is not None:
            self.merged.add(act.index)
        return Row(block.path, "block", module_type(module), post, pre, out.index, block.path,
                   (block.path,), (block.path,),
                   self.activation(act) if act is not None else None)  # fmt: skip

    def plain_row(self, op: Op) -> Row | None:
        """Pooling, flatten, dropout, norm, softmax, unmerged activations, other layer modules."""
        kind = self.kind(op)
        if op.kind == "function" and kind in (None, "add"):
            return None
        post = point_of(self.graph, op.index)
        if post is None:
            return None
        pre = act = None
        follower = self.graph.sole_consumer(op.index)
        if (
            kind in ("softmax", "activation")
            and op.inputs
            and (op.kind == "module" or op.func is not None)
        ):
            pre = point_of(self.graph, op.inputs[0])
            act = self.activation(op)
        elif kind == "pool" and self.is_activation(follower):  # F.relu(F.max_pool2d(...))
            assert follower is not None
            after = point_of(self.graph, follower.index)
            if after is not None:
                pre, post, act = post, after, self.activation(follower)
                self.merged.add(follower.index)
        if op.kind == "module":
            module = self.modules[op.target]
            return Row(op.target, kind or "other", module_type(module), post, pre, op.index,
                       op.target, (op.target,), (op.target,), act)  # fmt: skip
        return Row(op.name, kind or "other", spelling(op), post, pre, op.index, None,
                   (op.name,), (), act)  # fmt: skip


def plan_rows(graph: OpGraph, modules: dict[str, nn.Module]) -> list[Row]:
    """The layer table's rows for ``graph``, in execution order (see the module docstring)."""
    planner = _Planner(graph, modules)
    rows: dict[int, Row] = {}  # by the op of the core or layer module
    for op in graph.ops:
        if op.kind == "module" and op.call == 0 and planner.kind(op) in CORE_KINDS:
            row = planner.core_row(op)
            if row is not None:
                rows[op.index] = row
    _name_conv_blocks(graph, planner, rows)
    blocks = [planner.block_row(b) for b in graph.blocks]
    for op in graph.ops:
        if op.index in rows or op.index in planner.merged or op.kind == "input":
            continue
        if op.kind == "module" and (op.call != 0 or planner.kind(op) in CORE_KINDS):
            continue
        row = planner.plain_row(op)
        if row is not None:
            rows[op.index] = row
    table = [*rows.values(), *(b for b in blocks if b is not None)]
    table.sort(key=lambda r: r.op)
    out = graph.output
    if out is not None and graph.ops[out].kind != "input" and all(r.op != out for r in table):
        point = point_of(graph, out)  # the model's output is no layer: add it, for class units
        if point is not None:
            op = graph.ops[out]
            table.append(Row(op.name, "output", op.describe(), point, None, out, None, (op.name,)))
    return _unique(table)


def _name_conv_blocks(graph: OpGraph, planner: _Planner, rows: dict[int, Row]) -> None:
    """A module holding exactly one layer (conv, its norm, its activation) names that layer."""
    by_last = {row.op: core for core, row in rows.items()}
    for block in sorted(graph.blocks, key=lambda b: -len(b.path)):  # innermost first
        if block.output is None or block.call != 0 or block.output not in by_last:
            continue
        core = by_last[block.output]
        row = rows[core]
        if core not in block.ops or row.name != graph.ops[core].target:
            continue  # already named by an inner block, or the conv is outside this module
        if set(block.ops) - planner.members.get(core, {core}):
            continue
        rows[core] = replace(row, name=block.path, parts=(block.path, *row.parts))


def _unique(rows: list[Row]) -> list[Row]:
    seen: set[str] = set()
    out = []
    for row in rows:
        name, k = row.name, 1
        while name in seen:
            name, k = f"{row.name}_{k}", k + 1
        seen.add(name)
        out.append(row if name == row.name else replace(row, name=name))
    return out


def module_type(module: nn.Module) -> str:
    """The type a user recognizes: ``Conv2d+ReLU`` for a conv-with-activation wrapper (the zoo's
    and converted Keras layers), the class name otherwise."""
    name = type(module).__name__
    act = getattr(module, "act", None)
    if not (isinstance(act, nn.Module) and hasattr(module, "activation_name")):
        return name
    base = next(
        (c.__name__ for c in type(module).__mro__[1:] if c.__module__.startswith("torch.nn")), name
    )
    return base if isinstance(act, nn.Identity) else f"{base}+{type(act).__name__}"
