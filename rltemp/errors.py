"""Errors that the CLI turns into one clear line and exit status 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RltempError(Exception):
    """A user-facing error: bad input, a missing file, an incompatible artefact."""


class ConfigError(RltempError, ValueError):
    """A configuration value or override is invalid; the message names the field."""


class UnknownNameError(RltempError, KeyError):
    """A registry lookup failed; the message lists the valid names and a suggestion."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        msg = f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"
        super().__init__(msg)
        self.msg = msg

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return self.msg


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""
