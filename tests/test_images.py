"""convlens.images: normalizations are exact, pictures show what they claim (sampled pixels)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from PIL import Image

from convlens.images import (
    activations_figure,
    blog_normalize,
    colorize,
    de_average,
    draw_activations,
    draw_kernels,
    figure_to_image,
    heatmap_overlay,
    image_grid,
    kernel_pages,
    save_figure,
    save_png,
    select_input_channels,
    sprite_sheet,
    to_unit_range,
)
from convlens.images.colors import HIGHLIGHT

WHITE = (255, 255, 255)


def axes_by_label(fig: Figure, label: str):
    (ax,) = [a for a in fig.axes if a.get_label() == label]
    return ax


def axes_pixels(fig: Figure, label: str) -> np.ndarray:
    """The rendered pixels inside one axes of ``fig`` (rendered at the figure's own dpi)."""
    img = np.asarray(figure_to_image(fig))
    x0, y0, x1, y1 = axes_by_label(fig, label).get_window_extent().extents
    h = img.shape[0]
    return img[round(h - y1) : round(h - y0), round(x0) : round(x1)]


def dominant_colour(pixels: np.ndarray, exclude: list[tuple[int, int, int]]) -> np.ndarray:
    """The most frequent colour in ``pixels`` other than ``exclude`` (background, frames)."""
    flat = pixels.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    keep = [i for i, c in enumerate(colours) if tuple(int(v) for v in c) not in exclude]
    return colours[max(keep, key=lambda i: counts[i])].astype(int)


# --- normalizations -----------------------------------------------------------------------


def test_blog_normalize_matches_hand_computation() -> None:
    x = np.array([[0.0, 1.0], [2.0, 3.0]])
    # mean 1.5, population std sqrt(1.25); then * 0.1 + 0.5
    std = math.sqrt(((0 - 1.5) ** 2 + (1 - 1.5) ** 2 + (2 - 1.5) ** 2 + (3 - 1.5) ** 2) / 4)
    expected = [[(v - 1.5) / (std + 1e-5) * 0.1 + 0.5 for v in row] for row in x.tolist()]
    np.testing.assert_allclose(blog_normalize(x), expected, rtol=0, atol=1e-12)
    assert blog_normalize(x)[0, 0] == pytest.approx(0.5 - 0.15 / (std + 1e-5))


def test_blog_normalize_clips_outliers_and_leaves_input_alone() -> None:
    x = np.zeros(100, dtype=np.float32)
    x[0] = 1000.0  # ~10 std above the mean -> 0.5 + ~1.0 -> clipped
    out = blog_normalize(x)
    assert out.max() == 1.0 and out.min() >= 0.0
    assert x[0] == 1000.0 and out.dtype == np.float32


def test_to_unit_range_symmetric_maps_zero_to_half() -> None:
    x = np.array([-2.0, -1.0, 0.0, 0.5])
    np.testing.assert_allclose(to_unit_range(x, mode="symmetric"), [0.0, 0.25, 0.5, 0.625])
    assert np.all(to_unit_range(np.zeros((3, 3)), mode="symmetric") == 0.5)


def test_to_unit_range_minmax_fixed_and_batch() -> None:
    x = np.array([[1.0, 3.0], [10.0, 20.0]])
    np.testing.assert_allclose(to_unit_range(x), [[0, 2 / 19], [9 / 19, 1]])
    np.testing.assert_allclose(to_unit_range(x, batch=True), [[0, 1], [0, 1]])
    np.testing.assert_allclose(to_unit_range(x, mode="fixed", lo=0, hi=10), [[0.1, 0.3], [1, 1]])
    assert np.all(to_unit_range(np.full((2, 2), 7.0)) == 0.0)  # constant: no contrast to show
    with pytest.raises(ValueError, match="mode"):
        to_unit_range(x, mode="bogus")  # type: ignore[arg-type]


def test_de_average_sums_to_zero_over_the_set() -> None:
    rng = np.random.default_rng(0)
    protos = torch.from_numpy(rng.normal(3.0, 1.0, size=(10, 1, 28, 28)).astype(np.float32))
    d = de_average(protos)
    assert d.shape == (10, 1, 28, 28)
    np.testing.assert_allclose(d.sum(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(d[3], protos[3].numpy() - protos.numpy().mean(axis=0), atol=1e-6)


def test_half_precision_tensors_are_accepted() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.bfloat16, requires_grad=True)
    np.testing.assert_allclose(to_unit_range(x, mode="symmetric"), [0.0, 0.5, 1.0])


def test_colorize_uses_the_given_scale_and_marks_nan_white() -> None:
    x = np.array([[-1.0, 0.0], [1.0, np.nan]])
    rgb = colorize(x, "RdBu_r", -1.0, 1.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 2, 3)
    assert rgb[0, 0, 2] > rgb[0, 0, 0]  # -1: blue
    assert rgb[1, 0, 0] > rgb[1, 0, 2]  # +1: red
    assert rgb[0, 1].min() > 230  # 0: near white
    assert tuple(rgb[1, 1]) == WHITE


# --- grids and sprites --------------------------------------------------------------------


def test_image_grid_grows_with_n_and_handles_512() -> None:
    rng = np.random.default_rng(1)
    sizes = [image_grid(rng.random((n, 28, 28))).size for n in (1, 4, 16, 64)]
    areas = [w * h for w, h in sizes]
    assert areas == sorted(areas) and len(set(areas)) == 4
    big = image_grid(rng.random((512, 1, 28, 28)), labels=[str(i) for i in range(512)], title="t")
    assert max(big.size) < 3000 and big.size[0] >= big.size[1] * 0.8  # sensible, not a ribbon


def test_image_grid_upsamples_nearest_neighbour() -> None:
    checker = np.array([[[0.2, 0.8], [0.8, 0.2]]], dtype=np.float32)  # (1, 2, 2)
    img = np.asarray(image_grid(checker, norm="none"))
    interior = np.argwhere((img[..., 0] != 255) & (img[..., 0] != 0xC4))  # not bg, not frame
    (y0, x0), (y1, x1) = interior.min(axis=0), interior.max(axis=0)
    region = img[y0 : y1 + 1, x0 : x1 + 1, 0]
    assert region.shape == (84, 84)  # 2 px -> 84 px, an integer factor
    assert set(np.unique(region).tolist()) == {51, 204}  # exactly two levels: no blending
    assert region[:42, :42].max() == 51 and region[:42, 42:].min() == 204


def test_image_grid_rgb_labels_and_colorbar() -> None:
    rgb = np.zeros((3, 3, 8, 8), dtype=np.float32)
    rgb[0, 0] = 1.0  # a pure red image
    img = image_grid(rgb, labels=["red", "black", "a label far too long to fit under a tile"])
    px = np.asarray(img)
    assert ((px[..., 0] == 255) & (px[..., 1] == 0) & (px[..., 2] == 0)).sum() == 80 * 80
    plain = image_grid(np.ones((3, 8, 8)))
    with_bar = image_grid(np.ones((3, 8, 8)), colorbar=True, norm="symmetric", shared=True)
    assert with_bar.size[1] > plain.size[1]
    with pytest.raises(ValueError, match="labels"):
        image_grid(np.ones((3, 8, 8)), labels=["a"])
    with pytest.raises(ValueError, match="colorbar"):
        image_grid(rgb, colorbar=True)


def test_sprite_sheet_boxes_match_tile_placement() -> None:
    n = 7
    images = np.stack([np.full((1, 5, 10), i / (n - 1), dtype=np.float32) for i in range(n)])
    sheet, boxes = sprite_sheet(images, tile_px=20, norm="none")
    arr = np.asarray(sheet)
    assert len(boxes) == n
    assert all((b["w"], b["h"]) == (20, 10) for b in boxes)
    cols = len({b["x"] for b in boxes})
    assert sheet.size == (cols * 20, math.ceil(n / cols) * 10)
    for i, b in enumerate(boxes):
        region = arr[b["y"] : b["y"] + b["h"], b["x"] : b["x"] + b["w"]]
        expected = colorize(np.array([[i / (n - 1)]]), "gray", 0.0, 1.0)[0, 0]
        assert (region == expected).all(), f"tile {i} is not where its box says"
    corners = {(b["x"], b["y"]) for b in boxes}
    assert len(corners) == n


# --- saving -------------------------------------------------------------------------------


def test_save_png_is_atomic_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "grid.png"
    img = Image.new("RGB", (12, 7), (10, 20, 30))
    assert save_png(img, target) == target
    save_png(Image.new("RGB", (3, 4)), target)  # overwrite in place
    with Image.open(target) as back:
        assert back.size == (3, 4)
    assert [p.name for p in target.parent.iterdir()] == ["grid.png"]  # no temp files left


def test_save_png_failure_leaves_no_file(tmp_path: Path) -> None:
    class Broken:
        def save(self, f, **_: object) -> None:
            f.write(b"\x89PNG half")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_png(Broken(), tmp_path / "x.png")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_save_figure_writes_a_readable_png(tmp_path: Path) -> None:
    fig = draw_kernels(np.ones((2, 1, 3, 3)), layer="conv2d_1")
    path = save_figure(fig, tmp_path / "k" / "kernels.png")
    with Image.open(path) as im:
        assert im.size == (round(fig.get_figwidth() * 150), round(fig.get_figheight() * 150))
    assert [p.name for p in path.parent.iterdir()] == ["kernels.png"]


# --- kernels ------------------------------------------------------------------------------


def test_draw_kernels_signs_on_one_shared_symmetric_scale() -> None:
    w = np.zeros((2, 1, 3, 3), dtype=np.float32)
    w[0] = 1.0  # strongly positive
    w[1] = -0.25  # weakly negative: on a shared scale it must stay pale
    fig = draw_kernels(w, layer="conv2d_1")
    assert {a.get_label() for a in fig.axes} == {"kernels", "colorbar"}
    assert axes_by_label(fig, "colorbar").get_ylabel() == "weight"
    px = axes_pixels(fig, "kernels")
    half = px.shape[1] // 2  # two tiles side by side
    frame = (0xC4, 0xC4, 0xC4)
    red = dominant_colour(px[:, :half], [WHITE, frame])
    blue = dominant_colour(px[:, half:], [WHITE, frame])
    assert red[0] > red[1] + 50 and red[0] > red[2] + 50  # reddish
    assert blue[2] > blue[0] + 20  # bluish
    expected_blue = colorize(np.array([[-0.25]]), "RdBu_r", -1.0, 1.0)[0, 0]
    np.testing.assert_allclose(blue, expected_blue, atol=3)  # -0.25 on the [-1, 1] scale
    np.testing.assert_allclose(red, colorize(np.array([[1.0]]), "RdBu_r", -1, 1)[0, 0], atol=3)


def test_draw_kernels_summarizes_wide_layers_by_top_norm_channels() -> None:
    rng = np.random.default_rng(2)
    w = rng.normal(0, 0.01, size=(64, 32, 3, 3)).astype(np.float32)
    expected = np.array([[(f + 3 * j) % 32 for j in range(16)] for f in range(64)])
    for f in range(64):
        for j, c in enumerate(expected[f]):
            w[f, c] += 16 - j  # channel j-th strongest for filter f
    np.testing.assert_array_equal(select_input_channels(w, 16), expected)

    fig = draw_kernels(torch.from_numpy(w), layer="conv2d_2", max_in_channels=16)
    labels = [t.get_text() for t in axes_by_label(fig, "kernels").texts]
    chans = [int(s[3:]) for s in labels if s.startswith("ch ")]
    np.testing.assert_array_equal(np.array(chans).reshape(64, 16), expected)
    assert "largest L2 norm" in " ".join(t.get_text() for t in fig.texts)
    assert max(fig.get_figwidth(), fig.get_figheight()) * 150 < 4000  # a sensible page


def test_draw_kernels_pages_big_layers_and_draws_rgb_first_layers() -> None:
    w = np.random.default_rng(3).normal(size=(128, 4, 3, 3))
    fig = draw_kernels(w, layer="conv2d_3", max_filters=64)
    rows = [t.get_text() for t in axes_by_label(fig, "kernels").texts if t.get_text()[0] == "#"]
    assert rows == [f"#{i}" for i in range(64)]
    assert "of 128" in " ".join(t.get_text() for t in fig.texts)
    page = kernel_pages(128, 64)[1]
    fig2 = draw_kernels(w, layer="conv2d_3", filters=page)
    rows2 = [t.get_text() for t in axes_by_label(fig2, "kernels").texts if t.get_text()[0] == "#"]
    assert rows2 == [f"#{i}" for i in range(64, 128)]

    rgb_fig = draw_kernels(np.ones((4, 3, 5, 5)), layer="conv1")
    heads = [t.get_text() for t in axes_by_label(rgb_fig, "kernels").texts]
    assert {"RGB", "R", "G", "B"} <= set(heads) and len(rgb_fig.axes) == 2
    colour_only = draw_kernels(np.ones((4, 3, 5, 5)), layer="conv1", per_channel=False)
    assert [a.get_label() for a in colour_only.axes] == ["kernels"]  # colour has no scale


# --- activations and overlays -------------------------------------------------------------


def test_activations_figure_shows_input_maps_and_highlighted_argmax() -> None:
    rng = np.random.default_rng(4)
    image = rng.random((1, 28, 28)).astype(np.float32)
    maps = {
        "conv2d_1": np.abs(rng.normal(size=(8, 26, 26))),
        "conv2d_2": rng.normal(size=(4, 5, 5)),
    }
    probs = np.array([0.1, 0.7, 0.2])
    figs = draw_activations(image, maps, probs=probs, class_names=["a", "b", "c"], title="x")
    assert [name for name, _ in figs] == ["conv2d_1", "conv2d_2"]
    fig = figs[0][1]
    assert {a.get_label() for a in fig.axes} == {"input", "probabilities", "maps", "colorbar"}
    assert axes_by_label(fig, "colorbar").get_ylabel() == "activation"
    bars = axes_by_label(fig, "probabilities").patches
    colours = [to_rgb(b.get_facecolor()) for b in bars]
    assert colours[1] == to_rgb(HIGHLIGHT) and colours[0] == colours[2] != colours[1]
    labels = [t.get_text() for t in axes_by_label(fig, "maps").texts]
    assert labels == [str(i) for i in range(8)]
    cbar = axes_by_label(figs[1][1], "colorbar")
    lo, hi = cbar.get_ylim()
    assert lo == pytest.approx(-hi)  # signed maps: zero-centred scale
    figure_to_image(fig)  # renders


def test_activations_figure_without_probs_and_with_many_maps() -> None:
    fig = activations_figure(np.zeros((3, 32, 32)), "features.6", np.ones((1, 100, 4, 4)))
    assert "probabilities" not in {a.get_label() for a in fig.axes}
    assert len(axes_by_label(fig, "maps").texts) == 64  # capped, the subtitle says so
    assert "0–63 of 100" in " ".join(t.get_text() for t in fig.texts)


def test_heatmap_overlay_size_sign_and_transparent_zero() -> None:
    image = np.linspace(0, 1, 3 * 20 * 30).reshape(3, 20, 30)
    heat = np.zeros((20, 30))
    heat[2, 3], heat[10, 10] = 1.0, -1.0
    out = heatmap_overlay(torch.from_numpy(image), heat)
    assert out.size == (30, 20) and out.mode == "RGB"
    px = np.asarray(out).astype(int)
    assert px[5, 20, 0] == px[5, 20, 1] == px[5, 20, 2]  # zero heat: plain grey image
    assert px[2, 3, 0] > px[2, 3, 2] + 60  # positive: red
    assert px[10, 10, 2] > px[10, 10, 0] + 60  # negative: blue
    faint = np.asarray(heatmap_overlay(image, heat, scale=4.0)).astype(int)
    assert faint[2, 3, 0] - faint[2, 3, 2] < px[2, 3, 0] - px[2, 3, 2]  # shared larger scale
    small = heatmap_overlay(image, np.ones((5, 5)))  # a CAM at feature-map resolution
    assert small.size == (30, 20)
