# Helpers only (no rules): config validation, cohort tables, wildcard constraints, paths.

import json
import shlex
import sys
from functools import cache
from pathlib import Path

import pandas as pd
from snakemake.exceptions import WorkflowError

SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))  # the DAG helpers below use the library even without `pip install`

from oncoflow.schemas import validate_config  # noqa: E402

try:
    validate_config(config)  # schemas/config.schema.yaml, defaults filled in
except ValueError as exc:
    raise WorkflowError(str(exc)) from None

from oncoflow.demo import plan_cohort  # noqa: E402
from oncoflow.importer import planned_images  # noqa: E402
from oncoflow.errors import ConfigError  # noqa: E402
from oncoflow.studies import recipe_for  # noqa: E402
from oncoflow.baselines.design import BASELINE_NAMES, baseline_inputs, study_baselines  # noqa: E402
from oncoflow import dag  # noqa: E402
from oncoflow.batch import items_argument, plan_batches  # noqa: E402
from oncoflow import scheduler_fix  # noqa: E402
from oncoflow.errors import OncoflowError  # noqa: E402
from oncoflow.workflow import missing as missing_inputs, options as opts, tables  # noqa: E402

# at most one pending re-evaluation timer in Snakemake's scheduling loop (see the module)
scheduler_fix.apply()

# One Apptainer image per tool group, built from containers/<group>.def (same pins as envs/<group>.yaml).
CONTAINERS = {
    group: f"containers/{group}.sif"
    for group in ("imaging", "radiomics", "pathology", "torch", "nnunet", "survival", "report")
}


def script_path(name, suffix="py"):
    """scripts/<name>.py; rules take it as input `script` and run it with src/ on PYTHONPATH, so the
    library is importable in every job (local, cluster, conda env, container) without installing it.
    """
    return Path(workflow.basedir) / "scripts" / f"{name}.{suffix}"


STUDIES = {name: study for name, study in config["studies"].items() if study.get("enabled", True)}


def _recipes():
    """The recipe of every enabled study (oncoflow.studies): the DAG helpers ask it, not names."""
    try:
        recipes = {name: recipe_for(name, study) for name, study in STUDIES.items()}
        for name, recipe in recipes.items():
            recipe.check_study(name, STUDIES[name])
        return recipes
    except ConfigError as exc:
        raise WorkflowError(str(exc)) from None


RECIPES = _recipes()


def studies_of(family):
    """Enabled studies whose recipe trains its models with the given shared stage."""
    return [s for s, recipe in RECIPES.items() if recipe.family == family]


def recipe_spec(study):
    """The recipe as train_model.py takes it: its name, or the recipe file of the config."""
    return STUDIES[study].get("recipe") or RECIPES[study].name


DEEP_MODEL_NAMES = sorted({m for s in studies_of("deep") for m in RECIPES[s].models})
DEMO = config["demo"]
DEMO_OUT = Path(DEMO["out"])


def is_demo(study):
    """True when the study's cohort is the one the demo rule writes."""
    return DEMO["enabled"] and Path(STUDIES[study]["cohort"]) == DEMO_OUT / study


def is_imported(study):
    """True when the study's cohort is built from a DICOM tree (studies.<study>.import)."""
    return bool(STUDIES[study].get("import"))


def generated_folder(study):
    """The folder a rule of this workflow fills with the study's image files (the demo's images,
    an import's DICOM links), None for a cohort the user gave."""
    if is_demo(study):
        return cohort_dir(study) / "images"
    if is_imported(study):
        return cohort_dir(study) / "dicom"
    return None


def demo_patients(study):
    """Number of demo patients of a study: demo.study_patients.<study>, else demo.patients."""
    return DEMO.get("study_patients", {}).get(study, DEMO["patients"])


def cohort_dir(study):
    return Path(STUDIES[study]["cohort"])


def _checked(function, *args, **kwargs):
    """``function(*args, **kwargs)``, its oncoflow errors raised as Snakemake's WorkflowError
    (one line, no traceback)."""
    try:
        return function(*args, **kwargs)
    except OncoflowError as exc:
        raise WorkflowError(str(exc)) from None


def _read_images(study):
    if is_demo(study):
        return plan_cohort(study, seed=DEMO["seed"], patients=demo_patients(study)).images
    if is_imported(study):  # planned from the DICOM tree; the import rule writes the folder
        return _checked(planned_images, STUDIES[study]["import"], cohort_dir(study))
    return _checked(
        tables.read_images, cohort_dir(study), f"study {study}", f"studies.{study}.cohort"
    )


def _missing_decision(study, images, cohort, label):
    """The study's missing-input decision for one cohort (oncoflow.workflow.missing): refused
    gaps stop the workflow here, before any job runs, naming every patient and what it lacks."""
    recipe = RECIPES[study]
    needs = missing_inputs.requirements(
        STUDIES[study], timepoints=recipe.timepoints, partial=recipe.partial_timepoints
    )
    policy = _checked(missing_inputs.policy_of, STUDIES[study])
    table = Path(cohort) / "clinical.csv"
    clinical = pd.read_csv(table, dtype={"patient_id": str}) if table.is_file() else None
    gaps = missing_inputs.find_missing(images, needs, clinical)
    decision = _checked(missing_inputs.apply_policy, gaps, policy, needs)
    if decision.refused:
        raise WorkflowError(missing_inputs.refusal_message(label, decision.refused))
    return decision


def missing_summary(decision):
    """The decision as the jobs take it (--missing), or None when it is the default's (every
    policy refuse, nobody dropped: the options, and so the jobs, stay as they were)."""
    summary = decision.summary()
    if summary == missing_inputs.Decision(policy=missing_inputs.policy_of({})).summary():
        return None
    return summary


def _kept(images, decision):
    """images.csv rows without the patients the policy drops."""
    return images[~images["patient_id"].astype(str).isin(decision.dropped)]


_ALL_IMAGES = {study: _read_images(study) for study in STUDIES}
MISSING = {s: _missing_decision(s, _ALL_IMAGES[s], cohort_dir(s), s) for s in STUDIES}
IMAGES = {s: _kept(_ALL_IMAGES[s], MISSING[s]) for s in STUDIES}
# patient -> the study that converts it; one id in two different cohorts is an error
PATIENT_STUDY = _checked(tables.patient_owners, {s: (cohort_dir(s), IMAGES[s]) for s in STUDIES})


# --- apply to a new cohort (--config apply_cohort=DIR) -------------------------------------------


