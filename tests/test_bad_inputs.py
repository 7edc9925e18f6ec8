"""Bad input, as a new user (or an attacker) would give it: every case is refused the same way.

Each case runs ``convlens ARGV`` in-process and asserts: exit status 2, exactly one line on
stderr (``convlens: error: ...`` with the phrase that names the problem), no traceback, nothing
written to the output path, and every pre-existing file (the checkpoints, model files, images,
datasets and a user's own folder) unchanged, down to its modification time.

The world of bad inputs is built once (``bad_world.py``); the good checkpoint is a small
simple2 trained one epoch, so that the suite runs in seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bad_world import build_checkpoints, build_datasets, build_files, build_images, build_user, tiny
from bad_world import snapshot as take_snapshot
from cli_helpers import run_cli

import convlens as cl
from convlens.errors import CheckpointError

EVERY_LOADER = {  # each command that loads a model, with what else it needs
    "layers": [],
    "kernels": ["--out", "{out}/k.png"],
    "activations": ["--image", "{img}/digit.png", "--out", "{out}"],
    "render": ["--units", "conv2d_1:0", "--steps", "1", "--out", "{out}"],
    "prototypes": ["--steps", "1", "--out", "{out}"],
    "examples": ["--units", "conv2d_1:0", "--out", "{out}"],
    "explain": ["--image", "{img}/digit.png", "--methods", "gradient", "--out", "{out}"],
    "sanity": ["--methods", "gradient", "--n", "1"],
    "atlas": ["--quick", "--out", "{out}"],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, mnist_small) -> dict[str, Path]:
    from convlens.train import train

    root = tmp_path_factory.mktemp("bad_world")
    ckpt = root / "ckpt"
    train("simple2", tiny(mnist_small), out=ckpt, epochs=1, snapshots=True, progress=False)
    shutil.copytree(ckpt, root / "ckcopy")
    build_checkpoints(ckpt, root / "bad")
    build_files(root / "files", ckpt)
    build_images(root / "img")
    build_datasets(root / "data", root / "img")
    build_user(root / "user")
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "loop").symlink_to(root / "loop")
    (root / "dirlink.png").symlink_to(root / "user", target_is_directory=True)
    return {
        "root": root,
        "ckpt": ckpt,
        "ckcopy": root / "ckcopy",
        "bad": root / "bad",
        "files": root / "files",
        "img": root / "img",
        "data": root / "data",
        "user": root / "user",
    }


def shown_lines(err: str) -> list[str]:
    """The lines a terminal shows: a progress bar redrawn with carriage returns and then
    cleared leaves nothing (what stays of each line is the text after its last \\r)."""
    shown = [line.rsplit("\r", 1)[-1].rstrip() for line in err.split("\n")]
    return [line for line in shown if line]


def _case_id(case: tuple[str, list[str], str]) -> str:
    return case[0]


# --- the cases --------------------------------------------------------------------------------
# (id, argv with {placeholders}, phrase the error line must contain, lower case)
# fmt: off

CHECKPOINT_CASES = [
    (f"ckpt-{name}", ["layers", f"{{bad}}/{name}"], phrase)
    for name, phrase in {
        **{k: v[1] for k, v in __import__("bad_world").CONFIGS.items()},
        **{k: v[1] for k, v in __import__("bad_world").RAW_CONFIGS.items()},
        "weights_missing": "is missing",
        "weights_empty": "corrupt",
        "weights_garbage": "corrupt",
        "weights_truncated": "corrupt",
        "weights_header_only": "corrupt",
        "weights_nan": "nan or infinite",
        "weights_inf": "nan or infinite",
        "weights_drop_tensor": "is missing",
        "weights_extra_tensor": "unexpected tensor",
        "weights_other_model": "do not fit the architecture",
        "weights_folder": "is missing",
        "empty_folder": "not a convlens checkpoint",
        "config_is_folder": "not a convlens checkpoint",
    }.items()
] + [
    ("ckpt-nonexistent", ["layers", "{root}/nothing"], "no checkpoint at"),
    ("ckpt-epoch-not-kept", ["layers", "{ckpt}", "--epoch", "7"], "kept epochs: [1]"),
    ("ckpt-epoch-zero", ["layers", "{ckpt}", "--epoch", "0"], "invalid value for '--epoch'"),
    ("ckpt-epoch-huge", ["layers", "{ckpt}", "--epoch", "99999999"], "invalid value"),
    ("ckpt-options-on-folder", ["layers", "{ckpt}", "--input-shape", "1x28x28"], "do not apply"),
    ("ckpt-nan-through-render", ["render", "{bad}/weights_nan", "--units", "conv2d_1:0",
                                 "--out", "{out}"], "nan or infinite"),
    ("ckpt-spec-through-atlas", ["atlas", "{bad}/channels_3_both", "--out", "{out}"],
     "do not fit the architecture"),
    ("ckpt-names-through-explain", ["explain", "{bad}/names_3", "--image", "{img}/digit.png",
                                    "--out", "{out}"], "class_names is 3"),
]

MODEL_FILE_CASES = [
    ("file-renamed-h5", ["layers", "{files}/renamed.pt"], "rename it"),
    ("file-truncated-h5", ["layers", "{files}/truncated.h5"], "h5"),
    ("file-zip-not-model", ["layers", "{files}/notes.keras"], "cannot be read"),
    ("file-cut-zip", ["layers", "{files}/cut.keras"], "cannot be read"),
    ("file-empty", ["layers", "{files}/empty.pt"], "is empty"),
    ("file-random", ["layers", "{files}/random.pt"], "not a .pt file convlens can read"),
    ("file-text", ["layers", "{files}/text.bin"], "convlens can read"),
    ("file-missing", ["layers", "{files}/nothing.pt"], "does not exist"),
    ("file-plain-pickle", ["layers", "{files}/plain.pt", "--input-shape", "1x28x28"],
     "not a file written by torch.save"),
    ("file-plain-pickle-trusted", ["layers", "{files}/plain.pt", "--input-shape", "1x28x28",
                                   "--trust-pickle"], "not a file written by torch.save"),
    ("file-list", ["layers", "{files}/list.pt", "--input-shape", "1x28x28"], "holds a list"),
    ("file-module-untrusted", ["layers", "{files}/module.pt", "--input-shape", "1x28x28"],
     "pickled python objects"),
    ("file-module-not-classifier", ["layers", "{files}/module.pt", "--input-shape", "1x1x2",
                                    "--trust-pickle"], "not class scores"),
    ("file-state-no-arch", ["layers", "{files}/state.pt", "--input-shape", "1x28x28"],
     "pass --arch"),
    ("file-state-arch-unknown", ["layers", "{files}/state.pt", "--input-shape", "1x28x28",
                                 "--arch", "nonet"], "--arch"),
    ("file-state-wrong-arch", ["layers", "{files}/state.pt", "--input-shape", "1x28x28",
                               "--arch", "kaggle4"], "do not fit"),
    ("file-arch-args-json", ["layers", "{files}/state.pt", "--input-shape", "1x28x28",
                             "--arch", "simple2", "--arch-args", "{{width"], "not valid json"),
    ("file-arch-args-list", ["layers", "{files}/state.pt", "--input-shape", "1x28x28",
                             "--arch", "simple2", "--arch-args", "[1]"], "json object"),
    ("file-arch-args-deep", ["layers", "{files}/state.pt", "--input-shape", "1x28x28",
                             "--arch", "simple2", "--arch-args", "[" * 50_000],
     "--arch-args"),
    ("file-safetensors-no-arch", ["layers", "{files}/weights.safetensors", "--input-shape",
                                  "1x28x28"], "--arch"),
    ("file-safetensors-cut", ["layers", "{files}/cut.safetensors", "--input-shape", "1x28x28",
                              "--arch", "simple2"], "corrupt"),
    ("file-script-cut", ["layers", "{files}/cut_script.pt", "--input-shape", "1x28x28"],
     "corrupt"),
    ("file-script-no-shape", ["layers", "{files}/net.pt"], "--input-shape"),
    ("file-script-shape-abc", ["layers", "{files}/net.pt", "--input-shape", "abc"], "cxhxw"),
    ("file-script-shape-hwc", ["layers", "{files}/net.pt", "--input-shape", "28x28x1"],
     "looks like hxwxc"),
    ("file-script-shape-zero", ["layers", "{files}/net.pt", "--input-shape", "0x28x28"],
     "cxhxw"),
    ("file-script-shape-4d", ["layers", "{files}/net.pt", "--input-shape", "1x28x28x1"],
     "cxhxw"),
    ("file-script-shape-unfit", ["layers", "{files}/net.pt", "--input-shape", "3x28x28"],
     "does not fit"),
    ("file-script-shape-size", ["layers", "{files}/net.pt", "--input-shape", "1x30x30"],
     "does not fit"),
    ("file-script-maps", ["layers", "{files}/maps.pt", "--input-shape", "1x28x28"],
     "not class scores"),
    ("file-script-no-conv", ["layers", "{files}/flat.pt", "--input-shape", "1x28x28"],
     "no convolutional layers"),
    ("file-range-abc", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--range",
                        "abc"], "comma list of numbers"),
    ("file-range-backwards", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--range",
                              "1,0"], "low < high"),
    ("file-range-inf", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--range",
                        "0,inf"], "finite"),
    ("file-range-one", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--range",
                        "1"], "low,high"),
    ("file-mean-abc", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--mean", "x"],
     "comma list of numbers"),
    ("file-mean-nan", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--mean", "nan"],
     "finite"),
    ("file-mean-count", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--mean",
                         "0,0"], "has 2 values"),
    ("file-std-zero", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--std", "0"],
     "positive"),
    ("file-std-negative", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--std",
                           "-1"], "positive"),
    ("file-classes-zero", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--classes",
                           "0"], "at least 1"),
    ("file-classes-dup", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--classes",
                          "a,a,b"], "distinct"),
    ("file-classes-blank", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--classes",
                            ",,"], "distinct"),
    ("file-classes-count", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--classes",
                            "7"], "gives 7 classes but"),
    ("file-keras-flag-on-pt", ["layers", "{files}/net.pt", "--input-shape", "1x28x28",
                               "--trust-keras-code"], "do not apply"),
    ("file-script-flag-on-state", ["layers", "{files}/state.pt", "--input-shape", "1x28x28",
                                   "--arch", "simple2", "--trust-torchscript"], "do not apply"),
    ("file-arch-on-script", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--arch",
                             "simple2"], "drop --arch"),
    ("file-epoch-on-file", ["layers", "{files}/net.pt", "--input-shape", "1x28x28", "--epoch",
                            "1"], "--epoch applies only"),
    ("file-image-as-model", ["layers", "{img}/digit.png"], "convlens can read"),
    ("file-convert-not-keras", ["convert", "{files}/net.pt", "--out", "{out}"],
     "not a keras model"),
    ("file-convert-folder", ["convert", "{ckpt}", "--out", "{out}"], "is a folder"),
]

SECURITY_CASES = [
    (f"security-pickle-{command}", [command, "{files}/boom.pt", "--input-shape", "1x28x28", *extra],
     "unpickling can run arbitrary code")
    for command, extra in EVERY_LOADER.items()
] + [
    ("security-pickle-with-arch", ["layers", "{files}/boom.pt", "--input-shape", "1x28x28",
                                   "--arch", "simple2"], "unpickling can run arbitrary code"),
    ("security-config-os-system", ["atlas", "{bad}/arch_os_system", "--out", "{out}"],
     "unknown model"),
    ("security-graph-lambda", ["render", "{bad}/graph_lambda", "--units", "conv:0", "--out",
                               "{out}"], "whose code is not stored"),
]

IMAGE_CASES = [
    (f"image-{name}-{command}", [command, "{ckpt}", "--image", f"{{img}}/{name}", *extra], phrase)
    for name, phrase in {
        "missing.png": "does not exist",
        "empty.png": "not a readable image",
        "text.png": "not a readable image",
        "cut_head.png": "not a readable image",
        "cut_data.png": "not a readable image",
        "cut_end.png": "truncated png",
        "cut_crc.png": "truncated png",
        "bad_crc.png": "not a readable image",
        "cut_half.jpg": "not a readable image",
        "cut_end.jpg": "truncated",
        "huge.png": "up to 16.8 megapixels",
        "loop.png": "does not exist",
        ".": "is a folder",
    }.items()
    for command, extra in (("activations", ["--out", "{out}"]),
                           ("explain", ["--methods", "gradient", "--out", "{out}"]))
] + [
    ("image-sanity-huge", ["sanity", "{ckpt}", "--image", "{img}/huge.png", "--methods",
                           "gradient"], "megapixels"),
    ("image-model-file", ["activations", "{ckpt}", "--image", "{files}/net.pt", "--out",
                          "{out}"], "not a readable image"),
    ("image-empty-path", ["activations", "{ckpt}", "--image", "", "--out", "{out}"],
     "the path is empty"),
    ("image-and-index", ["activations", "{ckpt}", "--image", "{img}/digit.png", "--index", "1",
                         "--out", "{out}"], "exactly one"),
    ("image-neither", ["activations", "{ckpt}", "--out", "{out}"], "exactly one"),
    ("image-index-range", ["activations", "{ckpt}", "--index", "99999", "--out", "{out}"],
     "out of range"),
    ("image-index-negative", ["activations", "{ckpt}", "--index", "-1", "--out", "{out}"],
     "invalid value for '--index'"),
    ("image-explain-index-range", ["explain", "{ckpt}", "--index", "99999", "--out", "{out}"],
     "out of range"),
]

UNIT_SPECS = {
    "conv2d_2:0@²,1": "ascii digits",
    "class:²": "unknown class",
    "conv2d_1:٣": "ascii digits",
    "conv2d_1:٠-٣": "ascii digits",
    "conv2d_1:０": "ascii digits",
    "conv2d_2:0@７,7": "ascii digits",
    "conv2d_1:0-30000000": "has 32 channels",
    "conv2d_1:0-9999999999": "has 32 channels",
    "conv2d_1:99999999999999999999": "has 32 channels",
    "conv2d_1:" + "9" * 5000: "has 32 channels",
    "class:0-99999999999": "10 classes",
    "class:10": "10 classes",
    "class:3-1": "runs backwards",
    "class:ten": "unknown class",
    "class:0@1,1": "no position",
    "conv2d_2:0@99999999999,1": "outside the 24x24 map",
    "conv2d_2:0@24,0": "outside the 24x24 map",
    "conv2d_2:0@1": "@row,col",
    "conv2d_2:0@a,b": "@row,col",
    "conv2d_2:0@-1,2": "@row,col",
    "conv2d_1:-1": "cannot read channel",
    "conv2d_1:5-2": "runs backwards",
    "conv2d_1:32": "has 32 channels",
    "conv2d_1:abc": "cannot read channel",
    "conv2d_1:1.5": "cannot read channel",
    "conv2d_1:0-0-1": "cannot read channel",
    "conv2d_1:": "cannot read unit",
    ":3": "cannot read unit",
    "conv2d_1": "cannot read unit",
    "conv2d_9:0": "unknown layer",
    "flatten_1:0": "is a flatten layer",
    "max_pooling2d_1:0": "is a pool layer",
    "dense_1:128": "has 128 channels",
    "dense_1:0@1,1": "not spatial",
    ",": "no units given",
    "+".join(["conv2d_1:0-31"] * 5000): "cannot read channel",
    ",".join(["conv2d_1:0-31"] * 4000): "more than 100,000 units",
    "conv2d_1:" + "+".join(["0-31"] * 4000): "more than 100,000 units",
}

UNIT_CASES = [
    (f"units-{i:02d}-render", ["render", "{ckpt}", "--units", spec, "--steps", "1", "--out",
                               "{out}"], phrase)
    for i, (spec, phrase) in enumerate(UNIT_SPECS.items())
] + [
    (f"units-{i:02d}-examples", ["examples", "{ckpt}", "--units", spec, "--out", "{out}"], phrase)
    for i, (spec, phrase) in enumerate(UNIT_SPECS.items())
    if i % 3 == 0
] + [
    ("units-empty", ["render", "{ckpt}", "--units", "", "--out", "{out}"], "no units given"),
    ("units-only-class", ["prototypes", "{ckpt}", "--only", "11", "--steps", "1", "--out",
                          "{out}"], "classes"),
]

TRAIN = ["train", "--model", "simple2", "--data", "mnist", "--epochs", "1", "--limit", "100"]
NUMBER_CASES = [
    (f"number-{name}", argv, phrase)
    for name, argv, phrase in [
        ("lr-zero", [*TRAIN, "--lr", "0", "--out", "{out}"], "--lr"),
        ("lr-negative", [*TRAIN, "--lr", "-1", "--out", "{out}"], "--lr"),
        ("lr-nan", [*TRAIN, "--lr", "nan", "--out", "{out}"], "--lr"),
        ("lr-inf", [*TRAIN, "--lr", "inf", "--out", "{out}"], "not a finite number"),
        ("lr-overflow", [*TRAIN, "--lr", "1e309", "--out", "{out}"], "not a finite number"),
        ("lr-text", [*TRAIN, "--lr", "fast", "--out", "{out}"], "not a valid float"),
        ("epochs-zero", [*TRAIN, "--epochs", "0", "--out", "{out}"], "--epochs"),
        ("epochs-huge", [*TRAIN, "--epochs", "100001", "--out", "{out}"], "--epochs"),
        ("epochs-float", [*TRAIN, "--epochs", "1.5", "--out", "{out}"], "not a valid integer"),
        ("batch-zero", [*TRAIN, "--batch-size", "0", "--out", "{out}"], "--batch-size"),
        ("batch-huge", [*TRAIN, "--batch-size", "1000000000", "--out", "{out}"], "--batch-size"),
        ("seed-negative", [*TRAIN, "--seed", "-1", "--out", "{out}"], "--seed"),
        ("seed-huge", [*TRAIN, "--seed", str(2**32), "--out", "{out}"], "--seed"),
        ("seed-text", [*TRAIN, "--seed", "abc", "--out", "{out}"], "--seed"),
        ("size-small", [*TRAIN, "--size", "2", "--out", "{out}"], "--size"),
        ("size-huge", [*TRAIN, "--size", "100000", "--out", "{out}"], "--size"),
        ("limit-zero", [*TRAIN, "--limit", "0", "--out", "{out}"], "--limit"),
        ("compare-epochs", ["compare", "--epochs", "0"], "--epochs"),
        ("compare-seed", ["compare", "--seed", "-3"], "--seed"),
        ("render-steps-zero", ["render", "{ckpt}", "--units", "conv2d_1:0", "--steps", "0",
                               "--out", "{out}"], "--steps"),
        ("render-steps-huge", ["render", "{ckpt}", "--units", "conv2d_1:0", "--steps",
                               "10000000", "--out", "{out}"], "--steps"),
        ("render-diversity", ["render", "{ckpt}", "--units", "conv2d_1:0", "--diversity", "1000",
                              "--out", "{out}"], "--diversity"),
        ("render-batch", ["render", "{ckpt}", "--units", "conv2d_1:0", "--batch-size", "0",
                          "--out", "{out}"], "--batch-size"),
        ("render-seed", ["render", "{ckpt}", "--units", "conv2d_1:0", "--seed",
                         "99999999999999999999", "--out", "{out}"], "--seed"),
        ("render-preset", ["render", "{ckpt}", "--units", "conv2d_1:0", "--preset", "sharp",
                           "--out", "{out}"], "--preset"),
        ("prototypes-diversity", ["prototypes", "{ckpt}", "--diversity", "65", "--out", "{out}"],
         "--diversity"),
        ("examples-k-zero", ["examples", "{ckpt}", "--k", "0", "--out", "{out}"], "--k"),
        ("examples-k-huge", ["examples", "{ckpt}", "--k", "1000000", "--out", "{out}"], "--k"),
        ("examples-batch", ["examples", "{ckpt}", "--batch-size", "0", "--out", "{out}"],
         "--batch-size"),
        ("examples-split", ["examples", "{ckpt}", "--split", "test", "--out", "{out}"],
         "--split"),
        ("explain-masks-zero", ["explain", "{ckpt}", "--index", "0", "--masks", "0", "--out",
                                "{out}"], "--masks"),
        ("explain-masks-huge", ["explain", "{ckpt}", "--index", "0", "--masks", "100000000",
                                "--out", "{out}"], "--masks"),
        ("explain-steps", ["explain", "{ckpt}", "--index", "0", "--steps", "1000000", "--out",
                           "{out}"], "--steps"),
        ("explain-seed", ["explain", "{ckpt}", "--index", "0", "--seed", "-5", "--out", "{out}"],
         "--seed"),
        ("explain-baseline", ["explain", "{ckpt}", "--index", "0", "--baseline", "grey", "--out",
                              "{out}"], "--baseline"),
        ("explain-method", ["explain", "{ckpt}", "--index", "0", "--methods", "gradcamm",
                            "--out", "{out}"], "unknown"),
        ("explain-target-range", ["explain", "{ckpt}", "--image", "{img}/digit.png", "--target",
                                  "99", "--methods", "gradient", "--out", "{out}"], "class"),
        ("explain-target-negative", ["explain", "{ckpt}", "--image", "{img}/digit.png",
                                     "--target", "-1", "--methods", "gradient", "--out",
                                     "{out}"], "class"),
        ("explain-target-name", ["explain", "{ckpt}", "--image", "{img}/digit.png", "--target",
                                 "banana", "--methods", "gradient", "--out", "{out}"], "class"),
        ("explain-layer", ["explain", "{ckpt}", "--image", "{img}/digit.png", "--layer",
                           "conv2d_9", "--methods", "gradcam", "--out", "{out}"], "layer"),
        ("sanity-threshold-nan", ["sanity", "{ckpt}", "--threshold", "nan"], "--threshold"),
        ("sanity-threshold-inf", ["sanity", "{ckpt}", "--threshold", "inf"], "--threshold"),
        ("sanity-threshold-big", ["sanity", "{ckpt}", "--threshold", "2"], "--threshold"),
        ("sanity-n-zero", ["sanity", "{ckpt}", "--n", "0"], "--n"),
        ("sanity-n-huge", ["sanity", "{ckpt}", "--n", "10000000"], "--n"),
        ("sanity-index", ["sanity", "{ckpt}", "--index", "-1"], "--index"),
        ("sanity-index-range", ["sanity", "{ckpt}", "--index", "1", "--index", "99999",
                                "--methods", "gradient"], "out of range"),
        ("kernels-channels", ["kernels", "{ckpt}", "--max-in-channels", "0", "--out", "{out}"],
         "--max-in-channels"),
        ("kernels-layer", ["kernels", "{ckpt}", "--layer", "dense_1", "--out", "{out}"],
         "not convolutional"),
        ("atlas-threads-negative", ["atlas", "{ckpt}", "--threads", "-1", "--out", "{out}"],
         "--threads"),
        ("atlas-threads-huge", ["atlas", "{ckpt}", "--threads", "100000", "--out", "{out}"],
         "--threads"),
        ("atlas-stage", ["atlas", "{ckpt}", "--stages", "overveiw", "--out", "{out}"],
         "unknown atlas stage"),
        ("epoch-negative", ["layers", "{ckpt}", "--epoch", "-1"], "--epoch"),
    ]
]

OUT_COMMANDS = {  # a command per kind of output, all of them otherwise valid
    "kernels": ["kernels", "{ckpt}", "--out"],
    "activations": ["activations", "{ckpt}", "--image", "{img}/digit.png", "--out"],
    "render": ["render", "{ckpt}", "--units", "conv2d_1:0", "--steps", "1", "--out"],
    "prototypes": ["prototypes", "{ckpt}", "--steps", "1", "--out"],
    "examples": ["examples", "{ckpt}", "--units", "conv2d_1:0", "--out"],
    "explain": ["explain", "{ckpt}", "--image", "{img}/digit.png", "--methods", "gradient",
                "--out"],
    "train": [*TRAIN, "--out"],
    "atlas": ["atlas", "{ckpt}", "--quick", "--out"],
    "convert": ["convert", "{files}/nothing.keras", "--out"],
}
OUTPUT_CASES = [
    (f"out-{where}-{command}", [*argv, target], phrase)
    for command, argv in OUT_COMMANDS.items()
    for where, target, phrase in [
        ("empty", "", "the path is empty"),
        ("is-file", "{user}/notes.txt", "is a file"),
        ("under-file", "{user}/notes.txt/sub", "notes.txt is a file, not a folder"),
        ("proc", "/proc/convlens-out", "cannot write /proc/convlens-out"),
    ]
] + [
    ("out-spaces", ["activations", "{ckpt}", "--index", "0", "--out", "   "], "empty"),
    ("out-sys", ["render", "{ckpt}", "--units", "conv2d_1:0", "--out", "/sys/convlens"],
     "permission denied"),
    ("out-dangling-link", ["render", "{ckpt}", "--units", "conv2d_1:0", "--out",
                           "{root}/dangling"], "broken symbolic link"),
    ("out-link-loop", ["activations", "{ckpt}", "--index", "0", "--out", "{root}/loop"],
     "broken symbolic link"),
    ("out-kernels-link-to-folder", ["kernels", "{ckpt}", "--layer", "conv2d_1", "--out",
                                    "{root}/dirlink.png"], "is a folder"),
    ("out-kernels-dev-null", ["kernels", "{ckpt}", "--out", "/dev/null"], "is a file"),
    ("out-sanity-device", ["sanity", "{ckpt}", "--out", "/dev/null"], "not a regular file"),
    ("out-sanity-folder", ["sanity", "{ckpt}", "--out", "{user}"], "is a folder"),
    ("out-name-too-long", ["explain", "{ckpt}", "--index", "0", "--out", "{root}/" + "x" * 300],
     "too long"),
    ("out-train-foreign", [*TRAIN, "--out", "{user}"], "not a checkpoint"),
    ("out-train-foreign-overwrite", [*TRAIN, "--out", "{user}", "--overwrite"],
     "not a checkpoint"),
    ("out-train-checkpoint", [*TRAIN, "--out", "{ckcopy}"], "pass --overwrite"),
    ("out-train-checkpoint-bad-lr", [*TRAIN, "--out", "{ckcopy}", "--overwrite", "--lr", "0"],
     "--lr"),
    ("out-atlas-foreign", ["atlas", "{ckpt}", "--out", "{user}"], "holds no atlas"),
    ("out-atlas-foreign-resume", ["atlas", "{ckpt}", "--out", "{user}", "--resume"],
     "holds no atlas"),
    ("out-atlas-in-checkpoint", ["atlas", "{ckpt}", "--out", "{ckpt}"], "holds no atlas"),
    ("out-atlas-bad-data", ["atlas", "{ckpt}", "--data", "mnsit", "--out", "{out}"],
     "unknown dataset"),
]

DATA_CASES = [
    (f"data-{name}-{command}", [*argv, "--data", spec], phrase)
    for name, spec, phrase in [
        ("empty", "", "empty"),
        ("spaces", "   ", "empty"),
        ("unknown", "nope", "unknown dataset"),
        ("typo", "mnsit", "did you mean 'mnist'"),
        ("path-no-prefix", "{data}/eleven", "prefix its path"),
        ("idx-no-path", "idx:", "needs a path"),
        ("idx-missing", "idx:{root}/nothing", "is not a folder"),
        ("idx-no-files", "idx:{user}", "lacks"),
        ("idx-cut", "idx:{data}/idx", "truncated"),
        ("npz-missing", "npz:{root}/nothing.npz", "does not exist"),
        ("npz-objects", "npz:{data}/objects.npz", "holds python objects"),
        ("npz-single", "npz:{data}/array.npy", "single array"),
        ("npz-keys", "npz:{data}/keys.npz", "lacks"),
        ("npz-not-zip", "npz:{data}/not.npz", "not a readable .npz"),
        ("folder-missing", "folder:{root}/nothing", "is not a folder"),
        ("folder-empty", "folder:{data}/empty", "no sub-folders"),
        ("folder-no-images", "folder:{data}/no_images", "no png/jpg"),
        ("folder-eleven", "folder:{data}/eleven", "11 classes but the model has 10"),
        ("folder-linked", "folder:{data}/linked", "outside the dataset"),
        ("folder-linked-file", "folder:{data}/linked_file", "outside the dataset"),
        ("folder-rgb", "folder:{data}/rgb", "the model takes 1x28x28"),
        ("folder-broken", "folder:{data}/broken_image", "not a readable image"),
        ("folder-huge", "folder:{data}/huge_image", "megapixels"),
        ("folder-file", "folder:{user}/notes.txt", "is not a folder"),
    ]
    for command, argv in (("activations", ["activations", "{ckpt}", "--index", "0", "--out",
                                           "{out}"]),
                          ("examples", ["examples", "{ckpt}", "--units", "conv2d_1:0", "--out",
                                        "{out}"]))
] + [
    ("data-eleven-explain", ["explain", "{ckpt}", "--index", "0", "--data",
                             "folder:{data}/eleven", "--out", "{out}"], "11 classes"),
    ("data-eleven-sanity", ["sanity", "{ckpt}", "--data", "folder:{data}/eleven"], "11 classes"),
    ("data-eleven-atlas", ["atlas", "{ckpt}", "--data", "folder:{data}/eleven", "--out",
                           "{out}"], "11 classes"),
    ("data-rgb-render", ["render", "{ckpt}", "--units", "conv2d_1:0", "--data",
                         "folder:{data}/rgb", "--out", "{out}"], "model takes"),
    ("data-train-mixed", ["train", "--data", "folder:{data}/mixed", "--epochs", "1", "--out",
                          "{out}"], "differ in size"),
    ("data-train-singletons", ["train", "--data", "folder:{data}/singletons", "--epochs", "1",
                               "--out", "{out}"], "nothing can be held out"),
    ("data-train-empty", ["train", "--data", "", "--out", "{out}"], "empty"),
    ("data-train-linked", ["train", "--data", "folder:{data}/linked", "--out", "{out}"],
     "outside the dataset"),
]

CLI_CASES = [
    ("cli-unknown-option", ["layers", "{ckpt}", "--colour"], "no such option"),
    ("cli-unknown-root-option", ["--verbose", "layers", "{ckpt}"], "no such option"),
    ("cli-unknown-command", ["trian"], "did you mean 'train'"),
    ("cli-missing-argument", ["layers"], "missing argument 'ckpt'"),
    ("cli-extra-argument", ["layers", "{ckpt}", "extra"], "unexpected extra argument"),
    ("cli-missing-out", ["kernels", "{ckpt}"], "missing option '--out'"),
    ("cli-missing-units", ["render", "{ckpt}", "--out", "{out}"], "missing option '--units'"),
    ("cli-missing-value", ["kernels", "{ckpt}", "--out", "{out}", "--layer"], "requires an"),
    ("cli-flag-with-value", [*TRAIN, "--snapshots=yes", "--out", "{out}"], "does not take"),
    ("cli-epoch-text", ["layers", "{ckpt}", "--epoch", "last"], "not a valid integer"),
    ("cli-empty-ckpt", ["layers", ""], "the path is empty"),
    ("cli-debug-as-layer", ["kernels", "{ckpt}", "--layer", "--debug", "--out", "{out}"],
     "unknown layer '--debug'"),
    ("cli-debug-as-model", ["train", "--model", "--debug", "--out", "{out}"],
     "unknown model '--debug'"),
    ("cli-debug-as-arch", ["layers", "{ckpt}", "--arch", "--debug"], "do not apply"),
    ("cli-debug-as-units", ["render", "{ckpt}", "--units", "--debug", "--out", "{out}"],
     "cannot read unit"),
    ("cli-version-on-command", ["layers", "{ckpt}", "--version"], "no such option"),
    ("cli-bad-choice", ["examples", "{ckpt}", "--grid", "tiles", "--out", "{out}"], "--grid"),
    ("cli-bad-param", ["render", "{ckpt}", "--units", "conv2d_1:0", "--param", "jpeg", "--out",
                       "{out}"], "--param"),
    ("cli-methods-empty", ["explain", "{ckpt}", "--index", "0", "--methods", ",", "--out",
                           "{out}"], "method"),
    ("cli-train-model", [*TRAIN[:1], "--model", "resnet", "--out", "{out}"], "unknown model"),
]

# fmt: on

CASES = (
    CHECKPOINT_CASES
    + MODEL_FILE_CASES
    + SECURITY_CASES
    + IMAGE_CASES
    + UNIT_CASES
    + NUMBER_CASES
    + OUTPUT_CASES
    + DATA_CASES
    + CLI_CASES
)


def test_the_suite_is_large_and_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 250, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_refused_in_one_line(case, world, tmp_path: Path, capsys) -> None:
    name, argv, phrase = case
    places = {k: str(v) for k, v in world.items()} | {"out": str(tmp_path / "out")}
    args = [a.format(**places) for a in argv]
    watched = [world["root"]]
    before = take_snapshot(*watched)
    code, _, err = run_cli(args, capsys)
    lines = shown_lines(err)
    assert code == 2, (name, err)
    assert len(lines) == 1, (name, err)
    assert lines[0].startswith("convlens: error: "), (name, err)
    assert "Traceback" not in err
    assert phrase.lower() in lines[0].lower(), (name, lines[0])
    assert not (tmp_path / "out").exists(), f"{name}: something was written to the output"
    assert take_snapshot(*watched) == before, f"{name}: a pre-existing file changed"
    assert not (world["files"] / "PWNED").exists(), f"{name}: code from a file ran"


@pytest.mark.parametrize(
    "name",
    sorted(
        set(__import__("bad_world").CONFIGS)
        | set(__import__("bad_world").RAW_CONFIGS)
        | {"weights_nan", "weights_truncated", "weights_other_model", "empty_folder"}
    ),
)
def test_python_api_refuses_with_one_line(name: str, world) -> None:
    """``cl.load`` raises the same CheckpointError, its text one line."""
    with pytest.raises(CheckpointError) as info:
        cl.load(world["bad"] / name)
    assert "\n" not in str(info.value) and str(info.value)
