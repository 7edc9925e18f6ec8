"""A model file never makes convlens run code: TorchScript files that name Python functions.

The attack (issue 9, part 1): a scripted function whose ``__module__`` is set to ``os`` compiles
to a call of ``__torch__.os.system``; an interpreter that resolved that name by importing it
would run the real ``os.system``. Each file here would create ``PWNED`` if anything ran.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cli_helpers import run_cli
from PIL import Image

import convlens as cl
from convlens.errors import CheckpointError

# (module, name, how the forward calls it): each call would create MARKER if really run.
ATTACKS = {
    "os.system": ("os", "system", "str", 'touch "{marker}"'),
    "subprocess.call": ("subprocess", "call", "List[str]", ["touch", "{marker}"]),
    "builtins.exec": ("builtins", "exec", "str", "open(r'{marker}', 'w').close()"),
    "builtins.eval": ("builtins", "eval", "str", "open(r'{marker}', 'w').close()"),
}

# Every command that loads a model, with the arguments it needs beyond CKPT.
COMMANDS = {
    "layers": [],
    "kernels": ["--out", "{out}/k.png"],
    "activations": ["--image", "{image}", "--out", "{out}/acts"],
    "render": ["--units", "conv:0", "--steps", "2", "--out", "{out}/viz"],
    "prototypes": ["--steps", "2", "--out", "{out}/proto"],
    "examples": ["--units", "conv:0", "--data", "mnist", "--out", "{out}/ex"],
    "explain": ["--image", "{image}", "--methods", "gradient", "--out", "{out}/ex"],
    "sanity": ["--methods", "gradient"],
    "atlas": ["--quick", "--out", "{out}/atlas"],
}


def _source_module(folder: Path, name: str, source: str):
    """Import ``source`` as a module from a file (TorchScript compiles from source files)."""
    import importlib.util

    path = folder / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evil_file(folder: Path, attack: str, marker: Path) -> Path:
    """A TorchScript classifier whose forward calls the function named by ``attack``."""
    module, name, arg_type, argument = ATTACKS[attack]
    if isinstance(argument, list):
        argument = [a.format(marker=marker) for a in argument]
    else:
        argument = argument.format(marker=marker)
    source = EVIL_SOURCE.format(name=name, arg_type=arg_type, module=module, argument=argument)
    built = _source_module(folder, f"make_evil_{name}", source)
    path = folder / f"evil_{name}.pt"
    torch.jit.script(built.Evil()).save(str(path))
    return path


# The attacker's script: a harmless function whose qualified name is a dangerous host function.
EVIL_SOURCE = """
from typing import List
import torch
from torch import nn


def {name}(arg: {arg_type}) -> int:
    return 0


{name}.__module__ = "{module}"


class Evil(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 26 * 26, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        {name}({argument!r})
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))
"""


@pytest.fixture(scope="module")
def attack_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "PWNED"
    files = {attack: evil_file(folder, attack, marker) for attack in ATTACKS}
    image = folder / "digit.png"
    Image.new("L", (28, 28), 0).save(image)
    return files, marker, image


def test_the_files_really_call_the_functions(attack_files):
    """The attack is real: each compiled graph calls the named host function."""
    files, _, _ = attack_files
    for attack, path in files.items():
        code = torch.jit.load(str(path)).code
        assert f"__torch__.{attack}(" in code, code


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_python_api_refuses(attack_files, attack):
    files, marker, _ = attack_files
    with pytest.raises(CheckpointError, match=f"calls '{attack}', which is not a tensor"):
        cl.load(files[attack], input_shape="1x28x28")
    assert not marker.exists()


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_every_command_refuses(attack_files, attack, command, tmp_path, capsys):
    files, marker, image = attack_files
    extra = [a.format(out=tmp_path / "out", image=image) for a in COMMANDS[command]]
    argv = [command, str(files[attack]), "--input-shape", "1x28x28", *extra]
    code, out, err = run_cli(argv, capsys)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "is refused" in lines[0] and attack in lines[0], err
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_trust_flag_lets_other_operators_run_but_never_python(tmp_path):
    """An operator off the list is refused; --trust-torchscript runs it; Python stays refused."""

    built = _source_module(tmp_path, "cummax_net", CUMMAX_SOURCE)
    path = tmp_path / "cummax.pt"
    torch.jit.script(built.Net()).save(str(path))
    with pytest.raises(CheckpointError, match="'aten::cummax', which is not on"):
        cl.load(path, input_shape="1x2x2")
    lens = cl.load(path, input_shape="1x2x2", trust_torchscript=True)
    x = torch.rand(3, 1, 2, 2)
    want = torch.jit.load(str(path))(x)
    assert torch.allclose(lens.logits(x), want, atol=1e-6)

    marker = tmp_path / "PWNED"
    evil = evil_file(tmp_path, "os.system", marker)
    with pytest.raises(CheckpointError, match="is refused"):
        cl.load(evil, input_shape="1x28x28", trust_torchscript=True)
    assert not marker.exists()


def test_own_compiled_helpers_run_from_the_file(tmp_path):
    """A user's helper function runs from its compiled code (no import of its module)."""
    built = _source_module(tmp_path, "helper_net", HELPER_SOURCE)
    path = tmp_path / "helper.pt"
    torch.jit.script(built.Net()).save(str(path))
    lens = cl.load(path, input_shape="1x6x6")
    x = torch.rand(2, 1, 6, 6)
    assert torch.allclose(lens.logits(x), torch.jit.load(str(path))(x), atol=1e-6)


CUMMAX_SOURCE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.cummax(self.conv(x), 3)[0], 1))
"""

HELPER_SOURCE = """
import torch
from torch import nn


def doubled_relu(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(x) * 2


doubled_relu.__module__ = "a_module_that_does_not_exist"


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.fc = nn.Linear(2 * 4 * 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(doubled_relu(self.conv(x)), 1))
"""
