"""Notebook display of convlens objects: short reprs, HTML summaries, pictures, plot/show.

Classes inherit :class:`Summarized` (``repr`` + HTML) or :class:`Pictured` (also PNG,
``plot(ax=None) -> (fig, ax)``, ``show()``); :mod:`.views` holds what each type shows and
:mod:`.pictures` the pictures the CLI writes too. ``import convlens`` inside IPython also lets
IPython show convlens's pyplot-free matplotlib figures (:mod:`.notebook`).
"""

from .base import LayerTable, Pictured, Plot, Summarized

__all__ = ["LayerTable", "Pictured", "Plot", "Summarized"]
