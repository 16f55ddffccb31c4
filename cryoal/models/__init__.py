"""Networks: teacher and student presets for classification and segmentation (MONAI)."""

from cryoal.models.classifier import Classifier, Segmenter, Standardize
from cryoal.models.factory import (
    PRESETS,
    build_model,
    check_box,
    count_parameters,
    preset_names,
)

__all__ = [
    "PRESETS",
    "Classifier",
    "Segmenter",
    "Standardize",
    "build_model",
    "check_box",
    "count_parameters",
    "preset_names",
]
