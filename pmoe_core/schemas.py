"""JSON Schemas of every file pmoe writes for others to read (they live in the repository's `schemas/`)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from pmoe_core.errors import FormatError

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict[str, Any]:
    """The schema `schemas/<name>.schema.json`."""
    path = SCHEMA_DIR / f"{name}.schema.json"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def validate(instance: Any, name: str, source: str | Path | None = None) -> None:
    """Raise FormatError naming `source` and the first violated rule, if `instance` breaks schema `name`."""
    validator = jsonschema.Draft202012Validator(load_schema(name))
    error = next(iter(sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise FormatError(f"does not match schema {name!r} at {where}: {error.message}", source)
