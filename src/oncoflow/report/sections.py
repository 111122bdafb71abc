"""The parts of a study section other than its models: cohort, segmentation, synthesis, methods.

:func:`cohort_html` tabulates the validation report (and the study's missing-input decision,
:func:`missing_html`), :func:`segmentation_html` the Dice summary
(with its box plot), :func:`synthesis_html` the diffusion model's fidelity (with the real vs
synthetic panel and the loss curve), and :func:`methods_text` writes the methods paragraph from
the study's configuration and what ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncoflow.report import figures
from oncoflow.report.markup import cell_text, esc, figure_html, table_html

SYNTHESIS_METRICS = {
    "mae_hu": "MAE (HU)",
    "psnr_db": "PSNR (dB)",
    "ssim": "SSIM",
    "hu_wasserstein": "HU histogram W1 (HU)",
}


def cohort_html(report: Mapping[str, Any]) -> str:
    """Patients per site and split, exclusions with reasons, missing inputs (validation report).

    The study's missing-input decision, when the report has one, follows (:func:`missing_html`).
    """
    parts = []
    per_split = report.get("per_split", {})
    parts.append(
        table_html(
            ["split", "patients", "images"],
            [(s, v["patients"], v["images"]) for s, v in sorted(per_split.items())],
        )
    )
    per_site = report.get("per_site", {})
    parts.append(
        table_html(
            ["site", "patients", "images"],
            [(s, v["patients"], v["images"]) for s, v in sorted(per_site.items())],
        )
    )
    excluded = report.get("excluded", [])
    problems = report.get("problems", [])
    if excluded or problems:
        rows = [
            (e.get("patient_id", ""), e.get("reason", e)) for e in excluded if isinstance(e, dict)
        ]
        rows += [(p.get("patient_id", ""), p.get("message", p)) for p in problems]
        parts.append("<p>Exclusions and problems found by validation:</p>")
        parts.append(table_html(["patient", "reason"], rows))
    else:
        parts.append("<p>Validation excluded no patient and found no problem.</p>")
    parts.append(missing_html(report.get("missing")))
    return "".join(parts)


IMPUTATION = "median of each fold's training patients (never of validation or test patients)"
"""How the models' encoders fill an imputed clinical value."""


def _gap_kind(what: str) -> str:
    """The policy key of one missing input as the decision words it.

    ``time point 1``: a time point; ``clinical age``: a clinical value; else an image.
    """
    if what.startswith("time point"):
        return "timepoints"
    if what.startswith("clinical "):
        return "clinical"
    return "modalities"


def missing_html(missing: Mapping[str, Any] | None) -> str:
    """The study's missing-input decision (``studies.<name>.missing``) as HTML.

    Its policy, the patients left out with what they lack (patient, missing inputs, policy),
    the imputed clinical columns with the number of patients, and the patients kept with fewer
    time points.

    Args:
        missing: The ``missing`` field of the validation report, or ``None``.

    Returns:
        HTML; empty when the validation report has no decision.
    """
    if not missing:
        return ""
    policy = missing.get("policy") or {}
    dropped = missing.get("dropped") or {}
    imputed = missing.get("imputed") or {}
    partial = missing.get("partial") or {}
    stated = ", ".join(f"{key} {value}" for key, value in policy.items())
    parts = [f"<p>Missing-input policy: {esc(stated or 'refuse')}.</p>"]
    if dropped:
        rows = []
        for patient, lacks in sorted(dropped.items()):
            kinds = dict.fromkeys(_gap_kind(str(w)) for w in lacks)
            rule = "; ".join(f"{k}: {policy.get(k, 'drop_patient')}" for k in kinds)
            rows.append((patient, ", ".join(map(str, lacks)), rule))
        parts.append(
            f"<p>{len(dropped)} patient(s) left out of every step for missing inputs:</p>"
            + table_html(["patient", "missing inputs", "policy"], rows)
        )
    if imputed:
        rows = [(column, len(patients)) for column, patients in sorted(imputed.items())]
        parts.append(
            f"<p>Empty clinical values imputed with the {esc(IMPUTATION)}:</p>"
            + table_html(["clinical column", "patients imputed"], rows)
        )
    if partial:
        rows = [(p, ", ".join(map(str, lacks))) for p, lacks in sorted(partial.items())]
        parts.append(
            f"<p>{len(partial)} patient(s) kept with the time points they have "
            "(timepoints: use_available):</p>"
            + table_html(["patient", "missing time points"], rows)
        )
    if not (dropped or imputed or partial):
        parts.append("<p>No patient lacks an input the models need.</p>")
    return "".join(parts)


def segmentation_html(study: str, summary: Mapping[str, Any]) -> tuple[str, dict[str, bytes]]:
    """Dice table with CIs per region and split, and the box plot of per-case Dice."""
    rows, boxes = [], {}
    for region, splits in summary.get("regions", {}).items():
        for split, part in splits.items():
            rows.append(
                [region, split, part["n_cases"], part["empty_reference"], cell_text(part["dice"]),
                 f"{part['median']:.3f}"]
            )  # fmt: skip
            boxes[f"{region} ({split})"] = part["per_case"]
    if not rows:
        return "", {}
    table = table_html(
        ["region", "split", "cases", "empty reference", "mean Dice [95 % CI]", "median"], rows
    )
    name = f"{study}_dice"
    png = figures.dice_boxplot(boxes, f"{study}: Dice per case")
    caption = (
        f"{study}: Dice of every case per region and split (box: quartiles; points: cases). Two "
        "empty masks count as Dice 1, one empty mask as 0 (see the 'empty reference' column)."
    )
    body = "<h3>Segmentation</h3>" + table + figure_html(png, caption, f"Dice {study}")
    return body, {name: png}