def _apply_settings():
    """The new cohorts of `apply`: study -> cohort folder, and the output name.

    apply_cohort is one cohort (images.csv: the study of apply_study, or the only applicable
    one) or a folder of cohorts, one sub-folder per study (<study>/images.csv), as
    scripts/make_demo_cohort.py writes them; apply_study then picks one of them.
    """
    if not config.get("apply_cohort"):
        return None
    root = Path(config["apply_cohort"])
    candidates = [s for s, recipe in RECIPES.items() if recipe.applicable]
    chosen = config.get("apply_study")
    if chosen is not None and chosen not in candidates:
        raise WorkflowError(
            f"apply_study={chosen}: name an enabled study whose trained models can be applied "
            f"({', '.join(candidates) or 'none is enabled'})"
        )
    if (root / "images.csv").is_file():
        study = chosen or (candidates[0] if len(candidates) == 1 else None)
        if study is None:
            raise WorkflowError(
                f"apply_cohort={root} is one cohort and several studies are enabled "
                f"({', '.join(candidates)}): name its study with apply_study=STUDY"
            )
        cohorts = {study: root}
    else:
        cohorts = {
            s: root / s
            for s in candidates
            if (root / s / "images.csv").is_file() and chosen in (None, s)
        }
        if not cohorts:
            raise WorkflowError(
                f"apply_cohort={root}: no images.csv there, nor in a sub-folder named after an "
                f"enabled study ({', '.join(candidates) or 'none is enabled'})"
            )
    name = config.get("apply_name") or root.resolve().name
    return {"cohorts": cohorts, "name": name, "root": dag.fill(dag.APPLY, name=name)}


APPLY = _apply_settings()

# The results trees (oncoflow.dag.Run): the rules both share are declared once per run. Without
# a new cohort the apply run keeps a placeholder name, so its rules are declared (and linted).
TRAINING = dag.Run()
APPLIED = dag.Run(APPLY["name"] if APPLY else "NO_COHORT")
RUNS = (TRAINING, APPLIED)


def run_path(run, pattern, **values):
    """``pattern`` in the tree of ``run``, its wildcards filled in."""
    return dag.fill(run.path(pattern), **values)


def _applied_images(study, root):
    """The new cohort's images.csv rows, without the patients its study's policy drops."""
    label = f"{study} (apply_cohort {root})"
    images = _checked(tables.read_images, root, label, "apply_cohort")
    decision = _missing_decision(study, images, root, label)
    APPLY_MISSING[study] = decision
    return _kept(images, decision)


APPLY_MISSING = {}
APPLY_IMAGES = {
    study: _applied_images(study, root)
    for study, root in (APPLY["cohorts"] if APPLY else {}).items()
}
# patient -> the study of the new cohorts that converts it
APPLY_OWNER = _checked(
    tables.patient_owners,
    {s: (APPLY["cohorts"][s], images) for s, images in APPLY_IMAGES.items()},
)
NO_IMAGES = pd.DataFrame(columns=["patient_id", "modality", "series", "path", "mask_path"])


def applied_studies():
    """Studies of the new cohorts of `apply` (none without apply_cohort)."""
    return list(APPLY["cohorts"]) if APPLY else []


wildcard_constraints:
    study="|".join(STUDIES) or "NO_STUDY",
    patient="|".join(sorted({*map(str, PATIENT_STUDY), *map(str, APPLY_OWNER)})) or "NO_PATIENT",
    source="radiomics|pathomics|pet",
    fold=r"\d+|final",
    tp=r"\d+",
    label=r"\d+",
    variant="|".join(["raw", "combat", "permuted", "nnunet", *DEEP_MODEL_NAMES, *BASELINE_NAMES]),
    subset=r"fold_\d+|test",
    batch=r"\d+",


def cohort_inputs(run):
    """Input function: the tables of the run's cohort (see _study_tables, apply_cohort_inputs)."""
    return apply_cohort_inputs if run.applied else _study_tables


def _study_tables(wildcards):
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
    if is_imported(study):
        settings = STUDIES[study]["import"]
        names = ["images.csv", "clinical.csv"] + (
            ["outcomes.csv"] if settings.get("outcomes") else []
        )
        return [root / name for name in names] + [root / "dicom"]
    names = [root / name for name in ("images.csv", "clinical.csv", "outcomes.csv")]
    if (root / "splits.csv").exists():
        names.append(root / "splits.csv")
    return names


def validate_params(run):
    """Params function: options of validate_cohort.py (see apply_validate_params)."""
    return apply_validate_params if run.applied else _study_validate_params


def _study_validate_params(wildcards):
    return opts.quoted_options(_validate_options(wildcards.study))


def _validate_options(study, decision=None):
    decision = decision or MISSING[study]
    return opts.validate_options(
        STUDIES[study], config["convert"], missing=missing_summary(decision)
    )


def study_cohort(wildcards):
    return cohort_dir(wildcards.study)


def cohort_folder(run):
    """Params function: the folder of the run's cohort."""
    return apply_cohort if run.applied else study_cohort


def _cohort_of(study, run):
    return _need_apply()["cohorts"][study] if run.applied else cohort_dir(study)


def _owner(patient, run):
    """The study whose batches convert ``patient`` (in its run's cohorts)."""
    return APPLY_OWNER[patient] if run.applied else PATIENT_STUDY[patient]


@cache
def _patient_sources(study, run):
    """patient -> the files of its images.csv rows (grouped once, not filtered per job)."""
    root = _cohort_of(study, run)
    rows = _images(study, run)
    return {p: tables.files_of(root, g) for p, g in rows.groupby("patient_id", sort=False)}


def _convertible(study, run=TRAINING):
    return tables.convertible(_images(study, run))


def all_converted():
    return [dag.fill(dag.CONVERTED, patient=p) for study in STUDIES for p in _convertible(study)]


# --- batches of per-patient work (oncoflow.batch) -----------------------------------------------

BATCH_PATIENTS = config["batch"]["patients"]  # default in the schema
# threads of a training job (deep models, nnU-Net, DDPM); Snakemake caps it at --cores
TRAIN_THREADS = config["train_threads"]


@cache
def _batches(study, run=TRAINING):
    """The study's patients in batch.patients chunks (oncoflow.batch.plan_batches)."""
    return plan_batches(_images(study, run)["patient_id"].unique(), BATCH_PATIENTS)


@cache
def _batch_of(study, run):
    return {p: n for n, chunk in enumerate(_batches(study, run)) for p in chunk}


def _staging(stage, study, patient, run=TRAINING):
    """The staging folder of the batch that holds ``patient``'s ``stage`` item."""
    batch = _batch_of(study, run)[patient]
    return run_path(run, dag.BATCH, stage=stage, study=study, batch=batch)


