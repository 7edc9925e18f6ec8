"""The small mixins that give result classes their notebook display; the work is in ``views``.

Kept free of heavy imports (torch, matplotlib): the classes that inherit these are imported by
``import convlens``, and ``views`` is imported only when something is actually displayed.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Summarized:
    """A short ``repr`` (never raw tensors) and an HTML summary for notebooks."""

    __slots__ = ()

    def __repr__(self) -> str:
        from . import views

        return views.text(self)

    def _repr_html_(self) -> str | None:
        from . import views

        return views.html(self)


class Pictured(Summarized):
    """Also a picture: ``_repr_png_``, ``plot(ax=None) -> (fig, ax)`` and ``show()``.

    ``plot`` draws the picture into ``ax`` (or a new pyplot-free figure) like Captum's
    ``visualize_image_attr``; ``show`` displays it now (inline in a notebook, a window
    elsewhere). Options (e.g. ``layer=``, ``index=``) choose what the picture shows.
    """

    __slots__ = ()

    def _repr_png_(self) -> bytes | None:
        from . import views

        return views.png(self)

    def picture(self, **options: Any) -> Any:
        """The picture as a PIL image (what the notebook shows)."""
        from . import views

        return views.picture(self, **options)

    def plot(self, ax: Any = None, **options: Any) -> Plot:
        from . import views

        return views.plot(self, ax, **options)

    def show(self, **options: Any) -> tuple[Any, Any]:
        from . import views

        return views.show(self, **options)


class Plot(NamedTuple):
    """``(fig, ax)`` as returned by ``plot``; shows as its figure when a notebook cell ends."""

    fig: Any
    ax: Any

    def _repr_png_(self) -> bytes:
        from .notebook import figure_png

        return figure_png(self.fig)


class LayerTable(Summarized, tuple):  # type: ignore[type-arg]
    """The layer table: a tuple of ``LayerInfo`` that prints (and shows) as a table."""

    __slots__ = ()
