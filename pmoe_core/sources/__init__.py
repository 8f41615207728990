"""Raw-dataset readers, one module per dataset (see `base.py` for the protocol every module follows)."""

from __future__ import annotations

import importlib
from types import ModuleType

from pmoe_core.vocab.label_spaces import resolve_dataset

# Canonical dataset name -> the module that reads it. Explicit on purpose: no registration side effects.
SOURCE_MODULES: dict[str, str] = {
    "scannet": "pmoe_core.sources.scannet",
    "s3dis": "pmoe_core.sources.s3dis",
    "structured3d": "pmoe_core.sources.structured3d",
    "matterport3d": "pmoe_core.sources.matterport3d",
    "semantickitti": "pmoe_core.sources.semantickitti",
    "nuscenes": "pmoe_core.sources.nuscenes",
    "waymo": "pmoe_core.sources.waymo",
}


# Readers of a folder layout rather than of one dataset: the store's dataset comes from their options
# (`dataset_name(options)`): Pointcept's preprocessed folders (--dataset) and a user's own dataset (--spec).
LAYOUT_MODULES: dict[str, str] = {
    "pointcept": "pmoe_core.sources.pointcept",
    "custom": "pmoe_core.sources.custom",
}


def get_source(dataset: str) -> ModuleType:
    """The source module for a dataset name or alias, or a layout name (raises BadInput for unknown names)."""
    layout = LAYOUT_MODULES.get(dataset.strip().lower())
    return importlib.import_module(layout or SOURCE_MODULES[resolve_dataset(dataset)])
