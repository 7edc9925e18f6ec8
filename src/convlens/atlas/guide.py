"""Which of this model's own pictures answer the questions of "how to read this atlas".

Picks are made from the manifest alone (so any reader can reproduce them) and stored back in
it under ``guide``: unit references, never copies of pictures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _score(unit: Mapping[str, Any]) -> float:
    """Prefer live units whose rendered picture verifies well, then strongly active ones."""
    stats = unit.get("stats") or {}
    if stats.get("dead"):
        return -1.0
    channel = unit.get("channel") or {}
    r = channel.get("r")
    return (10.0 + min(float(r), 2.0)) if r is not None else float(stats.get("max") or 0.0)


def _best(row: Mapping[str, Any]) -> int | None:
    units = row.get("units") or []
    return max(units, key=_score)["index"] if units else None


def _texture(row: Mapping[str, Any]) -> int | None:
    """A first-layer unit whose channel image shows its pattern best: live, verified (r >= 1)
    and of high contrast (a near-blank image explains nothing)."""
    units = [u for u in row.get("units") or [] if u.get("channel") and _score(u) >= 10.0]
    if not units:
        return _best(row)
    verified = [u for u in units if (u["channel"].get("r") or 0.0) >= 1.0] or units
    return max(verified, key=lambda u: u["channel"].get("contrast") or 0.0)["index"]


def pick_guide(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Unit and sample references for the guide's three questions (absent parts are None)."""
    spatial = [r for r in manifest["layers"] if r.get("page") and len(r["output_shape"]) == 3]
    guide: dict[str, Any] = {"first": None, "deep": None, "sample": None, "evolution": None}
    if spatial:
        first, deep = spatial[0], spatial[-1]
        if (i := _texture(first)) is not None:
            guide["first"] = {"layer": first["name"], "unit": i}
        if (i := _best(deep)) is not None:
            guide["deep"] = {"layer": deep["name"], "unit": i}
    for record in manifest.get("classes", []):
        for sample in record.get("samples", []):
            if sample.get("heatmaps"):
                guide["sample"] = {"class": record["index"], "index": sample["index"]}
                break
        if guide["sample"]:
            break
    evolution = manifest.get("evolution") or {}
    rows = [r for r in evolution.get("rows", []) if r.get("kind") == "channel"]
    if rows:
        # In the deepest layer followed, the live unit whose image lost the most fine dots and
        # stripes while keeping its contrast (an image fading to blank also loses them).
        deepest = rows[-1]["unit"].rsplit(":", 1)[0]

        def drop(r: Mapping[str, Any]) -> float:
            tv = [v for v in r.get("tv") or [] if v is not None]
            contrast = [v for v in r.get("contrast") or [] if v is not None]
            if len(tv) < 2 or not contrast or contrast[-1] < 0.5 * max(contrast[0], 1e-6):
                return float("-inf")
            return tv[0] - tv[-1]

        candidates = [r for r in rows if r["unit"].rsplit(":", 1)[0] == deepest]
        live = [r for r in candidates if r.get("r") and r["r"][-1] is not None] or candidates
        best = max(live, key=drop)
        guide["evolution"] = {"row": evolution["rows"].index(best)}
    return guide


def resolve_guide(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The guide's picks as the records themselves, for the templates."""
    picks = manifest.get("guide") or {}
    layers = {r["name"]: r for r in manifest["layers"]}
    out: dict[str, Any] = {}
    for key in ("first", "deep"):
        ref = picks.get(key)
        if ref and ref["layer"] in layers:
            row = layers[ref["layer"]]
            unit = next((u for u in row["units"] if u["index"] == ref["unit"]), None)
            out[key] = {"layer": row, "unit": unit} if unit else None
        else:
            out[key] = None
    out["sample"] = None
    ref = picks.get("sample")
    if ref:
        for record in manifest.get("classes", []):
            for sample in record.get("samples", []):
                if record["index"] == ref["class"] and sample["index"] == ref["index"]:
                    out["sample"] = {"class": record, "sample": sample}
    ref = picks.get("evolution")
    evolution = manifest.get("evolution") or {}
    out["evolution"] = evolution["rows"][ref["row"]] if ref else None
    return out
