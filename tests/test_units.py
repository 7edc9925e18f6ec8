"""The unit grammar: parsing, resolving, and one-line errors that list what exists."""

from __future__ import annotations

import pytest

from convlens.errors import UnitError
from convlens.units import Unit, resolve_units, split_unit_list


def test_split_keeps_neuron_positions_together():
    assert split_unit_list("conv2d_1:*,conv2d_3:12@7,7,class:3") == [
        "conv2d_1:*", "conv2d_3:12@7,7", "class:3",
    ]  # fmt: skip


def test_resolve_channels_ranges_neurons_and_classes(random_lens):
    units = resolve_units(random_lens, "conv2d_1:*,conv2d_4:0-15,conv2d_3:12@7,7,class:seven")
    assert len(units) == 32 + 16 + 1 + 1
    assert units[0] == Unit("channel", "conv2d_1", 0)
    assert Unit("neuron", "conv2d_3", 12, (7, 7)) in units
    assert units[-1] == Unit("class", "dense_3", 7)
    assert str(units[-1]) == "class:7"
    assert resolve_units(random_lens, "conv2d_3:5@center")[0].position == (7, 7)
    assert len(resolve_units(random_lens, "class:*")) == 10


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("conv2d_9:1", r"unknown layer 'conv2d_9'.*Valid: conv2d_1"),
        ("conv2d_3:64", r"conv2d_3 has 64 channels \(0-63\); got 64"),
        ("conv2d_3:1@14,0", r"outside the 14x14 map"),
        ("max_pooling2d_1:0", r"is a pool layer; units live on conv or dense layers: conv2d_1"),
        ("class:11", r"10 classes"),
        ("class:eleven", r"unknown class"),
        ("conv2d_3", r"cannot read unit"),
        ("dense_1:3@1,1", r"not spatial"),
    ],
)
def test_errors_are_one_line_and_helpful(random_lens, spec, message):
    with pytest.raises(UnitError, match=message) as info:
        resolve_units(random_lens, spec)
    assert "\n" not in str(info.value)
