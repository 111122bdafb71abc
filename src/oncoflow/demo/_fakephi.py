"""Distinct fake identifying values for the demo's DICOM patients (never written to tables)."""

from __future__ import annotations

import numpy as np

from oncoflow.demo.dicomwrite import FakePHI

_FAMILY = (
    "MILLER", "GARCIA", "NAKAMURA", "OKAFOR", "JENSEN", "ROSSI", "KOWALSKI", "DUBOIS",
    "HALVORSEN", "SILVA", "MORENO", "FISCHER", "TANAKA", "OBRIEN", "PETROV", "LINDQVIST",
)  # fmt: skip
_GIVEN = (
    "ANNA", "BRUNO", "CARMEN", "DAVID", "ELENA", "FELIX", "GRETA", "HUGO", "IRIS", "JONAS",
    "KARIN", "LUCAS", "MARTA", "NILS", "OLGA", "PAUL",
)  # fmt: skip
_HOSPITALS = (
    "Riverside General Hospital",
    "Northbridge University Clinic",
    "Lakeview Cancer Centre",
)
_DOCTORS = ("WELBY^MARCUS", "QUINN^MICHAELA", "KILDARE^JAMES", "ROSS^DOUG")
_OPERATORS = ("TECH^ALEX", "TECH^SAM", "TECH^KIM")


def fake_phi(rng: np.random.Generator) -> FakePHI:
    """Return fake PatientName, BirthDate, MRN, accession, institution and staff names."""
    year = int(rng.integers(1935, 1975))
    month = int(rng.integers(1, 13))
    day = int(rng.integers(1, 29))
    return FakePHI(
        patient_name=f"{_FAMILY[int(rng.integers(len(_FAMILY)))]}^{_GIVEN[int(rng.integers(len(_GIVEN)))]}",
        patient_birth_date=f"{year:04d}{month:02d}{day:02d}",
        patient_id=f"MRN{int(rng.integers(10**7, 10**8))}",
        accession_number=f"ACC{int(rng.integers(10**6, 10**7))}",
        institution_name=_HOSPITALS[int(rng.integers(len(_HOSPITALS)))],
        referring_physician=_DOCTORS[int(rng.integers(len(_DOCTORS)))],
        operator_name=_OPERATORS[int(rng.integers(len(_OPERATORS)))],
    )
