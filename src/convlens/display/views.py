"""What each convlens object shows: a one-line ``repr``, an HTML summary, a picture.

One function per type and view, dispatched on the type (``functools.singledispatch``), so a
class only inherits :class:`~convlens.display.base.Summarized` or ``Pictured`` and this module
does the rest. Imported only when something is displayed, never by ``import convlens``.
"""

from __future__ import annotations

import weakref
from functools import singledispatch
from pathlib import Path
from typing import Any

from PIL import Image

from ..lens import LayerInfo, Lens
from ..train import TrainResult
from ..viz.activations import Activations
from ..viz.attribution import Heatmap
from ..viz.examples import ExamplesResult, TopK, UnitExamples
from ..viz.faithfulness import Explanation, Faithfulness, MethodEvidence
from ..viz.maxima import Maxima
from ..viz.prototypes import Prototypes
from ..viz.render import RenderResult
from ..viz.sanity import SanityResult
from . import html as h
from . import pictures
from .base import LayerTable, Plot


def _num(v: float, spec: str = ".3f") -> str:
    return "nan" if v != v else format(v, spec)


def _shape(shape: Any) -> str:
    return "x".join(str(int(v)) for v in shape)


def _list(values: Any, limit: int = 10) -> str:
    items = [str(v) for v in list(values)[:limit]]
    more = len(values) - limit
    return "[" + ", ".join(items) + (f", … {more} more" if more > 0 else "") + "]"


# --- text ------------------------------------------------------------------------------------
@singledispatch
def text(obj: Any) -> str:
    """A short one-line description (never the raw tensors)."""
    return object.__repr__(obj)


def model_name(lens: Lens) -> str:
    """``Lens.name`` where the Lens has one, else the architecture's, the file's or the class's."""
    named = getattr(lens, "name", None)  # Lens.name is being added on another branch
    if isinstance(named, str) and named:
        return named
    arch = ((lens.source.get("config") or {}).get("architecture") or {}).get("name")
    if arch:
        return str(arch)
    if lens.path is not None:
        return Path(lens.path).name
    return type(lens.model).__name__


def _training(lens: Lens) -> str:
    history = (lens.source.get("config") or {}).get("history") or []
    epoch = lens.source.get("epoch")
    if epoch:
        row = next((r for r in history if r.get("epoch") == epoch), None)
        acc = f", val acc {row['val_acc']:.3f}" if row and "val_acc" in row else ""
        return f"weights after epoch {epoch} of {len(history)}{acc}"
    if history and "val_acc" in history[-1]:
        return f"trained {len(history)} epochs, val acc {history[-1]['val_acc']:.3f}"
    return ""


@text.register
def _(lens: Lens) -> str:
    params = sum(p.numel() for p in lens.model.parameters())
    convs = len(lens.conv_layers())
    parts = [
        lens.spec.describe(),
        f"{lens.num_classes} classes",
        f"{len(lens.layers)} layers ({convs} conv), {params:,} parameters",
    ]
    trained = _training(lens)
    if trained:
        parts.append(trained)
    if lens.path is not None:
        parts.append(str(lens.path))
    return f"Lens({model_name(lens)}: " + "; ".join(parts) + ")"


def _rf(info: LayerInfo) -> str:
    return info.rf.describe() if info.rf is not None else ""


@text.register
def _(info: LayerInfo) -> str:
    rf = f", receptive field {_rf(info)}" if info.rf is not None else ""
    return (
        f"LayerInfo({info.name}: {info.kind} {info.type_name}, output {_shape(info.output_shape)}, "
        f"{info.params:,} params{rf})"
    )


@text.register
def _(table: LayerTable) -> str:
    w = max([8, *(len(i.name) + 1 for i in table)])
    head = f"{'layer':<{w}} {'kind':<10} {'output':<14} {'params':>10}  receptive field"
    lines = [head]
    for i in table:
        lines.append(f"{i.name:<{w}} {i.kind:<10} {_shape(i.output_shape):<14} "
                     f"{i.params:>10,}  {_rf(i)}")  # fmt: skip
    return "\n".join(lines)


