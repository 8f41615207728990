"""Training data pipeline: transforms and recipes, grid sampling, mixed-dataset sampler, collate, loader."""

from pmoe_core.data.collate import Collate, FragmentMaps, SegTargets
from pmoe_core.data.dataset import SceneDataset
from pmoe_core.data.features import point_features
from pmoe_core.data.loader import Loader, Throughput, make_loader, make_test_loader
from pmoe_core.data.recipes import RecipeConfig, domain_of, indoor_train, outdoor_train, test_recipe, train_recipe
from pmoe_core.data.sample import Sample
from pmoe_core.data.sampler import MixedBatchSampler, SampleKey

__all__ = [
    "Collate",
    "FragmentMaps",
    "Loader",
    "MixedBatchSampler",
    "RecipeConfig",
    "Sample",
    "SampleKey",
    "SceneDataset",
    "SegTargets",
    "Throughput",
    "domain_of",
    "indoor_train",
    "make_loader",
    "make_test_loader",
    "outdoor_train",
    "point_features",
    "test_recipe",
    "train_recipe",
]
