"""The atlas guide: the seed user's three questions as headings, teaching units chosen by
quality, and claims printed only where the numbers support them."""

from __future__ import annotations

import re
from typing import Any

from convlens.atlas.guide import best_unit, evolution_claim, pick_guide, resolve_guide
from convlens.atlas.html import Page, _env

QUESTIONS = (
    "What should I expect to see when visualizing the first conv layer?",
    "Should I use 28x28 or 3x3 images, and how does that work for deeper layers?",
    "How do conv-layer images differ from class images?",
)


def tile(x: int = 0, w: int = 3) -> dict[str, Any]:
    return {"sprite": "s", "x": x, "y": 0, "w": w, "h": w}


def unit(i: int, *, r: float | None, peak: float, active: float = 1.0) -> dict[str, Any]:
    dead = peak <= 0
    return {
        "index": i,
        "unit": f"conv2d_1:{i}",
        "page": f"units/conv2d_1-{i}.html",
        "kernel": tile(),
        "stats": {"mean": peak / 4, "max": peak, "active": 0.0 if dead else active, "dead": dead},
        "channel": None if r is None else {"image": tile(w=28), "r": r, "contrast": 0.3},
        "neuron": None if r is None else {"image": tile(), "r": r, "position": [1, 1]},
    }


def manifest(val_acc: list[float], tv: list[float], classes: int) -> dict[str, Any]:
    names = [str(c) for c in range(classes)]
    units = [
        unit(0, r=None, peak=0.0),
        unit(1, r=0.6, peak=9.0),
        unit(2, r=1.2, peak=5.0),
        unit(3, r=1.1, peak=1.0, active=0.2),
    ]
    deep = [dict(u, unit=f"conv2d_2:{u['index']}") for u in units]
    layer = {"output_shape": [4, 28, 28], "params": 1, "type": "Conv2dAct", "kind": "conv"}
    rows = [
        {
            **layer,
            "name": "conv2d_1",
            "page": "layer-conv2d_1.html",
            "units": units,
            "receptive_field": {"size": [3, 3], "jump": [1, 1], "offset": [0, 0]},
        },
        {
            **layer,
            "name": "conv2d_2",
            "page": "layer-conv2d_2.html",
            "units": deep,
            "receptive_field": {"size": [10, 10], "jump": [2, 2], "offset": [0, 0]},
        },
    ]
    evolution_rows = [
        {
            "unit": "conv2d_2:2",
            "kind": "channel",
            "tiles": [tile()] * len(tv),
            "r": [1.0] * len(tv),
            "tv": tv,
            "contrast": [0.3] * len(tv),
        }
    ]
    proto = {
        "raw": tile(w=28),
        "deaveraged": tile(w=28),
        "predicted": 1,
        "probability": 0.999,
        "correct": True,
    }
    return {
        "model": {
            "name": "m",
            "class_names": names,
            "input": {"height": 28, "width": 28, "channels": 1},
        },
        "layers": rows,
        "sprites": {"s": {"file": "img/s.png", "width": 64, "height": 64}},
        "classes": [
            {"index": 0, "name": "0", "prototype": dict(proto, probability=0.4, correct=False)},
            {"index": 1, "name": "1", "prototype": proto},
        ],
        "evolution": {
            "epochs": list(range(1, len(tv) + 1)),
            "val_acc": val_acc,
            "rows": evolution_rows,
        },
    }


def render_guide(m: dict[str, Any]) -> str:
    m["guide"] = pick_guide(m)
    html = _env().get_template("guide.html").render(m=m, page=Page(m, ""), guide=resolve_guide(m))
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_three_questions_are_the_headings_answered_with_chosen_units() -> None:
    m = manifest([0.9, 0.97], [0.2, 0.1], 10)
    text = render_guide(m)
    for question in QUESTIONS:
        assert question in text
    # By quality: unit 2 is verified (r >= 1) and strongly active; unit 1 is more active but
    # unverified, unit 0 dead, unit 3 verified but barely active. Never "unit 0 because first".
    assert m["guide"]["first"] == {"layer": "conv2d_1", "unit": 2}
    assert m["guide"]["deep"] == {"layer": "conv2d_2", "unit": 2}
    assert m["guide"]["class"] == 1  # the prototype the model classifies correctly
    assert "render a neuron at" in text and "10×10" in text  # the deeper layer's field size
    assert "verified, r_peak ≥ 1" in text and "classified as 1" in text


def test_without_renders_the_most_active_live_unit_is_chosen() -> None:
    row = {
        "units": [
            {k: v for k, v in u.items() if k not in ("channel", "neuron")}
            for u in manifest([0.5], [0.1], 10)["layers"][0]["units"]
        ]
    }
    assert best_unit(row) == 1
    assert best_unit({"units": [unit(0, r=None, peak=0.0)]}) is None


def test_features_in_place_after_one_epoch_only_when_the_numbers_say_so() -> None:
    # The case: 4 classes, 31% after one epoch (chance 25%), images no smoother.
    weak = manifest([0.31, 0.62, 0.9], [0.2, 0.21, 0.22], 4)
    text = render_guide(weak)
    assert "largely in place" not in text
    assert "although validation accuracy rose from 31.0% to 90.0% (chance 25.0%)" in text
    claim = evolution_claim(weak, weak["evolution"]["rows"][0])
    assert claim is not None and not claim["early"] and not claim["smoother"]
    strong = manifest([0.95, 0.97, 0.98], [0.2, 0.21, 0.22], 10)
    assert "its features were largely in place by then" in render_guide(strong)
    smooth = manifest([0.31, 0.9], [0.3, 0.1], 4)
    text = render_guide(smooth)
    assert ": smoother." in text and "largely in place" not in text


def test_a_quick_atlas_shows_live_units_first(random_lens, mnist_small, tmp_path) -> None:
    import dataclasses

    import torch

    from convlens.atlas.context import BuildContext
    from convlens.atlas.options import AtlasOptions
    from convlens.units import resolve_units

    conv = random_lens.module("conv2d_1")
    with torch.no_grad():  # channels 0 and 2 can never fire
        conv.weight[[0, 2]] = 0.0
        conv.bias[[0, 2]] = -1.0
    small = dataclasses.replace(mnist_small, x_val=mnist_small.x_val[:64],
                                y_val=mnist_small.y_val[:64])  # fmt: skip
    ctx = BuildContext(random_lens, tmp_path, AtlasOptions.preset(quick=True),
                       dataset_override=small)  # fmt: skip
    shown = ctx.unit_indices("conv2d_1")
    assert shown == [1, 3, 4, 5, 6, 7, 8, 9]
    assert [u.channel for u in resolve_units(random_lens, ctx.unit_spec("conv2d_1"))] == shown
    full = BuildContext(random_lens, tmp_path, AtlasOptions(), dataset_override=small)
    assert full.unit_indices("conv2d_1") == list(range(32))  # no limit: every unit, in order
