"""The build state file: which tasks of an atlas finished, and which files the atlas wrote.

``atlas-state.json`` holds, per finished task, its manifest fragment and timing, and the
fingerprint (weights, options, data) the work was done for; it is rewritten atomically after
every task. ``atlas-files.txt`` lists every file the atlas has written into its folder, one per
line, each appended *before* the file is written (see :func:`convlens.fileio.watch_writes`; an
append survives a kill, and costs nothing like rewriting the state per file). So after Ctrl-C or
a kill:

- ``--resume`` recomputes exactly the unfinished tasks, and removes the temp files a killed
  write left behind;
- a fresh build removes exactly the files of the earlier atlas, and nothing else: a folder that
  also holds other files is refused unless ``force`` (and even then those files are kept);
- a fresh build never silently replaces an atlas built with other options or data (a full
  atlas by a ``--quick`` one) unless ``force``.

One build at a time per folder: :func:`hold_lock` takes an OS lock (filelock) and says who
holds it when another build tries.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from ..errors import ConvlensError, OutputError
from ..fileio import (
    describe_os_error,
    ensure_dir,
    output_errors,
    temp_target,
    write_json,
    write_text,
)
from ..lens import Lens
from .manifest import MANIFEST, referenced_files

STATE = "atlas-state.json"
STATE_SCHEMA = "convlens-atlas-state"
FILES = "atlas-files.txt"
LOCK = ".convlens-atlas.lock"
HOLDER = ".convlens-atlas.holder.json"
# Files of the atlas's own bookkeeping (never listed as written pictures or pages).
BOOKKEEPING = (STATE, FILES, MANIFEST, LOCK, HOLDER)
CHUNKS = ".chunks"  # finished render chunks / mining shards of unfinished tasks (distributed)


def weights_digest(lens: Lens) -> str:
    """SHA-256 of the model's parameters and buffers: the identity of the weights shown."""
    h = hashlib.sha256()
    for name, tensor in lens.model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# --- the lock ----------------------------------------------------------------------------------


