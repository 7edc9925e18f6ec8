"""The atlas folder: a sound manifest, every listed file present, atomic and resumable builds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import convlens as cl
from convlens.atlas import AtlasOptions, build_atlas, load_manifest, referenced_files, validate
from convlens.atlas import build as build_module
from convlens.atlas.state import STATE
from convlens.errors import ConvlensError

LAYERS = ("conv2d_1", "conv2d_4", "dense_2")


def small_options(**overrides) -> AtlasOptions:
    """A quick atlas cut further down, so each build takes seconds."""
    base = {
        "max_units": 3,
        "max_dense_units": 2,
        "samples_per_class": 1,
        "heatmap_methods": ("gradient_x_input",),
        "faithfulness_steps": 8,
        "sanity": True,
        "evolution_units": 2,
        "evolution_layers": 1,
        "layers": LAYERS,
    }
    return AtlasOptions.preset(quick=True, **{**base, **overrides})


def tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def lens(kaggle4_ckpt: Path):
    return cl.load(kaggle4_ckpt)


@pytest.fixture(scope="module")
def atlas(lens, mnist_small, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("atlas") / "atlas"
    index = build_atlas(lens, out, data=mnist_small, options=small_options(), progress=False)
    assert index == out / "index.html"
    return out


def test_manifest_is_valid_and_lists_only_existing_files(atlas: Path) -> None:
    manifest = load_manifest(atlas)
    assert manifest["schema"] == "convlens-atlas" and manifest["version"] == 1
    assert validate(manifest, atlas) == []
    files = referenced_files(manifest)
    assert {"index.html", "classes.html", "layer-conv2d_1.html"} <= files
    assert all((atlas / f).is_file() for f in files)
    assert manifest["complete"] is True
    assert set(manifest["stages"].values()) <= {"done", "not applicable"}
    assert manifest["stages"]["overview"] == "done"
    assert not tmp_files(atlas)
    # Every picture is listed: no PNG in the folder that the manifest does not know.
    pngs = {p.relative_to(atlas).as_posix() for p in atlas.rglob("*.png")}
    assert pngs <= files


def test_manifest_content_follows_the_model(atlas: Path, lens) -> None:
    manifest = load_manifest(atlas)
    names = [row["name"] for row in manifest["layers"]]
    assert names == lens.layer_names
    pages = {row["name"]: row for row in manifest["layers"] if row["page"]}
    assert list(pages) == list(LAYERS)
    conv = pages["conv2d_1"]
    assert [u["index"] for u in conv["units"]] == [0, 1, 2]
    unit = conv["units"][0]
    assert unit["kernel"]["sprite"] == "conv2d_1/kernels"
    assert isinstance(unit["stats"]["dead"], bool) and 0.0 <= unit["stats"]["active"] <= 1.0
    ex = unit["examples"]
    assert len(ex["images"]) == len(ex["crops"]) == len(ex["values"]) == 9
    assert ex["values"] == sorted(ex["values"], reverse=True)
    assert (atlas / unit["page"]).is_file()
    dense = pages["dense_2"]
    assert len(dense["units"]) == 2 and dense["units"][0]["examples"]["crops"] == []
    assert 0.5 < manifest["model"]["accuracy"]["value"] <= 1.0
    classes = manifest["classes"]
    assert [c["index"] for c in classes] == list(range(10))
    sample = classes[3]["samples"][0]
    assert sample["label"] == 3 and len(sample["probabilities"]) == 10
    assert sample["heatmaps"][0]["method"] == "gradient_x_input"
    assert 0.0 <= sample["heatmaps"][0]["deletion_auc"] <= 1.0
    assert set(sample["activations"]) == {"conv2d_1", "conv2d_4"}
    sanity = manifest["model"]["heatmap_sanity"]["gradient_x_input"]
    assert isinstance(sanity["passed"], bool) and sanity["images"] == 10
    prototype = classes[3]["prototype"]
    assert prototype["raw"]["sprite"] == "classes/prototypes"
    assert 0.0 <= prototype["probability"] <= 1.0 and 0 <= prototype["predicted"] < 10
    evolution = manifest["evolution"]
    assert evolution["epochs"] == [1, 2, 3]
    kernel_rows = [r for r in evolution["rows"] if r["kind"] == "kernel"]
    assert len(kernel_rows) == 2 and all(len(r["tiles"]) == 3 for r in kernel_rows)


def test_pages_are_self_contained(atlas: Path) -> None:
    manifest = load_manifest(atlas)
    for rel in manifest["pages"]:
        if not rel.endswith(".html"):
            continue
        text = (atlas / rel).read_text(encoding="utf-8")
        assert not re.search(r'(src|href)="(https?:|file:)?//', text), rel
        assert "http://" not in text and "https://" not in text, rel
    layer = (atlas / "layer-conv2d_1.html").read_text(encoding="utf-8")
    assert 'data-sort="mean"' in layer and 'data-src="img/conv2d_1/examples.png"' in layer
    unit = (atlas / "units/conv2d_1-0.html").read_text(encoding="utf-8")
    assert 'href="../assets/atlas.css"' in unit and 'data-src="../img/conv2d_1/kernels.png"' in unit


def test_render_evidence_reaches_the_pages_and_a_flat_picture_shows_the_neuron_first(
    atlas: Path, tmp_path: Path
) -> None:
    from convlens.atlas.html import write_pages

    manifest = load_manifest(atlas)
    layer = next(row for row in manifest["layers"] if row["name"] == "conv2d_1")
    rendered = [u for u in layer["units"] if u.get("channel") and u.get("neuron")]
    for u in rendered:
        channel = u["channel"]
        assert {"r", "r_mean", "match", "match_top1", "at_limits", "flat"} <= set(channel)
    for u in rendered:
        u["channel"]["flat"] = 0.1
    flat, plain = rendered[0], rendered[1]
    flat["channel"]["flat"] = 0.95  # more than 80% of its pixels at one value
    write_pages(tmp_path, manifest)
    page = (tmp_path / "layer-conv2d_1.html").read_text(encoding="utf-8")
    assert 'data-sort="rmean"' in page and 'data-sort="match"' in page
    assert page.count("flat picture</div>") == 1
    for unit, neuron_first in ((flat, True), (plain, False)):
        text = (tmp_path / unit["page"]).read_text(encoding="utf-8")
        neuron, channel = text.index("neuron image (receptive field)"), text.index("channel image")
        assert (neuron < channel) == neuron_first, unit["unit"]
        assert "r_mean (verification)" in text and "match (own examples" in text


def test_interrupted_build_resumes_without_redoing_finished_tasks(
    lens, mnist_small, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "atlas"
    options = small_options(
        layers=("conv2d_1", "conv2d_4"), heatmap_methods=(), prototypes=False, sanity=False
    )
    ran: list[str] = []
    real_run_task = build_module._run_task

    def interrupt_at_examples(ctx, state, task):
        if task.key == "examples/conv2d_4":
            raise KeyboardInterrupt  # Ctrl-C in the middle of a stage
        ran.append(task.key)
        real_run_task(ctx, state, task)

    monkeypatch.setattr(build_module, "_run_task", interrupt_at_examples)
    stages = ["overview", "kernels", "examples", "classes"]
    with pytest.raises(KeyboardInterrupt):
        build_atlas(lens, out, data=mnist_small, options=options, stages=stages, progress=False)
    assert ran[-1] == "examples/conv2d_1" and "overview/model" in ran

    # The interrupted folder is consistent: its manifest lists only finished, written files.
    manifest = load_manifest(out)
    assert validate(manifest, out) == []
    assert manifest["complete"] is False
    assert manifest["stages"]["kernels"] == "done"
    assert manifest["stages"]["examples"] == "partial"
    assert manifest["stages"]["classes"] == "pending"
    assert not tmp_files(out)
    finished = set(json.loads((out / STATE).read_text())["tasks"])
    assert finished == set(ran)
    kernel_sheet = out / "img/conv2d_1/kernels.png"
    before = kernel_sheet.stat().st_mtime_ns

    resumed: list[str] = []

    def count(ctx, state, task):
        resumed.append(task.key)
        real_run_task(ctx, state, task)

    monkeypatch.setattr(build_module, "_run_task", count)
    build_atlas(
        lens, out, data=mnist_small, options=options, stages=stages, resume=True, progress=False
    )
    assert resumed[0] == "examples/conv2d_4"
    assert not set(resumed) & finished, "resume recomputed finished tasks"
    assert kernel_sheet.stat().st_mtime_ns == before
    manifest = load_manifest(out)
    assert manifest["complete"] is True and validate(manifest, out) == []
    assert not tmp_files(out)

    # Resuming a finished atlas computes nothing.
    resumed.clear()
    build_atlas(
        lens, out, data=mnist_small, options=options, stages=stages, resume=True, progress=False
    )
    assert resumed == []


def test_resume_refuses_other_options_and_fresh_build_refuses_foreign_folder(
    lens, mnist_small, tmp_path: Path
) -> None:
    out = tmp_path / "atlas"
    options = small_options(
        layers=("conv2d_1",), heatmap_methods=(), evolution_layers=0, prototypes=False
    )
    build_atlas(lens, out, data=mnist_small, options=options, stages=["overview"], progress=False)
    with pytest.raises(ConvlensError, match="other weights, data or options"):
        build_atlas(lens, out, data=mnist_small, options=small_options(max_units=2),
                    stages=["overview"], resume=True, progress=False)  # fmt: skip
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"not an atlas")
    with pytest.raises(ConvlensError, match="holds no atlas"):
        build_atlas(lens, foreign, data=mnist_small, options=options, progress=False)
    assert (foreign / "holiday.jpg").read_bytes() == b"not an atlas"
    with pytest.raises(ConvlensError, match="unknown atlas stage"):
        build_atlas(lens, out, data=mnist_small, options=options, stages=["overveiw"])


def test_cli_builds_and_prints_where_to_open(
    kaggle4_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from convlens.cli import main

    out = tmp_path / "atlas"
    main(["atlas", str(kaggle4_ckpt), "--out", str(out), "--quick", "--quiet",
          "--stages", "overview,kernels"])  # fmt: skip
    text = capsys.readouterr().out
    assert f"open {(out / 'index.html').resolve().as_uri()}" in text
    assert "stages overview, kernels" in text
    manifest = load_manifest(out)
    assert manifest["stages"]["render"] == "skipped" and validate(manifest, out) == []


def test_atlas_of_an_rgb_model_of_another_size(tmp_path: Path) -> None:
    import torch

    from convlens.data import Dataset
    from convlens.lens import InputSpec, Lens
    from convlens.models import build_model

    torch.manual_seed(0)
    model = build_model("oip3", in_channels=3, image_size=32, num_classes=4)
    names = ("red", "green", "blue", "gray")
    lens = Lens.from_module(model, InputSpec(3, 32, 32, class_names=names))
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(24, 3, 32, 32, generator=generator)
    labels = torch.arange(24) % 4
    data = Dataset("random-rgb", images, labels, images, labels, names, 0)
    options = small_options(layers=("conv2d_1", "conv2d_3"))
    out = tmp_path / "atlas"
    build_atlas(lens, out, data=data, options=options, progress=False)
    manifest = load_manifest(out)
    assert validate(manifest, out) == []
    assert manifest["complete"] is True
    assert all((out / f).is_file() for f in referenced_files(manifest))
    assert not tmp_files(out)
