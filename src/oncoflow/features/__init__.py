"""Feature extraction: radiomics, PET metrics and pathomics, one tidy table per patient."""

from __future__ import annotations

from oncoflow.features.pathomics import extract_pathomics, iter_tissue_tiles
from oncoflow.features.pet import pet_metrics
from oncoflow.features.radiomics import extract_radiomics
from oncoflow.features.tables import merge_features

__all__ = [
    "extract_pathomics",
    "extract_radiomics",
    "iter_tissue_tiles",
    "merge_features",
    "pet_metrics",
]
