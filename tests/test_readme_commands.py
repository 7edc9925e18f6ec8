"""Every command in README.md's ```bash blocks (and every ```python block) runs as written, so
none can crash unnoticed.

The commands are read from the README when the tests are collected: a command added there is
tested without touching this file. Each runs in-process (``convlens.cli.main``) in a fresh folder
holding what the README assumes exists:

- ``runs/kaggle4``: the session's kaggle4 checkpoint (3 short epochs on 3000 real digits, with
  snapshots; made once by the ``kaggle4_ckpt`` fixture) instead of the 8-epoch demo model;
- ``my_digit.png`` / ``digit.png``: real validation digits;
- ``my_model.h5`` / ``my_model.keras``: a tiny Keras CNN (one conv layer, random weights);
- ``weights.pt`` + ``mypkg/nets.py``: a state_dict and the class that builds it.

Work is shrunk only where the command as written takes more than a few seconds here: SHRINK
lists each change and why (fewer epochs, steps, masks or images; the code path is the same).
Commands that cannot run in a test are in SKIP with the reason. A README command this file does
not know how to run fails: give it a runner, a shrink or (with a reason) a skip.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import shutil
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"

# Command prefix -> why it is not run here.
SKIP: dict[str, str] = {
    "make ": "sets up the venv and runs the demo (8 epochs + a full atlas) or this very suite; "
    "CI runs `make test` itself",
    ".venv/bin/pytest": "the test suite itself",
    ".venv/bin/python bench/": "benchmarks run for minutes and print ratios, not pass/fail; "
    "bench scripts are run by hand on a quiet machine",
    "convlens serve": "starts a web server that runs until stopped; tests/test_server*.py drive it",
    "pip install": "installs packages (make setup installs the extras the suite uses)",
}

# Parts of a command that need what a test machine lacks, wherever they appear in it.
SKIP_IF_CONTAINS: dict[str, str] = {
    "--ray auto": "needs an already running Ray cluster (tests/test_distributed.py starts its own)",
    "--ray ray://": "needs a remote Ray cluster's address (tests/test_distributed.py covers Ray)",
}

# Options whose commands need an optional package: skipped with the reason when it is missing.
NEEDS: dict[str, str] = {"--ray": "ray"}


def _set(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option`` set to ``value`` (replaced where given, appended otherwise)."""
    out = list(argv)
    if option in out:
        out[out.index(option) + 1] = value
        return out
    return [*out, option, value]


def _shrink(**options: str) -> Callable[[list[str]], list[str]]:
    def apply(argv: list[str]) -> list[str]:
        for name, value in options.items():
            argv = _set(argv, "--" + name.replace("_", "-"), value)
        return argv

    return apply


def _atlas(argv: list[str]) -> list[str]:
    return argv if "--quick" in argv else _set(argv, "--stages", "overview,kernels")


# Command prefix -> (change to its arguments, why).
SHRINK: dict[str, tuple[Callable[[list[str]], list[str]], str]] = {
    "convlens train": (
        _shrink(epochs="1", limit="300"),
        "8 epochs on 4,500 digits take ~40 s; one epoch on 300 runs the same code",
    ),
    "convlens compare": (
        _shrink(epochs="1", limit="300"),
        "trains two models for 8 epochs each",
    ),
    "convlens render": (
        _shrink(steps="3"),
        "the preset's hundreds of steps per unit (and its fresh starts) take minutes",
    ),
    "convlens prototypes": (_shrink(steps="3"), "as render"),
    "convlens explain": (
        _shrink(steps="5", masks="64"),
        "deletion/insertion in 25 steps and RISE's thousands of masks dominate the run",
    ),
    "convlens sanity": (
        _shrink(n="1", masks="64"),
        "8 images x every method x one map per randomized layer",
    ),
    "convlens atlas": (
        _atlas,
        "a full-quality build takes minutes here: without --quick it builds the cheap stages "
        "(full options); the --quick command runs every stage as written",
    ),
}


def readme_commands(text: str) -> list[list[str]]:
    """The commands of the ```bash blocks: continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append(argv)
    return commands


def _match(table: dict[str, object], argv: list[str]) -> str | None:
    line = " ".join(argv)
    return next((prefix for prefix in table if line.startswith(prefix)), None)


COMMANDS = readme_commands(README.read_text())


def test_the_readme_has_commands_and_every_shrink_is_used() -> None:
    """Guards the parser (a README rewrite must not silently leave nothing to test)."""
    lines = [" ".join(c) for c in COMMANDS]
    assert sum(line.startswith("convlens ") for line in lines) >= 20
    stale = [p for p in SHRINK if not any(line.startswith(p) for line in lines)]
    assert not stale, f"SHRINK entries matching no README command: {stale}"


# --- the folder a README user has -----------------------------------------------------------
NETS = textwrap.dedent("""
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self, width: int = 16):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(),
                                          nn.MaxPool2d(2), nn.Conv2d(width, width, 3), nn.ReLU())
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))

        def forward(self, x):
            return self.head(self.features(x))