def _converted_staging(patient, run=TRAINING):
    """The conversion staging folder of ``patient`` (converted under the study that owns it)."""
    return _staging("convert", _owner(patient, run), patient, run)


def _batch_patients(wildcards, patients, run=TRAINING):
    chunk = set(_batches(wildcards.study, run)[int(wildcards.batch)])
    return [p for p in patients if p in chunk]


def _items_json(items):
    return shlex.quote(items_argument(items))


def batch_numbers(study, patients, run=TRAINING):
    """Batch numbers that hold at least one of ``patients``."""
    return sorted({_batch_of(study, run)[p] for p in patients})


def convert_priority(wildcards):
    """Scheduling priority of a conversion batch: 1 where the study's features wait for it.

    Radiomics and pathomics batches are the longest per-patient jobs (rule priority 2), so they
    start first, as soon as their inputs exist; otherwise the per-patient phase ends with one
    long feature batch running alone on a machine with idle cores.
    """
    return 1 if STUDIES[wildcards.study].get("radiomics") else 0


def publish_input(stage, run):
    """Input function: the staging folder of the batch that ran this job's patient."""

    def staging(wildcards):
        study = getattr(wildcards, "study", None) or _owner(wildcards.patient, run)
        return _staging(stage, study, wildcards.patient, run)

    return staging


def convert_batch_inputs(run):
    """Input function: validation report and the source files of the batch's patients (the
    demo: its image folder)."""

    def inputs(wildcards):
        study = wildcards.study
        qc_report = run_path(run, dag.QC_STUDY, study=study)
        if generated_folder(study) and not run.applied:
            return [qc_report, generated_folder(study)]
        sources = _patient_sources(study, run)
        return [qc_report] + [
            f for p in _convert_batch_patients(wildcards, run) for f in sources[p]
        ]

    return inputs


def _convert_batch_patients(wildcards, run):
    study = wildcards.study
    owned = [p for p in _convertible(study, run) if _owner(p, run) == study]
    return _batch_patients(wildcards, owned, run)


def convert_batch_items(run):
    """Params function: one convert_patient.py item per patient of the batch."""

    def items(wildcards, output):
        options = ["--tilt", config["convert"]["tilt"]]
        options += ["--uneven-spacing", config["convert"]["uneven_spacing"]]
        cohort = _cohort_of(wildcards.study, run)
        return _items_json(
            (p, ["--cohort", cohort, "--patient", p, "--out", f"{output}/{p}", *options])
            for p in _convert_batch_patients(wildcards, run)
        )

    return items


def converted_staging(patients, run=TRAINING):
    """Conversion staging folders of ``patients`` (each converted under the study that owns it)."""
    return sorted({_converted_staging(p, run) for p in patients})


def _stage_batches(study, patients, stage):
    return [
        dag.fill(dag.BATCH, stage=stage, study=study, batch=n)
        for n in batch_numbers(study, patients)
    ]


def _roi_batch_jobs(wildcards, source, run):
    chunk = set(_batches(wildcards.study, run)[int(wildcards.batch)])
    return [job for job in _roi_jobs(wildcards.study, source, run) if job[0] in chunk]


def roi_batch_converted(source, run):
    """Input function: conversion staging folders of the patients of a radiomics / PET batch."""

    def converted(wildcards):
        patients = {j[0] for j in _roi_batch_jobs(wildcards, source, run)}
        return converted_staging(patients, run)

    return converted


def roi_key(patient, tp, stem, label):
    """Item key of one ROI: its path stem under the batch (and under features/<source>/)."""
    return dag.fill(dag.ROI_ITEM, patient=patient, tp=tp, stem=stem, label=label)


def _roi_items(wildcards, source, run, output, options):
    """One item per ROI of the batch: image and mask of the converted staging folder, the
    source's script options and the key-named output CSV."""
    flag = "--image" if source == "radiomics" else "--pet"
    items = []
    for p, tp, stem, label in _roi_batch_jobs(wildcards, source, run):
        key = roi_key(p, tp, stem, label)
        image = f"{_converted_staging(p, run)}/{p}/{tp}/{stem}"
        argv = [flag, f"{image}.nii.gz", "--mask", f"{image}_mask.nii.gz", "--label", label]
        argv += [*options, "--out", f"{output}/{key}.csv", "--patient", p, "--timepoint", tp]
        items.append((key, argv))
    return _items_json(items)


def radiomics_batch_items(run):
    """Params function: one extract_radiomics.py item per ROI of the batch."""
    return lambda wildcards, input, output: _roi_items(
        wildcards, "radiomics", run, output, ["--params", input.params]
    )


def pet_batch_items(run):
    """Params function: one pet_metrics.py item per ROI of the batch."""
    return lambda wildcards, output: _roi_items(
        wildcards, "pet", run, output, shlex.split(pet_params(wildcards))
    )


def pathomics_batch_inputs(run):
    """Input function: the slides of the batch's patients (the demo: the image folder that will
    contain them)."""

    def slides_of(wildcards):
        if is_demo(wildcards.study) and not run.applied:
            return [cohort_dir(wildcards.study) / "images"]
        slides = _slides(wildcards.study, run)
        root = _cohort_of(wildcards.study, run)
        return [root / slides[p] for p in _batch_patients(wildcards, slides, run)]

    return slides_of


def pathomics_batch_items(run):
    """Params function: one extract_pathomics.py item per slide of the batch."""

    def items(wildcards, output):
        settings = config["pathomics"]
        options = ["--tile-um", settings["tile_um"], "--target-mpp", settings["target_mpp"]]
        options += ["--max-tiles", settings["max_tiles"], "--seed", config["seed"]]
        slides = _slides(wildcards.study, run)
        root = _cohort_of(wildcards.study, run)
        return _items_json(
            (
                p,
                [
                    "--slide",
                    root / slides[p],
                    "--out",
                    f"{output}/{p}.csv",
                    *options,
                    "--patient",
                    p,
                ],
            )
            for p in _batch_patients(wildcards, sorted(slides), run)
        )

    return items


def all_convert_batches():
    return [
        dag.fill(dag.BATCH, stage="convert", study=study, batch=n)
        for study in STUDIES
        for n in batch_numbers(
            study, [p for p in _convertible(study) if _owner(p, TRAINING) == study]
        )
    ]


# --- features, folds, harmonization -----------------------------------------------------------


def folds_params(wildcards):
    """Command-line options of make_folds.py for one study (without its dropped patients)."""
    study = wildcards.study
    text = opts.folds_options(STUDIES[study], config["seed"])
    dropped = sorted(MISSING[study].dropped)
    return f"{text} --exclude {','.join(dropped)}" if dropped else text


