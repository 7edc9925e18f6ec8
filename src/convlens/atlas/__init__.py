"""The atlas: one folder that shows everything convlens knows about a model, readable offline.

>>> from convlens.atlas import build_atlas
>>> index = build_atlas(lens, "atlas/", quick=True)   # -> atlas/index.html
"""

from .build import build_atlas
from .manifest import SCHEMA, VERSION, load_manifest, referenced_files, validate
from .options import AtlasOptions
from .sprites import SpriteReader
from .stages import STAGE_ORDER

__all__ = [
    "SCHEMA",
    "STAGE_ORDER",
    "VERSION",
    "AtlasOptions",
    "SpriteReader",
    "build_atlas",
    "load_manifest",
    "referenced_files",
    "validate",
]
