"""PyTorch model files (state_dict + --arch, TorchScript, pickled modules) and RGB inputs of any
size: a ResNet-style model at 64x64 and a small CNN trained on coloured shapes from folder:DIR."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli as run
from PIL import Image, ImageDraw

import convlens as cl
from convlens.errors import CheckpointError
from convlens.models.torchscript import mirror_script

# A user's own architecture, in a module of its own (what --arch module.path:ClassName imports).
ARCH_SOURCE = textwrap.dedent("""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Sequential()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                              nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + self.shortcut(x))

    class TinyResNet(nn.Module):
        def __init__(self, num_classes: int = 5, width: int = 4):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False),
                                      nn.BatchNorm2d(width), nn.ReLU())
            self.layer1 = Block(width, width, 1)
            self.layer2 = Block(width, 2 * width, 2)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(2 * width, num_classes)

        def forward(self, x):
            x = self.layer2(self.layer1(self.stem(x)))
            return self.fc(torch.flatten(self.pool(x), 1))
""")


@pytest.fixture(scope="module")
def resnet_files(tmp_path_factory):
    """A randomly initialized ResNet-style model (residual adds, BatchNorm), saved four ways."""
    folder = tmp_path_factory.mktemp("torch")
    (folder / "tiny_arch.py").write_text(ARCH_SOURCE)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(folder))
    import tiny_arch

    torch.manual_seed(0)
    model = tiny_arch.TinyResNet(num_classes=5, width=4).eval()
    for module in model.modules():  # non-trivial normalization statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    torch.save(model.state_dict(), folder / "resnet_state.pt")
    torch.jit.script(model).save(str(folder / "resnet_script.pt"))
    torch.jit.trace(model, torch.rand(1, 3, 64, 64)).save(str(folder / "resnet_trace.pt"))
    torch.save(model, folder / "resnet_pickle.pt")
    yield model, folder
    mp.undo()


def eager_outputs(model: torch.nn.Module, names: list[str], x: torch.Tensor) -> dict:
    modules = dict(model.named_modules())
    got: dict[str, torch.Tensor] = {}
    handles = [modules[n].register_forward_hook(
        lambda _m, _a, out, n=n: got.setdefault(n, out.clone())) for n in names]  # fmt: skip
    with torch.no_grad():
        got["logits"] = model(x)
    for handle in handles:
        handle.remove()
    return got


def test_state_dict_with_arch_through_the_cli(resnet_files, capsys):
    _, folder = resnet_files
    argv = ["layers", str(folder / "resnet_state.pt"), "--arch", "tiny_arch:TinyResNet",
            "--arch-args", '{"num_classes": 5, "width": 4}', "--input-shape", "3x64x64",
            "--classes", "a,b,c,d,e"]  # fmt: skip
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "input: 3x64x64, pixels in [0, 1]; 5 classes" in out
    assert "graph: torch.fx symbolic trace" in out
    row = next(line for line in out.splitlines() if line.startswith("layer2.conv1 "))
    assert "conv" in row and "8x32x32" in row and "size 9, jump 2" in row
    assert "relu (module layer2.relu)" in row  # after its batch norm and ReLU
    # The shortcut Sequential(conv, bn) is one layer; the block is its output after add + ReLU.
    assert any(line.startswith("layer2.shortcut ") for line in out.splitlines())
    block = next(line for line in out.splitlines() if line.startswith("layer2 "))
    assert "block" in block and "relu (F.relu() in forward)" in block


def test_torchscript_scripted_is_mirrored_with_hooks_and_fields(resnet_files):
    model, folder = resnet_files
    lens = cl.load(folder / "resnet_script.pt", input_shape="3x64x64")
    assert lens.num_classes == 5 and lens.spec.shape == (3, 64, 64)
    assert lens.tracing == "recorded" and "TorchScript" in lens.tracing_note
    convs = [info.name for info in lens.conv_layers()]
    assert convs == ["stem", "layer1.conv1", "layer1.conv2", "layer2.conv1", "layer2.conv2",
                     "layer2.shortcut"]  # fmt: skip
    assert [i.name for i in lens.layers if i.kind == "block"] == ["layer1", "layer2"]
    rf = lens.layer("layer2.conv2").rf
    assert rf.size == (13, 13) and rf.jump == (2, 2)
    x = torch.rand(3, 3, 64, 64)
    # Each layer equals the eager module where it ends: conv2 after bn2, the block after F.relu.
    ends = {"stem": "stem.2", "layer1.conv2": "layer1.bn2", "layer2.conv2": "layer2.bn2",
            "layer2.shortcut": "layer2.shortcut.1", "layer2": "layer2"}  # fmt: skip
    want = eager_outputs(model, list(ends.values()), x)
    with torch.no_grad():
        got = lens.forward(x, list(ends))
        pre = lens.forward(x, ["layer2"], pre_activation=True)["layer2"]
        logits = lens.logits(x)
    for name, end in ends.items():
        assert torch.allclose(got[name], want[end], atol=1e-5), name
    assert (pre < 0).any() and torch.allclose(torch.relu(pre), got["layer2"], atol=1e-6)
    assert torch.allclose(logits, want["logits"], atol=1e-5)
    assert cl.kernels(lens, "stem").shape == (4, 3, 3, 3)  # colour first-layer kernels
    acts = cl.activations(lens, x[:1])
    assert acts.maps["layer2.conv1"].shape == (1, 8, 32, 32)


def test_torchscript_traced_has_the_same_layers(resnet_files):
    model, folder = resnet_files
    mirror = mirror_script(torch.jit.load(str(folder / "resnet_trace.pt")))
    convs = {n for n, m in mirror.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert convs == {n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}
    assert mirror.get_submodule("layer2.conv1").stride == (2, 2)
    x = torch.rand(2, 3, 64, 64)
    want = eager_outputs(model, ["layer2.conv1"], x)
    got = eager_outputs(mirror, ["layer2.conv1"], x)
    assert torch.allclose(got["layer2.conv1"], want["layer2.conv1"], atol=1e-5)
    assert torch.allclose(got["logits"], want["logits"], atol=1e-5)


def test_pickled_module_needs_trust(resnet_files, tmp_path, capsys):
    _, folder = resnet_files
    target = tmp_path / "out"
    code, _, err = run(["activations", str(folder / "resnet_pickle.pt"), "--input-shape",
                        "3x64x64", "--index", "0", "--data", "mnist", "--out", str(target)],
                       capsys)  # fmt: skip
    assert code == 2 and "--trust-pickle" in err and len(err.strip().splitlines()) == 1
    assert not target.exists()
    # Trusted, a small pickled module loads (kept tiny: building a Lens probes every layer).
    tiny = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.Linear(72, 4))
    torch.save(tiny, tmp_path / "tiny.pt")
    lens = cl.load(tmp_path / "tiny.pt", trust_pickle=True, input_shape="3x8x8")
    assert lens.num_classes == 4 and lens.layer_names == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("file", "options", "message"),
    [
        ("resnet_state.pt", {"input_shape": "3x64x64"}, "pass --arch"),
        ("resnet_state.pt", {"input_shape": "3x64x64", "arch": "kaggle4"}, "do not fit --arch"),
        ("resnet_state.pt", {"arch": "tiny_arch:TinyResNet"}, "pass --input-shape"),
        ("resnet_state.pt", {"arch": "tiny_arch:Nope", "input_shape": "3x8x8"}, "has no 'Nope'"),
        ("resnet_script.pt", {"input_shape": "1x64x64"}, "does not fit"),
        ("resnet_script.pt", {"input_shape": "3x64x64", "classes": "7"}, "has 5 outputs"),
        ("resnet_script.pt", {"input_shape": "64x64x3"}, "looks like HxWxC"),
        ("resnet_script.pt", {"input_shape": "3x64x64", "trust_keras_code": True}, "do not apply"),
    ],
)
def test_loading_mistakes_are_one_line(resnet_files, file, options, message):
    _, folder = resnet_files
    with pytest.raises(CheckpointError, match=message) as info:
        cl.load(folder / file, **options)
    assert "\n" not in str(info.value)


def test_truncated_and_unknown_torch_files(resnet_files, tmp_path, capsys):
    _, folder = resnet_files
    for name in ("resnet_state.pt", "resnet_script.pt"):
        data = (folder / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        code, _, err = run(["layers", str(tmp_path / name), "--input-shape", "3x64x64"], capsys)
        assert code == 2 and "truncated or corrupt" in err and len(err.strip().splitlines()) == 1


# --- RGB: a small CNN trained on coloured shapes from a folder ---------------------------


def make_shapes(root: Path, per_class: int = 24, size: int = 24, seed: int = 0) -> None:
    """Three classes a colour photo model must use colour and shape for: red squares, green
    discs and blue squares, at random positions and sizes on grey noise."""
    rng = np.random.default_rng(seed)
    classes = {"red_square": ((220, 40, 40), "square"), "green_disc": ((40, 200, 60), "disc"),
               "blue_square": ((40, 60, 220), "square")}  # fmt: skip
    for name, (colour, shape) in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            noise = rng.integers(90, 150, (size, size, 3), dtype=np.uint8)
            image = Image.fromarray(noise)
            r = int(rng.integers(5, 9))
            cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
            box = (cx - r, cy - r, cx + r, cy + r)
            draw = ImageDraw.Draw(image)
            (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=colour)
            image.save(root / name / f"{i:03d}.png")


def test_rgb_cnn_trained_on_coloured_shapes(tmp_path):
    make_shapes(tmp_path / "shapes")
    data = cl.load_dataset(f"folder:{tmp_path / 'shapes'}")
    assert data.channels == 3 and (data.height, data.width) == (24, 24)
    result = cl.train("simple2", data, out=tmp_path / "ckpt", epochs=6, seed=0, progress=False)
    assert result.val_accuracy > 0.6
    lens = cl.load(tmp_path / "ckpt")
    assert lens.spec.shape == (3, 24, 24) and lens.class_names == data.class_names
    weights = cl.kernels(lens, "conv2d_1")
    assert weights.shape == (32, 3, 3, 3)
    from convlens import images

    figure = images.draw_kernels(weights.numpy(), layer="conv2d_1")
    assert figure is not None
    acts = cl.activations(lens, data.x_val[:4])
    assert acts.maps["conv2d_2"].shape == (4, 32, 20, 20)
    attribution = pytest.importorskip("convlens.viz.attribution")
    for method, extra in (("gradient", {}), ("gradcam", {"layer": "conv2d_2"})):
        heat = attribution.attribute(lens, data.x_val[:4], method=method, **extra)
        assert heat.values.shape == (4, 24, 24) and torch.isfinite(heat.values).all()
        assert heat.values.abs().sum() > 0
