# Helpers only (no rules): config validation, cohort tables, wildcard constraints, paths.

import sys
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))  # the DAG helpers below use the library even without `pip install`

from oncoflow.demo import plan_cohort  # noqa: E402

# One Apptainer image per tool group, built from containers/<group>.def (same pins as envs/<group>.yaml).
CONTAINERS = {
    group: f"containers/{group}.sif"
    for group in ("imaging", "radiomics", "pathology", "torch", "nnunet", "survival", "report")
}


def script_path(name):
    """scripts/<name>.py; rules take it as input `script` and run it with src/ on PYTHONPATH, so the
    library is importable in every job (local, cluster, conda env, container) without installing it.
    """
    return Path(workflow.basedir) / "scripts" / f"{name}.py"


STUDIES = {name: study for name, study in config["studies"].items() if study.get("enabled", True)}
DEMO = config["demo"]
DEMO_OUT = Path(DEMO["out"])


def is_demo(study):
    """True when the study's cohort is the one the demo rule writes."""
    return DEMO["enabled"] and Path(STUDIES[study]["cohort"]) == DEMO_OUT / study


def cohort_dir(study):
    return Path(STUDIES[study]["cohort"])


def _read_images(study):
    if is_demo(study):
        return plan_cohort(study, seed=DEMO["seed"], patients=DEMO["patients"]).images
    path = cohort_dir(study) / "images.csv"
    if not path.exists():
        raise WorkflowError(
            f"study {study}: {path} not found (studies.{study}.cohort in the config)"
        )
    table = pd.read_csv(path, dtype={"patient_id": str}, keep_default_na=False)
    missing = {"patient_id", "modality", "path"} - set(table.columns)
    if missing:
        raise WorkflowError(
            f"study {study}: {path}: missing column(s) {', '.join(sorted(missing))}"
        )
    return table


IMAGES = {study: _read_images(study) for study in STUDIES}


def _patient_index():
    """Map patient_id -> study; the same id in two different cohorts is an error."""
    owner = {}
    for study, table in IMAGES.items():
        for patient in table["patient_id"].unique():
            first = owner.setdefault(patient, study)
            if first != study and cohort_dir(first) != cohort_dir(study):
                raise WorkflowError(
                    f"patient {patient} appears in two cohorts ({cohort_dir(first)} and "
                    f"{cohort_dir(study)}); patient ids must be unique across cohorts"
                )
    return owner


PATIENT_STUDY = _patient_index()


wildcard_constraints:
    study="|".join(STUDIES) or "NO_STUDY",
    patient="|".join(map(str, PATIENT_STUDY)) or "NO_PATIENT",


def cohort_inputs(wildcards):
    """Files a study's cohort consists of: the demo rule's outputs, or the user's files."""
    study = wildcards.study
    root = cohort_dir(study)
    if is_demo(study):
        tables = ["images.csv", "clinical.csv", "outcomes.csv", "splits.csv", "oracle.json"]
        return [root / name for name in tables] + [root / "images"]
    tables = [root / name for name in ("images.csv", "clinical.csv", "outcomes.csv")]
    if (root / "splits.csv").exists():
        tables.append(root / "splits.csv")
    return tables + _source_files(study, IMAGES[study])


def _source_files(study, rows):
    root = cohort_dir(study)
    paths = []
    for column in ("path", "mask_path"):
        if column in rows:
            paths += [root / p for p in rows[column] if isinstance(p, str) and p]
    return sorted(set(paths))


def validate_params(wildcards):
    """Command-line options of validate_cohort.py for one study."""
    study = STUDIES[wildcards.study]
    options = {
        "--clinical": ",".join(study.get("clinical", [])),
        "--targets": ",".join(study.get("targets", [])),
        "--mask-labels": ",".join(map(str, study.get("mask_labels", []))),
        "--tilt": config["convert"]["tilt"],
        "--uneven-spacing": config["convert"]["uneven_spacing"],
    }
    return " ".join(f"{flag} '{value}'" for flag, value in options.items() if value)


def study_cohort(wildcards):
    return cohort_dir(wildcards.study)


def convert_inputs(wildcards):
    """The study's validation report (validation gates conversion) and the patient's source files."""
    study = PATIENT_STUDY[wildcards.patient]
    qc_report = f"results/qc/{study}/cohort_report.json"
    if is_demo(study):
        return [qc_report, cohort_dir(study) / "images"]
    rows = IMAGES[study]
    return [qc_report] + _source_files(study, rows[rows["patient_id"] == wildcards.patient])


def patient_cohort(wildcards):
    return cohort_dir(PATIENT_STUDY[wildcards.patient])


def _convertible(study):
    rows = IMAGES[study]
    return sorted(rows.loc[rows["modality"] != "WSI", "patient_id"].unique())


def all_converted():
    return [f"results/converted/{p}" for study in STUDIES for p in _convertible(study)]