def fold_names(study):
    """Fold keys of folds.json: 0..n-1 and final."""
    return opts.fold_names(STUDIES[study])


def radiomics_params_file(wildcards):
    """The params YAML: relative to the working directory, else to the workflow (params/ ships)."""
    path = Path(STUDIES[wildcards.study]["radiomics"]["params"])
    return path if path.is_absolute() or path.exists() else Path(workflow.basedir) / path


def _images(study, run):
    """images.csv rows of the study's cohort, or of the new cohort of `apply`."""
    return APPLY_IMAGES.get(study, NO_IMAGES) if run.applied else IMAGES[study]


@cache
def _roi_jobs(study, source, run=TRAINING):
    """(patient, tp, stem, label) of every masked image the study extracts `source` from."""
    settings = STUDIES[study][source]
    return tables.roi_jobs(_images(study, run), settings["images"], settings["labels"])


@cache
def _slides(study, run=TRAINING):
    return tables.slides(_images(study, run))


def feature_sources(study, run=TRAINING):
    """Feature sources the study turns on; one that matches nothing in images.csv is an error."""
    table = _cohort_of(study, run) / "images.csv"
    return _checked(tables.feature_sources, study, STUDIES[study], _images(study, run), table)


def feature_tables(run):
    """Input function: the per-patient feature CSVs of one source, merged by merge_features."""

    def tables(wildcards):
        study, source = wildcards.study, wildcards.source
        root = run_path(run, dag.FEATURE_ROOT, study=study, source=source)
        if source in ("radiomics", "pet"):
            return [
                f"{root}/{roi_key(p, tp, stem, label)}.csv"
                for p, tp, stem, label in _roi_jobs(study, source, run)
            ]
        return [f"{root}/{p}.csv" for p in sorted(_slides(study, run))]

    return tables


def harmonize_params(wildcards):
    """Command-line options of harmonize.py (config `harmonize`)."""
    return opts.harmonize_options(config["harmonize"])


def pet_params(wildcards):
    """Threshold option of pet_metrics.py (config studies.<study>.pet)."""
    return opts.pet_options(STUDIES[wildcards.study]["pet"])


def harmonized_tables(study):
    return [
        dag.fill(dag.HARMONIZED, study=study, source=source, fold=fold)
        for source in feature_sources(study)
        for fold in fold_names(study)
    ]


def all_features():
    """Merged feature tables of every study, and per-fold harmonized ones where asked."""
    targets = []
    for study in STUDIES:
        sources = feature_sources(study)
        targets += [dag.fill(dag.FEATURES, study=study, source=s) for s in sources]
        if sources and STUDIES[study].get("harmonize", False):
            targets += harmonized_tables(study)
    return targets


# --- survival models (net_survival) -----------------------------------------------------------


def survival_studies():
    return studies_of("survival")


def survival_variants(study):
    """raw, + combat when harmonize is on, + permuted (negative control) when asked."""
    return opts.survival_variants(STUDIES[study])


def study_feature_tables(wildcards):
    return [
        dag.fill(dag.FEATURES, study=wildcards.study, source=s)
        for s in feature_sources(wildcards.study)
    ]


def feature_arguments(wildcards):
    return " ".join(
        f"{s}={dag.fill(dag.FEATURES, study=wildcards.study, source=s)}"
        for s in feature_sources(wildcards.study)
    )


def variant_harmonized_tables(wildcards):
    return harmonized_tables(wildcards.study) if wildcards.variant == "combat" else []


def train_survival_params(wildcards):
    """Options of train_net_survival.py: targets, seed, harmonized tables, permutation."""
    study = wildcards.study
    return opts.survival_options(
        STUDIES[study],
        wildcards.variant,
        config["seed"],
        horizons_option(),
        dag.fill(dag.HARMONIZE_ROOT, study=study),
    )


def all_survival_models():
    return [
        dag.fill(pattern, study=study, variant=variant)
        for study in studies_of("survival")
        for variant in survival_variants(study)
        for pattern in (dag.PREDICTIONS, dag.TRAIN_METRICS)
    ]


# --- synthesis (lung_ddpm) ---------------------------------------------------------------------


def ddpm_studies():
    return studies_of("synthesis")


def ddpm_model_settings(wildcards):
    """DDPMSettings of the study as shell-quoted JSON."""
    return shlex.quote(json.dumps(STUDIES[wildcards.study].get("ddpm", {}).get("model", {})))


def ddpm_sampling_params(wildcards):
    return opts.ddpm_sampling_options(STUDIES[wildcards.study])


def ddpm_samples(wildcards):
    """A synthetic CT for every patient's masks (scored on the test patients; the training
    patients' samples are there for augmentation)."""
    study = wildcards.study
    return [dag.fill(dag.DDPM_SAMPLE, study=study, patient=p) for p in _convertible(study)]


def ddpm_batch_converted(wildcards):
    """Converted images of the patients of a sampling batch."""
    return [
        dag.fill(dag.CONVERTED, patient=p)
        for p in _batch_patients(wildcards, _convertible(wildcards.study))
    ]


def ddpm_items(wildcards, model, run, patients, output):
    """One sample_ddpm.py item per patient: a synthetic CT of its masks from ``model``."""
    options = ["--seed", config["seed"], "--device", config["device"]]
    options += shlex.split(ddpm_sampling_params(wildcards))
    converted = run.path(dag.CONVERTED_ROOT)
    return _items_json(
        (
            p,
            ["--model", model, "--converted", converted, "--patient", p, *options]
            + ["--out", f"{output}/{p}.nii.gz"],
        )
        for p in patients
    )


def ddpm_batch_items(wildcards, input, output):
    patients = _batch_patients(wildcards, _convertible(wildcards.study))
    return ddpm_items(wildcards, input.model, TRAINING, patients, output)


def all_ddpm():
    return [dag.fill(dag.DDPM_METRICS, study=study) for study in ddpm_studies()]


# --- nnU-Net segmentation (pancreas_multitask) -------------------------------------------------


def nnunet_studies():
    return studies_of("segmentation")


def nnunet_settings(study):
    """The study's nnunet block with defaults filled in."""
    return _checked(opts.nnunet_settings, study, STUDIES[study])


def _nnunet_json(study, keys=None, **overrides):
    settings = nnunet_settings(study)
    if keys is not None:  # a job before prediction (export, planning, training)
        settings = opts.before_prediction(settings, keys)
    return shlex.quote(json.dumps({**settings, **overrides}))


