"""examples/tour.ipynb runs top to bottom in a real Jupyter kernel and every view shows inline.

The notebook's parameter cell reads CONVLENS_TOUR_CKPT and CONVLENS_TOUR_STEPS: here the
session's tiny kaggle4 and 3 optimization steps per unit, so the whole run stays short.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the dev extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="needs the dev extra (nbclient)")
pytest.importorskip("ipykernel", reason="needs the dev extra (ipykernel)")

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


@pytest.fixture(scope="module")
def executed(kaggle4_ckpt, tmp_path_factory) -> nbformat.NotebookNode:
    mp = pytest.MonkeyPatch()
    mp.setenv("CONVLENS_TOUR_CKPT", str(kaggle4_ckpt))
    mp.setenv("CONVLENS_TOUR_STEPS", "3")
    nb = nbformat.read(TOUR, as_version=4)
    work = tmp_path_factory.mktemp("tour")
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(work)}}).execute()  # fmt: skip
    finally:
        mp.undo()
    nbformat.write(nb, work / "tour.ipynb")  # kept for a look: pytest's tmp folder
    return nb


def _code(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def _source(cell) -> str:
    return "".join(cell.source)


def test_the_stored_notebook_has_no_outputs() -> None:
    """Outputs belong to a run, not to the repository (and would be megabytes of PNG)."""
    nb = json.loads(TOUR.read_text())
    assert all(not c.get("outputs") and not c.get("execution_count") for c in nb["cells"]
               if c["cell_type"] == "code")  # fmt: skip


@pytest.mark.slow
def test_every_view_shows_inline(executed) -> None:
    cells = _code(executed)
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    importing = next(c for c in cells if _source(c) == "import convlens as cl")
    assert importing.outputs == []  # no "IProgress not found", nothing at all
    shown = {}
    for cell in cells:
        for out in cell.outputs:
            if out.output_type in ("execute_result", "display_data"):
                shown.setdefault(_source(cell), []).append(out.data)
    views = [
        ("lens = cl.load", "text/html"),  # the layer table
        ("lens.layers", "text/plain"),
        ("images.draw_kernels", "image/png"),  # a pyplot-free figure, no %matplotlib
        ("acts = cl.activations", "image/png"),
        ("acts.show(", "image/png"),
        ("viz = cl.render", "image/png"),
        ("cl.prototypes", "image/png"),
        ("top = cl.examples", "image/png"),
        ("top.show(", "image/png"),
        ("hm = cl.attribute", "image/png"),
        ("hm.plot(ax", "image/png"),
        ("cl.explain(", "image/png"),
        ("cl.sanity_check", "text/html"),
        ("cl.dataset_maxima", "text/html"),
    ]
    for needle, mime in views:
        datas = next((d for src, d in shown.items() if needle in src), None)
        assert datas, f"the cell with {needle!r} showed nothing"
        assert any(mime in d for d in datas), f"{needle!r}: no {mime} in {list(datas[0])}"
        for d in datas:
            assert len(d.get("text/plain", "")) < 1500, d["text/plain"][:300]
            assert "tensor(" not in d.get("text/plain", "")
    assert "14x14" in shown["lens = cl.load(CKPT)\nlens"][0]["text/html"]


@pytest.mark.slow
def test_render_shows_a_progress_bar_in_the_notebook(executed) -> None:
    """tqdm's widget where ipywidgets is installed, its text bar (on stderr) otherwise."""
    render = next(c for c in _code(executed) if "cl.render(" in _source(c))
    err = "".join(o.text for o in render.outputs if o.get("name") == "stderr")
    widget = any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                 for o in render.outputs)  # fmt: skip
    assert widget or ("render" in err and "unit" in err)
    assert "IProgress" not in err and "Warning" not in err
