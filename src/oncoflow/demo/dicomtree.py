"""A realistic, messy DICOM export tree (a PACS dump) with a manifest of what an importer must find.

Used to test a DICOM-tree importer: the tree holds what a hospital export holds, the manifest says
which series the importer must take (per patient, study and oncoflow ``series`` name), with which
mask, and which objects it must skip and why. Small images (32 x 32 in-plane, 2 to 14 slices)
keep the whole tree to a few seconds; everything is deterministic for ``seed``.

Cohort (the structure is fixed, identities, anatomy, UIDs and names follow ``seed``):

=== ====== ==================================================================================
#   site   studies
=== ====== ==================================================================================
0   A      CT venous + RTSTRUCT; CT localizer; dose report. Follow-up: CT venous + SEG; dose
           report
1   A      PET/CT: PET (FDG, Bq/mL) + SEG, low-dose CT and a secondary capture, all in one folder
2   A      CT venous + RTSTRUCT that references the series before a re-export (same frame of
           reference, other SeriesInstanceUID); the same CT exported twice; a 2-slice CT
3   B      MR T1, T2 + SEG, T1C + RTSTRUCT, FLAIR (T1 and T1C in one folder). Follow-up: MR T1,
           T2 + RTSTRUCT, DWI
4   B      MR T1, FLAIR + SEG and two T2 series (an ambiguity: neither may be chosen)
5   B      PET/CT: low-dose CT + RTSTRUCT, PET
=== ====== ==================================================================================

Layout: site A ``root/<patient>/<study>/<NNNN>/<file>.dcm``; site B
``root/<export>/<patient>/<study>/<NNNN>/<file>`` (no extension). Folder names are meaningless hex
(``3F9C``) or numbers (``0007``), file names meaningless hex in shuffled order (series of one
study may repeat names in other folders). A mask lies in its image folder or in a folder of its
own; ``root/README.txt`` and a ``.DS_Store`` are not DICOM. The localizer is 2 coronal images.

Manifest (every path relative to ``root``, POSIX)::

    {"patients": {PatientID: {
        "name": PatientName, "birth_date": ..., "institution": InstitutionName,
        "phi": [every fake identifying value written for the patient],
        "studies": [{                              # by date
            "study_uid": ..., "study_date": "YYYYMMDD", "accession_number": ...,
            "series": [{                           # the series the importer must take
                "series_uid": ..., "modality": "CT" | "PET" | "MR",
                "series": "venous" | "-" | "T1" | "T2" | "T1C" | "FLAIR" | "DWI",
                "folder": a folder holding all its files (and maybe other series),
                "n_slices": ...,
                "mask": None | {"file": ..., "format": "RTSTRUCT" | "SEG", "names": [ROI or
                         segment names, by number], "references_missing_series": bool}}]}]}},
     "skipped": [{"path": one file of the object, "series_uid": SeriesInstanceUID or None,
                  "what": "localizer" | "dose_report" | "secondary_capture" | "duplicate" |
                          "too_few_slices" | "ambiguous" | "not_dicom"}]}

A ``duplicate`` entry's path lies in the second copy (same SOPInstanceUIDs as the series of the
manifest); both series of an ``ambiguous`` slot are listed. A mask with
``references_missing_series`` references a SeriesInstanceUID found nowhere in the tree, and shares
the FrameOfReferenceUID of the manifest's series.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from oncoflow.demo._dicomtree_parts import (
    CORONAL,
    Patient,
    Tree,
    dose_report,
    grid,
    move,
    reexport,
    write_ct,
    write_mask,
    write_mr,
    write_pet,
)
from oncoflow.demo._fakephi import fake_phi
from oncoflow.demo.dicomwrite import FakePHI, write_secondary_capture

__all__ = ["SITES", "write_dicom_tree"]

SITES: tuple[str, str] = ("Riverside General Hospital", "Northbridge University Clinic")
"""InstitutionName of site A and site B."""

# --------------------------------------------------------------------------------------------------
# patients

_CT_GRID = (1.5, 1.5, 3.0)
_MR_GRID = (1.4, 1.4, 4.0)
_PET_GRID = (2.0, 2.0, 3.27)


def _patient_ct_followup(p: Patient) -> None:
    """CT venous + RTSTRUCT, localizer, dose report; follow-up CT venous + SEG, dose report."""
    s = p.study(0)
    ref = grid(12, _CT_GRID)
    folder = s.series_folder()
    uid, _ = write_ct(s, folder, ref, "ABD VENOUS 1.0 B30f", contrast=True)
    mask = write_mask(s, folder, ref, "RTSTRUCT", ["GTV"], folder)
    s.record(folder, uid, "CT", "venous", 12, mask)
    scout = grid(2, (1.5, 3.0, 10.0), CORONAL)
    kind = {"series_number": 1, "image_type": ("ORIGINAL", "PRIMARY", "LOCALIZER")}
    uid, paths = write_ct(s, s.series_folder(), scout, "Topogram 0.6 T20f", **kind)
    s.tree.skip(paths[0], "localizer", uid)
    dose_report(s)

    s = p.study(1)
    ref = grid(11, _CT_GRID)
    folder = s.series_folder()
    uid, _ = write_ct(s, folder, ref, "ABD VENOUS 1.0 B30f", contrast=True)
    mask = write_mask(s, folder, ref, "SEG", ["Lesion 1", "Liver"], s.series_folder())
    s.record(folder, uid, "CT", "venous", 11, mask)
    dose_report(s)


def _patient_petct_mixed(p: Patient) -> None:
    """PET + SEG, low-dose CT and a secondary capture, all in one folder."""
    s = p.study(0)
    ref = grid(10, _PET_GRID)
    folder = s.series_folder()
    uid, _ = write_pet(s, folder, ref)
    s.record(folder, uid, "PET", "-", 10, write_mask(s, folder, ref, "SEG", ["Tumor"], folder))
    uid, paths = write_ct(s, s.series_folder(), grid(12, _CT_GRID), "CT WB LD 3.0 B31f")
    move(paths, folder)
    s.record(folder, uid, "CT", "-", 12)
    path = s.tree.file(folder, s.ext)
    screen = np.tile(np.linspace(0.0, 255.0, 32), (32, 1))
    uid = write_secondary_capture(path, phi=s.phi, seed=s.seed, pixels=screen, study_date=s.date)
    s.tree.skip(path, "secondary_capture", uid)


def _patient_ct_reexported(p: Patient) -> None:
    """CT venous re-exported after its RTSTRUCT; a second copy; a 2-slice CT."""
    s = p.study(0)
    ref = grid(14, _CT_GRID)
    folder = s.series_folder()
    _, paths = write_ct(s, folder, ref, "ABD VENOUS 1.0 B30f", contrast=True)
    mask = write_mask(s, folder, ref, "RTSTRUCT", ["gtv_1"], s.series_folder())
    mask["references_missing_series"] = True
    uid = reexport(paths, s.seed)
    s.record(folder, uid, "CT", "venous", 14, mask)
    copy = s.tree.folder(s.tree.folder(p.folder), numbered=True)
    copies = [s.tree.file(copy, s.ext) for _ in paths]
    for source, target in zip(paths, copies, strict=True):
        shutil.copyfile(source, target)
    s.tree.skip(copies[0], "duplicate", uid)
    few = grid(2, (1.5, 1.5, 10.0))
    uid, paths = write_ct(s, s.series_folder(), few, "Monitoring 10.0 B30f", series_number=2)
    s.tree.skip(paths[0], "too_few_slices", uid)
    store = p.folder / ".DS_Store"
    store.write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    s.tree.skip(store, "not_dicom", None)


def _patient_mr_followup(p: Patient) -> None:
    """MR T1 and T1C + RTSTRUCT in one folder, T2 + SEG, FLAIR; follow-up T1, T2 + RTSTRUCT, DWI."""
    s = p.study(0)
    ref = grid(10, _MR_GRID)
    folder = s.series_folder()
    uid, _ = write_mr(s, folder, ref, "T1C", "t1_se_tra_KM")
    mask = write_mask(s, folder, ref, "RTSTRUCT", ["GTV", "Liver"], folder)
    s.record(folder, uid, "MR", "T1C", 10, mask)
    uid, paths = write_mr(s, s.series_folder(), ref, "T1", "t1_se_tra")
    move(paths, folder)
    s.record(folder, uid, "MR", "T1", 10)
    folder = s.series_folder()
    uid, _ = write_mr(s, folder, ref, "T2", "t2_tse_tra")
    mask = write_mask(s, folder, ref, "SEG", ["Tumor"], s.series_folder())
    s.record(folder, uid, "MR", "T2", 10, mask)
    folder = s.series_folder()
    uid, _ = write_mr(s, folder, ref, "FLAIR", "t2_tirm_tra_dark-fluid")
    s.record(folder, uid, "MR", "FLAIR", 10)

    s = p.study(1)
    ref = grid(9, _MR_GRID)
    for sequence, description in (("T1", "t1_se_tra"), ("DWI", "ep2d_diff_b1000_tra_TRACEW")):
        folder = s.series_folder()
        uid, _ = write_mr(s, folder, ref, sequence, description)
        s.record(folder, uid, "MR", sequence, 9)
    folder = s.series_folder()
    uid, _ = write_mr(s, folder, ref, "T2", "t2_tse_tra")
    mask = write_mask(s, folder, ref, "RTSTRUCT", ["Lesion 1"], folder)
    s.record(folder, uid, "MR", "T2", 9, mask)


def _patient_mr_ambiguous(p: Patient) -> None:
    """MR T1, FLAIR + SEG, and two T2 series at 3 T (the T2 slot is ambiguous)."""
    s = p.study(0)
    ref = grid(8, _MR_GRID)
    folder = s.series_folder()
    tesla = {"field_strength_t": 3.0}
    uid, _ = write_mr(s, folder, ref, "T1", "t1_se_tra", **tesla)
    s.record(folder, uid, "MR", "T1", 8)
    folder = s.series_folder()
    uid, _ = write_mr(s, folder, ref, "FLAIR", "t2_tirm_tra_dark-fluid", **tesla)
    s.record(folder, uid, "MR", "FLAIR", 8, write_mask(s, folder, ref, "SEG", ["tumour"], folder))
    for number in (4, 12):
        folder = s.series_folder()
        uid, paths = write_mr(s, folder, ref, "T2", "t2_tse_tra", series_number=number, **tesla)
        s.tree.skip(paths[0], "ambiguous", uid)


def _patient_petct_b(p: Patient) -> None:
    """PET/CT: low-dose CT + RTSTRUCT, PET."""
    s = p.study(0)
    ref = grid(13, _CT_GRID)
    folder = s.series_folder()
    uid, _ = write_ct(s, folder, ref, "WB CT 3.0 I31f")
    mask = write_mask(s, folder, ref, "RTSTRUCT", ["Tumor 1", "liver"], s.series_folder())
    s.record(folder, uid, "CT", "-", 13, mask)
    folder = s.series_folder()
    uid, _ = write_pet(s, folder, grid(10, _PET_GRID))
    s.record(folder, uid, "PET", "-", 10)


_PATIENTS = (
    _patient_ct_followup,
    _patient_petct_mixed,
    _patient_ct_reexported,
    _patient_mr_followup,
    _patient_mr_ambiguous,
    _patient_petct_b,
)


def _identities(seed: int) -> list[FakePHI]:
    """Distinct fake identities (name and MRN), the first half at site A, the rest at site B."""
    rng = np.random.default_rng([int(seed), 0x1D])
    found: list[FakePHI] = []
    while len(found) < len(_PATIENTS):
        site = SITES[0] if len(found) < len(_PATIENTS) // 2 else SITES[1]
        phi = replace(fake_phi(rng), institution_name=site)
        if all(
            phi.patient_id != o.patient_id and phi.patient_name != o.patient_name for o in found
        ):
            found.append(phi)
    return found


def write_dicom_tree(root: Path, *, seed: int = 0) -> dict[str, Any]:
    """Write the messy DICOM export tree under ``root`` and return its manifest.

    Args:
        root: Folder to write into (created if needed; it should be empty).
        seed: Makes identities, anatomy, UIDs, dates and every name deterministic.

    Returns:
        The manifest (layout in the module docstring).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tree = Tree(root, np.random.default_rng([int(seed), 0xD1C0]))
    export = tree.folder(root)
    patients: dict[str, Any] = {}
    for index, (build, phi) in enumerate(zip(_PATIENTS, _identities(seed), strict=True)):
        site_a = phi.institution_name == SITES[0]
        entry: dict[str, Any] = {
            "name": phi.patient_name,
            "birth_date": phi.patient_birth_date,
            "institution": phi.institution_name,
            "phi": list(phi.values()),
            "studies": [],
        }
        folder = tree.folder(root if site_a else export)
        build(Patient(tree, index, seed, phi, folder, site_a, entry))
        patients[phi.patient_id] = entry
    readme = root / "README.txt"
    readme.write_text("PACS export - research use only.\nNo DICOMDIR in this export.\n")
    tree.skip(readme, "not_dicom", None)
    return {"patients": patients, "skipped": tree.skipped}
