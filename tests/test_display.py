"""Notebook display: short reprs (never raw tensors), HTML and PNG views through IPython's own
formatters, plot/show returning (fig, ax), and convlens's pyplot-free figures shown inline."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

import convlens as cl
from convlens.display import LayerTable, Plot

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def x_val(mnist_small):
    return mnist_small.x_val[:3]


@pytest.fixture(scope="module")
def rendered(kaggle4_lens):
    """Channels, one neuron and classes: every kind of render panel."""
    return cl.render(kaggle4_lens, "conv2d_1:0-3,conv2d_3:5@7,7,class:0-1", steps=3, restarts=0)


@pytest.fixture(scope="module")
def explanation(kaggle4_lens, x_val):
    return cl.explain(kaggle4_lens, x_val[:2], ["gradient", "gradcam"], steps=4)


@pytest.fixture()
def shell():
    """A real IPython shell with its display formatters, as a notebook kernel has."""
    interactiveshell = pytest.importorskip("IPython.core.interactiveshell")
    from convlens.display.notebook import register_formatters

    ip = interactiveshell.InteractiveShell.instance()
    assert register_formatters()
    yield ip
    interactiveshell.InteractiveShell.clear_instance()


def _image(data: bytes) -> Image.Image:
    assert data.startswith(PNG)
    return Image.open(io.BytesIO(data))


def _short(text: str, limit: int = 400) -> None:
    assert len(text) <= limit, text
    assert "tensor(" not in text and "Parameter" not in text, text


def test_import_prints_nothing() -> None:
    out = subprocess.run([sys.executable, "-c", "import convlens"], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


def test_lens_repr_is_one_line_and_the_layer_table_prints_as_a_table(kaggle4_lens) -> None:
    text = repr(kaggle4_lens)
    _short(text, 300)
    assert text.startswith("Lens(kaggle4: 1x28x28") and "\n" not in text
    assert "14 layers (4 conv)" in text and "val acc" in text and "Sequential" not in text
    table = kaggle4_lens.layers
    assert isinstance(table, LayerTable) and table == tuple(table) and len(table) == 14
    lines = repr(table).splitlines()
    assert lines[0].split() == ["layer", "kind", "output", "params", "receptive", "field"]
    assert len(lines) == 15 and "LayerInfo(" not in repr(table)
    row = next(line for line in lines if line.startswith("conv2d_4 "))
    assert "64x14x14" in row and "36,928" in row and "size 14, jump 2" in row
    assert repr(table[0]).startswith("LayerInfo(conv2d_1: conv")


def test_lens_html_is_the_layer_table_with_receptive_fields(kaggle4_lens) -> None:
    page = kaggle4_lens._repr_html_()
    assert page.count("<tr>") == 1 + 14 + 1  # header, layers, total
    assert "receptive field" in page and "14x14" in page and "(logits)" in page
    assert "Lens: kaggle4" in page


def test_render_result_shows_its_grids_with_r(rendered) -> None:
    text = repr(rendered)
    _short(text)
    assert text.startswith("RenderResult(7 images, preset natural;")
    assert "conv2d_1: r_peak >= 1 for" in text and "r_mean >= 1 for" in text and "class: " in text
    page = rendered._repr_html_()
    assert "<img" in page and "r = activation reached" in page
    big = _image(rendered._repr_png_())
    panels = [p.picture for p in cl.display.pictures.render_panels(rendered)]
    assert len(panels) == 3  # conv2d_1 channels, conv2d_3 neurons, classes
    assert big.height >= sum(p.height for p in panels)
    labels = [cl.display.pictures.tile_label(rendered, i) for i in range(len(rendered))]
    assert labels[0].startswith("0 r=") and labels[4].startswith("5@7,7")
    assert labels[5].startswith("0 p=")


def test_activations_show_a_grid_per_layer_for_one_image(kaggle4_lens, x_val) -> None:
    acts = cl.activations(kaggle4_lens, x_val)
    text = repr(acts)
    _short(text)
    assert "3 images of 1x28x28" in text and "conv2d_2 32x28x28" in text
    one = acts.picture(index=1, layer="conv2d_3")
    every = acts.picture(index=1)
    assert every.height > one.height > 100
    assert "image 0 shown" in acts._repr_html_()


def test_heatmap_plot_is_captum_like_and_draws_into_a_given_axes(kaggle4_lens, x_val) -> None:
    hm = cl.attribute(kaggle4_lens, x_val, method="gradient")
    _short(repr(hm))
    assert repr(hm).startswith("Heatmap(gradient") and "3 maps of 28x28" in repr(hm)
    fig, ax = hm.plot(index=1, image=x_val[1])
    assert isinstance(fig, Figure) and isinstance(ax, Axes) and len(ax.images) == 2
    assert len(fig.axes) == 2  # the map and its colorbar
    values = ax.images[-1].get_array()
    assert torch.allclose(torch.as_tensor(values.data), hm.values[1])
    other = Figure()
    axes = other.subplots(1, 2)
    got = hm.plot(axes[1], colorbar=False)
    assert got.fig is other and got.ax is axes[1] and len(axes[1].images) == 1
    assert _image(hm._repr_png_()).width > 200


def test_explain_returns_a_dict_that_shows_its_panel(explanation) -> None:
    assert isinstance(explanation, dict) and list(explanation) == ["gradient", "gradcam"]
    assert explanation.inputs.shape == (2, 1, 28, 28)
    lines = repr(explanation).splitlines()
    assert lines[0] == "Explanation(2 methods on 2 image(s)):" and len(lines) == 3
    assert "deletion AUC" in lines[1] and "(random " in lines[1]
    for ev in explanation.values():
        _short(repr(ev))
        _short(repr(ev.faithfulness))
    page = explanation._repr_html_()
    assert page.count("<tr>") == 3 and "image 0 shown" in page
    assert explanation.picture(index=1).size != (0, 0)


def test_examples_default_to_the_checkpoints_dataset(kaggle4_lens) -> None:
    from convlens.data import dataset_for

    default = cl.examples(kaggle4_lens, "conv2d_2:0-2", k=4, progress=False)
    given = cl.examples(kaggle4_lens, "conv2d_2:0-2", dataset_for(kaggle4_lens), k=4,
                        progress=False)  # fmt: skip
    assert default.source == "mnist" and default.split == "val"
    assert torch.equal(default.topk.values, given.topk.values)
    assert torch.equal(default.topk.indices, given.topk.indices)
    named = cl.examples(kaggle4_lens, "conv2d_2:0", "mnist", k=2, progress=False)
    assert named.num_images == default.num_images
    text = repr(default)
    _short(text)
    assert text == "ExamplesResult(3 units: conv2d_2 (3); top-4 of 500 mnist val images)"
    _short(repr(default[0]))
    assert repr(default.topk) == "TopK(3 units, k=4 largest, 4 kept per unit)"
    assert default.picture(unit="conv2d_2:1").width > 300


def test_other_results_print_short_summaries(kaggle4_lens, x_val) -> None:
    maxima = cl.dataset_maxima(kaggle4_lens)
    _short(repr(maxima), 600)
    assert repr(maxima).startswith("Maxima(mnist, 500 images; conv2d_1 32 (")
    assert "<table" in maxima._repr_html_()
    sanity = cl.sanity_check(kaggle4_lens, x_val[:1], "gradient")
    _short(repr(sanity))
    assert "stage" in sanity._repr_html_()
    protos = cl.prototypes(kaggle4_lens, [0, 1], steps=3)
    _short(repr(protos))
    assert repr(protos).startswith("Prototypes(2 classes x 1;")
    assert _image(protos._repr_png_()).height > 100


def test_ipython_formatters_show_results_and_pyplot_free_figures(
    shell, rendered, kaggle4_lens
) -> None:
    from convlens import images

    data, _ = shell.display_formatter.format(rendered)
    assert {"text/plain", "text/html", "image/png"} <= set(data)
    assert data["text/plain"] == repr(rendered)
    fig = images.draw_kernels(cl.kernels(kaggle4_lens, "conv2d_1").numpy(), layer="conv2d_1")
    data, _ = shell.display_formatter.format(fig)
    assert data["image/png"].startswith(PNG)
    plot = rendered.plot()
    assert isinstance(plot, Plot) and isinstance(plot, tuple)
    data, _ = shell.display_formatter.format(plot)
    assert data["image/png"].startswith(PNG)