@text.register
def _(acts: Activations) -> str:
    n = acts.inputs.shape[0]
    maps = ", ".join(f"{k} {_shape(v.shape[1:])}" for k, v in acts.maps.items())
    return (
        f"Activations({n} image{'s' * (n != 1)} of {_shape(acts.inputs.shape[1:])}; {maps}; "
        f"predicted {_list(acts.predicted.tolist())})"
    )


def _render_summary(result: RenderResult) -> list[str]:
    out = []
    for label, s in result.summary().items():
        if label == "class":
            out.append(f"class: {s['passed']} of {s['units']} with p >= 0.99")
        elif s.get("live"):
            out.append(
                f"{label}: {'r_peak' if 'r_mean_ge_1' in s else 'r'} >= 1 for "
                f"{s['r_peak_ge_1']} of {s['live']} live"
                + (f", r_mean >= 1 for {s['r_mean_ge_1']}" if "r_mean_ge_1" in s else "")
                + (f", {s['dead']} dead" if s["dead"] else "")
                + f", median {'r_peak' if 'r_mean_ge_1' in s else 'r'} "
                f"{_num(s['median_r_peak'], '.2f')}"
            )
        else:
            out.append(f"{label}: {s['units']} units, none active on the validation images")
    return out


@text.register
def _(result: RenderResult) -> str:
    summary = "; ".join(_render_summary(result))
    return (
        f"RenderResult({len(result)} images, preset {result.preset}; {summary}; "
        f"{result.seconds:.1f} s)"
    )


@text.register
def _(protos: Prototypes) -> str:
    n = len(protos.correct)
    return (
        f"Prototypes({len(protos.classes)} classes x {protos.diversity}; "
        f"{int(protos.correct.sum())} of {n} classified as their class with p >= 0.99)"
    )


@text.register
def _(heatmap: Heatmap) -> str:
    n = len(heatmap)
    return (
        f"Heatmap({heatmap.describe()}; {n} map{'s' * (n != 1)} of "
        f"{_shape(heatmap.values.shape[1:])}, targets {_list(heatmap.target.tolist())}, "
        f"max |value| {heatmap.scale():.3g})"
    )


def _aucs(f: Faithfulness) -> str:
    s = f.summary()
    text_ = f"deletion AUC {_num(s['deletion_auc'])}"
    if s["random_deletion_auc"] is not None:
        text_ += f" (random {_num(s['random_deletion_auc'])})"
    text_ += f", insertion AUC {_num(s['insertion_auc'])}"
    if s["random_insertion_auc"] is not None:
        text_ += f" (random {_num(s['random_insertion_auc'])})"
    return text_


@text.register
def _(f: Faithfulness) -> str:
    n = int(f.deletion_auc.shape[0])
    return f"Faithfulness({f.method or 'map'}, {n} image{'s' * (n != 1)}: {_aucs(f)})"


@text.register
def _(ev: MethodEvidence) -> str:
    return f"MethodEvidence({ev.heatmap.method}: {_aucs(ev.faithfulness)}; {ev.seconds:.2f} s)"


@text.register
def _(ex: Explanation) -> str:
    lines = [f"Explanation({len(ex)} methods on {int(ex.inputs.shape[0])} image(s)):"]
    w = max([6, *(len(k) for k in ex)])
    for name, ev in ex.items():
        lines.append(f"  {name:<{w}}  {_aucs(ev.faithfulness)}")
    return "\n".join(lines)


def _where(result: ExamplesResult) -> str:
    which = "bottom" if result.bottom else "top"
    split = "" if result.split == "images" else f" {result.split}"
    return f"{which}-{result.k} of {result.num_images} {result.source}{split} images"


