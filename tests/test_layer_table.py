"""The layer table of PyTorch and Keras models as people write them (issue 11): every conv and
dense layer after its activation wherever that is written, blocks, a final (log-)softmax, the
``:pre`` units, and kaggle4 written three ways giving the zoo's results."""

from __future__ import annotations

import dataclasses
import importlib
import textwrap

import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_cli as run

import convlens as cl
from convlens.atlas import AtlasOptions, build_atlas, load_manifest
from convlens.errors import ConvlensError, UnitError
from convlens.lens import InputSpec, Lens
from convlens.receptive import Window, chain_receptive_fields

SPEC = InputSpec(1, 28, 28, class_names=tuple(str(i) for i in range(10)))

NETS = textwrap.dedent('''
    from collections import OrderedDict

    import torch
    import torch.nn.functional as F
    from torch import nn


    class MnistNet(nn.Module):
        """pytorch/examples mnist/main.py, as written there."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3, 1)
            self.conv2 = nn.Conv2d(32, 64, 3, 1)
            self.dropout1 = nn.Dropout(0.25)
            self.dropout2 = nn.Dropout(0.5)
            self.fc1 = nn.Linear(9216, 128)
            self.fc2 = nn.Linear(128, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.dropout2(x)
            x = self.fc2(x)
            output = F.log_softmax(x, dim=1)
            return output


    class OldMnistNet(nn.Module):
        """pytorch/examples mnist before 2019 (and many tutorials): ReLU after max pooling."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.conv2_drop = nn.Dropout2d()
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)

        def forward(self, x):
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
            x = x.view(-1, 320)
            x = F.relu(self.fc1(x))
            x = F.dropout(x, training=self.training)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)


    def sequential_cnn():
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 14 * 14, 32), nn.ReLU(), nn.Dropout(),
            nn.Linear(32, 10),
        )


    class ConvBlock(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 3, padding=1)

        def forward(self, x):
            return F.relu(self.conv(x))


    class DenseBlock(nn.Module):
        def __init__(self, fin, fout):
            super().__init__()
            self.lin = nn.Linear(fin, fout)

        def forward(self, x):
            return torch.relu(self.lin(x))


    class BlockCNN(nn.Module):
        """The issue's shape: conv blocks as small modules calling F.relu(self.conv(x))."""

        def __init__(self):
            super().__init__()
            self.conv2d_1 = ConvBlock(1, 8)
            self.conv2d_2 = ConvBlock(8, 8)
            self.pool = nn.MaxPool2d(2)
            self.dense_1 = DenseBlock(8 * 14 * 14, 16)
            self.dense_2 = nn.Linear(16, 10)

        def forward(self, x):
            x = self.pool(self.conv2d_2(self.conv2d_1(x)))
            return self.dense_2(self.dense_1(x.view(x.size(0), -1)))


    class BasicBlock(nn.Module):
        """torchvision's BasicBlock: one ReLU module used twice, in place, ``out += identity``."""

        def __init__(self, cin, cout, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            identity = x
            out = self.conv1(x)
            out = self.bn1(out)
            out = self.relu(out)
            out = self.conv2(out)
            out = self.bn2(out)
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            out = self.relu(out)
            return out


    class SmallResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 8, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(8)
            self.relu = nn.ReLU(inplace=True)
            self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
            self.layer2 = nn.Sequential(BasicBlock(8, 16, 2), BasicBlock(16, 16))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer2(self.layer1(x))
            return self.fc(torch.flatten(self.avgpool(x), 1))


    class Branchy(nn.Module):
        """Data-dependent control flow: torch.fx cannot trace it."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4 * 26 * 26, 10)

        def forward(self, x):
            if x.sum() >= 0:
                x = F.relu(self.conv(x))
            return self.fc(x.flatten(1))


    # kaggle4 (the zoo's) written three ways; each loads the zoo's weights as they are.
    class Kaggle4Modules(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv2d_1, self.conv2d_2 = ConvBlock(1, 32), ConvBlock(32, 32)
            self.max_pooling2d_1, self.dropout_1 = nn.MaxPool2d(2), nn.Dropout(0.25)
            self.conv2d_3, self.conv2d_4 = ConvBlock(32, 64), ConvBlock(64, 64)
            self.max_pooling2d_2, self.dropout_2 = nn.MaxPool2d(2), nn.Dropout(0.25)
            self.flatten_1 = nn.Flatten()
            self.dense_1, self.dropout_3 = DenseBlock(3136, 256), nn.Dropout(0.5)
            self.dense_2, self.dropout_4 = DenseBlock(256, 128), nn.Dropout(0.5)
            self.dense_3 = nn.Linear(128, 10)

        def forward(self, x):
            x = self.dropout_1(self.max_pooling2d_1(self.conv2d_2(self.conv2d_1(x))))
            x = self.dropout_2(self.max_pooling2d_2(self.conv2d_4(self.conv2d_3(x))))
            x = self.dropout_3(self.dense_1(self.flatten_1(x)))
            return self.dense_3(self.dropout_4(self.dense_2(x)))


    class Kaggle4Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv2d_1 = nn.Conv2d(1, 32, 3, padding=1)
            self.conv2d_2 = nn.Conv2d(32, 32, 3, padding=1)
            self.conv2d_3 = nn.Conv2d(32, 64, 3, padding=1)
            self.conv2d_4 = nn.Conv2d(64, 64, 3, padding=1)
            self.dense_1 = nn.Linear(3136, 256)
            self.dense_2 = nn.Linear(256, 128)
            self.dense_3 = nn.Linear(128, 10)

        def forward(self, x):
            x = F.relu(self.conv2d_1(x))
            x = self.conv2d_2(x).relu()
            x = F.dropout(F.max_pool2d(x, 2), 0.25, self.training)
            x = torch.relu(self.conv2d_3(x))
            x = F.relu(self.conv2d_4(x), inplace=True)
            x = F.dropout(F.max_pool2d(x, 2), 0.25, self.training)
            x = F.dropout(F.relu(self.dense_1(x.view(x.size(0), -1))), 0.5, self.training)
            x = F.dropout(F.relu(self.dense_2(x)), 0.5, self.training)
            return self.dense_3(x)


    def kaggle4_sequential():
        relu = lambda: nn.ReLU(inplace=True)  # noqa: E731
        return nn.Sequential(OrderedDict([
            ("conv2d_1", nn.Conv2d(1, 32, 3, padding=1)), ("activation_1", relu()),
            ("conv2d_2", nn.Conv2d(32, 32, 3, padding=1)), ("activation_2", relu()),
            ("max_pooling2d_1", nn.MaxPool2d(2)), ("dropout_1", nn.Dropout(0.25)),
            ("conv2d_3", nn.Conv2d(32, 64, 3, padding=1)), ("activation_3", relu()),
            ("conv2d_4", nn.Conv2d(64, 64, 3, padding=1)), ("activation_4", relu()),
            ("max_pooling2d_2", nn.MaxPool2d(2)), ("dropout_2", nn.Dropout(0.25)),
            ("flatten_1", nn.Flatten()),
            ("dense_1", nn.Linear(3136, 256)), ("activation_5", relu()),
            ("dropout_3", nn.Dropout(0.5)),
            ("dense_2", nn.Linear(256, 128)), ("activation_6", relu()),
            ("dropout_4", nn.Dropout(0.5)),
            ("dense_3", nn.Linear(128, 10)),
        ]))
''')


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """The definitions above as an importable module (what ``--arch nets11:Class`` imports)."""
    folder = tmp_path_factory.mktemp("nets")
    (folder / "nets11.py").write_text(NETS)
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(folder))
    module = importlib.import_module("nets11")
    yield module, folder
    mp.undo()


