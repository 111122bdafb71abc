"""Every path of the results tree, written once: the rules' outputs and the DAG helpers use these.

A pattern is a relative path with Snakemake wildcards (``{study}``, ``{patient}``, ...). A rule
declares ``output: dag.CONVERTED`` and a helper that lists the inputs of another rule calls
``dag.fill(dag.CONVERTED, patient="NS001")``, so the two never drift apart
(``docs/design.md``, "Layout"). Imported when Snakemake parses the workflow: standard library only.

Example:
    >>> fill(PREDICTIONS, study="liver_response", variant="relation_net")
    'results/liver_response/train/relation_net/predictions.csv'
"""

from __future__ import annotations

import string
from dataclasses import dataclass

RESULTS = "results"

# validation and conversion
QC_STUDY = "results/qc/{study}/cohort_report.json"
QC_ALL = "results/qc/cohort_report.json"
CONVERTED_ROOT = "results/converted"
CONVERTED = "results/converted/{patient}"
BATCH = "results/.batches/{stage}/{study}/{batch}"
STAGE_INDEX = "results/{study}/{stage}_index.json"

# splits
SPLITS = "results/{study}/splits.csv"
FOLDS = "results/{study}/folds.json"

# lesions and features
LESIONS_ROOT = "results/{study}/lesions"
LESIONS = "results/{study}/lesions/{patient}"
ROI_ITEM = "{patient}/{tp}_{stem}_label{label}"
RADIOMICS = "results/{study}/features/radiomics/" + ROI_ITEM + ".csv"
RADIOMICS_DIAGNOSTICS = "results/{study}/features/radiomics/" + ROI_ITEM + ".diagnostics.json"
PET = "results/{study}/features/pet/" + ROI_ITEM + ".csv"
PATHOMICS = "results/{study}/features/pathomics/{patient}.csv"
FEATURES = "results/{study}/features/{source}.csv"
FEATURE_ROOT = "results/{study}/features/{source}"
HARMONIZE_ROOT = "results/{study}/harmonize"
HARMONIZED = HARMONIZE_ROOT + "/{source}/{fold}.csv"
HARMONIZED_STATS = "results/{study}/harmonize/{source}/{fold}_stats.json"
HARMONIZED_MODEL = "results/{study}/harmonize/{source}/{fold}_combat.pkl"

# models
TRAIN = "results/{study}/train/{variant}"
PREDICTIONS = TRAIN + "/predictions.csv"
TRAIN_METRICS = TRAIN + "/metrics.json"
SURVIVAL_MODELS = TRAIN + "/models.pkl"
BASELINE_SUMMARY = TRAIN + "/baseline.json"
DICE = TRAIN + "/dice.csv"
FOLD = TRAIN + "/fold_{fold}"
FOLD_MODEL = FOLD + "/model.pt"
FOLD_HISTORY = FOLD + "/history.csv"
FOLD_PREDICTIONS = FOLD + "/predictions.csv"
FOLD_PROVENANCE = FOLD + "/provenance.json"
RESUME = TRAIN + "/resume/fold_{fold}"

# nnU-Net
NNUNET = "results/{study}/nnunet"
NNUNET_RAW = NNUNET + "/nnUNet_raw"
NNUNET_RESULTS = NNUNET + "/nnUNet_results"
NNUNET_SPLITS = NNUNET + "/splits_final.json"
NNUNET_PREPROCESSED = NNUNET + "/nnUNet_preprocessed"
NNUNET_CHECKPOINT = NNUNET_RESULTS + "/{dataset}/{model}/fold_{fold}/checkpoint_final.pth"
NNUNET_REFIT_HEAD = NNUNET_RESULTS + "/{dataset}/{model}/fold_{fold}/head_refit.pt"
NNUNET_PREDICTED = NNUNET + "/predict/{subset}"

# synthesis
DDPM = "results/{study}/ddpm"
DDPM_MODEL = DDPM + "/model.pt"
DDPM_HISTORY = DDPM + "/history.csv"
DDPM_SUMMARY = DDPM + "/train.json"
DDPM_RESUME = DDPM + "/resume.pt"
DDPM_SAMPLE = DDPM + "/samples/{patient}.nii.gz"
DDPM_METRICS = DDPM + "/metrics.json"
DDPM_PANEL = DDPM + "/panel.png"
DDPM_LOSS = DDPM + "/loss.png"

# evaluation and report
EVALUATION = "results/{study}/evaluate/{variant}"
METRICS = EVALUATION + "/metrics.json"
MODEL_CARD = EVALUATION + "/model_card.md"
MODEL_CARD_JSON = EVALUATION + "/model_card.json"
COMPARISONS = "results/{study}/evaluate/comparisons.json"
REPORT_SECTION = "results/report/{study}/section.html"
REPORT_FIGURES = "results/report/{study}/figures"
REPORT_SUMMARY = "results/report/{study}/summary.json"
REPORT = "results/report/index.html"

