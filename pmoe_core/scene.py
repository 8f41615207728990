"""The one in-memory point-cloud record that every source yields and every consumer takes."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from pmoe_core.errors import FormatError

IGNORE_INDEX = -1

# Field name -> (dtype, per-point width; 0 means a 1-D array).
FIELD_SPECS: dict[str, tuple[np.dtype, int]] = {
    "coord": (np.dtype(np.float32), 3),
    "color": (np.dtype(np.uint8), 3),
    "normal": (np.dtype(np.float32), 3),
    "strength": (np.dtype(np.float32), 0),
    "segment": (np.dtype(np.int16), 0),
    "instance": (np.dtype(np.int32), 0),
}
OPTIONAL_FIELDS = ("color", "normal", "strength", "segment", "instance")


@dataclass
class Scene:
    """A point cloud in metres, z up.

    `segment` indexes the source dataset's benchmark label space (-1 = ignore); `None` means the scene carries no
    labels at all (e.g. a test split), which is different from "every point ignored".
    """

    name: str
    coord: np.ndarray
    color: np.ndarray | None = None
    normal: np.ndarray | None = None
    strength: np.ndarray | None = None
    segment: np.ndarray | None = None
    instance: np.ndarray | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            if value is not None:
                dtype, _ = FIELD_SPECS[f.name]
                setattr(self, f.name, np.ascontiguousarray(value, dtype=dtype))

    def __len__(self) -> int:
        return int(self.coord.shape[0])

    @property
    def num_points(self) -> int:
        return len(self)

    def present_fields(self) -> list[str]:
        return [name for name in FIELD_SPECS if getattr(self, name) is not None]

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.present_fields()}

    def validate(self, source: str | None = None) -> "Scene":
        """Raise FormatError (naming `source`) if shapes disagree or coordinates are not finite."""
        where = source or self.name
        n = self.coord.shape[0] if self.coord.ndim == 2 else -1
        if self.coord.ndim != 2 or self.coord.shape[1] != 3:
            raise FormatError(f"coord must be (N, 3), got {self.coord.shape}", where)
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            _, width = FIELD_SPECS[name]
            expected = (n, width) if width else (n,)
            if value.shape != expected:
                raise FormatError(f"{name} has shape {value.shape}, expected {expected} for {n} points", where)
        if n == 0:
            raise FormatError("scene has no points", where)
        if not np.isfinite(self.coord).all():
            bad = int((~np.isfinite(self.coord)).any(axis=1).sum())
            raise FormatError(f"{bad} points have NaN or infinite coordinates", where)
        if self.normal is not None and not np.isfinite(self.normal).all():
            raise FormatError("normals contain NaN or infinite values", where)
        return self

    def subset(self, index: np.ndarray) -> "Scene":
        """The same scene restricted to `index` (a boolean mask or integer indices)."""
        return Scene(name=self.name, **{k: v[index] for k, v in self.arrays().items()})
