# Helpers only (no rules): config validation, cohort tables, wildcard constraints, paths.

import json
import shlex
import sys
from functools import cache
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


def demo_patients(study):
    """Number of demo patients of a study: demo.study_patients.<study>, else demo.patients."""
    return DEMO.get("study_patients", {}).get(study, DEMO["patients"])


def cohort_dir(study):
    return Path(STUDIES[study]["cohort"])


def _read_images(study):
    if is_demo(study):
        return plan_cohort(study, seed=DEMO["seed"], patients=demo_patients(study)).images
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
    source="radiomics|pathomics|pet",
    fold=r"\d+|final",
    tp=r"\d+",
    label=r"\d+",
    variant="raw|combat|permuted",


def cohort_inputs(wildcards):
    """The tables of a study's cohort (the demo rule's outputs, or the user's tables).

    The image files are not inputs of validation (the script opens each one): every file is an
    input of its patient's conversion or pathomics job, which reruns when it changes. Listing
    them here as well made the DAG quadratic in patients (each of the n jobs that wait for the
    report is matched against the report's 2n inputs: 1,000 patients took 3 s more to plan).
    """
    study = wildcards.study
    root = cohort_dir(study)
    if is_demo(study):
        tables = ["images.csv", "clinical.csv", "outcomes.csv", "splits.csv", "oracle.json"]
        return [root / name for name in tables] + [root / "images"]
    tables = [root / name for name in ("images.csv", "clinical.csv", "outcomes.csv")]
    if (root / "splits.csv").exists():
        tables.append(root / "splits.csv")
    return tables


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
    return [qc_report] + _patient_sources(study)[wildcards.patient]


@cache
def _patient_sources(study):
    """patient -> the files of its images.csv rows (grouped once, not filtered per job)."""
    rows = IMAGES[study]
    return {p: _source_files(study, group) for p, group in rows.groupby("patient_id", sort=False)}


def patient_cohort(wildcards):
    return cohort_dir(PATIENT_STUDY[wildcards.patient])


def _convertible(study):
    rows = IMAGES[study]
    return sorted(rows.loc[rows["modality"] != "WSI", "patient_id"].unique())


def all_converted():
    return [f"results/converted/{p}" for study in STUDIES for p in _convertible(study)]


# --- features, folds, harmonization -----------------------------------------------------------


def folds_params(wildcards):
    """Command-line options of make_folds.py for one study."""
    study = STUDIES[wildcards.study]
    folds = study.get("folds", {})
    options = [
        f"--seed {config['seed']}",
        f"--repeats {folds.get('repeats', 5)}",
        f"--holdout {folds.get('holdout', 0.3)}",
    ]
    if folds.get("k"):
        options.append(f"--k {folds['k']}")
    if study.get("stratify"):
        options.append(f"--stratify {study['stratify']}")
    if study.get("external_sites"):
        options.append(f"--external-sites {','.join(study['external_sites'])}")
    return " ".join(options)


def fold_names(study):
    """Fold keys of folds.json: 0..n-1 and final."""
    folds = STUDIES[study].get("folds", {})
    n = folds.get("k") or folds.get("repeats", 5)
    return [str(i) for i in range(n)] + ["final"]


def radiomics_params_file(wildcards):
    """The params YAML: relative to the working directory, else to the workflow (params/ ships)."""
    path = Path(STUDIES[wildcards.study]["radiomics"]["params"])
    return path if path.is_absolute() or path.exists() else Path(workflow.basedir) / path


@cache
def _roi_jobs(study, source):
    """(patient, tp, stem, label) of every masked image the study extracts `source` from.

    source is radiomics or pet; its config block names the image stems and mask labels.
    """
    settings = STUDIES[study][source]
    rows = IMAGES[study]
    jobs = []
    for row in rows.itertuples():
        stem = row.modality if row.series == "-" else f"{row.modality}_{row.series}"
        has_mask = isinstance(row.mask_path, str) and bool(row.mask_path)
        if has_mask and stem in settings["images"]:
            for label in settings["labels"]:
                jobs.append((row.patient_id, row.timepoint, stem, label))
    return sorted(set(jobs))


@cache
def _slides(study):
    rows = IMAGES[study]
    return dict(zip(*rows.loc[rows["modality"] == "WSI", ["patient_id", "path"]].values.T))


def slide_path(wildcards):
    return cohort_dir(wildcards.study) / _slides(wildcards.study)[wildcards.patient]


def slide_input(wildcards):
    """The slide file, or the demo rule's image folder that will contain it."""
    if is_demo(wildcards.study):
        return cohort_dir(wildcards.study) / "images"
    return slide_path(wildcards)


