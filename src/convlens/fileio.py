"""Every output goes through here: atomic writes, and one-line errors for file-system failures.

- Atomic: a file is written to a temp file beside it, flushed to disk, then renamed onto its
  name, so a killed run never leaves a half-written file that a reader would trust.
- Permissions: files get the user's umask (0644 for the usual 022), like any other program's
  output, so an atlas copied to a web server or shared with a colleague can be read.
- Symbolic links: writing to a link writes through it (the file it points to is replaced); the
  link itself is never replaced by a file.
- Errors: an ``OSError`` on an output path (no permission, read-only or full disk, a file where
  a folder should be) becomes an :class:`OutputError` naming the path and what to do.
  :func:`check_output` finds most of these before a command starts work that takes time.
"""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, Literal

from .errors import OutputError

# Temp files are ".NAME.XXXXXXXX.tmp" beside NAME (mkstemp's 8 random characters).
TEMP_PREFIX = "."
TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")
_umask_lock = threading.Lock()
_watchers: list[tuple[str, Callable[[Path], None]]] = []
_watch_lock = threading.Lock()


def umask() -> int:
    """The process's umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:  # elsewhere: set and restore (briefly 0o022 for other threads)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def temp_target(name: str) -> str | None:
    """The file name a leftover temp file was meant to become, or None if ``name`` is not one."""
    match = _TEMP_NAME.match(name)
    return match["name"] if match else None


# --- errors -----------------------------------------------------------------------------------


def _blocking_file(path: Path) -> Path | None:
    """The nearest ancestor of ``path`` (or ``path`` itself) that exists but is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def describe_os_error(path: str | Path, exc: OSError) -> str:
    """One line for an OS error met while writing ``path``: what went wrong, what to do."""
    path = Path(path)
    code = exc.errno
    advice = "choose another output path"
    if code in (errno.ENOTDIR, errno.EEXIST):
        blocker = _blocking_file(path)
        if blocker is not None and blocker != path:
            return f"cannot write {path}: {blocker} is a file, not a folder; {advice}"
        if blocker == path:
            return f"cannot write {path}: it exists and is a file, not a folder; {advice}"
    reasons = {
        errno.EACCES: ("permission denied", "choose a folder you can write to"),
        errno.EPERM: ("the operation is not permitted (an immutable or protected folder?)",
                      "choose a folder you can write to"),
        errno.EROFS: ("the file system is read-only", advice),
        errno.ENOSPC: ("no space left on the device", "free some space or choose another disk"),
        errno.EDQUOT: ("the disk quota is exceeded", "free some space or choose another disk"),
        errno.EISDIR: ("it is a folder", "give a file name, or remove the folder"),
        errno.ENAMETOOLONG: ("a name in it is too long", "choose a shorter path"),
        errno.ELOOP: ("it goes through a loop of symbolic links", "fix or remove the links"),
        errno.ENOENT: ("that place cannot hold new files", advice),
        errno.ENOTDIR: ("a part of it is not a folder", advice),
        errno.EEXIST: ("a file of that name is in the way", advice),
    }  # fmt: skip
    default = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    reason, todo = reasons.get(code or -1, (default, advice))
    return f"cannot write {path}: {reason}; {todo}"


@contextmanager
def output_errors(path: str | Path) -> Iterator[None]:
    """Turn any ``OSError`` raised inside into a one-line :class:`OutputError` about ``path``."""
    try:
        yield
    except OSError as exc:
        raise OutputError(describe_os_error(path, exc)) from exc


# --- checks before work -------------------------------------------------------------------------


