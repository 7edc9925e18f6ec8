"""Which of this model's own pictures answer the questions of "how to read this atlas".

The guide answers three questions people ask about feature visualization ("What should I expect
to see when visualizing the first conv layer?", "Should I use 28x28 or 3x3 images, and how does
that work for deeper layers?", "How do conv-layer images differ from class images?") with this
model's pictures. Teaching examples are chosen by quality: a live, strongly active unit whose
picture is verified (r >= 1), never unit 0 because it comes first. Picks are made from the
manifest alone (so any reader can reproduce them) and stored back in it under ``guide``: unit
references, never copies of pictures. Every sentence the templates print about the numbers is
decided here (:func:`evolution_claim`), so a claim appears only where the numbers support it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# A model whose first epoch already took this share of its final accuracy gain over chance had
# its features "largely in place" after one epoch.
EARLY_SHARE = 0.9
# A layer whose last epoch-to-epoch change is at most this share of its first one "settled".
SETTLED_SHARE = 0.5
# A unit whose picture changes less than this (mean absolute pixel change, range fractions) at
# every step after the first is "frozen": about 4 of 784 pixels flipping from black to white.
FROZEN = 0.005


def quality(unit: Mapping[str, Any], peak: float, *, texture: bool = False) -> float | None:
    """How good a teaching example a unit is; None for a dead or unrendered one.

    Verified pictures (r >= 1) come first, then how hard it drives the unit (r, capped), how
    strongly the unit responds on real data (its peak relative to the layer's strongest unit's,
    and the share of images it fires on), whether it has a neuron picture too, and for
    first-layer textures the picture's contrast (a near-blank image explains nothing).
    """
    stats = unit.get("stats") or {}
    channel = unit.get("channel") or {}
    r = channel.get("r")
    if stats.get("dead") or r is None:
        return None
    activity = float(stats.get("max") or 0.0) / peak if peak > 0 else 0.0
    score = 2.0 * (float(r) >= 1.0) + min(float(r), 1.5) + activity
    score += 0.5 * float(stats.get("active") or 0.0) + 0.5 * bool(unit.get("neuron"))
    if texture:
        score += float(channel.get("contrast") or 0.0)
    return score


def best_unit(row: Mapping[str, Any], *, texture: bool = False) -> int | None:
    """The layer's best teaching unit (by :func:`quality`); without renders, the most active
    live unit; None when every unit is dead."""
    units = list(row.get("units") or [])
    peak = max((float((u.get("stats") or {}).get("max") or 0.0) for u in units), default=0.0)
    scored = [(q, u) for u in units if (q := quality(u, peak, texture=texture)) is not None]
    if scored:
        return max(scored, key=lambda item: (item[0], -item[1]["index"]))[1]["index"]
    live = [u for u in units if not (u.get("stats") or {}).get("dead")]
    if not live:
        return None
    return max(live, key=lambda u: float((u.get("stats") or {}).get("max") or 0.0))["index"]


def _best_class(classes: Sequence[Mapping[str, Any]]) -> int | None:
    """The class whose prototype the model is surest of (a correct one if there is one)."""
    with_proto = [c for c in classes if c.get("prototype")]
    if not with_proto:
        return None

    def key(c: Mapping[str, Any]) -> tuple[bool, float, int]:
        p = c["prototype"]
        return (bool(p.get("correct")), float(p.get("probability") or 0.0), -int(c["index"]))

    return int(max(with_proto, key=key)["index"])


def pick_guide(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Unit and sample references for the guide's questions (absent parts are None)."""
    spatial = [r for r in manifest["layers"] if r.get("page") and len(r["output_shape"]) == 3]
    guide: dict[str, Any] = {"first": None, "deep": None, "sample": None, "evolution": None,
                             "class": _best_class(manifest.get("classes", []))}  # fmt: skip
    if spatial:
        first, deep = spatial[0], spatial[-1]
        if (i := best_unit(first, texture=True)) is not None:
            guide["first"] = {"layer": first["name"], "unit": i}
        if (i := best_unit(deep)) is not None:
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


