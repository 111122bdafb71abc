"""Write realistic, standard-conformant DICOM (CT, PET, MR, RTSTRUCT, SEG) from SimpleITK images.

Used by the demo generator and by test fixtures to produce "real-world-shaped" data: one file per
slice, written in shuffled order under non-sequential names, stored integer values with a
rescale, deterministic UIDs for a ``seed``, and fake identifying values (:class:`FakePHI`) in the
patient / study headers so that tests can check that none of them leaks into converted outputs.

Modules:

* ``_dataset`` - :class:`FakePHI`, UIDs, dates and the modules every file shares;
* ``series`` - CT and PET image series (:func:`write_ct_series`, :func:`write_pet_series`);
* ``mr`` - MR image series of clinical sequences (:func:`write_mr_series`);
* ``rtstruct`` - structure sets traced from a label map (:func:`write_rtstruct`);
* ``seg`` - DICOM Segmentations of a label map (:func:`write_seg`);
* ``other`` - objects an importer skips: dose reports (:func:`write_dose_report`) and secondary
  captures (:func:`write_secondary_capture`).
"""

from __future__ import annotations

from oncoflow.demo.dicomwrite._dataset import FakePHI
from oncoflow.demo.dicomwrite.mr import MR_SEQUENCES, write_mr_series
from oncoflow.demo.dicomwrite.other import (
    DOSE_REPORT_SOP_CLASS,
    SECONDARY_CAPTURE_SOP_CLASS,
    write_dose_report,
    write_secondary_capture,
)
from oncoflow.demo.dicomwrite.rtstruct import write_rtstruct
from oncoflow.demo.dicomwrite.seg import write_seg
from oncoflow.demo.dicomwrite.series import write_ct_series, write_pet_series

__all__ = [
    "DOSE_REPORT_SOP_CLASS",
    "MR_SEQUENCES",
    "SECONDARY_CAPTURE_SOP_CLASS",
    "FakePHI",
    "write_ct_series",
    "write_dose_report",
    "write_mr_series",
    "write_pet_series",
    "write_rtstruct",
    "write_secondary_capture",
    "write_seg",
]
