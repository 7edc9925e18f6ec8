"""The live web app: draw a digit and watch every layer of the model respond.

A reader of the Lens, the analyses and (optionally) an atlas folder, never of the CLI.
:func:`create_app` is the ASGI app, :func:`serve` runs it in the foreground,
:func:`start_background` on a thread, :func:`widget` inside a notebook cell.
"""

from .app import create_app
from .notebook import Widget, widget
from .run import Background, serve, start_background

__all__ = ["Background", "Widget", "create_app", "serve", "start_background", "widget"]
