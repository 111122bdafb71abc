"""DICOM SOP class UIDs the project recognises, in a module with no imports.

The conversion readers and the DICOM importer (which Snakemake imports while it parses the
workflow, so it must not pull in SimpleITK) share these values.
"""

from __future__ import annotations

RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
"""RT Structure Set Storage."""

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
"""Segmentation Storage (DICOM-SEG)."""