def check_output(path: str | Path, *, kind: Literal["dir", "file"] = "dir") -> Path:
    """Refuse an output path that cannot be written, before any work (and without writing).

    ``kind``: the path names a folder to write into, or a file. Checks: not empty, not a broken
    link, not a file where a folder is wanted (or the reverse), no file among its parents, and
    the nearest existing folder accepts a new file (permissions, read-only or special file
    systems such as /proc): a probe file is created there and removed at once.
    """
    if not str(path).strip():
        raise OutputError("the output path is empty; give a file or folder name")
    path = Path(path)
    if path.is_symlink() and not path.exists():
        target = os.readlink(path)
        raise OutputError(f"{path} is a broken symbolic link (to {target}); fix or remove it")
    real = Path(os.path.realpath(path))
    if real.exists():
        if kind == "dir" and not real.is_dir():
            raise OutputError(f"{path} is a file, not a folder; give a folder (or a new name)")
        if kind == "file" and real.is_dir():
            raise OutputError(f"{path} is a folder; give a file name")
        if kind == "file" and not real.is_file():
            raise OutputError(_not_regular(path))
    probe = real if kind == "dir" and real.is_dir() else real.parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write {path}: {probe} is a file, not a folder; choose "
                          "another output path")  # fmt: skip
    try:
        times = os.stat(probe)
        fd, name = tempfile.mkstemp(prefix=".convlens-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputError(describe_os_error(path, exc)) from None
    with suppress(OSError):  # the folder looks untouched: same modification time as before
        os.utime(probe, ns=(times.st_atime_ns, times.st_mtime_ns))
    return path


# --- writing ------------------------------------------------------------------------------------


@contextmanager
def watch_writes(root: str | Path, callback: Callable[[Path], None]) -> Iterator[None]:
    """Call ``callback(path)`` before any file under ``root`` is written (while inside).

    How a build keeps a list of everything it wrote, even files written by code that knows
    nothing of the list (a new stage, a page): the list is saved before the file exists, so
    after any kill the builder knows which files in its folder are its own.
    """
    entry = (os.path.abspath(root), callback)
    with _watch_lock:
        _watchers.append(entry)
    try:
        yield
    finally:
        with _watch_lock:
            _watchers.remove(entry)


def _notify(path: Path) -> None:
    if not _watchers:
        return
    where = os.path.abspath(path)
    with _watch_lock:
        watchers = list(_watchers)
    for root, callback in watchers:
        if where.startswith(root + os.sep):
            callback(Path(where))


def _not_regular(path: Path) -> str:
    return (
        f"{path} is not a regular file (a device, pipe or socket); give the name of a file to "
        "write (files are replaced whole, never written into)"
    )


def _write_through(path: Path) -> Path:
    """Where writing ``path`` really goes: the file a symbolic link points to. Never a device
    or pipe (replacing ``/dev/null`` by a PNG would be a disaster)."""
    real = Path(os.path.realpath(path)) if path.is_symlink() else path
    if real.is_dir():
        what = f"a link to the folder {real}" if real != path else "a folder"
        raise OutputError(f"{path} is {what}; give a file name")
    if real.exists() and not real.is_file():
        raise OutputError(_not_regular(path))
    return real


def _missing_dirs(folder: Path) -> list[Path]:
    """The folders ``mkdir(parents=True)`` would create for ``folder``, outermost first."""
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    return missing[::-1]


def ensure_dir(path: str | Path) -> Path:
    """``mkdir -p`` with one-line errors."""
    path = Path(path)
    with output_errors(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    On failure nothing is left: the temp file is removed, and so are the folders created for it.
    """
    _notify(Path(path))
    target = _write_through(Path(path))
    created = _missing_dirs(target.parent)
    tmp_path: Path | None = None
    done = False
    try:
        with output_errors(path):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(
                prefix=f"{TEMP_PREFIX}{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent
            )
            tmp_path = Path(tmp)
            try:
                os.fchmod(fd, 0o666 & ~umask())
            finally:
                os.close(fd)
            yield tmp_path
            with open(tmp_path, "rb") as f:  # flushed to disk before it takes the real name
                os.fsync(f.fileno())
            os.replace(tmp_path, target)
        done = True
    finally:
        if not done:
            if tmp_path is not None:
                with suppress(OSError):
                    tmp_path.unlink(missing_ok=True)
            for folder in reversed(created):
                try:
                    folder.rmdir()
                except OSError:
                    break


def write_atomic(path: str | Path, writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def write_json(path: str | Path, data: Any) -> Path:
    """Write pretty JSON atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