""")


def _have_keras() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("keras", "h5py"))


def _keras_files(folder: Path) -> None:
    import os

    if not _have_keras():
        return  # the Keras commands skip (see the test)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv2d_1"),
        keras.layers.MaxPooling2D(name="max_pooling2d_1"),
        keras.layers.Flatten(name="flatten_1"),
        keras.layers.Dense(10, activation="softmax", name="dense_1"),
    ])  # fmt: skip
    model.save(folder / "my_model.keras")
    model.save(folder / "my_model.h5")


@pytest.fixture(scope="module")
def user_files(tmp_path_factory, kaggle4_ckpt: Path, mnist_small) -> Path:
    """Everything the README's commands read, made once; each test copies it."""
    from convlens.images import save_png

    folder = tmp_path_factory.mktemp("readme_user")
    shutil.copytree(kaggle4_ckpt, folder / "runs" / "kaggle4")
    from PIL import Image

    for name, index in (("my_digit.png", 7), ("digit.png", 3)):
        pixels = (mnist_small.x_val[index, 0].numpy() * 255).round().astype("uint8")
        save_png(Image.fromarray(pixels), folder / name)
    (folder / "mypkg").mkdir()
    (folder / "mypkg" / "__init__.py").write_text("")
    (folder / "mypkg" / "nets.py").write_text(NETS)
    spec = importlib.util.spec_from_file_location("_readme_nets", folder / "mypkg" / "nets.py")
    assert spec is not None and spec.loader is not None
    nets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nets)
    torch.manual_seed(0)
    torch.save(nets.SmallCNN(width=32).state_dict(), folder / "weights.pt")
    if any(".h5" in a or ".keras" in a for c in COMMANDS for a in c):
        _keras_files(folder)
    return folder


@pytest.fixture()
def user_folder(user_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the README user's folder as the working directory (mypkg importable)."""
    work = tmp_path / "work"
    shutil.copytree(user_files, work)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))
    yield work
    for name in [m for m in sys.modules if m == "mypkg" or m.startswith("mypkg.")]:
        del sys.modules[name]


def _id(argv: list[str]) -> str:
    return " ".join(argv)[:90]


@pytest.mark.slow
@pytest.mark.parametrize("argv", COMMANDS, ids=[_id(c) for c in COMMANDS])
def test_readme_command_runs(argv: list[str], user_folder: Path, capsys) -> None:
    skip = _match(SKIP, argv)
    if skip is not None:
        pytest.skip(f"{skip!r}: {SKIP[skip]}")
    line = " ".join(argv)
    for part, reason in SKIP_IF_CONTAINS.items():
        if part in line:
            pytest.skip(f"{part!r}: {reason}")
    for option, module in NEEDS.items():
        if option in argv and importlib.util.find_spec(module) is None:
            pytest.skip(f"{option} needs {module}, which is not installed")
    if any(a.endswith((".h5", ".keras")) for a in argv) and not _have_keras():
        pytest.skip("Keras files need keras and h5py (pip install '.[keras]')")
    assert argv[0] == "convlens", (
        f"no runner for README command {' '.join(argv)!r}: add it to SKIP (with the reason) "
        "or teach this test to run it"
    )
    args = argv[1:]
    shrink = _match(SHRINK, argv)
    if shrink is not None:
        args = SHRINK[shrink][0](args)
    if argv[:2] == ["convlens", "train"] and "--overwrite" not in args:
        # the README trains first, before any checkpoint exists; the folder here holds the
        # fixture's copy for the commands that follow, which train would rightly refuse
        shutil.rmtree(args[args.index("--out") + 1], ignore_errors=True)
    code, out, err = run_cli(args, capsys)
    assert code == 0, f"convlens {' '.join(args)} exited {code}:\n{out[-2000:]}\n{err[-2000:]}"
    assert "Traceback" not in err
    if "--out" in args:
        written = Path(args[args.index("--out") + 1])
        assert written.exists(), f"--out {written} was not written"


PYTHON_BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), flags=re.S | re.M)


@pytest.mark.parametrize(
    "code", PYTHON_BLOCKS, ids=[f"python-{i}" for i in range(len(PYTHON_BLOCKS))]
)
def test_readme_python_block_runs(code: str, user_folder: Path, capsys) -> None:
    """Each ```python block, executed in the README user's folder (optional packages skip)."""
    try:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    except ModuleNotFoundError as exc:
        pytest.skip(f"needs {exc.name}, which is not installed")
