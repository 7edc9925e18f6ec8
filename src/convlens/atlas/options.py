"""How much an atlas computes: one frozen record, with a quick and a full preset.

The options are part of the atlas fingerprint: ``--resume`` only reuses work done with the same
options on the same weights, so a quick atlas is never silently mixed with a full one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from ..errors import ConvlensError
from ..viz.render.presets import DEFAULT_PRESET


@dataclass(frozen=True)
class AtlasOptions:
    """Knobs of an atlas build. ``None`` for a unit limit means every unit of the layer."""

    layers: tuple[str, ...] | None = None  # unit layers with a page (default: conv + hidden dense)
    max_units: int | None = None  # units per layer (the first ones)
    max_dense_units: int | None = None  # cap for dense layers (None: every unit)
    render_steps: int | None = None  # gradient-ascent steps (None: the preset's own)
    render_preset: str = DEFAULT_PRESET
    examples_k: int = 9  # real top examples per unit
    prototypes: bool = True  # render one image per class (classes page)
    samples_per_class: int = 2  # validation images per class on the classes page
    heatmap_methods: tuple[str, ...] = ("gradcam", "integrated_gradients", "occlusion")
    faithfulness_steps: int = 28  # deletion/insertion curve points
    sanity: bool = True  # model-randomization check of each heatmap method (one image per class)
    evolution_units: int = 8  # units per conv layer followed across epochs
    evolution_layers: int = 2  # how many conv layers (first and last ones) the evolution shows
    evolution_epochs: int | None = None  # snapshots shown, evenly spaced (None: every epoch)
    batch_size: int = 256
    seed: int = 0
    quick: bool = False

    @classmethod
    def preset(cls, quick: bool = False, **overrides: Any) -> AtlasOptions:
        """The full preset, or the quick one (a small atlas in well under a minute on 2 cores)."""
        base = cls()
        if quick:
            base = replace(
                base,
                max_units=8,
                max_dense_units=8,
                examples_k=9,
                samples_per_class=1,
                heatmap_methods=("gradcam", "gradient_x_input"),
                faithfulness_steps=14,
                sanity=False,
                evolution_units=4,
                evolution_epochs=4,
                evolution_layers=2,
                quick=True,
            )
        return base.with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> AtlasOptions:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConvlensError(
                f"unknown atlas option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        clean = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        return replace(self, **clean)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
