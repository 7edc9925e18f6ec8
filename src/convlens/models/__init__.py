"""Where networks come from: the zoo, checkpoint folders and (later) foreign model files."""

from .checkpoint import load_checkpoint, save_checkpoint, snapshot_epochs
from .loader import load
from .zoo import build_model, model_names, model_summaries, register_model

__all__ = [
    "build_model",
    "load",
    "load_checkpoint",
    "model_names",
    "model_summaries",
    "register_model",
    "save_checkpoint",
    "snapshot_epochs",
]