def nnunet_settings_json(wildcards):
    """The whole nnunet block as shell-quoted JSON (prediction jobs)."""
    return _nnunet_json(wildcards.study)


def nnunet_train_json(wildcards):
    """The nnunet block of a training job: without the refit head's settings (after training)."""
    after = (
        "refit_head",
        "harmonize_head",
        "head_statistics",
        "head_statistics_reference",
        "head_descriptor",
    )
    keys = [k for k in nnunet_settings(wildcards.study) if k not in after]
    return _nnunet_json(wildcards.study, keys)


def nnunet_dataset_json(wildcards):
    """The keys the export and the collection use: a new schedule does not re-export."""
    return _nnunet_json(wildcards.study, opts.NNUNET_DATASET_KEYS)


def nnunet_plan_json(wildcards, threads):
    """The keys planning uses (a new training schedule does not re-plan), with as many
    preprocessing processes as the job has threads."""
    return _nnunet_json(wildcards.study, opts.NNUNET_PLAN_KEYS, processes=threads)


def nnunet_checkpoint(study, fold):
    """checkpoint_final.pth of one fold (nnU-Net's results layout)."""
    settings = nnunet_settings(study)
    dataset, model = opts.nnunet_dataset(settings), opts.nnunet_model(settings)
    return dag.fill(dag.NNUNET_CHECKPOINT, study=study, dataset=dataset, model=model, fold=fold)


def nnunet_results_of(wildcards, output):
    """nnUNet_results of a fold's output (.../nnUNet_results/<dataset>/<model>/fold_<k>/<file>)."""
    return str(Path(output[0]).parents[3])


def nnunet_refit_heads(study, folds):
    """head_refit.pt of the folds when the study classifies with refit heads (refit_head)."""
    settings = nnunet_settings(study)
    if not settings.get("refit_head", False):
        return []
    dataset, model = opts.nnunet_dataset(settings), opts.nnunet_model(settings)
    return [
        dag.fill(dag.NNUNET_REFIT_HEAD, study=study, dataset=dataset, model=model, fold=fold)
        for fold in folds
    ]


def nnunet_predict_checkpoints(wildcards):
    """Checkpoints a subset needs: its fold's (fold_<k>) or every trained fold's (test)."""
    study = wildcards.study
    if wildcards.subset == "test":
        folds = nnunet_settings(study)["folds"]
    else:
        folds = [int(wildcards.subset.removeprefix("fold_"))]
    checkpoints = [nnunet_checkpoint(study, fold) for fold in folds]
    return checkpoints + nnunet_refit_heads(study, folds)


def nnunet_subsets(wildcards):
    """Prediction folders collected into predictions.csv: each trained fold's and the test's."""
    folds = nnunet_settings(wildcards.study)["folds"]
    return [
        dag.fill(dag.NNUNET_PREDICTED, study=wildcards.study, subset=s)
        for s in [*(f"fold_{k}" for k in folds), "test"]
    ]


def nnunet_all_checkpoints(wildcards):
    """checkpoint_final.pth of every trained fold of the study."""
    folds = nnunet_settings(wildcards.study)["folds"]
    return [nnunet_checkpoint(wildcards.study, fold) for fold in folds]


def all_nnunet():
    """predictions.csv + Dice of every nnU-Net study (the evaluate rule scores them)."""
    return [dag.fill(dag.PREDICTIONS, study=s, variant="nnunet") for s in nnunet_studies()]


def segmentation_tables(wildcards):
    """The per-case Dice table of a segmentation model (evaluate.py --segmentation)."""
    study, variant = wildcards.study, wildcards.variant
    if RECIPES[study].family == "segmentation" and variant == "nnunet":
        return [dag.fill(dag.DICE, study=wildcards.study, variant=wildcards.variant)]
    return []


def segmentation_option(wildcards, input):
    """--segmentation of evaluate.py; rules reusing evaluate without that input get nothing."""
    table = getattr(input, "segmentation", None)
    return f"--segmentation {table}" if table else ""


# --- lesion crops -------------------------------------------------------------------------------


def lesion_studies():
    return [s for s, settings in STUDIES.items() if settings.get("lesions")]


def lesion_settings_json(wildcards):
    return shlex.quote(json.dumps(_lesion_settings(wildcards.study)))


def _lesion_settings(study):
    """The study's lesions block as extract_lesions.py takes it (without the keys of `apply`)."""
    return {k: v for k, v in STUDIES[study]["lesions"].items() if k != "segmentor"}


def _nnunet_source(study, source):
    """``source``, the study whose nnU-Net segments ``study``'s crops; refused without one."""
    if source not in nnunet_studies():
        what = "lesions.masks is nnunet" if source == study else f"lesions.segmentor is {source}"
        raise WorkflowError(f"study {study}: {what} but the study has no nnU-Net model")
    return source


def lesion_predicted_masks(run):
    """Input function: folders of predicted masks the lesion crops read instead of given ones
    (lesions.masks nnunet: the study's own nnU-Net; in training its fold subsets, for a new
    cohort the frozen model's prediction of it)."""

    def masks(wildcards):
        study = wildcards.study
        if STUDIES[study]["lesions"].get("masks", "given") != "nnunet":
            return []
        _nnunet_source(study, study)
        if run.applied:
            return [run_path(APPLIED, dag.APPLY_NNUNET, study=study)]
        return nnunet_subsets(wildcards)

    return masks


def lesion_fallback_masks(run):
    """Input function: masks for a new cohort's time points that have none (lesions.segmentor:
    the frozen nnU-Net of that study segments them); nothing in training."""

    def masks(wildcards):
        source = STUDIES[wildcards.study]["lesions"].get("segmentor")
        if not run.applied or not source:
            return []
        _nnunet_source(wildcards.study, source)
        return [run_path(APPLIED, dag.APPLY_SEGMENTED, study=wildcards.study)]

    return masks


def _lesion_patients(study, run=TRAINING):
    """Patients with at least one of the stems the study crops."""
    return tables.patients_with(_images(study, run), STUDIES[study]["lesions"]["images"])


def all_lesions():
    return [
        dag.fill(dag.LESIONS, study=s, patient=p)
        for s in lesion_studies()
        for p in _lesion_patients(s)
    ]


def lesion_batch_converted(run):
    """Input function: conversion staging folders of the patients of a lesion batch."""

    def converted(wildcards):
        patients = _batch_patients(wildcards, _lesion_patients(wildcards.study, run), run)
        return converted_staging(patients, run)

    return converted


