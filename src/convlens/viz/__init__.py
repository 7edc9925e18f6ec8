"""The analyses: each takes a Lens and returns data (tensors and metrics), never pixels."""

from .activations import Activations, activations
from .kernels import all_kernels, kernels

__all__ = ["Activations", "activations", "all_kernels", "kernels"]