def feature_sources(study):
    """Feature sources the study turns on; one that matches nothing in images.csv is an error."""
    sources = [s for s in ("radiomics", "pathomics", "pet") if STUDIES[study].get(s)]
    for source in sources:
        if source == "pathomics" and not _slides(study):
            raise WorkflowError(
                f"study {study}: pathomics is on but images.csv has no WSI row "
                f"({cohort_dir(study) / 'images.csv'})"
            )
        if source != "pathomics" and not _roi_jobs(study, source):
            raise WorkflowError(
                f"study {study}: {source}.images {STUDIES[study][source]['images']} matches no "
                f"image with a mask in {cohort_dir(study) / 'images.csv'} (image stems there: "
                f"{', '.join(_stems(study)) or 'none'}; a stem is <modality>_<series>, or "
                "<modality> when series is '-')"
            )
    return sources


def _stems(study):
    rows = IMAGES[study]
    return sorted({m if s == "-" else f"{m}_{s}" for m, s in zip(rows["modality"], rows["series"])})


def feature_tables(wildcards):
    """Per-patient feature CSVs of one source, merged by merge_features."""
    study, source = wildcards.study, wildcards.source
    root = f"results/{study}/features/{source}"
    if source in ("radiomics", "pet"):
        return [
            f"{root}/{p}/{tp}_{stem}_label{label}.csv"
            for p, tp, stem, label in _roi_jobs(study, source)
        ]
    return [f"{root}/{p}.csv" for p in sorted(_slides(study))]


def harmonize_params(wildcards):
    """Command-line options of harmonize.py (config `harmonize`)."""
    settings = config["harmonize"]
    options = [f"--batch {settings['batch']}"]
    if settings.get("covariates"):
        options.append(f"--covariates {','.join(settings['covariates'])}")
    if not settings.get("parametric", True):
        options.append("--non-parametric")
    if not settings.get("eb", True):
        options.append("--no-eb")
    if settings.get("mean_only", False):
        options.append("--mean-only")
    options.append(f"--unseen-batches {settings.get('unseen_sites', 'estimate')}")
    return " ".join(options)


def pet_params(wildcards):
    """Threshold option of pet_metrics.py (config studies.<study>.pet)."""
    settings = STUDIES[wildcards.study]["pet"]
    if settings.get("threshold_rel") is not None:
        return f"--threshold-rel {settings['threshold_rel']}"
    if settings.get("threshold") is not None:
        return f"--threshold {settings['threshold']}"
    return ""


def harmonized_tables(study):
    return [
        f"results/{study}/harmonize/{source}/{fold}.csv"
        for source in feature_sources(study)
        for fold in fold_names(study)
    ]


def all_features():
    """Merged feature tables of every study, and per-fold harmonized ones where asked."""
    targets = []
    for study in STUDIES:
        sources = feature_sources(study)
        targets += [f"results/{study}/features/{source}.csv" for source in sources]
        if sources and STUDIES[study].get("harmonize", False):
            targets += harmonized_tables(study)
    return targets


# --- survival models (net_survival) -----------------------------------------------------------


def survival_variants(study):
    """raw, + combat when harmonize is on, + permuted (negative control) when asked."""
    settings = STUDIES[study]
    variants = ["raw"]
    if settings.get("harmonize", False):
        variants.append("combat")
    if settings.get("negative_control", False):
        variants.append("permuted")
    return variants


def study_feature_tables(wildcards):
    return [f"results/{wildcards.study}/features/{s}.csv" for s in feature_sources(wildcards.study)]


def feature_arguments(wildcards):
    return " ".join(
        f"{s}=results/{wildcards.study}/features/{s}.csv" for s in feature_sources(wildcards.study)
    )


def variant_harmonized_tables(wildcards):
    return harmonized_tables(wildcards.study) if wildcards.variant == "combat" else []


def train_survival_params(wildcards):
    """Options of train_net_survival.py: targets, seed, harmonized tables, permutation."""
    study = STUDIES[wildcards.study]
    targets = sorted({t.rsplit("_", 1)[0] for t in study["targets"] if t.endswith("_event")})
    options = [f"--targets {','.join(targets)}", f"--seed {config['seed']}"]
    options.append(f"--horizons {horizons_option()}")
    if wildcards.variant == "combat":
        options.append(f"--harmonized results/{wildcards.study}/harmonize")
    if wildcards.variant == "permuted":
        options.append(f"--permute --permutations {study.get('permutations', 5)}")
    return " ".join(options)