def field_sizes(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per conv layer with a page: how much of the input one neuron sees, i.e. the size to
    render its neurons at, beside the whole input its channels are rendered on."""
    spec = manifest["model"]["input"]
    out = []
    for row in manifest["layers"]:
        rf = row.get("receptive_field")
        if not (row.get("page") and rf and len(row["output_shape"]) == 3):
            continue
        h, w = (min(int(v), int(s)) for v, s in zip(rf["size"], (spec["height"], spec["width"]),
                                                     strict=True))  # fmt: skip
        out.append({"layer": row["name"], "field": rf["size"], "neuron": [h, w],
                    "whole": h >= spec["height"] and w >= spec["width"]})  # fmt: skip
    return out


def evolution_claim(manifest: Mapping[str, Any], row: Mapping[str, Any]) -> dict[str, Any] | None:
    """What the evolution pictures and numbers support saying, or None when they say nothing.

    ``smoother``: the unit's image lost fine dots and stripes (total variation fell). ``early``:
    the first epoch already reached ``EARLY_SHARE`` of the final accuracy gain over chance,
    the only case in which "its features were largely in place after one epoch" is said.
    """
    tv = [v for v in row.get("tv") or [] if v is not None]
    evolution = manifest.get("evolution") or {}
    acc = [v for v in evolution.get("val_acc") or [] if v is not None]
    if len(tv) < 2:
        return None
    classes = len(manifest["model"].get("class_names") or []) or 1
    chance = 1.0 / classes
    claim: dict[str, Any] = {"tv_first": tv[0], "tv_last": tv[-1], "smoother": tv[-1] < tv[0],
                             "chance": chance, "acc_first": None, "acc_last": None,
                             "early": False}  # fmt: skip
    if len(acc) >= 2:
        gain = acc[-1] - chance
        claim.update(acc_first=acc[0], acc_last=acc[-1])
        claim["early"] = gain > 0 and acc[0] - chance >= EARLY_SHARE * gain
    return claim


def _trend(epochs: Sequence[int], values: Sequence[float | None]) -> dict[str, Any] | None:
    """First and last measured change with their epoch pairs, and what they support saying:
    ``falls`` (less change at the end than at the start), ``settled`` (at most
    ``SETTLED_SHARE`` of it)."""
    pairs = [(epochs[k - 1], epochs[k], float(v)) for k, v in enumerate(values)
             if k > 0 and k < len(epochs) and v is not None]  # fmt: skip
    if len(pairs) < 2:
        return None
    (a0, b0, first), (a1, b1, last) = pairs[0], pairs[-1]
    return {"first": first, "first_pair": [a0, b0], "last": last, "last_pair": [a1, b1],
            "falls": last < first,
            "settled": last <= SETTLED_SHARE * first,
            "factor": first / last if last > 0 else None}  # fmt: skip


def change_claims(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per followed layer: what its picture and kernel change figures support saying (see
    :func:`_trend`; None where fewer than two epoch pairs were measured)."""
    evolution = manifest.get("evolution") or {}
    epochs = list(evolution.get("epochs") or [])
    rows = [r for r in evolution.get("rows") or [] if r.get("kind") == "channel"]
    out = []
    for record in evolution.get("layers") or []:
        live = {f"{record['layer']}:{u}" for u in record.get("units") or []}
        frozen = []
        for row in rows:
            later = [v for v in (row.get("change") or [])[2:] if v is not None]
            if row["unit"] in live and later and max(later) < FROZEN:
                frozen.append(row["unit"])
        out.append({"layer": record["layer"], "units": len(live), "frozen": frozen,
                    "pictures": _trend(epochs, record.get("render_change") or []),
                    "kernels": _trend(epochs, record.get("kernel_change") or [])})  # fmt: skip
    return out


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
    classes = {c["index"]: c for c in manifest.get("classes", [])}
    out["class"] = classes.get(picks.get("class")) if picks.get("class") is not None else None
    out["sizes"] = field_sizes(manifest)
    ref = picks.get("evolution")
    evolution = manifest.get("evolution") or {}
    out["evolution"] = evolution["rows"][ref["row"]] if ref else None
    out["evolution_claim"] = evolution_claim(manifest, out["evolution"]) if ref else None
    out["changes"] = change_claims(manifest)
    layer = out["evolution"]["unit"].rsplit(":", 1)[0] if out["evolution"] else None
    out["evolution_change"] = next((c for c in out["changes"] if c["layer"] == layer), None)
    return out