def lens_of(model: torch.nn.Module, seed: int = 0) -> Lens:
    torch.manual_seed(seed)
    for m in model.modules():  # non-trivial normalization statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return Lens.from_module(model, SPEC)


def table(lens: Lens) -> list[tuple[str, str, str]]:
    return [(i.name, i.kind, i.describe_activation(lens.framework)) for i in lens.layers]


def outputs(model: torch.nn.Module, names: list[str], x: torch.Tensor) -> dict:
    """Module outputs by forward hooks (cloned: in-place ReLUs overwrite them afterwards)."""
    modules = dict(model.named_modules())
    got: dict[str, torch.Tensor] = {}

    def keep(name: str, output: torch.Tensor) -> None:  # returns None: the output stays as is
        got.setdefault(name, output.clone())

    handles = [modules[n].register_forward_hook(
        lambda _m, _a, out, n=n: keep(n, out)) for n in names]  # fmt: skip
    with torch.no_grad():
        got["logits"] = model(x)
    for handle in handles:
        handle.remove()
    return got


# --- the shapes of the issue ---------------------------------------------------------------


def test_pytorch_examples_mnist(nets):
    module, _ = nets
    model = module.MnistNet().eval()
    lens = lens_of(model)
    assert lens.tracing == "torch.fx"
    assert table(lens) == [
        ("conv1", "conv", "relu (F.relu() in forward)"),
        ("conv2", "conv", "relu (F.relu() in forward)"),
        ("max_pool2d", "pool", "none"),
        ("dropout1", "dropout", "none"),
        ("flatten", "flatten", "none"),
        ("fc1", "dense", "relu (F.relu() in forward)"),
        ("dropout2", "dropout", "none"),
        ("fc2", "dense", "none"),
        ("log_softmax", "softmax", "log_softmax (F.log_softmax() in forward)"),
    ]
    assert lens.layer("conv2").rf == chain_receptive_fields([Window(3), Window(3)])[1]
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        conv1 = model.conv1(x)
        fc2 = model.fc2(model.fc1(torch.flatten(F.max_pool2d(F.relu(model.conv2(
            F.relu(conv1))), 2), 1)).relu())  # fmt: skip
        post = lens.forward(x, ["conv1"])["conv1"]
        pre = lens.forward(x, ["conv1"], pre_activation=True)["conv1"]
        assert torch.equal(post, F.relu(conv1)) and torch.equal(pre, conv1)
        # The final log_softmax is detected: class scores are the logits before it.
        assert lens.logits_layer == "log_softmax" and lens.logits_from_input
        assert torch.allclose(lens.logits(x), fc2, atol=1e-6)
        assert torch.allclose(lens.probabilities(x), model(x).exp(), atol=1e-6)
    assert cl.resolve_units(lens, "class:3")[0].layer == "log_softmax"
    # A heatmap's gradient is of the logit, not of the log-probability.
    heat = cl.attribute(lens, x[:2], target=3, method="gradient")
    xg = x[:2].clone().requires_grad_(True)
    (want,) = torch.autograd.grad(lens.logits(xg)[:, 3].sum(), xg)
    assert torch.allclose(heat.values, want.sum(1), atol=1e-6)
    assert cl.resolve_units(lens, "conv1:pre:3")[0].pre


