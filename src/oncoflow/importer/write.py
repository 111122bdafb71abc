"""Write an import plan as an ordinary cohort folder, under pseudonyms, with its report.

Layout of the cohort ``OUT``::

    OUT/images.csv, clinical.csv, outcomes.csv (when given)
    OUT/dicom/<pseudonym>/tp<t>/<stem>/0001.dcm ...   (hard links, else copies)
    OUT/dicom/<pseudonym>/tp<t>/<stem>_mask.dcm       (RTSTRUCT or SEG)
    OUT/import_report.json

``<stem>`` is the converted image's name (``CT_venous``, ``PET``:
:func:`~oncoflow.convert.converted_stem`).

Patient IDs become keyed hashes, ``P`` + the first 12 hex digits of HMAC-SHA256(key, PatientID),
and sites ``site_`` + 6 hex digits of the hash of InstitutionName: the same key gives the same
pseudonyms on every import, and without it they cannot be reversed. The key file (32 random
bytes, hex, created on first use) and the mapping from original to pseudonymous IDs
(``<key file stem>_mapping.csv`` beside it) live only where the key lives: keep them outside
``results/`` and out of any shared folder. Clinical and outcome tables keyed by the original ID
are re-keyed with the same map. File names inside the cohort carry no original name, and the
import report names patients by pseudonym only (skipped objects by their path in the tree).
The DICOM headers themselves still hold the identifying values; conversion
(:mod:`oncoflow.convert`) never copies them into its outputs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from oncoflow.convert.patient import converted_stem
from oncoflow.errors import OncoflowError
from oncoflow.importer.plan import ImportPlan, Slot

log = logging.getLogger(__name__)

__all__ = ["cohort_images", "load_key", "pseudonym", "write_cohort"]


def load_key(path: Path) -> bytes:
    """The pseudonymisation key in ``path``; a new random one is written when it is missing."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32) + "\n")
        path.chmod(0o600)
        log.info("wrote a new pseudonymisation key to %s: keep it, and keep it private", path)
    text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise OncoflowError(f"{path}: not a key file (expected hex digits)") from exc
    if len(key) < 16:
        raise OncoflowError(f"{path}: the key is too short ({len(key)} bytes, at least 16)")
    return key


def pseudonym(key: bytes, original: str, *, prefix: str = "P", digits: int = 12) -> str:
    """``prefix`` + the first ``digits`` hex digits of HMAC-SHA256(key, original)."""
    digest = hmac.new(key, str(original).encode("utf-8"), hashlib.sha256).hexdigest()
    return f"{prefix}{digest[:digits]}"


def _link(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (a copy across file systems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _rekey(
    table: pd.DataFrame | None, ids: dict[str, str], what: str, key: bytes, column: str
) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """A table keyed by original IDs, re-keyed; rows of patients without images are dropped."""
    if table is None:
        return None, {}
    if column not in table.columns:
        raise OncoflowError(f"the {what} table has no {column!r} column")
    original = table[column].astype(str).str.strip()
    known = original.isin(ids)
    out = table.loc[known].copy()
    out[column] = original[known].map(ids)
    out = out.rename(columns={column: "patient_id"})
    dropped = sorted(pseudonym(key, v) for v in original[~known])
    missing = sorted(set(ids.values()) - set(out["patient_id"]))
    return out, {"rows": int(known.sum()), "without_images": dropped, "without_row": missing}


def _stem_folder(key: bytes, slot: Slot) -> tuple[str, Path, str]:
    """(pseudonym, ``dicom/<pseudonym>/tp<t>``, converted stem) of a slot."""
    patient = pseudonym(key, slot.patient)
    return (
        patient,
        Path("dicom") / patient / f"tp{slot.timepoint}",
        converted_stem(slot.modality, slot.series),
    )


def cohort_images(plan: ImportPlan, key: bytes) -> pd.DataFrame:
    """The ``images.csv`` rows of a plan (what :func:`write_cohort` writes; nothing is read).

    The workflow plans its jobs from these rows before the import rule has written anything.
    """
    rows = []
    for slot in plan.slots:
        patient, folder, stem = _stem_folder(key, slot)
        rows.append(
            {
                "patient_id": patient,
                "timepoint": slot.timepoint,
                "modality": slot.modality,
                "series": slot.series,
                "path": (folder / stem).as_posix(),
                "mask_path": (folder / f"{stem}_mask.dcm").as_posix() if slot.mask else "",
                "mask_roi": slot.mask_roi or "",
                "site": pseudonym(key, f"site:{slot.institution}", prefix="site_", digits=6),
            }
        )
    columns = ["patient_id", "timepoint", "modality", "series"]
    return pd.DataFrame(rows).sort_values(columns).reset_index(drop=True)


def write_cohort(
    plan: ImportPlan,
    tree: Path,
    out: Path,
    key_file: Path,
    *,
    clinical: pd.DataFrame | None = None,
    outcomes: pd.DataFrame | None = None,
    id_column: str = "patient_id",
    rules_source: str = "",
) -> dict[str, Any]:
    """Write the cohort folder of ``plan`` (module docstring) and return its import report.

    Raises:
        OncoflowError: The plan has no image, or the key file sits inside the cohort.
    """
    tree, out, key_file = Path(tree), Path(out), Path(key_file)
    if not plan.slots:
        raise OncoflowError(f"{tree}: no image series to import (see the skipped objects)")
    if key_file.resolve().is_relative_to(out.resolve()):
        raise OncoflowError(f"{key_file}: keep the key file outside the cohort folder {out}")
    key = load_key(key_file)
    ids = {s.patient: pseudonym(key, s.patient) for s in plan.slots}
    for slot in plan.slots:
        _, folder, stem = _stem_folder(key, slot)
        for i, name in enumerate(slot.files, start=1):
            _link(tree / name, out / folder / stem / f"{i:04d}.dcm")
        if slot.mask:
            _link(tree / slot.mask, out / folder / f"{stem}_mask.dcm")
    images = cohort_images(plan, key)
    images.to_csv(out / "images.csv", index=False)
    clinical_out, clinical_info = _rekey(clinical, ids, "clinical", key, id_column)
    if clinical_out is None:
        clinical_out = pd.DataFrame({"patient_id": sorted(set(ids.values()))})
    clinical_out.to_csv(out / "clinical.csv", index=False)
    outcomes_out, outcomes_info = _rekey(outcomes, ids, "outcomes", key, id_column)
    if outcomes_out is not None:
        outcomes_out.to_csv(out / "outcomes.csv", index=False)
    mapping = key_file.with_name(f"{key_file.stem}_mapping.csv")
    pd.DataFrame(sorted(ids.items()), columns=["original_id", "patient_id"]).to_csv(
        mapping, index=False
    )
    report = {
        "rules": rules_source,
        "patients": len(ids),
        "images": len(images),
        "masks": int((images["mask_path"] != "").sum()),
        "linked_by": dict(Counter(s.linked_by for s in plan.slots if s.linked_by)),
        "skipped_by_reason": dict(Counter(s["reason"] for s in plan.skipped)),
        "skipped": [{k: v for k, v in entry.items() if k != "patient"} for entry in plan.skipped],
        "clinical": clinical_info,
        "outcomes": outcomes_info,
    }
    (out / "import_report.json").write_text(json.dumps(report, indent=1) + "\n")
    log.info(
        "imported %d patients, %d image series (%d with a mask); %d objects skipped",
        report["patients"],
        report["images"],
        report["masks"],
        len(plan.skipped),
    )
    return report
