"""Read a model's op graph: torch.fx first, a recorded forward pass where fx cannot trace."""

from __future__ import annotations

import torch
from torch import nn

from .graph import OpGraph
from .record import recorded_graph
from .symbolic import fx_graph


def first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]


def trace_graph(model: nn.Module, example: torch.Tensor) -> OpGraph:
    """The op graph of ``model`` for inputs like ``example`` (already normalized).

    A model can say it must be recorded (``convlens_trace = "record"``: the TorchScript
    mirror, whose interpreter fx cannot follow). Otherwise fx is tried and any failure is kept
    as the note saying why the graph was recorded instead.
    """
    reason = getattr(model, "convlens_trace_note", None)
    if reason is None:
        try:
            return fx_graph(model, example)
        except Exception as exc:  # any model code can fail under symbolic tracing
            reason = f"torch.fx could not trace it ({type(exc).__name__}: {first_line(exc)})"
    return recorded_graph(model, example, note=str(reason))
