"""Errors that recloop shows to its users.

Every error a user can cause (a bad file, an unknown id, a wrong option) is raised as a
:class:`RecloopError` subclass whose message names the problem *and* the fix. The CLI prints
these messages on one line instead of a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class RecloopError(Exception):
    """Base class of every error recloop raises on purpose."""


class DataError(RecloopError, ValueError):
    """The input data is malformed: missing columns, NaNs, duplicates, an empty file, ..."""


class SourceUnavailableError(RecloopError, RuntimeError):
    """A built-in dataset could not be fetched and is not cached."""


class UnknownIdError(RecloopError, KeyError):
    """A user or item id (external id or index) that the vocabulary does not know."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class ConfigError(RecloopError, ValueError):
    """An unknown option, a bad value, or an incompatible combination of options."""


class CheckpointError(RecloopError, RuntimeError):
    """A checkpoint or run directory that is missing, incomplete, or of another format."""


class NotFittedError(RecloopError, RuntimeError):
    """A model was used before ``fit`` was called."""


def moved(module: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for names that moved: importing one from its old home raises
    an ``ImportError`` that names the new one (``homes``: name → new module)."""

    def __getattr__(name: str) -> Any:
        if name in homes:
            raise ImportError(
                f"{module}.{name} has moved: import it from {homes[name]} "
                "(see the README's 'The house: layers' section)"
            )
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
