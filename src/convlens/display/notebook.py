"""Matplotlib figures in notebooks without pyplot: convlens builds its figures without pyplot
(no global registry to leak), so IPython has no way to show them until it is told how. Imported
by ``import convlens`` only inside IPython; it then registers a PNG formatter for ``Figure``
unless one is registered already (``%matplotlib inline`` registers its own, which then wins).
"""

from __future__ import annotations

import io
import sys
from typing import Any


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes at its own resolution, on white."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, facecolor="white")
    return buf.getvalue()


def register_formatters() -> bool:
    """Teach the running IPython to show matplotlib figures as PNG; False outside IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    formatter = shell.display_formatter.formatters["image/png"]
    try:
        formatter.lookup_by_type("matplotlib.figure.Figure")
    except KeyError:
        formatter.for_type_by_name("matplotlib.figure", "Figure", figure_png)
    return True
