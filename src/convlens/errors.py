"""Errors a user can act on: each message is one line saying what is wrong and what to do.

The CLI prints ``str(error)`` and exits with status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations


class ConvlensError(Exception):
    """Base of every error convlens raises on purpose (bad input, not a bug)."""


class CheckpointError(ConvlensError):
    """A checkpoint folder or model file is missing, corrupt or of an unknown kind."""


class DataError(ConvlensError):
    """A dataset name, file or image cannot be read or does not fit the model."""


class UnknownNameError(ConvlensError):
    """A model, dataset, layer, method or preset name that does not exist."""


class UnitError(ConvlensError):
    """A unit string that does not parse or does not resolve against the model."""


def did_you_mean(name: str, choices: list[str] | tuple[str, ...], what: str) -> str:
    """One-line message for an unknown ``name``, listing the valid ``choices``."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(choices) if len(choices) <= 30 else ", ".join(choices[:30]) + ", ..."
    return f"unknown {what} {name!r}.{hint} Valid: {listed}."
