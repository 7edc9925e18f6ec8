"""convlens: see what a convolutional neural network has learned and why it decides as it does.

>>> import convlens as cl
>>> lens = cl.load("runs/kaggle4")          # a checkpoint folder
>>> lens.layers                              # the layer table, with receptive fields
>>> cl.kernels(lens, "conv2d_1")             # (32, 1, 3, 3) weights
>>> cl.activations(lens, x).maps["conv2d_2"] # feature maps for images x
"""

import sys as _sys
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
    "Explanation": "viz.faithfulness",
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
    "Executor": "distributed",
    "InProcess": "distributed",
    "RayExecutor": "distributed",
    "executor_from_spec": "distributed",
}

if TYPE_CHECKING:
    from .data import Dataset, load_dataset
    from .distributed import Executor, InProcess, RayExecutor, executor_from_spec
    from .lens import InputSpec, LayerInfo, Lens
    from .models import build_model, load
    from .units import Unit, resolve_units
    from .viz import Activations, activations, all_kernels, kernels
    from .viz.attribution import Heatmap, attribute, method_names
    from .viz.examples import ExamplesResult, TopK, examples
    from .viz.faithfulness import Explanation, Faithfulness, explain, faithfulness
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


def widget(lens: "Lens", *others: "Lens", **options: object) -> object:
    """The live drawing view of ``lens`` in a notebook cell (see :func:`convlens.server.widget`).

    Imported on call, so ``import convlens`` does not load the web server.
    """
    from .server.notebook import widget as _widget

    return _widget(lens, *others, **options)  # type: ignore[arg-type]


__all__ = [
    "Activations",
    "ConvlensError",
    "Dataset",
    "ExamplesResult",
    "Executor",
    "Explanation",
    "Faithfulness",
    "Heatmap",
    "InProcess",
    "InputSpec",
    "LayerInfo",
    "Lens",
    "Prototypes",
    "RayExecutor",
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
    "executor_from_spec",
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
    "widget",
]

if "IPython" in _sys.modules:  # a notebook: let it show convlens's pyplot-free figures
    from .display.notebook import register_formatters as _register

    _register()
