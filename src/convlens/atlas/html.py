"""Static pages of an atlas, rendered from its manifest alone (Jinja2 templates in ``templates/``).

Pages open from ``file://``: no server, no network, no fonts or scripts from elsewhere. Sprite
tiles are ``<span>`` elements whose sheet ``atlas.js`` loads when they approach the viewport;
every size and position is computed here, so the script only sets one background per sheet.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChainableUndefined, Environment, FileSystemLoader, Undefined, select_autoescape
from markupsafe import Markup

from ..fileio import write_text
from ..images.colors import DIVERGING, GRAY, SEQUENTIAL, get_cmap
from . import manifest as schema
from .guide import pick_guide, resolve_guide

TEMPLATES = Path(__file__).parent / "templates"
ASSETS = ("atlas.css", "atlas.js")


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=select_autoescape(["html"]),
        undefined=ChainableUndefined,  # optional manifest parts read as empty
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    env.filters["pct"] = lambda v: (
        "–" if v is None or isinstance(v, Undefined) else f"{100 * v:.1f}%"
    )
    env.globals["gradient"] = gradient
    env.globals["CMAPS"] = {"gray": GRAY, "viridis": SEQUENTIAL, "diverging": DIVERGING}
    return env


def fmt_num(v: Any, digits: int = 3) -> str:
    """A number for a page: 3 significant digits, real minus sign, en dash for missing."""
    if v is None or isinstance(v, Undefined) or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, int):
        return f"{v:,}".replace(",", "\u2009")
    return f"{v:.{digits}g}".replace("-", "−")


@lru_cache(maxsize=8)
def gradient(cmap: str, steps: int = 9) -> str:
    """A CSS linear-gradient of a colormap, so legends match the pictures exactly."""
    cm = get_cmap(cmap)
    stops = []
    for k in range(steps):
        r, g, b, _ = cm(k / (steps - 1))
        stops.append(
            f"rgb({round(r * 255)},{round(g * 255)},{round(b * 255)}) {100 * k / (steps - 1):.0f}%"
        )
    return "linear-gradient(to right, " + ", ".join(stops) + ")"


class Page:
    """What a template needs to resolve sprite tiles and links from its own folder depth."""

    def __init__(self, manifest: Mapping[str, Any], root: str) -> None:
        self.manifest = manifest
        self.root = root  # "" for top-level pages, "../" for units/

    def tile(self, ref: Mapping[str, Any] | None, size: int, *, cls: str = "",
             title: str = "", box: Any = None, image_size: Any = None) -> Markup:  # fmt: skip
        return tile(self, ref, size, cls=cls, title=title, box=box, image_size=image_size)


def tile(
    page: Page,
    ref: Mapping[str, Any] | None,
    size: int,
    *,
    cls: str = "",
    title: str = "",
    box: Any = None,
    image_size: Any = None,
) -> Markup:
    """A sprite tile shown ``size`` px on its longer side (crisp pixels), lazily loaded.

    ``box`` (top, left, bottom, right in image pixels of ``image_size``) draws an outline on
    the tile, e.g. the receptive field of the neuron that fired.
    """
    if not ref:
        return Markup(
            '<span class="tile tile-none" style="width:{0}px;height:{0}px" title="{1}">{2}</span>'
        ).format(size, title or "not computed", "dead" if "dead" in title else "–")
    sprite = page.manifest["sprites"][ref["sprite"]]
    s = size / max(ref["w"], ref["h"])
    w, h = round(ref["w"] * s), round(ref["h"] * s)
    style = (
        f"width:{w}px;height:{h}px;background-size:{sprite['width'] * s:.2f}px "
        f"{sprite['height'] * s:.2f}px;background-position:-{ref['x'] * s:.2f}px "
        f"-{ref['y'] * s:.2f}px"
    )
    src = page.root + sprite["file"]
    label = html.escape(title)
    inner = ""
    if box is not None and image_size is not None:
        ih, iw = image_size
        top, left = max(box[0], 0), max(box[1], 0)
        bottom, right = min(box[2], ih), min(box[3], iw)
        small = min((right - left) * w / iw, (bottom - top) * h / ih) < 8  # few px on screen
        inner = (
            f'<span class="rf{" small" if small else ""}" style="left:{100 * left / iw:.2f}%;'
            f"top:{100 * top / ih:.2f}%;width:{100 * (right - left) / iw:.2f}%;"
            f'height:{100 * (bottom - top) / ih:.2f}%"></span>'
        )
    aria = f' role="img" aria-label="{label}" title="{label}"' if title else ' role="img"'
    return Markup(
        f'<span class="tile {cls}" data-src="{html.escape(src)}" style="{style}"{aria}>'
        f"{inner}</span>"
    )


def _pages(manifest: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(relative path, template, context) of every page the manifest calls for."""
    pages: list[tuple[str, str, dict[str, Any]]] = [("index.html", "index.html", {})]
    layers = [row for row in manifest["layers"] if row.get("page")]
    for i, row in enumerate(layers):
        prev_row = layers[i - 1] if i > 0 else None
        next_row = layers[i + 1] if i + 1 < len(layers) else None
        pages.append((row["page"], "layer.html",
                      {"layer": row, "prev_layer": prev_row, "next_layer": next_row}))  # fmt: skip
        units = row["units"]
        for j, unit in enumerate(units):
            if unit.get("page"):
                pages.append((unit["page"], "unit.html", {
                    "layer": row, "unit": unit,
                    "prev_unit": units[j - 1] if j > 0 else None,
                    "next_unit": units[j + 1] if j + 1 < len(units) else None,
                }))  # fmt: skip
    if manifest.get("classes"):
        pages.append(("classes.html", "classes.html", {"methods": heatmap_summary(manifest)}))
    if manifest.get("evolution"):
        pages.append(("evolution.html", "evolution.html", {}))
    return pages