@text.register
def _(result: ExamplesResult) -> str:
    layers = ", ".join(f"{name} ({len(result.for_layer(name))})" for name in result.layers)
    return f"ExamplesResult({len(result)} units: {layers}; {_where(result)})"


@text.register
def _(ex: UnitExamples) -> str:
    values = ex.values.tolist()
    span = f"{values[0]:.3g} … {values[-1]:.3g}" if values else "none"
    return (
        f"UnitExamples({ex.unit}: {len(values)} images #{_list(ex.indices.tolist(), 6)[1:-1]}; "
        f"{ex.score} {span})"
    )


@text.register
def _(table: TopK) -> str:
    order = "largest" if table.largest else "smallest"
    return f"TopK({table.num_units} units, k={table.k} {order}, {table.count} kept per unit)"


@text.register
def _(m: Maxima) -> str:
    layers = ", ".join(f"{k} {v.numel()} ({len(m.dead(k))} dead)" for k, v in m.channel.items())
    return f"Maxima({m.dataset}, {m.images} images; {layers})"


@text.register
def _(r: SanityResult) -> str:
    return f"SanityResult({r.method}: {r.verdict()})"


@text.register
def _(r: TrainResult) -> str:
    last = r.history[-1] if r.history else {}
    acc = f", val acc {last['val_acc']:.3f}" if "val_acc" in last else ""
    where = f", checkpoint {r.folder}" if r.folder else ""
    return f"TrainResult({type(r.model).__name__}, {len(r.history)} epochs{acc}{where})"


# --- html ------------------------------------------------------------------------------------
@singledispatch
def _html(obj: Any) -> str | None:
    return None


def _layer_rows(table: Any, logits: str = "") -> list[list[str]]:
    rows = []
    for i in table:
        rf = i.rf
        rows.append([
            i.name + ("  (logits)" if i.name == logits else ""), i.kind, i.type_name,
            _shape(i.output_shape), f"{i.params:,}",
            _shape(rf.size) if rf else "", _shape(rf.jump) if rf else "",
            ", ".join(f"{v:g}" for v in rf.offset) if rf else "",
        ])  # fmt: skip
    return rows


LAYER_HEADER = ["layer", "kind", "type", "output", "params", "receptive field", "jump", "offset"]


@_html.register
def _(table: LayerTable) -> str:
    return h.block(f"{len(table)} layers", h.table(LAYER_HEADER, _layer_rows(table), right=(4,)))


@_html.register
def _(lens: Lens) -> str:
    names = ", ".join(lens.class_names[:20]) + (" …" if lens.num_classes > 20 else "")
    notes = [lens.spec.describe(), f"{lens.num_classes} classes: {names}"]
    trained = _training(lens)
    if trained:
        notes.append(trained)
    if lens.path is not None:
        notes.append(str(lens.path))
    params = sum(p.numel() for p in lens.model.parameters())
    rows = _layer_rows(lens.layers, getattr(lens, "logits_source", lens.logits_layer))
    rows.append(["total", "", "", "", f"{params:,}", "", "", ""])
    body = h.table(LAYER_HEADER, rows, right=(4,))
    caption = (
        '<div style="color: #5f6b7a">receptive field: the input patch one unit sees; jump: input '
        "pixels between neighbouring units; offset: centre of unit (0, 0)</div>"
    )
    return h.block(f"Lens: {model_name(lens)}", body, caption, note=" · ".join(notes))


def _with_picture(obj: Any, title: str, parts: list[str], note: str = "") -> str:
    return h.block(title, *parts, h.img(_picture_cached(obj), alt=title), note=note)


@_html.register
def _(result: RenderResult) -> str:
    rows = [line.split(": ", 1) for line in _render_summary(result)]
    data = f" of {result.dataset}" if result.dataset else ""
    note = (f"{len(result)} images in {result.seconds:.1f} s; r = activation reached / largest "
            f"over the validation images{data}")  # fmt: skip
    table = h.table(["units", "verdict"], rows)
    return _with_picture(result, f"render ({result.preset})", [table], note=note)