def test_relu_after_max_pooling_is_the_conv_layers_activation(nets):
    """relu(max_pool(conv)) = max_pool(relu(conv)): the conv layer is read after its ReLU."""
    module, _ = nets
    model = module.OldMnistNet().eval()
    lens = lens_of(model)
    assert table(lens)[:5] == [
        ("conv1", "conv", "relu (F.relu() after max_pool2d in forward)"),
        ("max_pool2d", "pool", "relu (F.relu() in forward)"),
        ("conv2", "conv", "relu (F.relu() after max_pool2d_1 in forward)"),  # past the dropout
        ("conv2_drop", "dropout", "none"),
        ("max_pool2d_1", "pool", "relu (F.relu() in forward)"),
    ]
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        conv1 = model.conv1(x)
        got = lens.forward(x, ["conv1", "max_pool2d"])
        assert torch.equal(got["conv1"], conv1.relu())
        assert torch.equal(lens.forward(x, ["conv1"], pre_activation=True)["conv1"], conv1)
        assert torch.equal(got["max_pool2d"], F.max_pool2d(conv1, 2).relu())
        with lens.tap(["conv2"]) as seen:  # the model runs on relu(conv2): the same result
            assert torch.equal(model(x), outputs(model, [], x)["logits"])
    assert seen["conv2"][0].min() == 0
    heat = cl.attribute(lens, x, method="gradcam", layer="conv2")  # gradients reach relu(conv2)
    assert heat.native.shape == (3, 8, 8) and heat.values.abs().sum() > 0