def all_survival_models():
    return [
        f"results/{study}/train/{variant}/{name}"
        for study, settings in STUDIES.items()
        if settings["model"] == "cox_radiopathomics"
        for variant in survival_variants(study)
        for name in ("predictions.csv", "metrics.json")
    ]


# --- evaluation ----------------------------------------------------------------------------------

EVALUATE = {
    "n_boot": 1000,
    "alpha": 0.05,
    "horizons_days": [365, 730, 1095],
    "threshold": "youden",
    "qc_patients": 24,
    **config.get("evaluate", {}),
}


def horizons_option():
    return ",".join(f"{h:g}" for h in EVALUATE["horizons_days"])


def bootstrap_params(wildcards):
    """Bootstrap options shared by evaluate.py and compare_models.py."""
    return f"--n-boot {EVALUATE['n_boot']} --alpha {EVALUATE['alpha']} --seed {config['seed']}"


def evaluate_params(wildcards):
    """Options of evaluate.py: horizons, threshold, bootstrap."""
    return (
        f"--horizons {horizons_option()} --threshold {EVALUATE['threshold']} "
        + bootstrap_params(wildcards)
    )


def model_card_params(wildcards):
    """Model card fields of evaluate.py (study settings from the config)."""
    study = STUDIES[wildcards.study]
    inputs = list(study.get("modalities", [])) + feature_sources(wildcards.study)
    inputs += ["clinical"] if study.get("clinical") else []
    options = {
        "--study": wildcards.study,
        "--variant": wildcards.variant,
        "--model": study["model"],
        "--cohort": str(cohort_dir(wildcards.study)),
        "--inputs": ",".join(inputs),
        "--targets": ",".join(study.get("targets", [])),
    }
    return " ".join(f"{flag} {shlex.quote(value)}" for flag, value in options.items() if value)


def model_variants(study):
    """Trained variants (folders under results/<study>/train) of a study with a model rule."""
    if STUDIES[study]["model"] == "cox_radiopathomics":
        return survival_variants(study)
    return []


def compared_predictions(wildcards):
    """Predictions of the real (not negative-control) variants, compared pairwise."""
    return {
        v: f"results/{wildcards.study}/train/{v}/predictions.csv"
        for v in model_variants(wildcards.study)
        if v != "permuted"
    }


def compared_prediction_files(wildcards):
    return list(compared_predictions(wildcards).values())


def labelled_predictions(wildcards):
    return " ".join(f"{v}={path}" for v, path in compared_predictions(wildcards).items())


def all_evaluations():
    targets = []
    for study in STUDIES:
        variants = model_variants(study)
        targets += [
            f"results/{study}/evaluate/{v}/{name}"
            for v in variants
            for name in ("metrics.json", "model_card.md")
        ]
        if variants:
            targets.append(f"results/{study}/evaluate/comparisons.json")
    return targets


# --- report --------------------------------------------------------------------------------------


def report_study_inputs(wildcards):
    """Everything a study's report section shows: QC, converted images, slides, ComBat, metrics."""
    study = wildcards.study
    inputs = {
        "qc": f"results/qc/{study}/cohort_report.json",
        "converted": [f"results/converted/{p}" for p in _convertible(study)],
        "metrics": [f"results/{study}/evaluate/{v}/metrics.json" for v in model_variants(study)],
    }
    if _slides(study):
        inputs["slides"] = (
            [cohort_dir(study) / "images"]
            if is_demo(study)
            else [cohort_dir(study) / path for path in _slides(study).values()]
        )
    if model_variants(study):
        inputs["comparisons"] = f"results/{study}/evaluate/comparisons.json"
    if STUDIES[study].get("harmonize") and feature_sources(study):
        inputs["harmonize"] = [
            f"results/{study}/harmonize/{s}/final_stats.json" for s in feature_sources(study)
        ]
    return inputs


def report_study_params(wildcards):
    """Options of report_study.py: settings JSON, QC size, labelled statistics and metrics."""
    study = wildcards.study
    options = [
        f"--settings {shlex.quote(json.dumps(STUDIES[study]))}",
        f"--qc-patients {EVALUATE['qc_patients']}",
    ]
    variants = model_variants(study)
    if variants:
        options.append(
            "--metrics "
            + " ".join(f"{v}=results/{study}/evaluate/{v}/metrics.json" for v in variants)
        )
        options.append(f"--comparisons results/{study}/evaluate/comparisons.json")
    if STUDIES[study].get("harmonize") and feature_sources(study):
        options.append(
            "--harmonize "
            + " ".join(
                f"{s}=results/{study}/harmonize/{s}/final_stats.json"
                for s in feature_sources(study)
            )
        )
    return " ".join(options)
