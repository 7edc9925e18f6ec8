"""The dataflow of one forward pass as a small graph of tensor operations.

Both tracers (torch.fx and the hook recorder) produce this graph, so the layer table is found
the same way whichever of them could read the model. Only operations that produce tensors are
kept; leaf modules (a ``Conv2d``, a Keras-style ``Conv2dAct``) are single operations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

OpKind = Literal["input", "module", "function"]


@dataclass
class Op:
    """One tensor operation: a call of a leaf module, or of a function, or the model input."""

    index: int
    kind: OpKind
    target: str  # module path, or the function's name (see kinds.function_name)
    name: str  # unique display name: the module path, or e.g. "max_pool2d_1"
    call: int = 0  # which call of the module this is (a module may run several times)
    inputs: tuple[int, ...] = ()  # ops whose tensors it reads, in argument order
    scope: tuple[str, ...] = ()  # enclosing non-leaf module paths, outermost first
    inplace: bool = False
    func: Callable[..., Any] | str | None = None  # the function (a method name for x.relu())
    args: tuple[Any, ...] = ()  # the arguments after the first tensor (to replay it)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "function":
            return f"{self.target}()"
        return self.name


@dataclass
class BlockCall:
    """One call of a non-leaf module (a block): the operations inside it and its output."""

    path: str
    call: int
    ops: tuple[int, ...]
    output: int | None  # the op producing its output, None if it returns no single tensor


@dataclass
class OpGraph:
    """Operations in execution order, the module calls around them and the model's output."""

    ops: list[Op]
    blocks: list[BlockCall]
    output: int | None  # the op producing the model's output
    method: str  # "torch.fx" or "recorded"
    note: str = ""  # why torch.fx was not used, when it was not
    _consumers: dict[int, list[int]] | None = field(default=None, repr=False)

    def consumers(self, index: int) -> list[int]:
        """Ops reading the tensor that op ``index`` produces (each once, in order)."""
        if self._consumers is None:
            table: dict[int, list[int]] = {}
            for op in self.ops:
                for source in dict.fromkeys(op.inputs):
                    table.setdefault(source, []).append(op.index)
            self._consumers = table
        return self._consumers.get(index, [])

    def sole_consumer(self, index: int) -> Op | None:
        """The one op reading op ``index``'s tensor (None when none, or several, read it)."""
        readers = self.consumers(index)
        if self.output == index or len(readers) != 1:
            return None
        return self.ops[readers[0]]
