"""An existing atlas folder as the source of unit details: read its manifest, compute nothing.

The only files ever served are the ones the manifest lists (sprite sheets and figures), looked
up by their exact manifest path in a table made once at start-up, each resolved and checked to
lie inside the atlas folder. A path a client sends is a *key* into that table, never joined to
a folder, so no client string can reach the file system.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..atlas import load_manifest
from ..errors import ConvlensError
from ..lens import Lens
from ..units import Unit

SERVED_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".json")


class AtlasSource:
    """The pictures an atlas holds for one model, addressed by unit."""

    def __init__(self, folder: str | Path, url_prefix: str) -> None:
        self.folder = Path(folder).resolve()
        self.manifest = load_manifest(self.folder)
        self.url_prefix = url_prefix.rstrip("/")
        self.files = self._files()
        self.units: dict[tuple[str, int], dict[str, Any]] = {}
        for layer in self.manifest.get("layers", []):
            for unit in layer.get("units", []):
                self.units[(layer["name"], int(unit["index"]))] = unit
        self.layers = {layer["name"]: layer for layer in self.manifest.get("layers", [])}
        self.classes = {int(c["index"]): c for c in self.manifest.get("classes", [])}

    def _files(self) -> dict[str, Path]:
        listed = {s["file"] for s in self.manifest.get("sprites", {}).values()}
        listed |= {f["file"] for f in self.manifest.get("figures", {}).values()}
        table: dict[str, Path] = {}
        for rel in sorted(listed):
            if not isinstance(rel, str) or not rel.lower().endswith(SERVED_SUFFIXES):
                continue
            path = (self.folder / rel).resolve()
            if path.is_relative_to(self.folder) and path.is_file():
                table[rel] = path
        return table

    def check(self, lens: Lens) -> None:
        """Refuse an atlas built for another model (other layers or input)."""
        layers = {row["name"]: tuple(row.get("output_shape", ())) for row in self.layers.values()}
        mine = {info.name: info.output_shape for info in lens.layers}
        clash = [name for name, shape in layers.items() if mine.get(name) != shape]
        spec = self.manifest.get("model", {}).get("input", {})
        same_input = [spec.get("channels"), spec.get("height"), spec.get("width")] == list(
            lens.spec.shape
        )
        if clash or not same_input:
            what = f"layer {clash[0]!r}" if clash else "its input size"
            raise ConvlensError(
                f"the atlas in {self.folder} was built for another model ({what} differs); "
                "build one for this model with 'convlens atlas CKPT --out DIR'"
            )

    def file(self, rel: str) -> Path | None:
        """The file at manifest path ``rel`` if the manifest lists it (else None)."""
        return self.files.get(rel)

    # --- pictures ------------------------------------------------------------------------------
    def tile(self, ref: dict[str, Any] | None) -> dict[str, Any] | None:
        """A sprite tile as a picture the page can draw: sheet URL and pixel box."""
        if not ref:
            return None
        sprite = self.manifest.get("sprites", {}).get(ref.get("sprite"))
        if not sprite or sprite["file"] not in self.files:
            return None
        return {
            "src": f"{self.url_prefix}/{sprite['file']}",
            "box": [ref["x"], ref["y"], ref["w"], ref["h"]],
            "w": ref["w"],
            "h": ref["h"],
        }

    def figure(self, fid: str | None) -> dict[str, Any] | None:
        fig = self.manifest.get("figures", {}).get(fid) if fid else None
        if not fig or fig["file"] not in self.files:
            return None
        return {
            "src": f"{self.url_prefix}/{fig['file']}",
            "box": None,
            "w": fig["width"],
            "h": fig["height"],
            "title": fig.get("title", ""),
        }

    def unit(self, unit: Unit) -> dict[str, Any] | None:
        """What the atlas shows for a channel/neuron unit (None if the atlas skipped it)."""
        record = self.units.get((unit.layer, unit.channel))
        if record is None:
            return None
        out: dict[str, Any] = {"source": "atlas", "stats": record.get("stats")}
        out["kernel"] = (
            {"picture": self.tile(record.get("kernel"))} if record.get("kernel") else None
        )
        channel = record.get("channel")
        if channel:
            out["render"] = {
                "picture": self.tile(channel.get("image")),
                "r": channel.get("r"),
                "r_mean": channel.get("r_mean"),
                "match": channel.get("match"),
                "activation": channel.get("activation"),
                "reference": channel.get("reference"),
                "status": channel.get("status", "ok"),
                "what": "channel",
            }
        neuron = record.get("neuron")
        if neuron:
            out["neuron_render"] = {
                "picture": self.tile(neuron.get("image")),
                "r": neuron.get("r"),
                "position": neuron.get("position"),
                "activation": neuron.get("activation"),
                "status": neuron.get("status", "ok"),
                "what": "centre neuron",
            }
        ex = record.get("examples")
        if ex:
            items = []
            crops = ex.get("crops") or []
            for k, image in enumerate(ex.get("images", [])):
                items.append(
                    {
                        "image": self.tile(image),
                        "crop": self.tile(crops[k]) if k < len(crops) else None,
                        "value": _at(ex.get("values"), k),
                        "label": _at(ex.get("labels"), k),
                        "index": _at(ex.get("indices"), k),
                        "window": _at(ex.get("windows"), k),
                    }
                )
            out["examples"] = {"score": ex.get("score", ""), "items": items}
        return out

    def prototype(self, index: int) -> dict[str, Any] | None:
        record = self.classes.get(index)
        proto = (record or {}).get("prototype")
        if not proto:
            return None
        return {
            "source": "atlas",
            "picture": self.tile(proto.get("raw")),
            "deaveraged": self.tile(proto.get("deaveraged")),
            "probability": proto.get("probability"),
            "predicted": proto.get("predicted"),
        }


def _at(values: Any, k: int) -> Any:
    return values[k] if isinstance(values, list) and k < len(values) else None
