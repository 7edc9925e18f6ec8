"""Examples pictures: dead units are labelled dead (no fake "top" images), class rows by name."""

from __future__ import annotations

import numpy as np
import torch

from convlens.images.examples import (
    DEAD_BG,
    _short,
    is_dead,
    layer_examples_picture,
    unit_examples_picture,
)
from convlens.viz.examples import examples


def test_dead_units_are_labelled_and_class_rows_use_class_names(random_lens) -> None:
    conv = random_lens.module("conv2d_1")
    with torch.no_grad():  # channel 0 can never fire: zero weights, negative bias, then ReLU
        conv.weight[0] = 0.0
        conv.bias[0] = -1.0
    x = torch.rand(12, 1, 28, 28)
    result = examples(random_lens, "conv2d_1:0-2,class:*", x, k=3, progress=False)
    dead = [str(ex.unit) for ex in result if is_dead(ex)]
    assert dead == ["conv2d_1:0"]
    assert not any(is_dead(ex, bottom=True) for ex in result)  # bottom rankings: never "dead"
    names = [f"digit {i}" for i in range(10)]
    classes = result.for_layer(random_lens.logits_layer)
    assert [_short(ex.unit, names) for ex in classes[:2]] == ["digit 0", "digit 1"]
    assert _short(classes[3].unit) == "3"  # no names: the index, never "class:3"

    grid = np.asarray(layer_examples_picture(result.for_layer("conv2d_1"), layer="conv2d_1",
                                             num_images=12, split="images"))  # fmt: skip
    bg = np.array([int(DEAD_BG[i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(grid.reshape(-1, 3).astype(int) - bg).sum(1) == 0).sum() > 500  # the note
    live = np.asarray(layer_examples_picture(result.for_layer("conv2d_1")[1:], layer="conv2d_1",
                                             num_images=12, split="images"))  # fmt: skip
    assert (np.abs(live.reshape(-1, 3).astype(int) - bg).sum(1) == 0).sum() == 0
    one = unit_examples_picture(result[0], num_images=12, split="images")
    other = unit_examples_picture(result[1], num_images=12, split="images")
    assert one.size[1] < other.size[1] / 2  # a dead unit's picture is its note, no image rows
