"""The op graph of a model from one recorded forward pass: hooks on every module plus a
torch function mode, tensors linked by identity.

This works for any model that runs, including those torch.fx cannot trace (data-dependent
control flow, TorchScript through convlens's interpreter). It follows the path the example
input takes; the layer table is then checked against the running model anyway.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .graph import BlockCall, Op, OpGraph
from .kinds import function_name, is_inplace_name, is_leaf


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    for leaf in tree_leaves(value):
        if isinstance(leaf, torch.Tensor):
            yield leaf


@dataclass
class _Call:
    path: str
    call: int
    leaf: bool
    ignored: bool  # inside a leaf module: not recorded
    start: int = 0
    inputs: tuple[int, ...] = ()


class _Recorder(TorchFunctionMode):
    """Module hooks and a function mode writing one op graph (see :func:`recorded_graph`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.ops: list[Op] = []
        self.blocks: list[BlockCall] = []
        self.producer: dict[int, int] = {}  # id(tensor) -> the op that made it
        self.alive: list[torch.Tensor] = []  # keeps ids unique while recording
        self.stack: list[_Call] = []
        self.calls: Counter[str] = Counter()
        self.names: Counter[str] = Counter()
        self.taken = {path for path, _ in model.named_modules()}
        self.output: int | None = None

    # --- bookkeeping ------------------------------------------------------------------------
    def _inside_leaf(self) -> bool:
        return any(c.leaf or c.ignored for c in self.stack)

    def _sources(self, value: Any) -> tuple[int, ...]:
        found = (self.producer.get(id(t)) for t in tensors_in(value))
        return tuple(dict.fromkeys(i for i in found if i is not None))

    def _produce(self, value: Any, op: int) -> None:
        for t in tensors_in(value):
            self.producer[id(t)] = op
            self.alive.append(t)

    def _scope(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.stack if c.path and not c.leaf)

    def _name(self, base: str) -> str:
        while True:
            count = self.names[base]
            self.names[base] += 1
            name = base if count == 0 else f"{base}_{count}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    # --- hooks ------------------------------------------------------------------------------
    def pre_hook(self, path: str, module: nn.Module, args: tuple[Any, ...]) -> None:
        if self._inside_leaf():
            self.stack.append(_Call(path, 0, False, True))
            return
        if not path:  # the model itself: its input is op 0
            self.ops.append(Op(0, "input", "input", "input"))
            self._produce(args[:1], 0)
            self.stack.append(_Call(path, 0, False, False))
            return
        call = self.calls[path]
        self.calls[path] += 1
        self.stack.append(_Call(path, call, is_leaf(module), False, len(self.ops),
                                self._sources(args)))  # fmt: skip

    def post_hook(self, path: str, module: nn.Module, output: Any) -> None:
        entry = self.stack.pop()
        if entry.ignored:
            return
        tensors = list(tensors_in(output))
        if not path:
            self.output = self.producer.get(id(tensors[0])) if len(tensors) == 1 else None
            return
        if entry.leaf:
            if not tensors:
                return
            index = len(self.ops)
            self.ops.append(Op(index, "module", path, path, call=entry.call, inputs=entry.inputs,
                               scope=self._scope(),
                               inplace=bool(getattr(module, "inplace", False))))  # fmt: skip
            self._produce(output, index)
            return
        inside = tuple(range(entry.start, len(self.ops)))
        made = self.producer.get(id(tensors[0])) if len(tensors) == 1 else None
        self.blocks.append(
            BlockCall(
                path, entry.call, inside, made if made is not None and made in inside else None
            )
        )

    # --- functions --------------------------------------------------------------------------
    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if not self.stack or self._inside_leaf():
            return result
        if not any(True for _ in tensors_in(result)):
            return result
        sources = self._sources((args, kwargs))
        if not sources:
            return result
        first = next((i for i, a in enumerate(args) if isinstance(a, torch.Tensor)), 0)
        rest = tuple(args[first + 1 :])
        replayable = not any(True for _ in tensors_in((rest, kwargs)))
        index = len(self.ops)
        self.ops.append(Op(
            index, "function", function_name(func), self._name(function_name(func)),
            inputs=sources, scope=self._scope(),
            inplace=is_inplace_name(func) or kwargs.get("inplace") is True,
            func=func if replayable else None, args=rest if replayable else (),
            kwargs=dict(kwargs) if replayable else {},
        ))  # fmt: skip
        self._produce(result, index)
        return result


def recorded_graph(model: nn.Module, example: torch.Tensor, note: str = "") -> OpGraph:
    """Run ``model`` once on ``example`` and record its tensor operations."""
    recorder = _Recorder(model)
    handles = []
    try:
        for path, module in model.named_modules():
            handles.append(module.register_forward_pre_hook(
                lambda m, a, path=path: recorder.pre_hook(path, m, a)))  # fmt: skip
            handles.append(module.register_forward_hook(
                lambda m, a, out, path=path: recorder.post_hook(path, m, out)))  # fmt: skip
        with torch.no_grad(), recorder:
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return OpGraph(recorder.ops, recorder.blocks, recorder.output, "recorded", note)