def test_mnist_state_dict_and_torchscript_through_the_cli(nets, tmp_path, capsys):
    module, _ = nets
    model = module.MnistNet().eval()
    torch.save(model.state_dict(), tmp_path / "mnist.pt")
    torch.jit.script(model).save(str(tmp_path / "mnist_script.pt"))
    code, out, err = run(["layers", str(tmp_path / "mnist.pt"), "--arch", "nets11:MnistNet",
                          "--input-shape", "1x28x28"], capsys)  # fmt: skip
    assert code == 0, err
    assert "graph: torch.fx symbolic trace" in out
    rows = {line.split()[0]: line for line in out.splitlines()[3:]}
    assert rows["conv1"].endswith("relu (F.relu() in forward)") and "32x26x26" in rows["conv1"]
    assert rows["log_softmax"].split()[1] == "softmax"
    # TorchScript runs through the mirror: the same table, found by recording a forward pass.
    script = cl.load(tmp_path / "mnist_script.pt", input_shape="1x28x28")
    assert script.tracing == "recorded" and "TorchScript" in script.tracing_note
    assert [(i.name, i.kind) for i in script.layers] == [
        (i.name, i.kind) for i in lens_of(model).layers
    ]
    assert script.layer("fc1").activation_source == "functional" and script.logits_from_input
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(script.forward(x, ["conv2"])["conv2"],
                              F.relu(model.conv2(F.relu(model.conv1(x)))), atol=1e-6)  # fmt: skip


def test_sequential_cnn(nets):
    module, _ = nets
    model = module.sequential_cnn().eval()
    lens = lens_of(model)
    assert table(lens) == [
        ("0", "conv", "relu (module 1)"),
        ("2", "conv", "relu (module 4)"),
        ("5", "pool", "none"),
        ("6", "flatten", "none"),
        ("7", "dense", "relu (module 8)"),
        ("9", "dropout", "none"),
        ("10", "dense", "none"),
    ]
    assert lens.layer("2").parts == ("2", "3", "4") and lens.layer("2").params == 1168 + 32
    x = torch.rand(3, 1, 28, 28)
    want = outputs(model, ["1", "3", "4"], x)
    with torch.no_grad():
        got = lens.forward(x, ["0", "2"])
        pre = lens.forward(x, ["2"], pre_activation=True)["2"]
    assert torch.equal(got["0"], want["1"]) and torch.equal(got["2"], want["4"])
    assert torch.equal(pre, want["3"]) and (pre < 0).any()  # not overwritten by ReLU(inplace)
    assert torch.equal(lens.logits(x), want["logits"])
    assert cl.kernels(lens, "2").shape == (16, 8, 3, 3)


def test_module_block_cnn(nets):
    module, _ = nets
    model = module.BlockCNN().eval()
    lens = lens_of(model)
    assert table(lens) == [
        ("conv2d_1", "conv", "relu (F.relu() in forward)"),
        ("conv2d_2", "conv", "relu (F.relu() in forward)"),
        ("pool", "pool", "none"),
        ("dense_1", "dense", "relu (torch.relu() in forward)"),
        ("dense_2", "dense", "none"),
    ]
    assert torch.equal(cl.kernels(lens, "conv2d_1"), model.conv2d_1.conv.weight.detach())
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(lens.forward(x, ["conv2d_2"])["conv2d_2"],
                           model.conv2d_2(model.conv2d_1(x)))  # fmt: skip
    with pytest.raises(ConvlensError, match=r"'conv2d_1.conv' is part of layer 'conv2d_1'"):
        cl.resolve_units(lens, "conv2d_1.conv:0")
    # Heatmaps and renders on the block-written layers run as on the zoo's.
    heat = cl.attribute(lens, x, method="gradcam", layer="conv2d_2")
    assert heat.native.shape == (2, 28, 28) and heat.values.abs().sum() > 0