# apply to a new cohort
APPLY = "results/apply/{name}"
APPLY_HARMONIZED = APPLY + "/{study}/harmonize/{source}.csv"
APPLY_HARMONIZED_STATS = APPLY + "/{study}/harmonize/{source}_stats.json"
APPLY_PREDICTIONS = APPLY + "/{study}/predict/{variant}/predictions.csv"
APPLY_SUMMARY = APPLY + "/{study}/predict/{variant}/apply.json"
APPLY_DICE = APPLY + "/{study}/predict/{variant}/dice.csv"
APPLY_NNUNET = APPLY + "/{study}/nnunet"
APPLY_SEGMENTED = APPLY + "/{study}/segmented"
APPLY_DDPM_SAMPLES = APPLY + "/{study}/ddpm/samples"
APPLY_DDPM_METRICS = APPLY + "/{study}/ddpm/metrics.json"
APPLY_DDPM_PANEL = APPLY + "/{study}/ddpm/panel.png"
APPLY_DDPM_LOSS = APPLY + "/{study}/ddpm/loss.png"
HARMONIZED_FINAL_STATS = "results/{study}/harmonize/{source}/final_stats.json"


def wildcards(pattern: str) -> list[str]:
    """Names of the wildcards of ``pattern``, in order of appearance, without repeats."""
    names = [field for _, field, _, _ in string.Formatter().parse(pattern) if field]
    return list(dict.fromkeys(names))


def fill(pattern: str, **values: object) -> str:
    """``pattern`` with every wildcard replaced by its value.

    Raises:
        KeyError: A wildcard of the pattern has no value, or a value names no wildcard (both
            named): a typo would otherwise build a path no rule writes.
    """
    names = set(wildcards(pattern))
    missing, unknown = sorted(names - set(values)), sorted(set(values) - names)
    if missing or unknown:
        msg = f"{pattern}: missing wildcard(s) {missing}, unknown {unknown}"
        raise KeyError(msg)
    return pattern.format(**values)


def batch(stage: str) -> str:
    """The staging folder pattern of one stage's batch jobs (``{study}``, ``{batch}``)."""
    return BATCH.replace("{stage}", stage)


def relative(path: str) -> str:
    """``path`` without its leading ``results/`` (the matching folder under ``logs/``)."""
    prefix = RESULTS + "/"
    return path[len(prefix) :] if path.startswith(prefix) else path


def applied(pattern: str, name: str) -> str:
    """An ``APPLY_*`` pattern of the applied cohort ``name``, its other wildcards kept."""
    return pattern.replace("{name}", name)


def under(root: str, pattern: str) -> str:
    """``pattern`` moved from ``results/`` to ``root`` (the results tree of an applied cohort)."""
    if not pattern.startswith(RESULTS + "/"):
        msg = f"{pattern}: not under {RESULTS}/"
        raise ValueError(msg)
    return root.rstrip("/") + pattern[len(RESULTS) :]


@dataclass(frozen=True)
class Run:
    """One results tree and the rules that write it: training, or a new cohort of ``apply``.

    The rules shared by both (validation, conversion, per-patient features, merging, evaluation,
    report) are declared once, in a loop over the runs (``rules/common.smk``, ``RUNS``). The
    training run keeps the plain rule names, ``results/`` and ``logs/``; the run of the applied
    cohort ``name`` prefixes its rules with ``apply_`` and writes under
    ``results/apply/<name>/`` and ``logs/apply/<name>/``.

    Example:
        >>> Run("second").path(CONVERTED)
        'results/apply/second/converted/{patient}'
        >>> Run().rule("convert_batch"), Run("second").rule("convert_batch")
        ('convert_batch', 'apply_convert_batch')

    Attributes:
        name: The applied cohort's name (``apply_name``); empty for the training run.
    """

    name: str = ""

    @property
    def applied(self) -> bool:
        """Whether this is the run of a new cohort through frozen models."""
        return bool(self.name)

    @property
    def root(self) -> str:
        """The run's results folder."""
        return fill(APPLY, name=self.name) if self.applied else RESULTS

    def rule(self, name: str) -> str:
        """The name of the run's copy of rule ``name``."""
        return f"apply_{name}" if self.applied else name

    def path(self, pattern: str) -> str:
        """``pattern`` in this run's tree: ``APPLY*`` patterns get the name, the rest move."""
        if pattern.startswith(APPLY):
            return applied(pattern, self.name)
        return under(self.root, pattern) if self.applied else pattern

    def log(self, path: str) -> str:
        """The log file ``path`` (relative to ``logs/``) of this run."""
        return f"logs/{relative(self.root)}/{path}" if self.applied else f"logs/{path}"

    def benchmark(self, path: str) -> str:
        """The benchmark file ``path`` (relative to ``logs/benchmarks/``) of this run."""
        return "logs/benchmarks/" + self.log(path)[len("logs/") :]
