"""Receptive fields: the probe must agree with the textbook recurrence, and generalize."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from convlens.lens import InputSpec, Lens
from convlens.models import build_model
from convlens.receptive import ReceptiveField, Window, chain_receptive_fields

SPEC = InputSpec(1, 28, 28, class_names=tuple("0123456789"))


def test_chain_recurrence_known_values():
    # 3x3 same, 3x3 same, 2x2/2 pool, 3x3, 3x3, 2x2/2 pool (kaggle4)
    ops = [Window(3, 1, 1), Window(3, 1, 1), Window(2, 2), Window(3, 1, 1), Window(3, 1, 1),
           Window(2, 2)]  # fmt: skip
    sizes = [rf.size[0] for rf in chain_receptive_fields(ops)]
    jumps = [rf.jump[0] for rf in chain_receptive_fields(ops)]
    assert sizes == [3, 5, 6, 10, 14, 16]
    assert jumps == [1, 1, 2, 2, 2, 4]


@pytest.mark.parametrize(
    ("arch", "ops"),
    [
        ("kaggle4", [Window(3, 1, 1), Window(3, 1, 1), Window(2, 2), Window(1), Window(3, 1, 1),
                     Window(3, 1, 1), Window(2, 2), Window(1)]),
        ("simple2", [Window(3), Window(3), Window(2, 2), Window(1)]),
        ("oip3", [Window(3, 1, 1), Window(2, 2), Window(3, 1, 1), Window(2, 2), Window(3, 1, 1),
                  Window(2, 2)]),
    ],
)  # fmt: skip
def test_probe_matches_recurrence_on_zoo(arch, ops):
    torch.manual_seed(0)
    lens = Lens.from_module(build_model(arch), SPEC)
    spatial = [info for info in lens.layers if info.is_spatial]
    expected = chain_receptive_fields(ops)
    assert len(spatial) == len(expected)
    for info, rf in zip(spatial, expected, strict=True):
        assert info.rf == rf, info.name


class FunctionalNet(nn.Module):
    """Functional relu/max-pool and a dilated, strided conv: the probe must still see it all."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 4, 5, padding=2)
        self.b = nn.Conv2d(4, 4, 3, stride=2, dilation=2)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.a(x)), 2)
        x = torch.relu(self.b(x))
        return self.head(x.mean((2, 3)))


def test_probe_handles_functional_ops_and_dilation():
    lens = Lens.from_module(FunctionalNet(), InputSpec(1, 32, 32, class_names=("a", "b", "c")))
    expected = chain_receptive_fields([Window(5, 1, 2), Window(2, 2), Window(3, 2, 0, 2)])
    assert lens.layer("a").rf == expected[0]
    assert lens.layer("b").rf == expected[2]


def test_window_of_a_unit():
    rf = ReceptiveField((5, 5), (1, 1), (0.0, 0.0))
    assert rf.window(0, 0) == (-2, -2, 3, 3)
    assert rf.clipped_window(0, 0, 28, 28) == (0, 0, 3, 3)
    pooled = ReceptiveField((6, 6), (2, 2), (0.5, 0.5))
    assert pooled.window(1, 1) == (0, 0, 6, 6)
