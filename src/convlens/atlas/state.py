"""The build state file: which tasks of an atlas finished, with what they produced.

``atlas-state.json`` holds, per finished task, its manifest fragment and timing, plus the
fingerprint (weights, options, data) the work was done for. It is rewritten atomically after
every task, so ``--resume`` after Ctrl-C or a kill recomputes exactly the unfinished tasks.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from ..errors import ConvlensError
from ..fileio import write_json
from ..lens import Lens
from .manifest import MANIFEST

STATE = "atlas-state.json"
STATE_SCHEMA = "convlens-atlas-state"
CHUNKS = ".chunks"  # finished render chunks / mining shards of unfinished tasks (distributed)
# What a fresh build may delete in an existing atlas folder (nothing else is touched).
OWNED = ("img", "units", "assets", MANIFEST, STATE, "SCHEMA.md", CHUNKS)
OWNED_GLOBS = ("*.html",)


def weights_digest(lens: Lens) -> str:
    """SHA-256 of the model's parameters and buffers: the identity of the weights shown."""
    h = hashlib.sha256()
    for name, tensor in lens.model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


class AtlasState:
    """Finished tasks of one atlas folder, persisted in ``atlas-state.json``."""

    def __init__(self, out: Path, fingerprint: dict[str, Any], tasks: dict[str, Any]) -> None:
        self.out = out
        self.fingerprint = fingerprint
        self.tasks = tasks

    @classmethod
    def open(cls, out: Path, fingerprint: dict[str, Any], *, resume: bool) -> AtlasState:
        """The state to build on: the folder's own when resuming, else a clean folder.

        A fresh build only deletes what an atlas writes, and refuses a non-empty folder that is
        not an atlas, so pointing ``--out`` at the wrong place cannot wipe anyone's files.
        """
        path = out / STATE
        is_atlas = path.is_file() or (out / MANIFEST).is_file()
        if out.exists() and not out.is_dir():
            raise ConvlensError(f"{out} is a file; give --out a folder for the atlas")
        if out.is_dir() and any(out.iterdir()) and not is_atlas:
            raise ConvlensError(
                f"{out} is not empty and holds no atlas; choose a new or empty --out folder"
            )
        if resume and path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                data = {}
            if data.get("schema") == STATE_SCHEMA:
                if data.get("fingerprint") != fingerprint:
                    raise ConvlensError(
                        f"the atlas in {out} was built from other weights, data or options; "
                        "drop --resume to rebuild it, or resume with the options it used"
                    )
                return cls(out, fingerprint, dict(data.get("tasks", {})))
        if is_atlas:
            cls.clear(out)
        out.mkdir(parents=True, exist_ok=True)
        state = cls(out, fingerprint, {})
        state.save()
        return state

    @staticmethod
    def clear(out: Path) -> None:
        for name in OWNED:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        for pattern in OWNED_GLOBS:
            for target in out.glob(pattern):
                target.unlink()

    def done(self, key: str) -> bool:
        return key in self.tasks

    def record(self, key: str, fragment: dict[str, Any], seconds: float) -> None:
        """Mark a task finished (its files are already written) and persist atomically."""
        self.tasks[key] = {"finished": now(), "seconds": round(seconds, 3), "result": fragment}
        self.save()

    def fragments(self, order: list[str]) -> list[dict[str, Any]]:
        """Results of finished tasks, in the given task order (unknown keys last)."""
        rank = {k: i for i, k in enumerate(order)}
        keys = sorted(self.tasks, key=lambda k: rank.get(k, len(rank)))
        return [self.tasks[k]["result"] for k in keys]

    def save(self) -> None:
        write_json(
            self.out / STATE,
            {"schema": STATE_SCHEMA, "version": 1, "fingerprint": self.fingerprint,
             "tasks": self.tasks},
        )  # fmt: skip