def test_resnet_with_basic_blocks(nets):
    module, _ = nets
    model = module.SmallResNet().eval()
    lens = lens_of(model)
    rows = table(lens)
    assert rows[:5] == [
        ("conv1", "conv", "relu (module relu)"),
        ("layer1.0.conv1", "conv", "relu (module layer1.0.relu)"),
        ("layer1.0.conv2", "conv", "none"),  # conv2 + bn2, then the addition
        ("layer1.0", "block", "relu (module layer1.0.relu)"),  # after add + ReLU
        ("layer1.1.conv1", "conv", "relu (module layer1.1.relu)"),
    ]
    assert [r[0] for r in rows if r[1] == "block"] == ["layer1.0", "layer1.1", "layer2.0",
                                                       "layer2.1"]  # fmt: skip
    assert ("layer2.0.downsample", "conv", "none") in rows  # Sequential(conv, bn): one layer
    assert rows[-3:] == [("avgpool", "pool", "none"), ("flatten", "flatten", "none"),
                         ("fc", "dense", "none")]  # fmt: skip
    # Receptive fields along the main path; the global pool sees the whole input.
    main = chain_receptive_fields([Window(3, 1, 1)] * 3)
    assert lens.layer("layer1.0").rf == main[2] and lens.layer("layer1.0.conv1").rf == main[1]
    assert lens.layer("layer2.0").rf.jump == (2, 2)
    assert lens.layer("avgpool").rf.size == (28, 28)
    x = torch.rand(3, 1, 28, 28)
    blocks = ["layer1.0", "layer1.1", "layer2.0", "layer2.1"]
    want = outputs(model, [*blocks, "layer1.0.bn1"], x)
    with torch.no_grad():
        got = lens.forward(x, [*blocks, "layer1.0.conv1"])
        pre = lens.forward(x, blocks, pre_activation=True)
        conv_pre = lens.forward(x, ["layer1.0.conv1"], pre_activation=True)["layer1.0.conv1"]
        logits = lens.logits(x)
    for name in blocks:
        assert torch.equal(got[name], want[name]), name
        assert (pre[name] < 0).any() and torch.equal(pre[name].relu(), got[name]), name
    assert torch.equal(conv_pre, want["layer1.0.bn1"])
    assert torch.equal(logits, want["logits"])  # reading layers never changes the model's result
    assert torch.equal(lens.output_from_pre("layer2.1", pre["layer2.1"]), got["layer2.1"])
    # Grad-CAM defaults to the last block, read after its ReLU.
    heat = cl.attribute(lens, x, method="gradcam")
    assert heat.options["layer"] == "layer2.1" and heat.native.shape == (3, 14, 14)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_keras_sequential_with_separate_activation_layers(tmp_path, capsys):
    keras = pytest.importorskip("keras", reason="Keras 3 is not installed")
    layers = keras.layers

    def build(separate: bool):
        def conv(n, name):
            if not separate:
                return [layers.Conv2D(n, 3, activation="relu", name=name)]
            return [layers.Conv2D(n, 3, name=name), layers.Activation("relu")]

        return keras.Sequential([
            keras.Input((28, 28, 1)), *conv(8, "conv2d_1"), *conv(8, "conv2d_2"),
            layers.MaxPooling2D(name="max_pooling2d_1"), layers.Flatten(name="flatten_1"),
            layers.Dense(16, name="dense_1"), layers.Activation("relu"),
            layers.Dense(10, name="dense_2"), layers.Activation("softmax", name="softmax"),
        ])  # fmt: skip

    keras.utils.set_random_seed(0)
    plain, separate = build(False), build(True)
    separate.set_weights(plain.get_weights())
    plain.save(tmp_path / "plain.keras")
    separate.save(tmp_path / "separate.keras")
    a, b = cl.load(tmp_path / "plain.keras"), cl.load(tmp_path / "separate.keras")
    names = ["conv2d_1", "conv2d_2", "max_pooling2d_1", "flatten_1", "dense_1", "dense_2",
             "softmax"]  # fmt: skip
    assert a.layer_names == b.layer_names == names
    assert a.layer("conv2d_1").describe_activation("keras") == (
        "relu (Keras attribute activation='relu')"
    )
    act = b.layer("conv2d_1").parts[-1]
    assert act.startswith("activation")
    assert b.layer("conv2d_1").describe_activation(b.framework) == f"relu (Keras layer {act})"
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        for pre in (False, True):
            got_a = a.forward(x, names[:-1], pre_activation=pre)
            got_b = b.forward(x, names[:-1], pre_activation=pre)
            for name in names[:-1]:
                assert torch.allclose(got_a[name], got_b[name], atol=1e-5), (name, pre)
        assert b.logits_layer == "softmax" and b.logits_from_input
        keras_probs = separate.predict(x.permute(0, 2, 3, 1).numpy(), verbose=0)
        assert torch.allclose(b.probabilities(x), torch.from_numpy(keras_probs), atol=1e-5)
    code, out, err = run(["layers", str(tmp_path / "separate.keras")], capsys)
    assert code == 0, err
    assert f"relu (Keras layer {act})" in out and "graph: torch.fx symbolic trace" in out


