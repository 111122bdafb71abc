"""Feature extraction: radiomics, PET metrics and pathomics, one tidy table per patient.

The names below are imported on first use (PEP 562), so a radiomics job does not pay for the
pathology stack (openslide, scikit-image) and a merge job pays for neither extractor.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "extract_pathomics": "oncoflow.features.pathomics",
    "iter_tissue_tiles": "oncoflow.features.pathomics",
    "pet_metrics": "oncoflow.features.pet",
    "extract_radiomics": "oncoflow.features.radiomics",
    "merge_features": "oncoflow.features.tables",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
