"""Exceptions whose message is shown to the user as one line (no traceback)."""

from __future__ import annotations


class OncoflowError(Exception):
    """Base class: a problem with the user's data or settings, explained in the message.

    The message must name what is wrong and where (patient, file), e.g.
    ``"patient PP003: images/PP003/ct.nii.gz: file does not exist"``.
    """


class ConfigError(OncoflowError):
    """A study's config block or its recipe is invalid (unknown recipe, model or setting)."""


class CohortError(OncoflowError):
    """A cohort table or one of the files it points to is invalid."""


class ConversionError(OncoflowError):
    """A DICOM series, RTSTRUCT or image cannot be converted safely."""


class HarmonizationError(OncoflowError):
    """ComBat cannot be fit or applied: an unseen batch, too few samples, NaN input, ..."""


class FeatureError(OncoflowError):
    """Features cannot be extracted: unreadable image or slide, bad settings, empty region."""


class ModelError(OncoflowError):
    """A model cannot be fit or evaluated: bad survival data, no comparable pairs, no features."""


class SegmentationError(OncoflowError):
    """An nnU-Net export, plan, training or prediction step cannot run on the given cases."""


class FormatError(OncoflowError):
    """A file the stages exchange (``folds.json``, ``predictions.csv``) breaks its schema."""