def lesion_batch_items(run):
    """Params function: one extract_lesions.py item per patient of the batch."""

    def items(wildcards, input, output):
        study = wildcards.study
        options = ["--settings", json.dumps(_lesion_settings(study)), "--seed", config["seed"]]
        if input.predicted:
            folders = [f"{f}/masks" if run.applied else f for f in input.predicted]
            options += ["--predicted-masks", *folders]
        if input.fallback:
            options += ["--fallback-masks", *(f"{f}/masks" for f in input.fallback)]
        argv = []
        for p in _batch_patients(wildcards, _lesion_patients(study, run), run):
            converted = _converted_staging(p, run)
            out = ["--out", f"{output}/{p}"]
            argv.append((p, ["--converted", converted, "--patient", p, *options, *out]))
        return _items_json(argv)

    return items


def index_folders(wildcards):
    """The per-patient folders a study index lists: lesion crops or converted images."""
    if wildcards.stage == "lesions":
        return [
            dag.fill(dag.LESIONS, study=wildcards.study, patient=p)
            for p in _lesion_patients(wildcards.study)
        ]
    return [dag.fill(dag.CONVERTED, patient=p) for p in _convertible(wildcards.study)]


def index_of(stage):
    """Input function: the study's index of its `stage` folders (one input instead of hundreds)."""
    return lambda wildcards: dag.fill(dag.STAGE_INDEX, study=wildcards.study, stage=stage)


# --- deep models (pancreas_progression, liver_response, nsclc_mmdls) ----------------------------

# keys of studies.<s>.train that the workflow reads; the rest are the model's settings
DEEP_WORKFLOW_KEYS = ("ablation", "inner_fraction")


def deep_studies():
    return studies_of("deep")


def deep_variants(study):
    """The study's model (after its recipe's ablation ladder, if any), + permuted."""
    settings = STUDIES[study]
    models = RECIPES[study].variants(settings)
    if settings.get("negative_control", False):
        models.append("permuted")
    return models


def deep_folds(study):
    """CV fold names (0..k-1) the fold ensemble is made of; the study must set folds.k."""
    k = STUDIES[study].get("folds", {}).get("k")
    if not k:
        raise WorkflowError(
            f"study {study}: deep models need cross-validation folds (set studies.{study}.folds.k)"
        )
    return [str(i) for i in range(k)]


def deep_fold_predictions(wildcards):
    return [
        dag.fill(dag.FOLD_PREDICTIONS, study=wildcards.study, variant=wildcards.variant, fold=k)
        for k in deep_folds(wildcards.study)
    ]


def deep_converted(wildcards):
    """Index of the study's converted images, for models that read whole slices (mm_dls)."""
    if RECIPES[wildcards.study].whole_images:
        return index_of("converted")(wildcards)
    return []


def deep_recipe(wildcards):
    """--recipe of train_model.py: the study's recipe name or file."""
    return shlex.quote(recipe_spec(wildcards.study))


def deep_model(wildcards):
    """Model a train_model job trains: the variant, or the study's model for `permuted`."""
    if wildcards.variant == "permuted":
        return STUDIES[wildcards.study]["model"]
    return wildcards.variant


def deep_settings_json(wildcards):
    """The model's settings: the study's train block + its stems, clinical columns, targets."""
    settings = RECIPES[wildcards.study].training_settings(
        STUDIES[wildcards.study], EVALUATE["horizons_days"], DEEP_WORKFLOW_KEYS
    )
    return shlex.quote(json.dumps(settings))


def deep_train_params(wildcards, input):
    """Options of train_model.py besides the paths: features, seed, device."""
    train = STUDIES[wildcards.study].get("train", {})
    options = [
        f"--seed {config['seed']}",
        f"--device {config.get('device', 'auto')}",
        f"--inner-fraction {train.get('inner_fraction', 0.2)}",
    ]
    sources = feature_sources(wildcards.study)
    if sources:
        pairs = " ".join(f"{s}={path}" for s, path in zip(sources, input.features))
        options.append(f"--features {pairs}")
    if input.converted:
        options.append(f"--converted {dag.CONVERTED_ROOT}")
    return " ".join(options)


def deep_control_params(wildcards):
    """--permute --permutations N for the negative control (wildcards only, so a change of
    `permutations` reruns the control's fold jobs through the params trigger)."""
    if wildcards.variant != "permuted":
        return ""
    return f"--permute --permutations {STUDIES[wildcards.study].get('permutations', 5)}"