@_html.register
def _(protos: Prototypes) -> str:
    return _with_picture(protos, "class prototypes", [], note=text(protos)[len("Prototypes(") : -1])


@_html.register
def _(acts: Activations) -> str:
    n = acts.inputs.shape[0]
    note = text(acts)[len("Activations(") : -1]
    if n > 1:
        note += "; image 0 shown (.show(index=i) for another)"
    return _with_picture(acts, "activations", [], note=note)


@_html.register
def _(heatmap: Heatmap) -> str:
    return _with_picture(heatmap, f"heatmap: {heatmap.method}", [], note=text(heatmap)[8:-1])


@_html.register
def _(ex: Explanation) -> str:
    rows = []
    for name, ev in ex.items():
        s = ev.faithfulness.summary()
        rows.append([name, _num(s["deletion_auc"]), _num(s["random_deletion_auc"] or float("nan")),
                     _num(s["insertion_auc"]), _num(s["random_insertion_auc"] or float("nan")),
                     f"{ev.seconds:.2f}"])  # fmt: skip
    header = ["method", "deletion AUC", "random", "insertion AUC", "random", "seconds"]
    table = h.table(header, rows, right=(1, 2, 3, 4, 5))
    note = "deletion: lower is better; insertion: higher is better; a map earns trust where it "
    note += "beats the random order on both"
    if int(ex.inputs.shape[0]) > 1:
        note += "; image 0 shown (.show(index=i) for another)"
    return _with_picture(ex, "explanation", [table], note=note)


@_html.register
def _(result: ExamplesResult) -> str:
    note = _where(result) + "; at most 16 units per layer shown (.show(layer=..., unit=...))"
    return _with_picture(result, "dataset examples", [], note=note)


@_html.register
def _(m: Maxima) -> str:
    rows = [[k, v.numel(), len(m.dead(k)), f"{float(v.max()):.3g}"] for k, v in m.channel.items()]
    return h.block(f"dataset maxima over {m.images} {m.dataset} images",
                   h.table(["layer", "units", "dead", "largest"], rows, right=(1, 2, 3)),
                   note="the verification bar: r = rendered / this maximum")  # fmt: skip


@_html.register
def _(r: SanityResult) -> str:
    rows = [[s["stage"], s["randomized"], f"{s['spearman']:.3f}", f"{s['ssim']:.3f}"]
            for s in r.rows()]  # fmt: skip
    table = h.table(["stage", "randomized (cumulative)", "Spearman", "SSIM"], rows, right=(2, 3))
    return h.block(f"sanity check: {r.method}", table, note=r.verdict())


def html(obj: Any) -> str | None:
    """The HTML summary of ``obj`` (None where there is none)."""
    return _html(obj)


# --- pictures --------------------------------------------------------------------------------
@singledispatch
def _picture(obj: Any, **options: Any) -> Image.Image | None:
    return None


@_picture.register
def _(result: RenderResult) -> Image.Image:
    return pictures.render_picture(result)


@_picture.register
def _(protos: Prototypes) -> Image.Image:
    return pictures.stack(list(pictures.prototype_pictures(protos)))


@_picture.register
def _(acts: Activations, index: int = 0, layer: str | None = None) -> Image.Image:
    return pictures.activations_picture(acts, index, layer)


@_picture.register
def _(heatmap: Heatmap, max_images: int = 16) -> Image.Image:
    return pictures.heatmap_picture(heatmap, max_images)


@_picture.register
def _(ex: Explanation, index: int = 0) -> Image.Image:
    return pictures.explanation_picture(ex, index)


@_picture.register
def _(result: ExamplesResult, layer: str | None = None, unit: Any = None) -> Image.Image:
    return pictures.examples_picture(result, layer, unit)


def picture(obj: Any, **options: Any) -> Image.Image:
    """The picture of ``obj`` as a PIL image; ``options`` choose what it shows."""
    out = _picture(obj, **options)
    if out is None:
        raise TypeError(f"{type(obj).__name__} has no picture")
    return out


