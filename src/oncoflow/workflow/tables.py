"""The DAG's view of a cohort's ``images.csv``: patients, ROIs, slides and image stems.

Every function takes the table's rows (a pandas frame with the columns of
``schemas/images.schema.yaml``) and returns plain lists or dicts, sorted, so that the jobs
Snakemake plans from them do not depend on the order of the rows.

Example:
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"patient_id": ["P1", "P1"], "timepoint": [0, 0],
    ...     "modality": ["CT", "WSI"], "series": ["-", "HE"],
    ...     "path": ["ct.nii.gz", "p1.svs"], "mask_path": ["m.nii.gz", ""]})
    >>> roi_jobs(rows, images=["CT"], labels=[1])
    [('P1', 0, 'CT', 1)]
    >>> slides(rows)
    {'P1': 'p1.svs'}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from oncoflow.errors import CohortError, ConfigError

REQUIRED_COLUMNS = ("patient_id", "modality", "path")


def read_images(root: str | Path, what: str, key: str) -> pd.DataFrame:
    """``images.csv`` of a cohort folder, with the columns the DAG needs.

    Args:
        root: The cohort folder.
        what: Names the cohort in errors (``study net_survival``).
        key: The config key that points at the folder (``studies.net_survival.cohort``).

    Raises:
        CohortError: The table is missing or lacks a required column.
    """
    path = Path(root) / "images.csv"
    if not path.exists():
        msg = f"{what}: {path} not found ({key} in the config)"
        raise CohortError(msg)
    table = pd.read_csv(path, dtype={"patient_id": str}, keep_default_na=False)
    missing = set(REQUIRED_COLUMNS) - set(table.columns)
    if missing:
        msg = f"{what}: {path}: missing column(s) {', '.join(sorted(missing))}"
        raise CohortError(msg)
    return table


def patient_owners(cohorts: Mapping[str, tuple[Path, pd.DataFrame]]) -> dict[str, str]:
    """Map each patient id to the first study that lists it.

    Studies that share one cohort folder share its patients; the same id in two different
    cohort folders is refused (converted images live under ``results/converted/<patient>``).

    Args:
        cohorts: study -> (cohort folder, images.csv rows), in config order.

    Raises:
        CohortError: A patient id appears in two cohort folders.
    """
    owner: dict[str, str] = {}
    for study, (folder, table) in cohorts.items():
        for patient in table["patient_id"].unique():
            first = owner.setdefault(patient, study)
            if first != study and cohorts[first][0] != folder:
                msg = (
                    f"patient {patient} appears in two cohorts ({cohorts[first][0]} and "
                    f"{folder}); patient ids must be unique across cohorts"
                )
                raise CohortError(msg)
    return owner


def stem(modality: str, series: str) -> str:
    """The file stem of an image: ``<modality>_<series>``, or ``<modality>`` when series is -."""
    return modality if series == "-" else f"{modality}_{series}"


def stems(rows: pd.DataFrame) -> list[str]:
    """Every image stem of the rows, sorted."""
    return sorted({stem(m, s) for m, s in zip(rows["modality"], rows["series"], strict=True)})


def convertible(rows: pd.DataFrame) -> list[str]:
    """Patients with at least one image to convert (every modality but WSI)."""
    return sorted(rows.loc[rows["modality"] != "WSI", "patient_id"].unique())


def roi_jobs(
    rows: pd.DataFrame, images: Sequence[str], labels: Sequence[int]
) -> list[tuple[str, int, str, int]]:
    """(patient, timepoint, stem, label) of every masked image of the ``images`` stems.

    Args:
        rows: images.csv rows.
        images: The stems a feature source reads (``studies.<s>.radiomics.images``).
        labels: The mask labels it extracts, each a separate ROI.
    """
    jobs = []
    for row in rows.itertuples():
        has_mask = isinstance(row.mask_path, str) and bool(row.mask_path)
        if has_mask and stem(row.modality, row.series) in images:
            jobs += [(row.patient_id, row.timepoint, stem(row.modality, row.series), label)
                     for label in labels]  # fmt: skip
    return sorted(set(jobs))


def slides(rows: pd.DataFrame) -> dict[str, str]:
    """Map each patient to the path of its whole-slide image (the WSI rows)."""
    wsi = rows.loc[rows["modality"] == "WSI", ["patient_id", "path"]]
    return dict(zip(wsi["patient_id"], wsi["path"], strict=True))


def patients_with(rows: pd.DataFrame, wanted: Iterable[str]) -> list[str]:
    """Patients with at least one image of the ``wanted`` stems."""
    wanted = set(wanted)
    row_stems = [stem(m, s) for m, s in zip(rows["modality"], rows["series"], strict=True)]
    return sorted({p for p, s in zip(rows["patient_id"], row_stems, strict=True) if s in wanted})


def rows_digest(rows: pd.DataFrame) -> str:
    """The first 16 hex digits of the SHA-256 of ``rows`` written as CSV.

    A rule parameter that changes whenever a planned table does, so that Snakemake reruns the
    rule that writes the table.
    """
    return hashlib.sha256(rows.to_csv(index=False).encode("utf-8")).hexdigest()[:16]


def files_of(root: Path, rows: pd.DataFrame) -> list[Path]:
    """The image and mask files of some rows, under the cohort folder ``root``."""
    paths = []
    for column in ("path", "mask_path"):
        if column in rows:
            paths += [root / p for p in rows[column] if isinstance(p, str) and p]
    return sorted(set(paths))


def feature_sources(study: str, settings: Mapping, rows: pd.DataFrame, table: Path) -> list[str]:
    """The feature sources a study turns on, each checked against its images.csv rows.

    Args:
        study: The study's name (for errors).
        settings: Its config block (``radiomics``, ``pathomics``, ``pet``).
        rows: The rows of the cohort it runs on.
        table: That images.csv (for errors).

    Raises:
        ConfigError: A source matches nothing: pathomics without a WSI row, radiomics or PET
            without a masked image of its stems (the message lists the stems there are).
    """
    sources = [s for s in ("radiomics", "pathomics", "pet") if settings.get(s)]
    for source in sources:
        if source == "pathomics" and not slides(rows):
            msg = f"study {study}: pathomics is on but images.csv has no WSI row ({table})"
            raise ConfigError(msg)
        block = settings[source]
        if source != "pathomics" and not roi_jobs(rows, block["images"], block["labels"]):
            msg = (
                f"study {study}: {source}.images {block['images']} matches no image with a "
                f"mask in {table} (image stems there: {', '.join(stems(rows)) or 'none'}; a "
                "stem is <modality>_<series>, or <modality> when series is '-')"
            )
            raise ConfigError(msg)
    return sources
