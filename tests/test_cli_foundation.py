"""The foundation commands as a person runs them: files written, tables printed, clean errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_cli as run
from PIL import Image


def test_layers_prints_table_with_receptive_fields(kaggle4_ckpt: Path, capsys):
    code, out, _ = run(["layers", str(kaggle4_ckpt)], capsys)
    assert code == 0
    assert "input: 1x28x28, pixels in [0, 1]; 10 classes" in out
    line = next(row for row in out.splitlines() if row.startswith("conv2d_4"))
    assert "64x14x14" in line and "36,928" in line and "size 14, jump 2, offset 0.5" in line
    assert "max_pooling2d_2" in out and "size 16, jump 4" in out


def test_kernels_one_layer_to_file_and_all_layers_to_folder(kaggle4_ckpt, tmp_path, capsys):
    argv = ["kernels", str(kaggle4_ckpt), "--layer", "conv2d_1", "--out", str(tmp_path / "k.png")]
    code, _, _ = run(argv, capsys)
    assert code == 0 and (tmp_path / "k.png").is_file()
    with Image.open(tmp_path / "k.png") as image:
        assert image.width > 200 and image.height > 200
    code, _, _ = run(["kernels", str(kaggle4_ckpt), "--out", str(tmp_path / "all")], capsys)
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert written == [f"kernels_conv2d_{i}.png" for i in range(1, 5)]


def test_activations_by_index_and_from_an_image_file(kaggle4_ckpt, tmp_path, capsys):
    code, out, _ = run(["activations", str(kaggle4_ckpt), "--index", "7", "--out",
                        str(tmp_path / "acts")], capsys)  # fmt: skip
    assert code == 0
    assert "validation image 7: predicted" in out and "label" in out
    assert len(list((tmp_path / "acts").glob("activations_conv2d_*.png"))) == 4
    # A dark digit drawn on a light RGB background, larger than 28x28: converted with notes.
    digit = np.full((120, 100, 3), 245, dtype=np.uint8)
    digit[20:100, 45:58] = 10
    Image.fromarray(digit).save(tmp_path / "one.png")
    argv = ["activations", str(kaggle4_ckpt), "--image", str(tmp_path / "one.png"), "--layer",
            "conv2d_1", "--out", str(tmp_path / "mine")]  # fmt: skip
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "note:" in out and "one.png: predicted" in out
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["activations_conv2d_1.png"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["layers", "{missing}"], "no checkpoint at"),
        (["kernels", "{ckpt}", "--layer", "conv2d_9", "--out", "{tmp}/k.png"], "unknown layer"),
        (["kernels", "{ckpt}", "--layer", "dense_1", "--out", "{tmp}/k.png"], "not convolutional"),
        (
            ["activations", "{ckpt}", "--image", "{tmp}/bad.png", "--out", "{tmp}/a"],
            "not a readable image",
        ),
        (["activations", "{ckpt}", "--index", "9999", "--out", "{tmp}/a"], "out of range"),
        (["train", "--model", "nope", "--epochs", "1", "--out", "{tmp}/run"], "unknown model"),
        (["train", "--data", "mnsit", "--epochs", "1", "--out", "{tmp}/run"], "unknown dataset"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(kaggle4_ckpt, tmp_path, capsys, argv,
                                                      message):  # fmt: skip
    (tmp_path / "bad.png").write_bytes(b"this is not a png")
    before = set(tmp_path.rglob("*"))
    args = [a.format(ckpt=kaggle4_ckpt, tmp=tmp_path, missing=tmp_path / "none") for a in argv]
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err.lower()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert set(tmp_path.rglob("*")) == before


def test_console_script_error_has_no_traceback_unless_debug(tmp_path):
    cmd = [sys.executable, "-c", "from convlens.cli import main; main()"]
    plain = subprocess.run([*cmd, "layers", str(tmp_path / "x")], capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run([*cmd, "--debug", "layers", str(tmp_path / "x")], capture_output=True,
                           text=True)  # fmt: skip
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_help_teaches(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0 and "Typical session" in out
    code, out, _ = run(["layers", "--help"], capsys)
    assert code == 0 and "receptive field" in out.lower()


def test_compare_prints_both_models_side_by_side(capsys):
    argv = ["compare", "--data", "mnist", "--limit", "600", "--epochs", "1"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    lines = [line.split() for line in out.splitlines() if line[:4] in ("fcn ", "simp")]
    rows = {cells[0]: cells for cells in lines}
    assert set(rows) == {"fcn", "simple2"}
    for cells in rows.values():
        assert 0.1 < float(cells[3]) <= 1.0  # validation accuracy, better than chance


def test_models_and_datasets_list_what_exists(capsys):
    code, out, _ = run(["models"], capsys)
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["fcn", "kaggle4", "oip3", "simple2"]
    code, out, _ = run(["datasets"], capsys)
    assert code == 0
    for name in ("mnist", "fashion-mnist", "idx:DIR", "npz:FILE", "folder:DIR"):
        assert name in out


def test_train_command_writes_a_checkpoint(tmp_path, capsys):
    out_dir = tmp_path / "run"
    argv = ["train", "--model", "simple2", "--data", "mnist", "--limit", "300", "--epochs", "1",
            "--snapshots", "--out", str(out_dir)]  # fmt: skip
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "300 train / 500 validation" in out and "validation accuracy" in out
    assert {p.name for p in out_dir.iterdir()} == {"config.json", "model.safetensors", "snapshots"}