# The notebook asks for the HTML and then the PNG of the same object: draw it once.
_last: tuple[Any, Image.Image] | None = None


def _picture_cached(obj: Any) -> Image.Image:
    global _last
    out = picture(obj)
    try:
        _last = (weakref.ref(obj), out)
    except TypeError:
        _last = None
    return out


def png(obj: Any) -> bytes | None:
    """PNG bytes of the picture (reusing the one the HTML view just drew)."""
    global _last
    cached, _last = _last, None
    if cached is not None and cached[0]() is obj:
        return h.png_bytes(cached[1])
    out = _picture(obj)
    return None if out is None else h.png_bytes(out)


# --- plot / show -----------------------------------------------------------------------------
def _new_axes(width: int, height: int, dpi: int = 100) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor="white")
    return fig, fig.add_axes((0, 0, 1, 1))


def _plot_heatmap(
    hm: Heatmap, ax: Any, index: int = 0, image: Any = None, colorbar: bool = True
) -> Plot:
    """A Captum-style heat map of one image: the signed map on a symmetric diverging scale,
    over a grey copy of ``image`` when given."""
    from ..images import DIVERGING, to_gray
    from ..images.normalize import as_float

    values = hm.values[index].numpy()
    scale = float(abs(values).max()) or 1.0
    cax = None
    if ax is None:
        fig, ax = _new_axes(440 if colorbar else 360, 360)
        ax.set_position((0.03, 0.04, 0.8 if colorbar else 0.94, 0.86))
        cax = fig.add_axes((0.86, 0.1, 0.035, 0.74)) if colorbar else None
    else:
        fig = ax.figure
    if image is not None:
        ax.imshow(to_gray(as_float(image)), cmap="gray", vmin=0, vmax=1)
    shown = ax.imshow(values, cmap=DIVERGING, vmin=-scale, vmax=scale,
                      alpha=0.65 if image is not None else 1.0)  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{hm.method}, target {int(hm.target[index])}", fontsize=9)
    if colorbar:
        kwargs = {"cax": cax} if cax is not None else {"ax": ax, "fraction": 0.046, "pad": 0.04}
        fig.colorbar(shown, label="evidence (red: for the target)", **kwargs)
    return Plot(fig, ax)


def _imshow(ax: Any, pic: Image.Image) -> None:
    ax.imshow(pictures.as_rgb(pic), interpolation="antialiased")
    ax.set_axis_off()


def plot(obj: Any, ax: Any = None, **options: Any) -> Plot:
    """Draw ``obj``'s picture into ``ax`` (or a new figure, no pyplot); returns (fig, ax)."""
    if isinstance(obj, Heatmap):
        return _plot_heatmap(obj, ax, **options)
    pic = picture(obj, **options)
    if ax is None:
        fig, ax = _new_axes(pic.width, pic.height)
    else:
        fig = ax.figure
    _imshow(ax, pic)
    return Plot(fig, ax)


def show(obj: Any, **options: Any) -> tuple[Any, Any]:
    """Show ``obj`` now: inline in a notebook, in a pyplot window elsewhere; returns (fig, ax).

    A plain tuple, so a cell ending in ``.show()`` does not show the picture twice.
    """
    from ..progress import in_notebook

    if in_notebook():
        from IPython.display import display

        result = plot(obj, **options)
        display(result)
        return result.fig, result.ax
    import matplotlib.pyplot as plt

    if isinstance(obj, Heatmap):
        fig, ax = plt.subplots(figsize=(4.4, 3.6))
        _plot_heatmap(obj, ax, **options)
    else:
        pic = picture(obj, **options)
        fig = plt.figure(figsize=(pic.width / 100, pic.height / 100), dpi=100)
        ax = fig.add_axes((0, 0, 1, 1))
        _imshow(ax, pic)
    plt.show()
    return fig, ax
