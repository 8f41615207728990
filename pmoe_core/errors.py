"""User-facing failures.

Anything raised as a `PmoeError` is the user's input being wrong (or missing), not a bug: the CLI prints it as one
line on stderr and exits 1. Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class PmoeError(Exception):
    """A problem with what the user gave us, tied to the file (or URL) it came from."""

    def __init__(self, problem: str, path: str | Path | None = None):
        self.problem = problem
        self.path = str(path) if path is not None else None
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem


class BadInput(PmoeError):
    """An option or argument that cannot be used (unknown dataset, bad range, ...)."""


class MissingFile(PmoeError):
    """A file or folder the operation needs is not there."""


class FormatError(PmoeError):
    """A file exists but its content breaks the format we read (truncated, wrong header, count mismatch...)."""


class StoreError(PmoeError):
    """A scene store is missing, locked, or inconsistent."""
