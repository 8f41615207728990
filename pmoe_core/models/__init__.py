"""Models: PTv3 backbone, Point-MoE (MoE attention projection), PPT baseline, language head, presets."""

from .batch import FEATURE_CHANNELS, IN_CHANNELS, PointBatch
from .heads import LanguageHead, SegmentationModel
from .moe import MoE, MoEConfig, moe_aux_loss
from .ppt import PPT, PPTConfig
from .presets import PRESETS, build_model, get_config
from .ptv3 import PTv3, PTv3Config, count_parameters
from .routing import RoutingRecord, RoutingRecorder, record_routing

__all__ = [
    "FEATURE_CHANNELS",
    "IN_CHANNELS",
    "PointBatch",
    "LanguageHead",
    "SegmentationModel",
    "MoE",
    "MoEConfig",
    "moe_aux_loss",
    "PPT",
    "PPTConfig",
    "PRESETS",
    "build_model",
    "get_config",
    "PTv3",
    "PTv3Config",
    "count_parameters",
    "RoutingRecord",
    "RoutingRecorder",
    "record_routing",
]
