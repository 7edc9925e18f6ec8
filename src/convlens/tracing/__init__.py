"""How convlens finds the layers people mean in any ``nn.Module``.

A model's dataflow is read into one small graph of operations (:mod:`.graph`), by torch.fx
symbolic tracing (:mod:`.symbolic`) or, where that fails, by recording one forward pass with
hooks (:mod:`.record`). :mod:`.plan` turns that graph into the layer table (each conv or dense
layer with the activation that follows it, wherever it is written; blocks; pooling) and
:mod:`.capture` reads those points from the running model.
"""

from .capture import Capture
from .graph import Op, OpGraph
from .kinds import LAYER_KINDS, layer_kind
from .plan import Point, Row, plan_rows
from .trace import trace_graph

__all__ = [
    "LAYER_KINDS",
    "Capture",
    "Op",
    "OpGraph",
    "Point",
    "Row",
    "layer_kind",
    "plan_rows",
    "trace_graph",
]
