"""Tensor -> image: the one place in convlens that turns arrays into pictures.

Analyses return data; this package draws it. Numpy arrays or torch tensors go in; PIL images,
matplotlib figures (built without pyplot) and atomically written PNGs come out.

- ``normalize``: to_unit_range, blog_normalize, de_average (pure numpy)
- ``colors``: the house colormaps, colorize, heatmap_overlay
- ``grids``: image_grid, sprite_sheet (PIL)
- ``kernels`` / ``activations``: figures of learned kernels and feature maps (matplotlib)
- ``io``: save_png, save_figure, figure_to_image
"""

from convlens.images.activations import activations_figure, draw_activations
from convlens.images.colors import (
    DIVERGING,
    GRAY,
    SEQUENTIAL,
    colorize,
    get_cmap,
    heatmap_overlay,
    to_display,
    to_gray,
)
from convlens.images.grids import image_grid, sprite_sheet
from convlens.images.io import figure_to_image, save_figure, save_png
from convlens.images.kernels import draw_kernels, kernel_pages, select_input_channels
from convlens.images.normalize import as_numpy, blog_normalize, de_average, to_unit_range

__all__ = [
    "DIVERGING",
    "GRAY",
    "SEQUENTIAL",
    "activations_figure",
    "as_numpy",
    "blog_normalize",
    "colorize",
    "de_average",
    "draw_activations",
    "draw_kernels",
    "figure_to_image",
    "get_cmap",
    "heatmap_overlay",
    "image_grid",
    "kernel_pages",
    "save_figure",
    "save_png",
    "select_input_channels",
    "sprite_sheet",
    "to_display",
    "to_gray",
    "to_unit_range",
]
