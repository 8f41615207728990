"""Progress reporting without a UI dependency: library code calls a callback, only the CLI draws bars."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def __call__(self, *, total: int | None = None, advance: int = 0, message: str | None = None) -> None: ...


def silent(*, total: int | None = None, advance: int = 0, message: str | None = None) -> None:
    """The default callback: report nothing."""