def test_untraceable_model_falls_back_to_a_recorded_pass(nets, capsys, tmp_path):
    module, _ = nets
    model = module.Branchy().eval()
    lens = lens_of(model)
    assert lens.tracing == "recorded" and "torch.fx could not trace it" in lens.tracing_note
    assert table(lens)[0] == ("conv", "conv", "relu (F.relu() in forward)")
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(lens.forward(x, ["conv"])["conv"], F.relu(model.conv(x)))
    torch.save(model.state_dict(), tmp_path / "b.pt")
    code, out, err = run(["layers", str(tmp_path / "b.pt"), "--arch", "nets11:Branchy",
                          "--input-shape", "1x28x28"], capsys)  # fmt: skip
    assert code == 0, err
    assert "graph: recorded from one forward pass with hooks; torch.fx could not trace" in out


def test_pre_units(random_lens):
    units = cl.resolve_units(random_lens, "conv2d_2:pre:3,conv2d_2:3,conv2d_3:pre:1@7,7")
    assert [str(u) for u in units] == ["conv2d_2:pre:3", "conv2d_2:3", "conv2d_3:pre:1@7,7"]
    assert [u.pre for u in units] == [True, False, True]
    for spec, message in (("class:pre:3", "already pre-softmax"), ("conv2d_2:pre", "name the"),
                          ("conv2d_2:pre:64", "has 32 channels")):  # fmt: skip
        with pytest.raises(UnitError, match=message):
            cl.resolve_units(random_lens, spec)
    # Examples of a :pre unit rank by the value before the ReLU (negative ones included).
    x = torch.rand(12, 1, 28, 28) - 0.5
    result = cl.examples(random_lens, "conv2d_2:pre:3,conv2d_2:3", x, k=12, progress=False)
    pre_values, post_values = result.topk.values
    with torch.no_grad():
        pre = random_lens.forward(x, ["conv2d_2"], pre_activation=True)["conv2d_2"][:, 3]
    assert torch.allclose(pre_values.sort().values, pre.flatten(1).max(1).values.sort().values)
    assert torch.allclose(post_values, pre_values.clamp_min(0))


# --- kaggle4 written three ways ------------------------------------------------------------


def assert_close(got: object, want: object, where: str) -> None:
    """Equal structure and text; numbers equal up to float rounding (a definition whose
    ``x.view`` rules out channels-last convolutions computes in another order)."""
    if isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-4, abs=1e-6), where
    elif isinstance(want, list | tuple):
        assert isinstance(got, list | tuple) and len(got) == len(want), where
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_close(g, w, f"{where}[{k}]")
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            assert_close(got[key], want[key], f"{where}.{key}")
    else:
        assert got == want, where


@pytest.fixture(scope="module")
def kaggle4_ways(nets, kaggle4_lens):
    """The trained zoo kaggle4 and its weights loaded into three other definitions."""
    module, _ = nets
    state = kaggle4_lens.model.state_dict()
    ways = {"zoo": kaggle4_lens}
    builders = {"modules": module.Kaggle4Modules, "functional": module.Kaggle4Functional,
                "sequential": module.kaggle4_sequential}  # fmt: skip
    for name, build in builders.items():
        model = build()
        keys = list(model.state_dict())
        model.load_state_dict(dict(zip(keys, state.values(), strict=True)))
        ways[name] = Lens.from_module(model.eval(), kaggle4_lens.spec)
    return ways


