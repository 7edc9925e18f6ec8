"""Read layer values from a running model: hooks on module calls, a function mode for the
function calls after them.

A :class:`~.plan.Point` names a module call's input or output and then functions applied to
it (``conv1`` output, then ``relu``). Module values come from forward hooks; the functions
are followed by tensor identity in a ``TorchFunctionMode``: the first call of ``relu`` that
reads the watched ``conv1`` output gives the point's value. Captured values are the very
tensors the model computes with, so gradients flow through them.

In-place operations would overwrite what was read: while capturing, modules with
``inplace=True`` (``nn.ReLU(inplace=True)``) run out of place, and in-place calls on a captured
tensor (``out += identity``, ``x.relu_()``) run as their out-of-place twins. Values are equal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .kinds import function_name, is_inplace_name
from .plan import Point


class Stop(Exception):
    """Raised once every requested value was read, to end the forward pass early."""


def _tensor_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    found = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, list | tuple):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


def out_of_place(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Callable[..., Any], dict[str, Any]] | None:
    """The out-of-place twin of an in-place call (``relu_`` -> ``relu``), or None."""
    if kwargs.get("inplace") is True:
        return func, {**kwargs, "inplace": False}
    if isinstance(func, torch._ops.OpOverload):
        base = func._schema.name.split("::")[-1].rstrip("_")
        packet = getattr(torch.ops.aten, base, None)
        alt = getattr(packet, func._overloadname, None) if packet is not None else None
        return (alt, kwargs) if alt is not None else None
    name = getattr(func, "__name__", "") or ""
    if name.startswith("__i") and name.endswith("__"):
        alt = getattr(torch.Tensor, "__" + name[3:], None)
    elif name.endswith("_") and not name.endswith("__"):
        qualified = getattr(func, "__qualname__", "") or ""
        owner: Any = torch.Tensor if "Tensor" in qualified else torch
        alt = getattr(owner, name[:-1], None)
    else:
        return None
    return (alt, kwargs) if callable(alt) else None


class Capture(TorchFunctionMode):
    """While entered, reads ``points`` (name -> Point) at every forward pass of ``model``.

    ``values[name]`` lists what was read, one entry per forward. With ``stop``, the forward
    ends (:class:`Stop`) once every point was read. ``routes`` maps the point of a functional
    activation to a module run in its place (so hooks on that module see it); ``transforms``
    maps a name to a function applied to its value as it is read, and the model then computes
    with the transformed value (so gradients reach it: relu(conv) before a max pool whose
    output the model passes through relu anyway).
    """

    def __init__(
        self,
        model: nn.Module,
        points: dict[str, Point],
        *,
        stop: bool = False,
        routes: dict[Point, nn.Module] | None = None,
        transforms: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.stop = stop
        self.routes = dict(routes or {})
        self.transforms = dict(transforms or {})
        self.values: dict[str, list[torch.Tensor]] = {name: [] for name in points}
        self.wanted: dict[Point, list[str]] = {}
        for name, point in points.items():
            self.wanted.setdefault(point, []).append(name)
        self.children: dict[Point, set[str]] = {}
        for point in [*self.wanted, *self.routes]:
            for k in range(len(point.steps)):
                prefix = Point(point.anchor, point.steps[:k])
                self.children.setdefault(prefix, set()).add(point.steps[k])
        self.total = len(points)
        self._handles: list[Any] = []
        self._reset()

    # --- per forward pass -------------------------------------------------------------------
    def _reset(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.watch: dict[int, list[tuple[Point, torch.Tensor]]] = {}
        self.protected: dict[int, torch.Tensor] = {}
        self.swap: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.done: set[str] = set()

    def _reach(self, point: Point, value: Any) -> None:
        if not isinstance(value, torch.Tensor):
            return
        for name in self.wanted.get(point, ()):
            if name not in self.done:
                self.done.add(name)
                transform = self.transforms.get(name)
                if transform is None:
                    self.values[name].append(value)
                else:
                    changed = transform(value)
                    self.values[name].append(changed)
                    self.swap[id(value)] = (value, changed)
                self.protected[id(value)] = value
        if point in self.children:
            self.watch.setdefault(id(value), []).append((point, value))
        if self.stop and len(self.done) == self.total:
            raise Stop

    # --- hooks ------------------------------------------------------------------------------
    def _install(self) -> None:
        anchors: dict[tuple[str, str], set[int]] = {}
        for point in [*self.wanted, *self.children]:
            if point.anchor is not None:
                path, call, side = point.anchor
                anchors.setdefault((path, side), set()).add(call)
        root_wants_input = any(p.anchor is None for p in [*self.wanted, *self.children])

        def root_pre(_m: nn.Module, args: tuple[Any, ...]) -> None:
            self._reset()
            if root_wants_input and args:
                self._reach(Point(None), args[0])

        self._handles.append(self.model.register_forward_pre_hook(root_pre))
        for (path, side), calls in anchors.items():
            module = self.model.get_submodule(path)
            if side == "in":
                self._handles.append(module.register_forward_pre_hook(
                    self._module_hook(path, side, calls, inputs=True)))  # fmt: skip
            else:
                self._handles.append(module.register_forward_hook(
                    self._module_hook(path, side, calls, inputs=False)))  # fmt: skip

    def _module_hook(self, path: str, side: str, calls: set[int], *, inputs: bool):
        key = (path, side)

        def hook(_m: nn.Module, args: tuple[Any, ...], output: Any = None) -> None:
            call = self.counts[key]
            self.counts[key] += 1
            if call in calls:
                self._reach(Point((path, call, side)), args[0] if inputs and args else output)

        return hook

    def __enter__(self) -> Capture:
        self._install()
        self._inplace = [m for m in self.model.modules() if getattr(m, "inplace", None) is True]
        for module in self._inplace:
            module.inplace = False  # type: ignore[assignment]
        try:
            super().__enter__()
        except BaseException:
            self._uninstall()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._uninstall()

    def _uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module in getattr(self, "_inplace", ()):
            module.inplace = True  # type: ignore[assignment]
        self._inplace = []

    # --- functions --------------------------------------------------------------------------
    def _swapped(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        def one(value: Any) -> Any:
            if isinstance(value, torch.Tensor) and id(value) in self.swap:
                return self.swap[id(value)][1]
            if isinstance(value, list | tuple) and any(id(v) in self.swap for v in value):
                return type(value)(one(v) for v in value)
            return value

        return tuple(one(a) for a in args)

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if not self.watch and not self.protected:
            return func(*args, **kwargs)
        tensors = _tensor_args(args, kwargs)  # as the model passed them: what is watched
        if self.swap:
            args = self._swapped(args)
            kwargs = {k: self._swapped((v,))[0] for k, v in kwargs.items()}
        if (
            self.protected
            and tensors
            and id(tensors[0]) in self.protected
            and (kwargs.get("inplace") is True or is_inplace_name(func))
        ):
            twin = out_of_place(func, args, kwargs)
            if twin is not None:
                func, kwargs = twin
        hits = [(point, t) for t in tensors for point, _ in self.watch.get(id(t), ())]
        if not hits:
            return func(*args, **kwargs)
        name = function_name(func)
        steps = [(point.then(name), t) for point, t in hits if name in self.children[point]]
        route = next(((self.routes[p], t) for p, t in steps if p in self.routes), None)
        if route is not None:
            result = route[0](self._swapped((route[1],))[0] if self.swap else route[1])
        else:
            result = func(*args, **kwargs)
        value = result if isinstance(result, torch.Tensor) else next(
            (r for r in result if isinstance(r, torch.Tensor)), None
        ) if isinstance(result, list | tuple) else None  # fmt: skip
        for point, _ in steps:
            self._reach(point, value)
        return result
