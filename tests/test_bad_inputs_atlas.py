"""An atlas build never destroys or mixes a user's files, survives being killed, and is alone.

- Killed with SIGKILL at several moments (as a task starts, inside a file write, between pages,
  before the manifest) and resumed, the folder equals a clean build, with no temp files left.
- A second build into a folder being built refuses at once, naming the holder.
- A rebuild removes only what the atlas wrote; other files make it refuse unless ``force``; a
  quick atlas does not silently replace a full one; ``--resume`` on a corrupt state refuses.
- Every link of every page points at a file that exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from atlas_driver import OPTIONS
from bad_world import tiny
from cli_helpers import run_cli

import convlens as cl
from convlens.atlas import build_atlas, load_manifest, validate
from convlens.atlas.state import FILES, HOLDER, LOCK, STATE
from convlens.errors import ConvlensError, OutputError

DRIVER = Path(__file__).with_name("atlas_driver.py")
BOOKKEEPING = {STATE, FILES, LOCK, HOLDER}
KILL_POINTS = ["task:4", "write:7", "write:45", "page:3", "manifest"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory, mnist_small) -> Path:
    from convlens.train import train

    out = tmp_path_factory.mktemp("atlas_ckpt") / "simple2"
    train("simple2", tiny(mnist_small), out=out, epochs=2, snapshots=True, progress=False)
    return out


@pytest.fixture(scope="module")
def lens(ckpt: Path):
    return cl.load(ckpt)


@pytest.fixture(scope="module")
def clean(lens, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("atlas_clean") / "atlas"
    build_atlas(lens, out, options=OPTIONS, progress=False)
    return out


def contents(folder: Path) -> dict[str, str]:
    """Digest of every file of an atlas, bookkeeping aside; the manifest without its date."""
    seen = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_dir() or rel in BOOKKEEPING:
            continue
        data = path.read_bytes()
        if rel == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("created")
            data = json.dumps(manifest, sort_keys=True).encode()
        seen[rel] = hashlib.sha256(data).hexdigest()
    return seen


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".tmp")]


LINK = re.compile(r'(?:href|src|data-src)="([^"#]+)')


def broken_links(folder: Path) -> list[str]:
    """(page, target) of every relative link that points at no file."""
    broken = []
    for page in folder.rglob("*.html"):
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(folder)} -> {target}")
    return broken


def test_a_clean_build_links_only_to_what_exists(clean: Path) -> None:
    manifest = load_manifest(clean)
    assert manifest["complete"] and validate(manifest, clean) == []
    assert broken_links(clean) == []
    assert not temp_files(clean)
    written = set((clean / FILES).read_text().split())
    files = {p.relative_to(clean).as_posix() for p in clean.rglob("*") if p.is_file()}
    assert files - BOOKKEEPING - {"manifest.json"} == written, "the list names every file, only"


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", KILL_POINTS)
def test_killed_build_resumes_to_a_clean_build(kill_at, ckpt, lens, clean, tmp_path) -> None:
    out = tmp_path / "atlas"
    run = subprocess.run([sys.executable, str(DRIVER), str(ckpt), str(out), kill_at],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert out.is_dir()
    assert not [link for link in broken_links(out) if link.startswith("index.html")], (
        "even killed, the entry page links only to pages that exist"
    )
    build_atlas(lens, out, options=OPTIONS, resume=True, progress=False)
    assert not temp_files(out), "resume removes what a killed write left"
    assert contents(out) == contents(clean)
    assert broken_links(out) == []
    assert validate(load_manifest(out), out) == []


@pytest.mark.slow
def test_a_second_build_refuses_and_names_the_holder(ckpt, tmp_path, capsys) -> None:
    out, go = tmp_path / "atlas", tmp_path / "go"
    command = [sys.executable, str(DRIVER), str(ckpt), str(out), "hold", str(go)]
    holder = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "holding"
        before = contents(out)
        code, _, err = run_cli(["atlas", str(ckpt), "--out", str(out), "--quick"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "another convlens build is writing" in err and f"process {holder.pid}" in err
        code, _, err = run_cli(["atlas", str(ckpt), "--out", str(out), "--resume"], capsys)
        assert code == 2 and "another convlens build" in err
        assert contents(out) == before, "the refused builds touched nothing"
    finally:
        go.touch()
        holder.wait(timeout=600)
    assert holder.returncode == 0, holder.stderr.read() if holder.stderr else ""
    assert load_manifest(out)["complete"] is True
    assert not (out / HOLDER).exists()


SMALL = {"stages": ["overview", "kernels"], "progress": False}


def test_rebuild_removes_only_its_own_files(lens, tmp_path) -> None:
    out = tmp_path / "atlas"
    build_atlas(lens, out, options=OPTIONS, **SMALL)
    kernels = out / "img" / "conv2d_1" / "kernels.png"
    assert kernels.is_file()
    build_atlas(lens, out, options=OPTIONS, stages=["overview"], progress=False)
    assert not kernels.exists() and not (out / "img" / "conv2d_1").exists()
    assert load_manifest(out)["stages"]["kernels"] == "skipped"
    # The user's own files beside an atlas: refused, then kept with force.
    (out / "notes.txt").write_text("mine")
    (out / "img" / "cat.png").write_bytes(b"my cat")
    (out / "img" / ".cat.png.abcd1234.tmp").write_bytes(b"my temp")  # not a temp of the atlas
    with pytest.raises(OutputError, match=r"holds files that are not part of its atlas"):
        build_atlas(lens, out, options=OPTIONS, **SMALL)
    build_atlas(lens, out, options=OPTIONS, force=True, **SMALL)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "img" / "cat.png").read_bytes() == b"my cat"
    assert (out / "img" / ".cat.png.abcd1234.tmp").exists()
    assert kernels.is_file() and load_manifest(out)["complete"] is True


def test_quick_atlas_does_not_replace_a_full_one(lens, tmp_path, capsys) -> None:
    out = tmp_path / "atlas"
    full = OPTIONS.with_overrides(quick=False)
    build_atlas(lens, out, options=full, **SMALL)
    before = contents(out)
    with pytest.raises(OutputError, match=r"holds a full atlas \(\d+ files\) built with other"):
        build_atlas(lens, out, options=OPTIONS, **SMALL)
    assert contents(out) == before
    build_atlas(lens, out, options=OPTIONS, force=True, **SMALL)
    assert load_manifest(out)["options"]["quick"] is True
    # The same through the command line: one line, exit 2.
    code, _, err = run_cli(["atlas", str(lens.path), "--out", str(out), "--stages", "overview",
                            "--quiet"], capsys)  # fmt: skip
    assert code == 2 and "holds a quick atlas" in err and "--force" in err
    assert len(err.strip().splitlines()) == 1


def test_resume_refuses_a_corrupt_state(lens, tmp_path) -> None:
    out = tmp_path / "atlas"
    build_atlas(lens, out, options=OPTIONS, **SMALL)
    (out / STATE).write_text('{"schema": "convlens-atlas-state", "tasks": {')
    before = contents(out)
    with pytest.raises(ConvlensError, match=r"is corrupt .*drop --resume"):
        build_atlas(lens, out, options=OPTIONS, resume=True, **SMALL)
    assert contents(out) == before, "the finished atlas is kept"
    build_atlas(lens, out, options=OPTIONS, **SMALL)  # a fresh build replaces it
    assert json.loads((out / STATE).read_text())["schema"] == "convlens-atlas-state"


def test_resume_removes_leftover_temp_files(lens, tmp_path) -> None:
    out = tmp_path / "atlas"
    build_atlas(lens, out, options=OPTIONS, **SMALL)
    leftovers = [out / ".index.html.k3j4h5g6.tmp", out / "img" / "conv2d_1" /
                 ".kernels.png.a1b2c3d4.tmp"]  # fmt: skip
    for path in leftovers:
        path.write_bytes(b"half a file")
    build_atlas(lens, out, options=OPTIONS, resume=True, **SMALL)
    assert not any(p.exists() for p in leftovers)


def test_atlas_files_keep_the_umask(lens, tmp_path) -> None:
    old = os.umask(0o027)
    try:
        build_atlas(lens, tmp_path / "atlas", options=OPTIONS, stages=["overview"],
                    progress=False)  # fmt: skip
    finally:
        os.umask(old)
    for name in ("index.html", "manifest.json", "img/overview/training_curves.png"):
        assert (tmp_path / "atlas" / name).stat().st_mode & 0o777 == 0o640, name
