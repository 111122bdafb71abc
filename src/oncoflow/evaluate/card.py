"""Model cards: a short JSON + Markdown summary of one trained model set.

Sections (after Mitchell et al. 2019, "Model Cards for Model Reporting", cut to what a workflow
knows): intended use, data (cohort, inputs, targets), missing inputs (the study's policy, the
patients left out, the imputed clinical values), splits (patients and events per split),
metrics with CIs on the test splits, and known limits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oncoflow.workflow.missing import missing_record

INTENDED_USE = (
    "Research use only: retrospective evaluation of {what} on cohorts like the training cohort. "
    "Not a medical device; not validated for clinical decisions."
)

LIMITS = [
    "Trained and tested on one cohort; performance on other scanners, protocols and populations "
    "is unknown until measured (apply the model and re-evaluate).",
    "Confidence intervals are patient-level bootstrap intervals of the given test patients; they "
    "do not cover shifts in the population.",
    "A negative control trained on permuted labels shows the chance level of this pipeline.",
]

IMPUTATION = (
    "with the median of each fold's training patients (never of validation or test patients)"
)
"""How the models' encoders fill an empty clinical value (``missing.clinical: impute``)."""

SPLITS: tuple[str, ...] = ("validation", "internal_test", "external_test", "apply", "test")


