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


@dataclass(frozen=True)
class RecipeConfig:
    """The knobs a training run may turn; defaults are the reference values."""

    indoor_grid: float = INDOOR_GRID
    outdoor_grid: float = OUTDOOR_GRID
    max_points: int | None = 102400  # indoor SphereCrop after grid sampling (reference: 102400-204800)
    outdoor_max_points: int | None = None  # the reference does not crop outdoor scans
    point_clip: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None  # outdoor (low, high)
    elastic: bool = True


def indoor_train(cfg: RecipeConfig = RecipeConfig()) -> list[t.Transform]:
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
    return indoor_train(cfg) if domain_of(dataset) == "indoor" else outdoor_train(cfg)


def test_recipe(domain: Domain, cfg: RecipeConfig = RecipeConfig()) -> list[t.Transform]:
    """Deterministic: keeps every point and ends with covering fragments (see grid.GridFragments)."""
    if domain == "indoor":
        return [BoundExtent(cfg.indoor_grid), t.CenterShift(apply_z=True), GridFragments(cfg.indoor_grid),
                t.CenterShift(apply_z=False)]
    if domain == "outdoor":
        return [BoundExtent(cfg.outdoor_grid), GridFragments(cfg.outdoor_grid)]
    raise BadInput(f"domain must be 'indoor' or 'outdoor', got {domain!r}")


test_recipe.__test__ = False  # a recipe, not a pytest test, wherever it is imported
