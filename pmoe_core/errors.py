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
        """One line, whatever the file or scene names hold (control characters are shown escaped)."""
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        return one_line(text)


def one_line(text: str) -> str:
    """`text` with newlines and other control characters escaped, so a message stays one line."""
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


def os_error_line(err: OSError) -> str:
    """An OSError as the one line the CLI prints: the file, then what the system said (disk full, permission...)."""
    what = err.strerror or str(err) or type(err).__name__
    names = [str(n) for n in (err.filename, err.filename2) if n is not None]
    return one_line(f"{' -> '.join(names)}: {what}" if names else what)


class BadInput(PmoeError):
    """An option or argument that cannot be used (unknown dataset, bad range, ...)."""


class MissingFile(PmoeError):
    """A file or folder the operation needs is not there."""


class FormatError(PmoeError):
    """A file exists but its content breaks the format we read (truncated, wrong header, count mismatch...)."""


class StoreError(PmoeError):
    """A scene store is missing, locked, or inconsistent."""