def test_kaggle4_three_ways_have_the_zoo_table_and_values(kaggle4_ways, mnist_small):
    zoo = kaggle4_ways["zoo"]
    x = mnist_small.x_val[:16]
    convs = [i.name for i in zoo.layers if i.kind in ("conv", "dense")]
    with torch.no_grad():
        want = zoo.forward(x, convs), zoo.forward(x, convs, pre_activation=True)

    def rows(lens: Lens) -> list[tuple]:  # the functional way flattens by x.view: no layer
        return [(i.kind, i.output_shape, i.params, i.rf) for i in lens.layers
                if i.kind != "flatten"]  # fmt: skip

    for way, lens in kaggle4_ways.items():
        assert rows(lens) == rows(zoo), way
        assert [i.name for i in lens.layers if i.kind in ("conv", "dense")] == convs, way
        assert [i.has_activation for i in lens.layers if i.kind == "conv"] == [True] * 4
        with torch.no_grad():
            got = lens.forward(x, convs), lens.forward(x, convs, pre_activation=True)
            assert torch.equal(lens.logits(x), zoo.logits(x)), way
        for name in convs:
            for k in (0, 1):
                assert torch.equal(got[k][name], want[k][name]), (way, name, k)
        for method, extra in (("gradcam", {"layer": "conv2d_4"}), ("gradient_x_input", {})):
            heat = cl.attribute(lens, x[:4], method=method, **extra)
            ref = cl.attribute(zoo, x[:4], method=method, **extra)
            assert torch.allclose(heat.values, ref.values, atol=1e-6), (way, method)


def test_kaggle4_three_ways_give_the_zoo_atlas(kaggle4_ways, mnist_small, tmp_path):
    options = AtlasOptions.preset(
        quick=True, layers=("conv2d_1", "conv2d_4", "dense_2"), max_units=2, max_dense_units=2,
        render_steps=12, examples_k=3, samples_per_class=1, heatmap_methods=("gradcam",),
        faithfulness_steps=4, prototypes=False, sanity=False,
    )  # fmt: skip
    stages = ("overview", "kernels", "activations", "render", "examples")
    data = dataclasses.replace(mnist_small, x_val=mnist_small.x_val[:120],
                               y_val=mnist_small.y_val[:120])  # fmt: skip
    manifests = {}
    for way, lens in kaggle4_ways.items():
        build_atlas(lens, tmp_path / way, data=data, options=options, stages=stages,
                    progress=False)  # fmt: skip
        manifests[way] = load_manifest(tmp_path / way)

    def summary(manifest: dict) -> list:
        out = []
        for row in manifest["layers"]:
            if row["kind"] == "flatten":
                continue
            units = [(u["unit"], u["stats"]["max"], u.get("channel", {}).get("r"),
                      u.get("neuron", {}).get("r"), u["examples"]["values"],
                      u["examples"]["indices"]) for u in row.get("units", [])]  # fmt: skip
            out.append((row["kind"], row["output_shape"], row["receptive_field"],
                        row.get("kernel_scale"), units))  # fmt: skip
        return out

    zoo = summary(manifests["zoo"])
    assert sum(len(row[-1]) for row in zoo) == 6 and zoo[0][-1][0][2] > 0  # units with an r
    for way in ("modules", "functional", "sequential"):
        assert manifests[way]["stages"] == manifests["zoo"]["stages"]
        got = summary(manifests[way])
        # A render's r: 64 decoder-driven ascent steps carry a float-rounding difference (the
        # functional way runs without channels-last) from 1e-6 up to about 1e-3.
        for row_got, row_want in zip(got, zoo, strict=True):
            for unit_got, unit_want in zip(row_got[-1], row_want[-1], strict=True):
                for k in (2, 3):
                    if unit_want[k] is not None:
                        assert unit_got[k] == pytest.approx(unit_want[k], rel=1e-2), (way, k)
        strip = [
            [(*row[:-1], [(*u[:2], *u[4:]) for u in row[-1]]) for row in m] for m in (got, zoo)
        ]
        assert_close(strip[0], strip[1], way)


def test_type_column_names_the_operation_not_the_wrapper_class() -> None:
    """Zoo and converted-Keras layers are wrapper classes; users read 'Conv2d+ReLU'."""
    from convlens.lens import InputSpec, Lens
    from convlens.models import build_model

    lens = Lens.from_module(build_model("kaggle4"), InputSpec(1, 28, 28))
    types = {info.name: info.type_name for info in lens.layers}
    assert types["conv2d_1"] == "Conv2d+ReLU" and types["dense_1"] == "Linear+ReLU"
    assert types["dense_3"] == "Linear" and types["max_pooling2d_1"] == "MaxPool2d"
