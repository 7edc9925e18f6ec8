"""Outputs and runs a user can trust: permissions, full disks, links, diverging training,
checkpoint folders that are already in use, and a command line that answers at once.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from bad_world import tiny
from cli_helpers import run_cli

import convlens as cl
from convlens import fileio, images
from convlens.errors import CheckpointError, OutputError, TrainingError


@pytest.fixture(scope="module")
def small(mnist_small):
    return tiny(mnist_small, train=300, val=100)


@pytest.fixture(scope="module")
def ckpt(small, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("output_ckpt") / "simple2"
    cl.train("simple2", small, out=out, epochs=1, progress=False)
    return out


# --- fileio -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_files_get_the_users_umask(tmp_path: Path, mask: int, mode: int) -> None:
    old = os.umask(mask)
    try:
        path = fileio.write_text(tmp_path / "deep" / "a.txt", "x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == mode


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    def writer(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "new" / "folders" / "out.png"
    with pytest.raises(OutputError) as info:
        fileio.write_atomic(target, writer)
    assert str(info.value) == (
        f"cannot write {target}: no space left on the device; free some space or choose "
        "another disk"
    )
    assert list(tmp_path.iterdir()) == [], "temp file and the folders made for it are gone"


def test_writing_to_a_link_writes_through_it(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    fileio.write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() == "new"


def test_devices_are_never_replaced(tmp_path: Path) -> None:
    link = tmp_path / "null.png"
    link.symlink_to("/dev/null")
    with pytest.raises(OutputError, match="not a regular file"):
        fileio.write_text(link, "x")
    assert link.is_symlink() and Path("/dev/null").is_char_device()


def test_cli_writes_through_a_linked_picture(ckpt: Path, tmp_path: Path, capsys) -> None:
    real = tmp_path / "pictures" / "k.png"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "k.png"
    link.symlink_to(real)
    code, _, err = run_cli(["kernels", str(ckpt), "--layer", "conv2d_1", "--out",
                            str(link)], capsys)  # fmt: skip
    assert code == 0, err
    assert link.is_symlink() and real.read_bytes()[:4] == b"\x89PNG"
    assert real.stat().st_mode & 0o777 == 0o666 & ~fileio.umask()


# --- training -----------------------------------------------------------------------------------


def test_diverging_training_stops_and_writes_nothing(small, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(TrainingError, match=r"training diverged at epoch 1, batch \d+: the loss"):
        cl.train("simple2", small, out=out, epochs=2, lr=1e30, snapshots=True,
                 progress=False)  # fmt: skip
    assert not out.exists()


def test_diverging_training_from_the_cli(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "--model", "simple2", "--limit", "300", "--epochs", "1", "--lr", "1e30",
            "--snapshots", "--out", str(out)]  # fmt: skip
    code, _, err = run_cli(argv, capsys)
    shown = [line.rsplit("\r", 1)[-1] for line in err.strip().split("\n")]
    assert code == 2 and [s for s in shown if s.strip()][-1].startswith("convlens: error: ")
    assert "training diverged" in err and "--lr" in err and "Traceback" not in err
    assert not out.exists()


def test_train_into_a_checkpoint_needs_overwrite_which_removes_old_snapshots(
    small, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    cl.train("simple2", small, out=out, epochs=2, snapshots=True, progress=False)
    (out / "cache").mkdir()
    (out / "cache" / "maxima_old.safetensors").write_bytes(b"stale")
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "epoch_001.safetensors", "epoch_002.safetensors"]  # fmt: skip
    with pytest.raises(OutputError, match="already holds a checkpoint; pass --overwrite"):
        cl.train("simple2", small, out=out, epochs=1, progress=False)
    # A diverging rerun with overwrite leaves the old checkpoint as it was.
    before = (out / "config.json").read_text()
    with pytest.raises(TrainingError):
        cl.train("simple2", small, out=out, epochs=1, lr=1e30, overwrite=True,
                 progress=False)  # fmt: skip
    assert (out / "config.json").read_text() == before
    assert len(list((out / "snapshots").iterdir())) == 2
    cl.train("simple2", small, out=out, epochs=1, overwrite=True, progress=False)
    assert not (out / "snapshots").exists() and not (out / "cache").exists()
    assert [h["epoch"] for h in json.loads((out / "config.json").read_text())["history"]] == [1]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    with pytest.raises(CheckpointError, match="none"):
        cl.load(out, epoch=2)  # the old run's epoch 2 is gone with it


def test_train_refuses_a_bad_out_before_any_work(tmp_path: Path, monkeypatch, capsys) -> None:
    train_module = sys.modules["convlens.train"]  # (convlens.train is also the function)

    def no_work(*args, **kwargs):
        raise AssertionError("the data was loaded before the output was checked")

    monkeypatch.setattr(train_module, "fit", no_work)
    monkeypatch.setattr("convlens.cli.foundation.load_dataset", no_work, raising=False)
    (tmp_path / "file").write_text("mine")
    code, _, err = run_cli(["train", "--out", str(tmp_path / "file")], capsys)
    assert code == 2 and "is a file" in err
    with pytest.raises(OutputError, match="is a file"):
        cl.train("simple2", "mnist", out=tmp_path / "file", progress=False)
    assert (tmp_path / "file").read_text() == "mine"


# --- the command line ---------------------------------------------------------------------------


def _python(code: str, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120, **kwargs)  # fmt: skip


def test_help_and_version_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from convlens.cli import main\n"
        "for argv in (['--help'], ['--version'], []):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('torch', 'matplotlib', 'numpy', 'PIL') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    run = _python(code)
    assert run.returncode == 0, run.stderr
    assert "HEAVY []" in run.stdout
    assert "Commands:" in run.stdout and "atlas" in run.stdout


def test_every_command_is_listed_and_loads() -> None:
    from convlens.cli import COMMANDS, cli

    for name, (module, _summary) in COMMANDS.items():
        command = cli.get_command(None, name)  # type: ignore[arg-type]
        assert command is not None and command.name == name, (name, module)
    assert set(cli.commands) == set(COMMANDS), "a command registered without a COMMANDS line"


def test_stdout_on_a_full_device_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        run = subprocess.run([sys.executable, "-c", "from convlens.cli import main; main()",
                              "models"], stdout=full, stderr=subprocess.PIPE, text=True,
                             timeout=120)  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "convlens: error: cannot write to standard output: no space left on device"
    ]


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_anywhere_shows_the_traceback(tmp_path: Path, where: str) -> None:
    from convlens.cli import main

    args = ["layers", str(tmp_path / "none")]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    with pytest.raises(CheckpointError):
        main(args)


def test_warnings_wait_for_success_and_vanish_on_error(monkeypatch, capsys) -> None:
    import convlens.cli.foundation as foundation

    def noisy() -> dict[str, str]:
        warnings.warn("the zoo is\nnoisy", UserWarning, stacklevel=1)
        return {"tiny": "a model"}

    monkeypatch.setattr(foundation, "model_summaries", noisy)
    code, out, err = run_cli(["models"], capsys)
    assert code == 0 and "tiny" in out
    assert err.strip().splitlines() == ["convlens: warning: the zoo is noisy"]

    def noisy_then_bad() -> dict[str, str]:
        warnings.warn("about to fail", UserWarning, stacklevel=1)
        raise CheckpointError("the zoo is closed")

    monkeypatch.setattr(foundation, "model_summaries", noisy_then_bad)
    code, _, err = run_cli(["models"], capsys)
    assert code == 2 and err.strip().splitlines() == ["convlens: error: the zoo is closed"]


def test_class_names_are_drawn_literally(tmp_path: Path) -> None:
    """Names from folders are text, never matplotlib math: '$\\frac{$' draws as typed."""
    names = ["$\\frac{$", "a$b", "^_^"]
    fig = images.activations_figure(np.zeros((1, 28, 28)), "conv2d_1", np.random.rand(4, 28, 28),
                                    np.full(3, 1 / 3), names, title=names[0])  # fmt: skip
    path = images.save_figure(fig, tmp_path / "acts.png")
    assert path.stat().st_size > 1000


@pytest.mark.parametrize(
    ("code", "phrase"),
    [(errno.EACCES, "permission denied"), (errno.EPERM, "not permitted"),
     (errno.EROFS, "read-only"), (errno.ENOSPC, "no space left"), (errno.EDQUOT, "quota"),
     (errno.ENAMETOOLONG, "too long"), (errno.ELOOP, "loop of symbolic links")],
)  # fmt: skip
def test_output_checks_name_the_problem(tmp_path: Path, monkeypatch, code: int, phrase: str):
    """What the probe before work can meet (here simulated) becomes one line with the path."""

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(fileio.tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError) as info:
        fileio.check_output(tmp_path / "x")
    text = str(info.value)
    assert phrase in text and str(tmp_path / "x") in text and "\n" not in text


def test_an_immutable_folder_is_refused_at_once(ckpt: Path, tmp_path: Path, capsys):
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    if subprocess.run(["chattr", "+i", str(frozen)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here")
    try:
        for argv in (["train", "--epochs", "1"], ["kernels", str(ckpt)],
                     ["atlas", str(ckpt), "--quick"]):  # fmt: skip
            code, _, err = run_cli([*argv, "--out", str(frozen / "out")], capsys)
            assert code == 2 and len(err.strip().splitlines()) == 1, err
            assert "not permitted" in err and str(frozen / "out") in err
        assert list(frozen.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(frozen)], check=True)
