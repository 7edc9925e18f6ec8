"""Progress for long work, the same everywhere: a bar where a person watches, a line in a log.

Every analysis and command takes ``progress``: ``None`` (the library default) shows a bar only
in interactive use, a terminal or a Jupyter kernel; ``True`` (the CLI default, off with
``--quiet``) also reports when the output is a file or a pipe, as one plain line per finished
stage instead of a bar, so logs get no control codes; ``False`` shows nothing.

In a notebook the bar is a widget when ipywidgets is installed and tqdm's text bar otherwise
(never ``tqdm.auto``, which warns "IProgress not found" without ipywidgets).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, Literal, Protocol, TypeVar

T = TypeVar("T")
Mode = Literal["bar", "lines", "off"]


class Progress(Protocol):
    """What work reports to: count finished items, name the current one, grow the total."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None: ...
    def set_description(self, desc: str | None = None, refresh: bool = True) -> None: ...
    def add_total(self, n: int) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Progress: ...
    def __exit__(self, *exc: object) -> None: ...


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython), where stderr is no terminal."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def interactive() -> bool:
    """A person is likely watching: a Jupyter kernel, or stderr is a terminal."""
    return in_notebook() or _isatty(sys.stderr)


def mode(progress: bool | None) -> Mode:
    """How ``progress`` shows here: a live bar, plain lines, or nothing."""
    if progress is False:
        return "off"
    if interactive():
        return "bar"
    return "lines" if progress else "off"


class _Silent:
    """Counts nothing, prints nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        pass

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        pass

    def add_total(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is not None:  # work that failed reports its error alone, not a "done" line
            self.abandon()
        self.close()

    def abandon(self) -> None:
        """End without a closing line (the stage did not finish)."""


class _Lines(_Silent):
    """For logs: one line when the stage ends, ``desc: N units in S s`` (no control codes)."""

    def __init__(self, desc: str, unit: str, initial: int, line: bool) -> None:
        self.desc, self.unit, self.line = desc.strip(), unit, line
        self.n, self.initial, self.start, self.closed = initial, initial, time.perf_counter(), False

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """A new stage of the same work (e.g. render's fresh starts): end the last one's line."""
        if desc and desc.strip() != self.desc:
            self._report()
            self.desc, self.initial, self.start = desc.strip(), self.n, time.perf_counter()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._report()

    def abandon(self) -> None:
        self.closed = True

    def _report(self) -> None:
        done = self.n - self.initial
        if self.line and done > 0:
            unit = self.unit if done == 1 else f"{self.unit}s"
            seconds = time.perf_counter() - self.start
            print(f"{self.desc}: {done} {unit} in {seconds:.1f} s", file=sys.stderr, flush=True)


def _tqdm_class() -> tuple[Any, bool]:
    """tqdm's notebook widget when it can draw (True), its text bar otherwise (False)."""
    if in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        try:
            from tqdm.notebook import IProgress, tqdm_notebook

            if IProgress is not None:
                return tqdm_notebook, True
        except ImportError:
            pass
    from tqdm.std import tqdm

    return tqdm, False


class _Bar:
    """A tqdm bar behind the :class:`Progress` interface.

    tqdm's text bar in a notebook cannot move the cursor between lines, so there nested bars
    are not stacked, and each is left showing its final state (a line per finished stage)
    rather than cleared to an empty output area.
    """

    def __init__(self, **kwargs: Any) -> None:
        cls, widget = _tqdm_class()
        if in_notebook() and not widget:
            kwargs.update(position=None, leave=True)
        self.bar = cls(**kwargs)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.bar.set_postfix_str(text, refresh=refresh)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.bar.set_description(desc, refresh=refresh)

    def add_total(self, n: int) -> None:
        self.bar.total = (self.bar.total or 0) + n
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bar(
    total: int | None = None,
    *,
    desc: str,
    unit: str = "item",
    progress: bool | None = None,
    initial: int = 0,
    position: int | None = None,
    leave: bool = False,
    line: bool = True,
) -> Progress:
    """A progress reporter for ``total`` items of work (see the module docstring for modes).

    ``position`` stacks nested bars in a terminal; ``line=False`` skips the plain closing line
    (for callers that print their own per-stage line, e.g. training's epoch summary).
    """
    how = mode(progress)
    if how == "off":
        return _Silent()
    if how == "lines":
        return _Lines(desc, unit, initial, line)
    return _Bar(total=total, desc=desc, unit=unit, initial=initial, position=position,
                leave=leave, dynamic_ncols=True, file=sys.stderr)  # fmt: skip


def track(
    items: Iterable[T],
    *,
    desc: str,
    unit: str = "item",
    progress: bool | None = None,
    total: int | None = None,
    leave: bool = False,
    line: bool = True,
) -> Iterator[T]:
    """Iterate ``items`` while reporting each one done (the bar closes however the loop ends)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(total, desc=desc, unit=unit, progress=progress, leave=leave, line=line) as b:
        for item in items:
            yield item
            b.update(1)


def write(text: str) -> None:
    """Print a line to stdout without breaking a live bar."""
    from tqdm.std import tqdm

    tqdm.write(text)
