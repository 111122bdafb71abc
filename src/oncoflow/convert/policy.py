"""The DICOM geometry policies shared by conversion, validation and the scripts.

Kept in a module of its own (no imports) so that argument parsers and validation can name the
choices without loading the DICOM stack.
"""

from __future__ import annotations

POLICIES: tuple[str, ...] = ("resample", "refuse")
"""Allowed values of the ``tilt`` and ``uneven_spacing`` policies: ``resample`` corrects the
series onto an orthogonal, evenly spaced grid and records a warning; ``refuse`` makes it an
error."""