def split_results(entry: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The ``(split, results)`` pairs of one model x target of a ``metrics.json``.

    In :data:`SPLITS` order; validation is its pooled result; splits without rows are left out,
    and so is the pooled ``test`` when it pools a single split (it would repeat that row).
    """
    single = sum(split in entry for split in SPLITS[1:-1]) == 1
    out = []
    for split in SPLITS:
        if split == "test" and single:
            continue
        part = entry.get(split)
        if part is not None:
            out.append((split, part["pooled"] if split == "validation" else part))
    return out


HEADLINE = {
    "survival": ("harrell_c", "uno_c", "mean_td_auc", "ibs"),
    "binary": ("auc", "ap"),
    "multiclass": ("auc_macro", "f1_macro"),
}
"""Metrics shown per test split in the card."""


def _cell(cell: Mapping[str, Any] | None) -> str:
    if not cell or cell.get("value") is None:
        return "n/a"
    low, high = cell.get("ci_low"), cell.get("ci_high")
    if low is None or high is None:
        return f"{cell['value']:.3f}"
    return f"{cell['value']:.3f} [{low:.3f}, {high:.3f}]"


def task_results(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Kind -> result of one ``metrics.json`` (a multitask result split into its tasks)."""
    if metrics.get("kind") == "multitask":
        return dict(metrics["tasks"])
    return {metrics.get("kind", "binary"): metrics}


def model_card(
    metrics: Mapping[str, Any],
    info: Mapping[str, Any],
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    missing: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of every model in one ``metrics.json``.

    Args:
        metrics: Output of :func:`~oncoflow.evaluate.evaluate_predictions`.
        info: ``study``, ``variant``, ``model`` (the study's model family), ``cohort``,
            ``inputs`` (list), ``targets`` (list), ``seed`` and optional ``notes``.
        baselines: The study's tabular baselines: variant -> their ``metrics.json``; the card
            lists their pooled test scores beside the model's (``oncoflow.baselines``).
        missing: The study's missing-input decision as the workflow passes it to jobs
            (:func:`~oncoflow.workflow.missing.missing_record`); the card's ``missing`` part
            (:func:`missing_part`). ``None``: the card has none.

    Returns:
        JSON-ready card: ``info`` fields, ``intended_use``, ``limits``, ``missing`` (with a
        decision) and per model x target the counts and headline metrics of each split.

    Raises:
        ValueError: ``missing`` is not of the decision's shape.
    """
    kind = metrics.get("kind", "binary")
    what = f"{info.get('model', 'the model')} ({info.get('study', '')})"
    card: dict[str, Any] = {
        **dict(info),
        "kind": kind,
        "intended_use": INTENDED_USE.format(what=what),
        "limits": list(LIMITS) + list(info.get("notes", [])),
        "bootstrap": {"n_boot": metrics.get("n_boot"), "alpha": metrics.get("alpha")},
        "models": {},
    }
    if missing is not None:
        card["missing"] = missing_part(missing)
    card["kinds"] = {}
    for task, result in task_results(metrics).items():
        for model, targets in result.get("models", {}).items():
            for target, entry in targets.items():
                splits = {}
                for split, part in split_results(entry):
                    splits[split] = {
                        "n_patients": part.get("n_patients"),
                        "n_events": part.get("n_events", part.get("n_positive")),
                        **{name: part.get(name) for name in HEADLINE[task] if name in part},
                    }
                    if "n_unlabelled" in part:
                        splits[split]["n_unlabelled"] = part["n_unlabelled"]
                card["models"].setdefault(model, {})[target] = splits
                card["kinds"][target] = task
    if "outcomes_known" in metrics:  # a new cohort (evaluate_applied)
        card["new_cohort"] = {
            "outcomes_known": bool(metrics["outcomes_known"]),
            "n_patients": metrics.get("n_patients"),
            "unlabelled": metrics.get("unlabelled"),
            "kinds_without_outcomes": sorted(
                task
                for task, result in task_results(metrics).items()
                if result.get("outcomes_known") is False
            ),
        }
    card["baselines"] = {}
    for label, result in (baselines or {}).items():
        for task, part in task_results(result).items():
            for model, targets in part.get("models", {}).items():
                for target, entry in targets.items():
                    test = entry.get("test") or {}
                    scores = {name: test.get(name) for name in HEADLINE.get(task, ())}
                    card["baselines"].setdefault(f"{label}/{model}", {})[target] = {
                        "n_patients": test.get("n_patients"),
                        **scores,
                    }
    return card


def missing_part(missing: Mapping[str, Any]) -> dict[str, Any]:
    """The card's ``missing`` part from the study's missing-input decision.

    Args:
        missing: The decision (:func:`~oncoflow.workflow.missing.missing_record`).

    Returns:
        ``policy``; ``dropped``: ``n_patients``, ``patients`` and ``reasons`` (patient -> what it
        lacks); ``imputed``: clinical column -> ``n_patients`` and ``method``; ``partial``:
        ``n_patients`` and ``patients`` (kept with the time points they have).
    """
    record = missing_record(missing)
    method = IMPUTATION.removeprefix("with the ")
    return {
        "policy": record["policy"],
        "dropped": {
            "n_patients": len(record["dropped"]),
            "patients": list(record["dropped"]),
            "reasons": record["dropped"],
        },
        "imputed": {
            column: {"n_patients": len(set(patients)), "method": method}
            for column, patients in record["imputed"].items()
        },
        "partial": {"n_patients": len(record["partial"]), "patients": list(record["partial"])},
    }


def card_markdown(card: Mapping[str, Any]) -> str:
    """Render :func:`model_card` as Markdown."""
    kinds = card.get("kinds") or {}
    lines = [
        f"# Model card: {card.get('study')} / {card.get('variant')}",
        "",
        f"- **Model family**: {card.get('model')}",
        f"- **Cohort**: `{card.get('cohort')}`",
        f"- **Inputs**: {', '.join(card.get('inputs', [])) or 'n/a'}",
        f"- **Targets**: {', '.join(card.get('targets', [])) or 'n/a'}",
        f"- **Seed**: {card.get('seed')}",
        "",
        "## Intended use",
        "",
        card["intended_use"],
    ]
    lines += _missing_markdown(card.get("missing"))
    lines += [
        "",
        _metrics_heading(card),
    ]
    lines += _new_cohort_markdown(card.get("new_cohort"))
    for kind in sorted({kinds.get(t, card["kind"]) for m in card["models"].values() for t in m}):
        names = HEADLINE[kind]
        lines += [
            "",
            "| model | target | split | patients | events | " + " | ".join(names) + " |",
            "|---|---|---|---|---|" + "---|" * len(names),
        ]
        for model, targets in card["models"].items():
            for target, splits in targets.items():
                if kinds.get(target, card["kind"]) != kind:
                    continue
                for split, part in splits.items():
                    cells = [_cell(part.get(name)) for name in names]
                    lines.append(
                        f"| {model} | {target} | {split} | {part['n_patients']} | "
                        f"{part['n_events']} | " + " | ".join(cells) + " |"
                    )
    lines += _baselines_markdown(card, kinds)
    lines += ["", "## Known limits", ""] + [f"- {text}" for text in card["limits"]]
    return "\n".join(lines) + "\n"


def _missing_markdown(missing: Mapping[str, Any] | None) -> list[str]:
    """The "Missing inputs" section (nothing for a card without a decision)."""
    if not missing:
        return []
    policy = ", ".join(f"{key} {value}" for key, value in (missing.get("policy") or {}).items())
    dropped = missing.get("dropped") or {}
    lines = ["", "## Missing inputs", "", f"- **Policy**: {policy or 'n/a'}"]
    if dropped.get("n_patients"):
        lines.append(
            f"- **Dropped patients** ({dropped['n_patients']}, left out of every step for "
            f"missing inputs): {', '.join(dropped.get('patients', []))}"
        )
    else:
        lines.append("- **Dropped patients**: none")
    imputed = missing.get("imputed") or {}
    for column, part in imputed.items():
        lines.append(
            f"- **Imputed clinical value** `{column}`: {part['n_patients']} patient(s) imputed "
            + IMPUTATION
        )
    if not imputed:
        lines.append("- **Imputed clinical values**: none")
    partial = missing.get("partial") or {}
    if partial.get("n_patients"):
        lines.append(
            f"- **Kept with fewer time points** ({partial['n_patients']}, timepoints: "
            f"use_available): {', '.join(partial.get('patients', []))}"
        )
    return lines


def _metrics_heading(card: Mapping[str, Any]) -> str:
    n_boot = (card.get("bootstrap") or {}).get("n_boot")
    if n_boot is None:  # a new cohort without outcomes: nothing was resampled
        return "## Metrics"
    return f"## Metrics (95 % bootstrap CI, {n_boot} patient resamples)"


def _new_cohort_markdown(cohort: Mapping[str, Any] | None) -> list[str]:
    """What a new cohort's card says about its outcomes (nothing for a training run)."""
    if not cohort:
        return []
    n = cohort.get("n_patients")
    if not cohort.get("outcomes_known"):
        return ["", f"New cohort of {n} patients without outcomes: predictions only, no metric."]
    text = f"New cohort of {n} patients, scored as the `apply` split"
    unlabelled = cohort.get("unlabelled") or {}
    if unlabelled.get("n_rows"):
        text += (
            f"; {unlabelled['n_rows']} prediction(s) of {unlabelled.get('n_patients')} "
            "patient(s) without outcome are not scored"
        )
    lines = ["", text + "."]
    if cohort.get("kinds_without_outcomes"):
        kinds = ", ".join(cohort["kinds_without_outcomes"])
        lines += ["", f"No outcomes for the {kinds} targets: predictions only."]
    return lines


def _baselines_markdown(card: Mapping[str, Any], kinds: Mapping[str, str]) -> list[str]:
    """The baselines' pooled test scores, one table per task kind (none without baselines)."""
    baselines = card.get("baselines") or {}
    if not baselines:
        return []
    lines = [
        "",
        "## Tabular baselines (pooled test patients)",
        "",
        "What the model must beat: penalised models of the clinical variables (and mask sizes), "
        "fit in the same folds. Paired differences are in `comparisons.json` and the report.",
    ]
    for kind in sorted({kinds.get(t, card["kind"]) for b in baselines.values() for t in b}):
        names = HEADLINE[kind]
        lines += ["", "| baseline | target | patients | " + " | ".join(names) + " |"]
        lines.append("|---|---|---|" + "---|" * len(names))
        for label, targets in baselines.items():
            for target, part in targets.items():
                if kinds.get(target, card["kind"]) == kind:
                    cells = " | ".join(_cell(part.get(name)) for name in names)
                    lines.append(f"| {label} | {target} | {part['n_patients']} | {cells} |")
    return lines
