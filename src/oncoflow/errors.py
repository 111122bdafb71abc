"""Exceptions whose message is shown to the user as one line (no traceback)."""

from __future__ import annotations


class OncoflowError(Exception):
    """Base class: a problem with the user's data or settings, explained in the message.

    The message must name what is wrong and where (patient, file), e.g.
    ``"patient PP003: images/PP003/ct.nii.gz: file does not exist"``.
    """


class CohortError(OncoflowError):
    """A cohort table or one of the files it points to is invalid."""


class ConversionError(OncoflowError):
    """A DICOM series, RTSTRUCT or image cannot be converted safely."""