def check_lock(out: Path) -> None:
    """Refuse at once if another build holds the folder's lock (creates nothing)."""
    from filelock import FileLock, Timeout

    if not (out / LOCK).is_file():
        return
    lock = FileLock(str(out / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:  # a TimeoutError, so an OSError: caught first
        raise _busy(out) from None
    except OSError as exc:
        raise OutputError(describe_os_error(out / LOCK, exc)) from None
    lock.release()


def _busy(out: Path) -> OutputError:
    return OutputError(
        f"another convlens build is writing {out} ({_holder(out)}); wait for it to finish "
        "or stop it, or choose another --out"
    )


@contextmanager
def hold_lock(out: Path) -> Iterator[None]:
    """Hold the folder's build lock (creating the folder); refuse at once if a build holds it.

    The lock is an OS lock, released by the system even when the holder is killed; a small
    JSON beside it says who holds it (process, host, start, command) for the refusal message.
    """
    from filelock import FileLock, Timeout

    ensure_dir(out)
    lock = FileLock(str(out / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:  # a TimeoutError, so an OSError: caught first
        raise _busy(out) from None
    except OSError as exc:
        raise OutputError(describe_os_error(out / LOCK, exc)) from None
    try:
        write_json(out / HOLDER, {"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": now(), "command": " ".join(sys.argv)})  # fmt: skip
        yield
    finally:
        with suppress(OSError):
            (out / HOLDER).unlink()
        lock.release()


def _holder(out: Path) -> str:
    try:
        info = json.loads((out / HOLDER).read_text(encoding="utf-8"))
        text = f"process {int(info['pid'])} on {info['host']}, started {info['started']}"
        command = str(info.get("command", "")).strip()
        return f"{text}: {command[:80]}" if command else text
    except (OSError, ValueError, KeyError, TypeError):
        return "it is starting or stopping"


# --- what is in the folder ---------------------------------------------------------------------


def _read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(data, None), or (None, why it cannot be read); (None, None) when there is no file."""
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return None, type(exc).__name__
    if not isinstance(data, dict):
        return None, "not a JSON object"
    return data, None


def _fragment_files(tasks: Any) -> set[str]:
    """Files named by finished tasks' fragments (for states written before ``files`` existed)."""
    files: set[str] = set()
    if not isinstance(tasks, dict):
        return files
    for task in tasks.values():
        result = task.get("result", {}) if isinstance(task, dict) else {}
        for kind in ("sprites", "figures"):
            for entry in (result.get(kind) or {}).values():
                if isinstance(entry, dict) and isinstance(entry.get("file"), str):
                    files.add(entry["file"])
    return files


class Folder:
    """What an atlas folder holds: the earlier atlas's state, manifest and files, and the rest."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.state, self.state_problem = _read_json(out / STATE)
        self.manifest, _ = _read_json(out / MANIFEST)
        known: set[str] = set(BOOKKEEPING) | read_files(out)
        if self.state and self.state.get("schema") == STATE_SCHEMA:
            known |= _fragment_files(self.state.get("tasks"))
        if self.manifest:
            with suppress(Exception):  # a damaged manifest names no files
                known |= referenced_files(self.manifest)
        self.known = known
        if not out.is_dir():
            self.files: list[str] = []
        elif self.is_atlas:
            self.files = sorted(_all_files(out))
        else:  # not an atlas: what is at the top says enough (never walk someone's home folder)
            self.files = sorted(p.name for p in out.iterdir() if p.name not in BOOKKEEPING)
        self.temps = [f for f in self.files if _leftover(f, known)]
        self.foreign = [f for f in self.files if f not in known and f not in self.temps]
        self.ours = [f for f in self.files if f in known]

    @property
    def is_atlas(self) -> bool:
        return self.state is not None or self.state_problem is not None or bool(self.manifest)

    def earlier(self) -> dict[str, Any] | None:
        """The fingerprint (or, lacking a state, the options) of the atlas in the folder."""
        if self.state and self.state.get("schema") == STATE_SCHEMA:
            return dict(self.state.get("fingerprint") or {})
        if self.manifest and isinstance(self.manifest.get("options"), dict):
            return {"options": self.manifest["options"]}
        return None


def read_files(out: Path) -> set[str]:
    """The files an atlas claimed in ``atlas-files.txt`` (empty when there is none)."""
    try:
        text = (out / FILES).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {line for line in text.splitlines() if line and not line.startswith(("/", "../"))}


def _all_files(out: Path) -> Iterator[str]:
    for folder, _dirs, names in os.walk(out):
        for name in names:
            yield (Path(folder) / name).relative_to(out).as_posix()


def _leftover(rel: str, known: set[str]) -> bool:
    """A temp file a killed write left beside one of the atlas's files."""
    folder, _, name = rel.rpartition("/")
    target = temp_target(name)
    return target is not None and (f"{folder}/{target}" if folder else target) in known


def _kind(opts: dict[str, Any]) -> str:
    return "quick" if opts.get("quick") else "full"


def check_folder(out: Path, fingerprint: dict[str, Any], *, resume: bool, force: bool) -> Folder:
    """Refuse, before anything is written, a folder a build must not touch."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file; give --out a folder for the atlas")
    folder = Folder(out)
    if folder.foreign and not force:
        first = folder.foreign[0]
        more = f" and {len(folder.foreign) - 1} more" if len(folder.foreign) > 1 else ""
        what = "files that are not part of its atlas" if folder.is_atlas else "no atlas"
        raise OutputError(
            f"{out} is not empty and holds {what} ({first!r}{more}); choose a new or empty "
            "--out folder, or pass --force to build beside them (they are kept)"
        )
    if resume and folder.state_problem is not None:
        raise ConvlensError(
            f"{out / STATE} is corrupt ({folder.state_problem}), so the finished parts of the "
            "atlas cannot be trusted; drop --resume to rebuild it from scratch"
        )
    if resume and folder.state is not None:
        if folder.state.get("schema") != STATE_SCHEMA:
            raise ConvlensError(f"{out / STATE} is not an atlas state file; drop --resume to "
                                "rebuild the atlas from scratch")  # fmt: skip
        earlier = folder.state.get("fingerprint") or {}
        if earlier != fingerprint:
            settings = [k for k in ("options", "data") if earlier.get(k) != fingerprint.get(k)]
            rebuild = "drop --resume and pass --force to replace it" if settings else (
                "drop --resume to rebuild it")  # fmt: skip
            differ = " and ".join(settings) or "weights"
            raise ConvlensError(
                f"the atlas in {out} was built from other weights, data or options (its {differ} "
                f"differ); {rebuild}, or resume with the settings it used"
            )
        return folder
    earlier = folder.earlier()
    pictures = [f for f in folder.ours if f not in BOOKKEEPING]
    if earlier is not None and pictures and not force:
        keys = [k for k in ("options", "data") if k in earlier]
        if any(earlier[k] != fingerprint.get(k) for k in keys):
            old, new = _kind(earlier.get("options") or {}), _kind(fingerprint.get("options") or {})
            raise OutputError(
                f"{out} holds a {old} atlas ({len(pictures)} files) built with other options "
                f"or data than this {new} one; pass --force to replace it, or choose another --out"
            )
    return folder


class AtlasState:
    """Finished tasks and written files of one atlas folder, persisted in ``atlas-state.json``."""

    def __init__(
        self, out: Path, fingerprint: dict[str, Any], tasks: dict[str, Any], files: set[str]
    ) -> None:
        self.out = out
        self.fingerprint = fingerprint
        self.tasks = tasks
        self.files = files
        self._journal: Any = None
        self._claiming = threading.Lock()  # writers may run in threads (an executor)

    @classmethod
    def open(
        cls, out: Path, fingerprint: dict[str, Any], *, resume: bool, force: bool = False
    ) -> AtlasState:
        """The state to build on (call while holding :func:`hold_lock`).

        Resuming keeps the finished tasks and removes leftover temp files; a fresh build first
        removes the earlier atlas's files (only those). See :func:`check_folder` for refusals.
        """
        folder = check_folder(out, fingerprint, resume=resume, force=force)
        for rel in folder.temps:
            with output_errors(out / rel):
                (out / rel).unlink(missing_ok=True)
        if resume and folder.state is not None:
            tasks = folder.state.get("tasks") or {}
            state = cls(out, fingerprint, dict(tasks), read_files(out) | _fragment_files(tasks))
        else:
            cls.clear(out, folder.ours)
            with output_errors(out / FILES):
                (out / FILES).write_text("", encoding="utf-8")
            state = cls(out, fingerprint, {}, set())
        state.save()
        return state

    @staticmethod
    def clear(out: Path, files: list[str]) -> None:
        """Remove these files of an earlier atlas, then the folders they leave empty."""
        keep = {LOCK, HOLDER, FILES}
        parents: set[Path] = set()
        for rel in files:
            if rel in keep:
                continue
            with output_errors(out / rel):
                (out / rel).unlink(missing_ok=True)
            parents.update(p for p in (out / rel).parents if p != out and out in p.parents)
        for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            with suppress(OSError):
                folder.rmdir()  # only when empty: someone else's file keeps it

    def claim(self, path: Path) -> None:
        """Record that the atlas is about to write ``path`` (persisted before it is written)."""
        rel = Path(os.path.relpath(path, os.path.abspath(self.out))).as_posix()
        if rel in BOOKKEEPING or rel in self.files:
            return
        with self._claiming, output_errors(self.out / FILES):
            if self._journal is None:
                self._journal = open(self.out / FILES, "a", encoding="utf-8")  # noqa: SIM115
            self._journal.write(rel + "\n")
            self._journal.flush()  # in the kernel's hands: survives a kill of this process
            self.files.add(rel)

    def forget(self, folder: str) -> None:
        """Drop the journal's entries under ``folder``, which the build itself removed (its
        finished chunks, once every task is recorded), so the journal lists what exists."""
        prefix = folder.rstrip("/") + "/"
        kept = sorted(f for f in self.files if not f.startswith(prefix))
        if len(kept) == len(self.files):
            return
        with self._claiming:
            self.close()
            write_text(self.out / FILES, "".join(f + "\n" for f in kept))
            self.files = set(kept)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

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
