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


def get_source(dataset: str) -> ModuleType:
    """The source module for a dataset name or alias (raises BadInput for unknown names)."""
    return importlib.import_module(SOURCE_MODULES[resolve_dataset(dataset)])
