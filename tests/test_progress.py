"""Progress: bars where a person watches, plain lines (no control codes) in logs, nothing with
--quiet; tqdm's notebook widget only where ipywidgets can draw it, and never its warning."""

from __future__ import annotations

import importlib.util
import re
import warnings

import pytest
from cli_helpers import run_cli

from convlens import progress

CONTROL = re.compile(r"[\r\x1b]")  # carriage returns and ANSI escapes: a bar's redraws


def test_modes_follow_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "interactive", lambda: False)
    assert [progress.mode(p) for p in (None, True, False)] == ["off", "lines", "off"]
    monkeypatch.setattr(progress, "interactive", lambda: True)
    assert [progress.mode(p) for p in (None, True, False)] == ["bar", "bar", "off"]


def test_lines_mode_prints_one_line_per_stage(capsys, monkeypatch) -> None:
    monkeypatch.setattr(progress, "interactive", lambda: False)
    with progress.bar(10, desc="render", unit="unit", progress=True) as bar:
        bar.update(10)
        bar.add_total(3)
        bar.set_description("render, fresh start 1")
        bar.update(3)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    assert re.fullmatch(r"render: 10 units in \d+\.\d s", err[0])
    assert re.fullmatch(r"render, fresh start 1: 3 units in \d+\.\d s", err[1])
    list(progress.track(range(3), desc="sanity", unit="method", progress=None))
    assert capsys.readouterr().err == ""  # auto mode stays silent in a log


def test_notebook_without_ipywidgets_uses_the_text_bar_and_warns_nothing(monkeypatch) -> None:
    from tqdm.std import tqdm

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else real(name)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert progress._tqdm_class() == (tqdm, False)
        assert progress.mode(None) == "bar"


def test_long_commands_write_plain_lines_to_a_log_and_nothing_when_quiet(
    kaggle4_ckpt, tmp_path, capsys
) -> None:
    argv = ["kernels", str(kaggle4_ckpt), "--layer", "conv2d_1", "--layer", "conv2d_2",
            "--out", str(tmp_path / "k")]  # fmt: skip
    code, _, err = run_cli(argv, capsys)
    assert code == 0 and not CONTROL.search(err)
    assert re.search(r"^kernels: 2 layers in \d+\.\d s$", err, flags=re.M)
    code, _, err = run_cli([*argv, "--quiet"], capsys)
    assert code == 0 and err == ""


def test_nested_atlas_bars_become_stage_lines_in_a_log(kaggle4_ckpt, tmp_path, capsys) -> None:
    argv = ["atlas", str(kaggle4_ckpt), "--out", str(tmp_path / "a"), "--quick",
            "--stages", "overview,kernels"]  # fmt: skip
    code, out, err = run_cli(argv, capsys)
    assert code == 0, err
    assert not CONTROL.search(err) and not CONTROL.search(out)
    lines = err.splitlines()
    assert any(re.fullmatch(r"kernels: \d+ tasks? in \d+\.\d s", line) for line in lines), err
    assert re.fullmatch(r"atlas: \d+ tasks in \d+\.\d s", lines[-1]), err


LONG = ["train", "compare", "kernels", "activations", "render", "prototypes", "examples",
        "explain", "sanity", "atlas"]  # fmt: skip


@pytest.mark.parametrize("command", LONG)
def test_every_long_command_takes_quiet(command: str, capsys) -> None:
    code, out, _ = run_cli([command, "--help"], capsys)
    assert code == 0 and "--quiet" in out
