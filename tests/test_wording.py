"""Words a newcomer reads first: plurals, articles, file names, one "train acc", narrow tables."""

from __future__ import annotations

import torch
from cli_helpers import run_cli

from convlens.cli.render import prototype_table
from convlens.lens import kind_phrase
from convlens.viz.prototypes import Prototypes


def test_kind_phrases_take_the_right_article() -> None:
    assert kind_phrase("activation") == "an activation layer"
    assert kind_phrase("conv") == "a conv layer" and kind_phrase("other") == "an other layer"


def test_prototype_table_stays_narrow_with_diversity() -> None:
    """Three rows for a few prototypes; one row per class once those rows would be too wide."""
    k, d = 10, 3
    predicted = torch.arange(k).repeat_interleave(d)
    predicted[4] = 7  # class 1, copy 2 is taken for a 7
    protos = Prototypes(classes=list(range(k)), class_names=[str(c) for c in range(k)],
                        diversity=d, images=torch.zeros(k * d, 1, 2, 2),
                        deaveraged=torch.zeros(k * d, 1, 2, 2), predicted=predicted,
                        probability=torch.full((k * d,), 0.995), result=None)  # type: ignore[arg-type]  # fmt: skip
    lines = prototype_table(protos)
    assert max(len(line) for line in lines) <= 90  # was 161 columns for 30 prototypes
    assert max(len(line) for line in protos.table()) > 150
    assert len(lines) == 2 + k and lines[1].split()[1:] == ["copy", "1", "copy", "2", "copy", "3"]
    assert "7 (p 1.00) ✗" in lines[3] and lines[3].startswith("1 ")
    few = Prototypes(classes=[0, 1, 2], class_names=protos.class_names, diversity=1,
                     images=protos.images[:3], deaveraged=protos.deaveraged[:3],
                     predicted=torch.arange(3), probability=torch.ones(3), result=None)  # type: ignore[arg-type]  # fmt: skip
    assert prototype_table(few) == few.table() and len(few.table()) == 3


def test_train_help_names_the_weights_file_and_compare_one_train_accuracy(capsys) -> None:
    code, out, _ = run_cli(["train", "--help"], capsys)
    assert code == 0 and "model.safetensors" in out and "weights.safetensors" not in out
    code, out, err = run_cli(["compare", "--models", "fcn", "--epochs", "1", "--limit", "200"],
                             capsys)  # fmt: skip
    assert code == 0, err
    assert "final train acc" in out and "running train accuracy during each epoch" in out