def all_deep_models():
    return [
        dag.fill(dag.PREDICTIONS, study=study, variant=variant)
        for study in deep_studies()
        for variant in deep_variants(study)
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
    return opts.horizons_option(EVALUATE["horizons_days"])


def bootstrap_params(wildcards):
    """Bootstrap options shared by evaluate.py and compare_models.py."""
    return f"--n-boot {EVALUATE['n_boot']} --alpha {EVALUATE['alpha']} --seed {config['seed']}"


def evaluate_params(run):
    """Params function: options of evaluate.py (horizons, threshold, bootstrap; a new cohort is
    also scored against the training run's predictions)."""

    def options(wildcards):
        text = f"--horizons {horizons_option()} --threshold {EVALUATE['threshold']} "
        text += bootstrap_params(wildcards)
        if run.applied:
            training = dag.fill(dag.PREDICTIONS, study=wildcards.study, variant=wildcards.variant)
            text += f" --training {training}"
        return text

    return options


def run_predictions(run):
    """The predictions pattern a run evaluates: trained models' or the new cohort's."""
    return run.path(dag.APPLY_PREDICTIONS) if run.applied else dag.PREDICTIONS


def model_card_params(wildcards):
    """Model card fields of evaluate.py (study settings from the config)."""
    study, variant = wildcards.study, wildcards.variant
    settings, sources = STUDIES[study], feature_sources(study)
    if variant in BASELINE_NAMES:
        inputs = baseline_inputs(variant)
        model = "tabular baseline (penalised logistic / multinomial / Cox)"
        clinical = settings.get("clinical", []) if "clinical" in inputs else []
        settings = {**settings, "model": model, "modalities": [], "clinical": clinical}
        sources = [
            name
            for name, block in (("mask_sizes", "size"), ("lesion_statistics", "lesion"))
            if block in inputs
        ]
    return opts.model_card_options(
        study,
        variant,
        settings,
        sources,
        cohort_dir(study),
        missing=missing_summary(MISSING[study]),
    )


def applied_variants(study):
    """The variants `apply` scores: every model; the nnU-Net head's permuted-label control is a
    check of training (new heads on the training folds' features), not a model to apply."""
    variants = model_variants(study)
    if RECIPES[study].family == "segmentation":
        return [v for v in variants if v != "permuted"]
    return variants


def model_variants(study):
    """Trained variants (folders under results/<study>/train) of a study with a model rule."""
    family = RECIPES[study].family
    if family == "survival":
        return survival_variants(study)
    if family == "segmentation":
        control = STUDIES[study].get("negative_control", False)
        return ["nnunet", *(["permuted"] if control else [])]
    if family == "deep":
        return deep_variants(study)
    return []


def baseline_variants(study):
    """The tabular baselines of a study with a prediction target (oncoflow.baselines)."""
    settings = STUDIES[study]
    if RECIPES[study].family == "synthesis" or not settings.get("targets"):
        return []
    has_masks = bool(IMAGES[study]["mask_path"].astype(str).str.len().gt(0).any())
    return study_baselines(settings.get("clinical", []), has_masks, RECIPES[study].baselines)


def baseline_metrics(wildcards):
    """The baselines' metrics.json a model's card lists (none for a baseline or the control)."""
    study, variant = wildcards.study, wildcards.variant
    if variant in BASELINE_NAMES or variant == "permuted":
        return []
    return [dag.fill(dag.METRICS, study=study, variant=b) for b in baseline_variants(study)]


def baselines_option(wildcards, input):
    """--baselines of evaluate.py: label=path of each baseline's metrics (input.baselines)."""
    paths = list(getattr(input, "baselines", []))
    if not paths:
        return ""
    return "--baselines " + " ".join(f"{Path(p).parent.name}={p}" for p in paths)


def evaluated_variants(study):
    """Everything the evaluation scores: the trained variants, then the baselines."""
    return model_variants(study) + baseline_variants(study)


def baseline_settings_json(wildcards):
    """What a baseline reads of the study's config, as shell-quoted JSON."""
    settings = STUDIES[wildcards.study]
    keys = ("clinical", "targets", "mask_labels")
    return shlex.quote(json.dumps({k: settings.get(k, []) for k in keys}))


def baseline_params(wildcards):
    """Options of train_baseline.py: inputs, test-row protocol (as the study's models), seed."""
    protocol = "final" if RECIPES[wildcards.study].family == "survival" else "ensemble"
    inputs = ",".join(baseline_inputs(wildcards.variant))
    return (
        f"--inputs {inputs} --protocol {protocol} --horizons {horizons_option()}"
        f" --seed {config['seed']}"
    )


def compared_predictions(wildcards):
    """Predictions of the real (not negative-control) variants and baselines, compared."""
    return {
        v: dag.fill(dag.PREDICTIONS, study=wildcards.study, variant=v)
        for v in evaluated_variants(wildcards.study)
        if v != "permuted"
    }


def compared_prediction_files(wildcards):
    return list(compared_predictions(wildcards).values())


def labelled_predictions(wildcards):
    return opts.labelled(compared_predictions(wildcards))


def all_evaluations():
    targets = []
    for study in STUDIES:
        variants = evaluated_variants(study)
        targets += [
            dag.fill(pattern, study=study, variant=v)
            for v in variants
            for pattern in (dag.METRICS, dag.MODEL_CARD)
        ]
        if variants:
            targets.append(dag.fill(dag.COMPARISONS, study=study))
    return targets


# --- report --------------------------------------------------------------------------------------


def report_scale(wildcards):
    """--scale of the report when the run is the demo (demo.scale: smoke puts a notice first)."""
    return f"--scale {DEMO.get('scale', 'full')}" if DEMO["enabled"] else ""


def report_study_inputs(run):
    """Input function: everything a study's report section shows (QC, converted images, slides,
    ComBat, metrics) in the run's tree."""
    return lambda wildcards: _report_inputs(_report_parts(wildcards.study, run))


def report_study_params(run):
    """Params function: options of report_study.py (settings JSON, QC size, labelled statistics
    and metrics, the ablation ladder; a new cohort's section gets its own title)."""

    def options(wildcards):
        study = wildcards.study
        title = f"{study} applied to {_need_apply()['name']}" if run.applied else None
        text = opts.report_options(
            json.dumps(STUDIES[study]),
            _report_parts(study, run),
            EVALUATE["qc_patients"],
            title,
        )
        ladder = [v for v in deep_variants(study) if v != "permuted"]
        if RECIPES[study].ladder and not run.applied and len(ladder) > 1:
            text += f" --ladder {','.join(ladder)}"
        return text

    return options


def _report_parts(study, run):
    """The files a report section shows: of the study's run, or of the new cohort of `apply`."""
    variants = applied_variants(study) if run.applied else evaluated_variants(study)
    sources = feature_sources(study, run) if STUDIES[study].get("harmonize") else []
    if run.applied:
        return {
            "qc": run_path(run, dag.QC_STUDY, study=study),
            "converted": [
                run_path(run, dag.CONVERTED, patient=p) for p in _convertible(study, run)
            ],
            "slides": [_cohort_of(study, run) / path for path in _slides(study, run).values()],
            "metrics": {v: run_path(run, dag.METRICS, study=study, variant=v) for v in variants},
            "comparisons": None,
            "harmonize": {
                s: run_path(run, dag.APPLY_HARMONIZED_STATS, study=study, source=s) for s in sources
            },
            "ddpm": [
                run_path(run, pattern, study=study)
                for pattern in (dag.APPLY_DDPM_METRICS, dag.APPLY_DDPM_PANEL, dag.APPLY_DDPM_LOSS)
                if study in ddpm_studies()
            ],
        }
    slides = [cohort_dir(study) / path for path in _slides(study).values()]
    return {
        "qc": dag.fill(dag.QC_STUDY, study=study),
        "converted": dag.fill(dag.STAGE_INDEX, study=study, stage="converted"),
        "slides": [cohort_dir(study) / "images"] if slides and is_demo(study) else slides,
        "metrics": {v: dag.fill(dag.METRICS, study=study, variant=v) for v in variants},
        "comparisons": dag.fill(dag.COMPARISONS, study=study) if variants else None,
        "harmonize": {
            s: dag.fill(dag.HARMONIZED_FINAL_STATS, study=study, source=s) for s in sources
        },
        "ddpm": [
            dag.fill(pattern, study=study)
            for pattern in (dag.DDPM_METRICS, dag.DDPM_PANEL, dag.DDPM_LOSS)
            if study in ddpm_studies()
        ],
    }


def report_sections(run, pattern=dag.REPORT_SECTION):
    """Input function: one file per study of the report (a new cohort: its study's); the
    sections, or with ``pattern`` their summaries."""

    def sections(wildcards):
        studies = list(_need_apply()["cohorts"]) if run.applied else STUDIES
        return [run_path(run, pattern, study=s) for s in studies]

    return sections


def report_qc(run):
    """Input function: the cohort report the run's report opens with."""
    return lambda wildcards: run.path(dag.QC_ALL)


def qc_reports(run):
    """The per-study cohort reports the run's summary joins."""
    studies = applied_studies() if run.applied else STUDIES
    return [run_path(run, dag.QC_STUDY, study=s) for s in studies]


def _report_inputs(parts):
    inputs = {k: parts[k] for k in ("qc", "converted")}
    inputs["metrics"] = list(parts["metrics"].values())
    for key in ("slides", "comparisons", "ddpm"):
        if parts[key]:
            inputs[key] = parts[key]
    if parts["harmonize"]:
        inputs["harmonize"] = list(parts["harmonize"].values())
    return inputs


# --- apply -----------------------------------------------------------------------------------


def _need_apply():
    if APPLY is None:
        raise WorkflowError(
            "the apply target needs a new cohort: snakemake apply --config apply_cohort=DIR "
            "[apply_study=STUDY apply_name=NAME] (README: Apply trained models to a new cohort)"
        )
    return APPLY


def _applied_cohort(study):
    return _need_apply()["cohorts"][study]


def apply_cohort_inputs(wildcards):
    """The new cohort's tables (outcomes.csv only when it has one)."""
    root = _applied_cohort(wildcards.study)
    names = ["images.csv", "clinical.csv", "outcomes.csv"]
    return [root / name for name in names if name != "outcomes.csv" or (root / name).exists()]


def apply_validate_params(wildcards):
    """validate_cohort.py options for the new cohort: the study's; outcomes only if it has them."""
    options = _validate_options(wildcards.study, APPLY_MISSING[wildcards.study])
    if (_applied_cohort(wildcards.study) / "outcomes.csv").exists():
        return opts.quoted_options(options)
    options.pop("--targets")
    return f"{opts.quoted_options(options)} --optional-outcomes"


def apply_cohort(wildcards):
    return _applied_cohort(wildcards.study)


def apply_qc(wildcards):
    return run_path(APPLIED, dag.QC_STUDY, study=wildcards.study)


def apply_model_features(wildcards):
    """The new cohort's feature tables a variant's models take (harmonised for combat)."""
    study = wildcards.study
    pattern = dag.APPLY_HARMONIZED if wildcards.variant == "combat" else dag.FEATURES
    sources = feature_sources(study, APPLIED)
    return {s: run_path(APPLIED, pattern, study=study, source=s) for s in sources}


def apply_feature_arguments(wildcards):
    return opts.labelled(apply_model_features(wildcards))


def apply_fold_models(wildcards):
    """model.pt of every fold of a deep variant (frozen training artefacts)."""
    return [
        dag.fill(dag.FOLD_MODEL, study=wildcards.study, variant=wildcards.variant, fold=k)
        for k in deep_folds(wildcards.study)
    ]


def apply_lesions(wildcards):
    """Lesion folders of the new cohort's patients (its own lesions stage)."""
    study = wildcards.study
    return [
        run_path(APPLIED, dag.LESIONS, study=study, patient=p)
        for p in _lesion_patients(study, APPLIED)
    ]


def apply_deep_inputs(wildcards):
    """Feature tables and converted images of the new cohort that a deep model reads."""
    study = wildcards.study
    inputs = {
        "features": [
            run_path(APPLIED, dag.FEATURES, study=study, source=s)
            for s in feature_sources(study, APPLIED)
        ]
    }
    if RECIPES[study].whole_images:
        inputs["converted"] = [
            run_path(APPLIED, dag.CONVERTED, patient=p) for p in _convertible(study, APPLIED)
        ]
    return inputs


def apply_deep_params(wildcards, input):
    """Options of apply_deep.py besides the models: recipe, folders, feature tables, device."""
    study = wildcards.study
    text = f"--recipe {deep_recipe(wildcards)} --device {config['device']}"
    text += f" --lesions {run_path(APPLIED, dag.LESIONS_ROOT, study=study)}"
    sources = feature_sources(study, APPLIED)
    if sources:
        features = {s: run_path(APPLIED, dag.FEATURES, study=study, source=s) for s in sources}
        text += f" --features {opts.labelled(features)}"
    if RECIPES[study].whole_images:
        text += f" --converted {APPLIED.path(dag.CONVERTED_ROOT)}"
    return text


def apply_nnunet_checkpoints(wildcards):
    """checkpoint (and refit head) of every trained fold of the study's nnU-Net (frozen)."""
    folds = nnunet_settings(wildcards.study)["folds"]
    checkpoints = [nnunet_checkpoint(wildcards.study, k) for k in folds]
    return checkpoints + nnunet_refit_heads(wildcards.study, folds)


def _segmentor(wildcards):
    return STUDIES[wildcards.study]["lesions"]["segmentor"]


def segmentor_checkpoints(wildcards):
    """Trained folds of the nnU-Net that segments a study's unmasked new time points."""
    source = _segmentor(wildcards)
    folds = nnunet_settings(source)["folds"]
    return [nnunet_checkpoint(source, k) for k in folds] + nnunet_refit_heads(source, folds)


def segmentor_settings_json(wildcards):
    return _nnunet_json(_segmentor(wildcards))


def segmentor_results(wildcards):
    return dag.fill(dag.NNUNET_RESULTS, study=_segmentor(wildcards))


def apply_converted(wildcards):
    """Converted folders of the new cohort's patients of a study."""
    return [
        run_path(APPLIED, dag.CONVERTED, patient=p) for p in _convertible(wildcards.study, APPLIED)
    ]


def apply_ddpm_items(wildcards, input, output):
    """One sample_ddpm.py item per patient of the new cohort (the frozen model, its masks)."""
    return ddpm_items(
        wildcards, input.model, APPLIED, _convertible(wildcards.study, APPLIED), output
    )


def all_applied(wildcards):
    """Predictions, metrics and the report of every new cohort (needs apply_cohort)."""
    targets = [APPLIED.path(dag.REPORT)]
    for study in _need_apply()["cohorts"]:
        feature_sources(study, APPLIED)  # refuses a cohort without the images the models need
        if RECIPES[study].family == "synthesis":
            targets.append(run_path(APPLIED, dag.APPLY_DDPM_METRICS, study=study))
        targets += [
            run_path(APPLIED, pattern, study=study, variant=v)
            for v in applied_variants(study)
            for pattern in (dag.APPLY_PREDICTIONS, dag.METRICS)
        ]
    return targets
