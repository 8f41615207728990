"""One indexable dataset over many scene stores: shards of one dataset read as one, datasets side by side.

Items are addressed by a global index (or a sampler's SampleKey, which also carries the draw's augmentation seed).
Stores are opened lazily in whichever process reads, so the dataset pickles cheaply to DataLoader workers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from pmoe_core.data.recipes import RecipeConfig, domain_of, test_recipe, train_recipe
from pmoe_core.data.sample import Sample
from pmoe_core.data.sampler import SampleKey
from pmoe_core.data.transforms import Transform, apply
from pmoe_core.errors import StoreError
from pmoe_core.store import StoreReader

Recipe = Callable[[str], Sequence[Transform]]  # dataset name -> its transforms


class SceneDataset:
    """Scenes of one split over the given stores, each transformed by its dataset's recipe.

    `mode="train"` applies the domain's training recipe (random, seeded per draw); `mode="test"` the deterministic
    test recipe (every point kept, covering fragments). `recipe` overrides both: dataset name -> transforms.
    """

    def __init__(
        self,
        stores: Sequence[str | Path],
        split: str,
        mode: Literal["train", "test"] = "train",
        config: RecipeConfig = RecipeConfig(),
        recipe: Recipe | None = None,
        seed: int = 0,
    ):
        if not stores:
            raise StoreError("no scene stores given")
        self.urls = tuple(str(url) for url in stores)
        self.split, self.mode, self.seed = split, mode, seed
        self._readers: dict[int, StoreReader] = {}
        self._pid = os.getpid()

        store_of, local, dataset_of = [], [], []
        self.class_names: dict[str, tuple[str, ...]] = {}
        for k, url in enumerate(self.urls):
            reader = self._reader(k)
            name = reader.dataset
            classes = tuple(reader.class_names)
            if self.class_names.setdefault(name, classes) != classes:
                raise StoreError(f"class names differ from another {name} store", url)
            count = reader.num_scenes(split) if split in reader.splits else 0
            store_of.append(np.full(count, k, np.int64))
            local.append(np.arange(count, dtype=np.int64))
            dataset_of += [name] * count
        self._store_of = np.concatenate(store_of)
        self._local = np.concatenate(local)
        self.datasets = tuple(self.class_names)
        self._dataset_of = np.array([self.datasets.index(d) for d in dataset_of], dtype=np.int64)
        if len(self) == 0:
            raise StoreError(f"no scenes in split {split!r}", ", ".join(self.urls))
        self._transforms = {d: list(self._recipe_for(d, recipe, config)) for d in self.datasets}

    def _recipe_for(self, dataset: str, recipe: Recipe | None, config: RecipeConfig) -> Sequence[Transform]:
        if recipe is not None:
            return recipe(dataset)
        if self.mode == "train":
            return train_recipe(dataset, config)
        return test_recipe(domain_of(dataset), config)

    def _reader(self, k: int) -> StoreReader:
        if self._pid != os.getpid():  # forked into a worker: never share open handles across processes
            self._readers, self._pid = {}, os.getpid()
        if k not in self._readers:
            self._readers[k] = StoreReader(self.urls[k])
        return self._readers[k]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_readers"] = {}
        return state

    def __len__(self) -> int:
        return int(self._store_of.shape[0])

    @property
    def groups(self) -> dict[str, np.ndarray]:
        """Dataset name -> global indices of its scenes (what MixedBatchSampler takes)."""
        return {d: np.flatnonzero(self._dataset_of == i) for i, d in enumerate(self.datasets)}

    @property
    def label_spaces(self) -> dict[str, int]:
        """Dataset name -> class count, in this dataset's order (what Collate takes)."""
        return {d: len(names) for d, names in self.class_names.items()}

    def dataset_name(self, index: int) -> str:
        return self.datasets[int(self._dataset_of[index])]

    def num_points(self, index: int) -> int:
        """Stored points of a scene, read from the offsets only."""
        return int(self._reader(int(self._store_of[index])).num_points(self.split, int(self._local[index])))

    def raw(self, index: int) -> Sample:
        """The stored scene as an untransformed Sample."""
        if not 0 <= index < len(self):
            raise IndexError(f"scene {index} outside 0..{len(self) - 1}")
        reader = self._reader(int(self._store_of[index]))
        wanted = [f for f in reader.fields(self.split) if f != "instance"]  # semantic segmentation needs no instances
        scene = reader.read(self.split, int(self._local[index]), fields=wanted)
        return Sample.from_scene(scene, self.dataset_name(index))

    def __getitem__(self, key: int | SampleKey) -> Sample:
        if isinstance(key, SampleKey):
            sample, rng = self.raw(key.index), np.random.default_rng(key.seed)
        else:
            sample, rng = self.raw(int(key)), np.random.default_rng([self.seed, int(key)])
        return apply(self._transforms[sample.dataset], sample, rng)
