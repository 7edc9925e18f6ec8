"""Errors a user can act on: each message is one line saying what is wrong and what to do.

The CLI prints ``str(error)`` and exits with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

MAX_MESSAGE = 1000  # characters: a message quoting a pasted blob stays readable


class ConvlensError(Exception):
    """Base of every error convlens raises on purpose (bad input, not a bug).

    ``str()`` is always one line: a message that quotes a user's text (a path or a value with
    a newline in it) must not turn into several lines on the terminal.
    """

    def __str__(self) -> str:
        text = " ".join(super().__str__().split())
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


class CheckpointError(ConvlensError):
    """A checkpoint folder or model file is missing, corrupt or of an unknown kind."""


class DataError(ConvlensError):
    """A dataset name, file or image cannot be read or does not fit the model."""


class UnknownNameError(ConvlensError):
    """A model, dataset, layer, method or preset name that does not exist."""


class UnitError(ConvlensError):
    """A unit string that does not parse or does not resolve against the model."""


class OutputError(ConvlensError, OSError):
    """An output path cannot be written (a file where a folder should be, no permission, full
    disk, a folder that holds someone else's files, another build holding it).

    Also an ``OSError``, so code that tolerates a failed optional write (a cache in a read-only
    checkpoint folder) keeps working."""


class TrainingError(ConvlensError):
    """Training could not produce a usable model (the loss became NaN or infinite)."""


def did_you_mean(name: str, choices: list[str] | tuple[str, ...], what: str) -> str:
    """One-line message for an unknown ``name``, listing the valid ``choices``."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(choices) if len(choices) <= 30 else ", ".join(choices[:30]) + ", ..."
    return f"unknown {what} {name!r}.{hint} Valid: {listed}."
