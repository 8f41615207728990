"""The preprocessing recipes of the references, as plain lists of transforms.

Every recipe starts with `BoundExtent` (grid.py: far outliers are clamped into the voxel grid's reach, so no
step's memory depends on how far a stray point lies).

The dataset name only picks the domain (indoor/outdoor) and thereby the recipe; it never reaches the backbone.
Color normalisation (c / 127.5 - 1), the reference's NormalizeColor, happens in features.py for every recipe.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import pi
from typing import Literal

from pmoe_core.data import transforms as t
from pmoe_core.data.grid import BoundExtent, GridFragments, GridSample
from pmoe_core.errors import BadInput
from pmoe_core.vocab.label_spaces import INDOOR, OUTDOOR

Domain = Literal["indoor", "outdoor"]
INDOOR_GRID = 0.02
OUTDOOR_GRID = 0.05


def domain_of(dataset: str) -> Domain:
    if dataset in INDOOR:
        return "indoor"
    if dataset in OUTDOOR:
        return "outdoor"
    from pmoe_core.vocab.custom import registered  # a custom dataset states its domain in its store

    custom = registered(dataset)
    if custom is not None:
        return "indoor" if custom.domain == "indoor" else "outdoor"
    raise BadInput(f"dataset {dataset!r} is neither indoor {INDOOR} nor outdoor {OUTDOOR}")


def fields_domain(has_color: bool, has_strength: bool) -> Domain:
    """The domain of a cloud of no known dataset, from its fields: LiDAR strength without colour is outdoor."""
    return "outdoor" if has_strength and not has_color else "indoor"


Box = tuple[tuple[float, float, float], tuple[float, float, float]]  # (low xyz, high xyz) metres
# The Point-MoE release's joint indoor+outdoor config (configs/point_moe/indoor+outdoor.py, docs/recipes.md "Data"):
RELEASE_MAX_POINTS = 204800  # SphereCrop(point_max=204800) after grid sampling, every indoor dataset
RELEASE_SAMPLE_RATES: tuple[tuple[str, float], ...] = (("s3dis", 0.6), ("structured3d", 0.8))  # SphereCrop first
RELEASE_POINT_CLIP: Box = ((-35.2, -35.2, -4.0), (35.2, 35.2, 2.0))  # PointClip of SemanticKITTI and nuScenes


@dataclass(frozen=True)
class RecipeConfig:
    """The knobs a training run may turn (`pmoe train --max-points/--crop-rate/--point-clip`); the defaults are the
    Point-MoE release's data recipe. The crops and the clip act in training only; test recipes keep every point."""

    indoor_grid: float = INDOOR_GRID
    outdoor_grid: float = OUTDOOR_GRID
    max_points: int | None = RELEASE_MAX_POINTS  # indoor SphereCrop cap after grid sampling; None: no cap
    # (dataset, rate): an indoor dataset's samples are first sphere-cropped to int(rate * points) (release: S3DIS
    # 0.6, Structured3D 0.8), then capped by max_points. A dataset not listed gets no rate crop.
    sample_rates: tuple[tuple[str, float], ...] = RELEASE_SAMPLE_RATES
    outdoor_max_points: int | None = None  # the reference does not crop outdoor scans
    point_clip: Box | None = RELEASE_POINT_CLIP  # outdoor: coordinates clamped into this box; None: no clip
    elastic: bool = True

    def __post_init__(self) -> None:
        for name in ("max_points", "outdoor_max_points"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BadInput(f"{name} must be positive, got {value}")
        for dataset, rate in self.sample_rates:
            if not 0 < rate <= 1:
                raise BadInput(f"crop rate of {dataset} must be in (0, 1], got {rate}")
        if len({d for d, _ in self.sample_rates}) != len(self.sample_rates):
            raise BadInput(f"crop rates name a dataset twice: {self.sample_rates}")
        if self.point_clip is not None:
            low, high = self.point_clip
            if len(low) != 3 or len(high) != 3 or not all(lo < hi for lo, hi in zip(low, high)):
                raise BadInput(f"point clip needs low < high on x, y and z, got {low} .. {high}")

    def sample_rate(self, dataset: str) -> float | None:
        return dict(self.sample_rates).get(dataset)


def parse_rates(text: str) -> tuple[tuple[str, float], ...]:
    """'s3dis=0.6,structured3d=0.8' (or 'none') -> sample_rates; names resolved to canonical dataset names."""
    if text.strip().lower() in ("", "none"):
        return ()
    from pmoe_core.vocab.label_spaces import resolve_dataset

    rates = []
    for pair in text.split(","):
        name, sep, value = pair.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = None
        if not sep or rate is None:
            raise BadInput(f"--crop-rate expects DATASET=RATE[,DATASET=RATE...] or none, got {pair.strip()!r}")
        rates.append((resolve_dataset(name.strip()), rate))
    return tuple(rates)


def parse_clip(text: str) -> Box | None:
    """'x0,y0,z0,x1,y1,z1' (metres) or 'none' -> point_clip."""
    if text.strip().lower() in ("", "none"):
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6:
        raise BadInput(f"--point-clip expects six numbers x0,y0,z0,x1,y1,z1 or none, got {text!r}")
    return (values[0], values[1], values[2]), (values[3], values[4], values[5])


def indoor_train(cfg: RecipeConfig = RecipeConfig(), dataset: str | None = None) -> list[t.Transform]:
    recipe: list[t.Transform] = [
        BoundExtent(cfg.indoor_grid),  # far outliers clamped first: every step after costs memory by the points
        t.CenterShift(apply_z=True),
        t.RandomDropout(ratio=0.2, p=0.2),
        t.RandomRotate("z", pi, p=0.5, center=(0.0, 0.0, 0.0)),
        t.RandomRotate("x", pi / 64, p=0.5),
        t.RandomRotate("y", pi / 64, p=0.5),
        t.RandomScale(0.9, 1.1),
        t.RandomFlip(p=0.5),
        t.RandomJitter(sigma=0.005, clip=0.02),
    ]
    if cfg.elastic:
        recipe.append(t.ElasticDistortion())
    recipe += [
        t.ChromaticAutoContrast(p=0.2),
        t.ChromaticTranslation(p=0.95, ratio=0.05),
        t.ChromaticJitter(p=0.95, std=0.05),
        GridSample(cfg.indoor_grid),
    ]
    rate = cfg.sample_rate(dataset) if dataset is not None else None
    if rate is not None and rate < 1:
        recipe.append(t.SphereCrop(sample_rate=rate))
    if cfg.max_points is not None:
        recipe.append(t.SphereCrop(cfg.max_points))
    recipe += [t.CenterShift(apply_z=False), t.Shuffle()]
    return recipe


def outdoor_train(cfg: RecipeConfig = RecipeConfig()) -> list[t.Transform]:
    # Outdoor scans are sensor-centred: rotate about the sensor, not the bounding box.
    recipe: list[t.Transform] = [BoundExtent(cfg.outdoor_grid), t.RandomRotate("z", pi, p=0.5, center=(0.0, 0.0, 0.0))]
    if cfg.point_clip is not None:
        recipe.append(t.PointClip(*cfg.point_clip))
    recipe += [
        t.RandomScale(0.9, 1.1),
        t.RandomFlip(p=0.5),
        t.RandomJitter(sigma=0.005, clip=0.02),
        GridSample(cfg.outdoor_grid),
    ]
    if cfg.outdoor_max_points is not None:
        recipe.append(t.SphereCrop(cfg.outdoor_max_points))
    recipe.append(t.Shuffle())
    return recipe


def train_recipe(dataset: str, cfg: RecipeConfig = RecipeConfig()) -> list[t.Transform]:
    return indoor_train(cfg, dataset) if domain_of(dataset) == "indoor" else outdoor_train(cfg)


def test_recipe(domain: Domain, cfg: RecipeConfig = RecipeConfig()) -> list[t.Transform]:
    """Deterministic: keeps every point and ends with covering fragments (see grid.GridFragments)."""
    if domain == "indoor":
        return [BoundExtent(cfg.indoor_grid), t.CenterShift(apply_z=True), GridFragments(cfg.indoor_grid),
                t.CenterShift(apply_z=False)]
    if domain == "outdoor":
        return [BoundExtent(cfg.outdoor_grid), GridFragments(cfg.outdoor_grid)]
    raise BadInput(f"domain must be 'indoor' or 'outdoor', got {domain!r}")


test_recipe.__test__ = False  # a recipe, not a pytest test, wherever it is imported