def synthesis_html(study: str, synthesis: Mapping[str, Any]) -> tuple[str, dict[str, bytes]]:
    """Fidelity table of the diffusion model, the real-vs-synthetic panel and the loss curve."""
    metrics = synthesis["metrics"]
    training = metrics.get("training", {})
    rows = [
        [label, f"{cell['mean']:.3f}", f"{cell['sd']:.3f}" if cell.get("sd") is not None else ""]
        for key, label in SYNTHESIS_METRICS.items()
        if (cell := metrics.get("metrics", {}).get(key))
    ]
    smd = metrics.get("radiomics_smd")
    if smd is not None:
        rows.append(["nodule radiomics SMD (mean over features)", f"{smd:.3f}", ""])
    body = (
        f"<p>Mask-conditioned 3D diffusion model trained for {esc(training.get('steps'))} steps "
        f"on {esc(len(training.get('patients', [])))} training patients; scored inside the lung on "
        f"{esc(metrics.get('n_patients'))} held-out patients (their own masks, anatomy-preserving "
        "sampling).</p>" + table_html(["metric", "mean over patients", "sd"], rows)
    )
    pngs = {f"{study}_ddpm_panel": synthesis["panel"], f"{study}_ddpm_loss": synthesis["loss"]}
    body += figure_html(
        synthesis["panel"],
        f"{study}: real CT (upper row of each pair) and the synthetic CT generated for the same "
        "lung and nodule masks (lower row), three orthogonal slices through the nodule, held-out "
        "patients.",
        f"synthetic vs real CT {study}",
    )
    body += figure_html(
        synthesis["loss"],
        f"{study}: noise-prediction training loss of the diffusion model (log scale).",
        f"diffusion loss {study}",
    )
    return body, pngs


def _missing_sentences(missing: Mapping[str, Any] | None) -> list[str]:
    """What the methods paragraph says of the missing-input decision (nothing without one)."""
    if not missing:
        return []
    sentences = []
    dropped = missing.get("dropped") or {}
    if dropped:
        sentences.append(
            f"{len(dropped)} patient(s) lacking an image or time point the models need were left "
            "out of every step."
        )
    imputed = missing.get("imputed") or {}
    if imputed:
        columns = ", ".join(
            f"{column} ({len(patients)} patient(s))" for column, patients in sorted(imputed.items())
        )
        sentences.append(f"Empty clinical values of {columns} were imputed with the {IMPUTATION}.")
    partial = missing.get("partial") or {}
    if partial:
        sentences.append(
            f"{len(partial)} patient(s) missing time points were kept with the time points they "
            "have."
        )
    return sentences


def methods_text(study: str, settings: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    """A generated methods paragraph from the study's configuration and what ran.

    Args:
        study: Study name.
        settings: ``studies.<study>`` of the config.
        facts: ``n_patients``, ``n_images``, ``trained``, ``n_boot`` and optional ``missing``
            (the validation report's missing-input decision).
    """
    modalities = ", ".join(settings.get("modalities", []))
    targets = ", ".join(settings.get("targets", []))
    sentences = [
        f"The {study} cohort ({facts.get('n_patients', '?')} patients, "
        f"{facts.get('n_images', '?')} images; modalities {modalities})"
        " was validated against the oncoflow table schemas and converted to NIfTI."
    ]
    if settings.get("radiomics"):
        sentences.append(
            "Radiomic features were extracted with pyradiomics from "
            f"{', '.join(settings['radiomics'].get('images', []))} within mask label(s) "
            f"{', '.join(map(str, settings['radiomics'].get('labels', [])))} using the versioned "
            f"parameter file {settings['radiomics'].get('params')}."
        )
    sentences += _missing_sentences(facts.get("missing"))
    if settings.get("pathomics"):
        sentences.append(
            "Pathomic features were computed per whole-slide image from tissue tiles (Otsu tissue "
            "mask) at a fixed physical tile size."
        )
    if settings.get("pet"):
        sentences.append("PET metrics (SUVmax, SUVmean, SUVpeak, MTV, TLG) were computed on SUVbw.")
    if settings.get("harmonize"):
        sentences.append(
            "Features were harmonized across sites with ComBat fit on the training patients of "
            "each fold only and applied to the held-out patients."
        )
    if facts.get("trained"):
        folds = settings.get("folds", {})
        scheme = (
            f"{folds['k']}-fold patient-level cross-validation of the training split, the mean "
            "of the fold models applied to the internal and external test splits"
            if folds.get("k")
            else f"{folds.get('repeats', 5)} patient-level fit/holdout repeats of the training "
            "split for validation and a final model applied to the internal and external test "
            "splits"
        )
        sentences.append(
            f"Model {settings.get('model')} was trained for {targets} with {scheme}; every "
            "fitted step (encoding, feature selection, hyper-parameters) saw training patients "
            "of the fold only."
        )
        if settings.get("targets"):
            sentences.append(
                "Tabular baselines of the clinical variables (and mask sizes) were fit in the "
                "same folds and compared with the model on the same test patients."
            )
        if settings.get("negative_control"):
            sentences.append(
                f"A negative control repeated the whole pipeline {settings.get('permutations', 5)}"
                " times with outcomes permuted among training patients."
            )
        sentences.append(
            f"Metrics carry patient-level percentile bootstrap 95 % CIs ({facts.get('n_boot')} "
            "resamples, seeded)."
        )
    return " ".join(sentences)
