"""convlens: see what a convolutional neural network has learned and why it decides as it does.

>>> import convlens as cl
>>> lens = cl.load("runs/kaggle4")          # a checkpoint folder
>>> lens.layers                              # the layer table, with receptive fields
>>> cl.kernels(lens, "conv2d_1")             # (32, 1, 3, 3) weights
>>> cl.activations(lens, x).maps["conv2d_2"] # feature maps for images x
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .errors import ConvlensError
from .train import train  # light (imports torch when called); the name is also a submodule

# The public API, imported on first use (PEP 562), so that `import convlens` and the CLI's
# --help and --version answer in a fraction of a second: torch loads only when needed.
_LAZY = {
    "Dataset": "data",
    "load_dataset": "data",
    "InputSpec": "lens",
    "LayerInfo": "lens",
    "Lens": "lens",
    "build_model": "models",
    "load": "models",
    "Unit": "units",
    "resolve_units": "units",
    "Activations": "viz",
    "activations": "viz",
    "all_kernels": "viz",
    "kernels": "viz",
    "Heatmap": "viz.attribution",
    "attribute": "viz.attribution",
    "method_names": "viz.attribution",
    "ExamplesResult": "viz.examples",
    "TopK": "viz.examples",
    "examples": "viz.examples",
    "Faithfulness": "viz.faithfulness",
    "explain": "viz.faithfulness",
    "faithfulness": "viz.faithfulness",
    "Prototypes": "viz.render",
    "RenderResult": "viz.render",
    "dataset_maxima": "viz.render",
    "prototypes": "viz.render",
    "render": "viz.render",
    "SanityResult": "viz.sanity",
    "sanity_check": "viz.sanity",
}

if TYPE_CHECKING:
    from .data import Dataset, load_dataset
    from .lens import InputSpec, LayerInfo, Lens
    from .models import build_model, load
    from .units import Unit, resolve_units
    from .viz import Activations, activations, all_kernels, kernels
    from .viz.attribution import Heatmap, attribute, method_names
    from .viz.examples import ExamplesResult, TopK, examples
    from .viz.faithfulness import Faithfulness, explain, faithfulness
    from .viz.render import Prototypes, RenderResult, dataset_maxima, prototypes, render
    from .viz.sanity import SanityResult, sanity_check


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'convlens' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__version__ = "0.1.0"

__all__ = [
    "Activations",
    "ConvlensError",
    "Dataset",
    "ExamplesResult",
    "Faithfulness",
    "Heatmap",
    "InputSpec",
    "LayerInfo",
    "Lens",
    "Prototypes",
    "RenderResult",
    "SanityResult",
    "TopK",
    "Unit",
    "activations",
    "all_kernels",
    "attribute",
    "build_model",
    "dataset_maxima",
    "examples",
    "explain",
    "faithfulness",
    "kernels",
    "load",
    "load_dataset",
    "method_names",
    "prototypes",
    "render",
    "resolve_units",
    "sanity_check",
    "train",
]