def heatmap_summary(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per heatmap method: mean deletion/insertion AUC over the samples, the random-order
    baseline, and the sanity-check verdict when it was run."""
    by_method: dict[str, dict[str, list[float]]] = {}
    baseline: dict[str, list[float]] = {"deletion": [], "insertion": []}
    for record in manifest.get("classes", []):
        for sample in record.get("samples", []):
            for h in sample.get("heatmaps", []):
                row = by_method.setdefault(h["method"], {"deletion": [], "insertion": []})
                row["deletion"].append(h["deletion_auc"])
                row["insertion"].append(h["insertion_auc"])
                for key in ("deletion", "insertion"):
                    if h.get(f"random_{key}_auc") is not None:
                        baseline[key].append(h[f"random_{key}_auc"])
    sanity = manifest.get("model", {}).get("heatmap_sanity", {})

    def mean(v: list[float]) -> float | None:
        return sum(v) / len(v) if v else None

    rows = [
        {"method": m, "deletion": mean(v["deletion"]), "insertion": mean(v["insertion"]),
         "images": len(v["deletion"]), "sanity": sanity.get(m)}
        for m, v in by_method.items()
    ]  # fmt: skip
    if rows and baseline["deletion"]:
        rows.append({"method": "random order", "deletion": mean(baseline["deletion"]),
                     "insertion": mean(baseline["insertion"]), "images": len(baseline["deletion"]),
                     "sanity": None, "baseline": True})  # fmt: skip
    return rows


def write_pages(out: Path, manifest: dict[str, Any]) -> list[str]:
    """Write every page and the assets (atomically); return the written paths, relative."""
    manifest["guide"] = pick_guide(manifest)
    env = _env()
    written: list[str] = []
    write_text(out / "SCHEMA.md", "# manifest.json\n\n" + (schema.__doc__ or "").strip() + "\n")
    written.append("SCHEMA.md")
    for name in ASSETS:
        write_text(out / "assets" / name, (TEMPLATES / name).read_text(encoding="utf-8"))
        written.append(f"assets/{name}")
    nav = _nav(manifest)
    guide = resolve_guide(manifest)
    # The entry page last: until it is written, the old one links only to pages that exist.
    for rel, template, extra in sorted(_pages(manifest), key=lambda p: p[0] == "index.html"):
        root = "../" * rel.count("/")
        page = Page(manifest, root)
        text = env.get_template(template).render(
            m=manifest, page=page, root=root, nav=nav, current=rel, guide=guide, **extra
        )
        write_text(out / rel, text)
        written.append(rel)
    return written


def _nav(manifest: Mapping[str, Any]) -> list[dict[str, str]]:
    items = [{"href": "index.html", "label": "Overview"}]
    for row in manifest["layers"]:
        if row.get("page"):
            items.append({"href": row["page"], "label": row["name"], "kind": "layer"})
    if manifest.get("classes"):
        items.append({"href": "classes.html", "label": "Classes"})
    if manifest.get("evolution"):
        items.append({"href": "evolution.html", "label": "Evolution"})
    items.append({"href": "index.html#how-to-read", "label": "How to read"})
    return items
