"""The command-line options each script gets from the config, built in one place.

A params function of ``rules/common.smk`` picks the config block and the wildcards and calls one
of these; the string it returns is what the rule's shell command receives. Snakemake reruns a
job when its params change, so each function returns only what its script reads: a setting that
does not change a job's output must not appear in its options.

Example:
    >>> harmonize_options({"batch": "site", "covariates": ["age"], "eb": False})
    '--batch site --covariates age --no-eb --unseen-batches estimate'
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from oncoflow.errors import ConfigError

# nnU-Net settings a study's nnunet block may leave out
NNUNET_DEFAULTS: dict[str, object] = {
    "planner": "nnUNetPlannerResEncM",
    "configuration": "3d_fullres",
    "folds": [0, 1, 2, 3, 4],
    "plans": {"name": "oncoflowResEncMPlans"},
    "trainer": {"name": "oncoflowMultitaskTrainer"},
    "head": {},
    "checkpoint": "checkpoint_best.pth",
    "processes": 2,
}
# what export and collection read (a new training schedule does not re-export) ...
NNUNET_DATASET_KEYS = (
    "dataset_id",
    "dataset_name",
    "channels",
    "label",
    "regions",
    "classify",
    "calibrate",
)
# ... and what planning reads (a new training schedule does not re-plan)
NNUNET_PLAN_KEYS = (*NNUNET_DATASET_KEYS, "planner", "configuration", "plans", "head", "processes")
# calibrate keys that only prediction reads: a new value re-predicts, never re-exports or retrains
CALIBRATE_PREDICTION_KEYS = ("starts",)


def before_prediction(settings: Mapping, keys: Sequence[str]) -> dict[str, object]:
    """The nnunet settings a job before prediction reads: ``keys``, less what only prediction reads.

    Export, planning and training see the ``calibrate`` block without
    :data:`CALIBRATE_PREDICTION_KEYS`, so that a new starting offset of the calibration's passes
    reruns the predictions and not the training.
    """
    out = {k: v for k, v in settings.items() if k in keys}
    if isinstance(out.get("calibrate"), Mapping):
        block = out["calibrate"]
        out["calibrate"] = {k: v for k, v in block.items() if k not in CALIBRATE_PREDICTION_KEYS}
    return out


def _single_quoted(value: object) -> str:
    """``value`` in single quotes; a quote in it is closed, escaped and reopened."""
    escaped = "'\\''"
    return "'" + str(value).replace("'", escaped) + "'"


def quoted_options(options: Mapping[str, object]) -> str:
    r"""``--flag 'value'`` for every option with a value (empty values are left out).

    A single quote in a value is closed, escaped and reopened, so any text (a JSON decision
    naming a patient ``O'Neil``) reaches the script as one argument.

    Example:
        >>> print(quoted_options({"--a": "x y", "--b": "", "--c": "it's"}))
        --a 'x y' --c 'it'\''s'
    """
    return " ".join(f"{flag} {_single_quoted(value)}" for flag, value in options.items() if value)


def labelled(paths: Mapping[str, object]) -> str:
    """``label=path`` pairs, space-separated (the scripts' ``--metrics`` style arguments)."""
    return " ".join(f"{label}={path}" for label, path in paths.items())


def missing_json(missing: Mapping | None) -> str:
    """The study's missing-input decision as compact JSON with sorted keys (``""`` for none).

    The same decision gives the same text, so a job reruns only when the decision changes.
    """
    if not missing:
        return ""
    return json.dumps(missing, sort_keys=True, separators=(",", ":"))


def validate_options(
    settings: Mapping, convert: Mapping, missing: Mapping | None = None
) -> dict[str, object]:
    """Options of validate_cohort.py.

    The study's clinical fields, targets and mask labels, the conversion policies it checks
    the images against (config ``convert``), and its missing-input decision.

    Args:
        settings: The study's config block.
        convert: The config's ``convert`` block (``tilt``, ``uneven_spacing``).
        missing: The study's missing-input decision (``{"policy", "dropped", "imputed",
            "partial"}``, see :func:`oncoflow.workflow.missing.missing_record`) for
            ``--missing``; ``None`` leaves the option out.

    Returns:
        Flag -> value, for :func:`quoted_options` (empty values are left out).
    """
    return {
        "--clinical": ",".join(settings.get("clinical", [])),
        "--targets": ",".join(settings.get("targets", [])),
        "--mask-labels": ",".join(map(str, settings.get("mask_labels", []))),
        "--tilt": convert["tilt"],
        "--uneven-spacing": convert["uneven_spacing"],
        "--missing": missing_json(missing),
    }


def import_options(settings: Mapping) -> str:
    """Options of import_dicom.py from a study's ``import`` block (quoted; unset ones left out)."""
    return quoted_options(
        {
            "--dicom": settings["dicom"],
            "--key-file": settings["key_file"],
            "--rules": settings.get("rules"),
            "--clinical": settings.get("clinical"),
            "--outcomes": settings.get("outcomes"),
            "--id-column": settings.get("id_column", "patient_id"),
            "--anchor-column": settings.get("anchor_column"),
        }
    )


def folds_options(settings: Mapping, seed: int) -> str:
    """Options of make_folds.py: seed, repeats / k, holdout fraction, strata, external sites."""
    folds = settings.get("folds", {})
    options = [
        f"--seed {seed}",
        f"--repeats {folds.get('repeats', 5)}",
        f"--holdout {folds.get('holdout', 0.3)}",
    ]
    if folds.get("k"):
        options.append(f"--k {folds['k']}")
    if folds.get("by") == "site":
        options.append("--by-site")
    if settings.get("stratify"):
        options.append(f"--stratify {settings['stratify']}")
    if settings.get("external_sites"):
        options.append(f"--external-sites {','.join(settings['external_sites'])}")
    return " ".join(options)


def fold_names(settings: Mapping) -> list[str]:
    """Fold keys of a study's folds.json: ``0`` .. ``n-1`` and ``final``.

    Raises:
        ValueError: Leave-one-site-out folds (``by: site``) without ``k``.
    """
    folds = settings.get("folds", {})
    if folds.get("by") == "site" and not folds.get("k"):
        msg = "folds: {by: site} needs k, the number of training sites (e.g. {by: site, k: 2})"
        raise ValueError(msg)
    n = folds.get("k") or folds.get("repeats", 5)
    return [str(i) for i in range(n)] + ["final"]


def harmonize_options(settings: Mapping) -> str:
    """Options of harmonize.py (config ``harmonize``)."""
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


def pet_options(settings: Mapping) -> str:
    """Options of pet_metrics.py from the study's ``pet`` block.

    The threshold (relative to SUVmax, absolute SUV, or none) and the avid foci outside the
    ROI (``foci``: the labels counted apart, the focus threshold).
    """
    options = []
    if settings.get("threshold_rel") is not None:
        options.append(f"--threshold-rel {settings['threshold_rel']}")
    elif settings.get("threshold") is not None:
        options.append(f"--threshold {settings['threshold']}")
    foci = settings.get("foci")
    if foci is not None:
        options.append("--foci-labels " + " ".join(str(v) for v in foci.get("labels", [])))
        if foci.get("threshold") is not None:
            options.append(f"--foci-threshold {foci['threshold']}")
    return " ".join(options)


def survival_variants(settings: Mapping) -> list[str]:
    """The trained variants of a survival study.

    ``raw``, + ``combat`` when harmonize is on, + ``permuted`` (the negative control) when asked.
    """
    variants = ["raw"]
    if settings.get("harmonize", False):
        variants.append("combat")
    if settings.get("negative_control", False):
        variants.append("permuted")
    return variants


def horizons_option(horizons_days: Sequence[float]) -> str:
    """The evaluation horizons in days, comma-separated (``365,730,1095``)."""
    return ",".join(f"{h:g}" for h in horizons_days)


def survival_options(
    settings: Mapping, variant: str, seed: int, horizons: str, harmonized: str
) -> str:
    """Options of train_net_survival.py.

    Targets, seed, horizons, harmonised tables (combat), permutations (permuted).

    Args:
        settings: The study's config block.
        variant: raw, combat or permuted.
        seed: The workflow seed.
        horizons: ``horizons_option`` of the evaluation horizons.
        harmonized: The study's harmonize folder (read by the combat variant only).
    """
    targets = sorted({t.rsplit("_", 1)[0] for t in settings["targets"] if t.endswith("_event")})
    options = [f"--targets {','.join(targets)}", f"--seed {seed}", f"--horizons {horizons}"]
    if variant == "combat":
        options.append(f"--harmonized {harmonized}")
    if variant == "permuted":
        options.append(f"--permute --permutations {settings.get('permutations', 5)}")
    return " ".join(options)


def ddpm_sampling_options(settings: Mapping) -> str:
    """Options of sample_ddpm.py from ``ddpm.sampling`` (anatomy preservation, DDIM steps)."""
    sampling = settings.get("ddpm", {}).get("sampling", {})
    options = []
    if not sampling.get("anatomy_preserving", True):
        options.append("--no-anatomy-preserving")
    if sampling.get("ddim_steps"):
        options.append(f"--ddim-steps {sampling['ddim_steps']}")
    return " ".join(options)


def nnunet_settings(study: str, settings: Mapping) -> dict[str, object]:
    """The study's nnunet block with NNUNET_DEFAULTS filled in.

    Raises:
        ConfigError: The study has no nnunet block.
    """
    if "nnunet" not in settings:
        msg = (
            f"study {study}: model nnunet_multitask needs a studies.{study}.nnunet block "
            "(dataset_id, dataset_name, channels, label, regions, classify; see config.yaml)"
        )
        raise ConfigError(msg)
    return {**NNUNET_DEFAULTS, **settings["nnunet"]}


def nnunet_dataset(nnunet: Mapping) -> str:
    """nnU-Net's dataset folder name: ``Dataset<NNN>_<name>``."""
    return f"Dataset{int(nnunet['dataset_id']):03d}_{nnunet['dataset_name']}"


def nnunet_model(nnunet: Mapping) -> str:
    """nnU-Net's model folder name: ``<trainer>__<plans>__<configuration>``."""
    parts = [nnunet["trainer"]["name"], nnunet["plans"]["name"], nnunet["configuration"]]
    return "__".join(parts)


def model_card_options(
    study: str,
    variant: str,
    settings: Mapping,
    sources: Sequence[str],
    cohort: Path,
    missing: Mapping | None = None,
) -> str:
    """The model card fields of evaluate.py: study, variant, model, cohort, inputs, targets.

    Args:
        study: Study name.
        variant: Model variant (``raw``, ...).
        settings: The study's config block.
        sources: The feature sources the model reads (``radiomics``, ...).
        cohort: The cohort folder.
        missing: The study's missing-input decision, shown in the card (``--card-missing``);
            ``None`` leaves the option out.

    Returns:
        The options, each value shell-quoted.
    """
    inputs = [*settings.get("modalities", []), *sources]
    inputs += ["clinical"] if settings.get("clinical") else []
    options = {
        "--study": study,
        "--variant": variant,
        "--model": settings["model"],
        "--cohort": str(cohort),
        "--inputs": ",".join(inputs),
        "--targets": ",".join(settings.get("targets", [])),
        "--card-missing": missing_json(missing),
    }
    return " ".join(f"{flag} {shlex.quote(value)}" for flag, value in options.items() if value)


def report_options(
    settings_json: str, parts: Mapping, qc_patients: int, title: str | None = None
) -> str:
    """Options of report_study.py.

    Args:
        settings_json: The study's config block as JSON (shown in the section).
        parts: What the section shows (``metrics``, ``comparisons``, ``harmonize``, ``ddpm``;
            see ``_report_parts`` in rules/common.smk); empty parts are left out.
        qc_patients: How many patients the QC panels show.
        title: The section's title, when not the study's name.
    """
    options = [f"--settings {shlex.quote(settings_json)}", f"--qc-patients {qc_patients}"]
    if parts["metrics"]:
        options.append(f"--metrics {labelled(parts['metrics'])}")
    if parts["comparisons"]:
        options.append(f"--comparisons {parts['comparisons']}")
    if parts["harmonize"]:
        options.append(f"--harmonize {labelled(parts['harmonize'])}")
    if parts["ddpm"]:
        options.append(f"--ddpm {' '.join(parts['ddpm'])}")
    if title:
        options.append(f"--title {shlex.quote(title)}")
    return " ".join(options)
