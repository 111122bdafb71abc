"""The models part of a study section: metric tables, negative controls and result figures.

:func:`models_html` writes, per target, the table of every variant x model x split (the
permuted-label control rows greyed next to the real models), the figure of the main metric with
its CIs on the test splits, then the figures of the best validation model: Kaplan-Meier and
time-dependent AUC for survival, ROC / PR, calibration and confusion matrix for classification;
and last the paired model comparisons.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from oncoflow.evaluate.card import split_results
from oncoflow.report import figures
from oncoflow.report.markup import cell_text, esc, figure_html, table_html

SURVIVAL_COLUMNS = ("harrell_c", "uno_c", "mean_td_auc", "ibs")
BINARY_COLUMNS = ("auc", "ap", "accuracy", "sensitivity", "specificity", "f1", "brier", "ece")
MULTICLASS_COLUMNS = ("auc_macro", "accuracy", "f1_macro", "brier")
MAIN_METRIC = {"survival": "harrell_c", "binary": "auc", "multiclass": "auc_macro"}
"""The metric that ranks models (on validation) and fills the interval figure (on test)."""

ORACLE_METRICS = {"c_index": "harrell_c", "auc": "auc", "macro_auc": "auc_macro"}
"""``oracle.json`` metric names -> the evaluation metric of the same quantity."""


def oracle_on_axis(oracle: Mapping[str, Any], target: str, main: str) -> float | None:
    """The target's oracle value when it measures ``main`` (else it belongs on another axis)."""
    entry = oracle.get(target) or {}
    return entry.get("value") if ORACLE_METRICS.get(entry.get("metric", "")) == main else None


def _headline(kind: str) -> tuple[str, ...]:
    return {"survival": SURVIVAL_COLUMNS, "multiclass": MULTICLASS_COLUMNS}.get(
        kind, BINARY_COLUMNS
    )


def best_model(metrics: Mapping[str, Any], target: str, kind: str) -> str | None:
    """Model with the best pooled validation score (never chosen on test data)."""
    key = MAIN_METRIC[kind]
    best, score = None, float("-inf")
    for model, targets in metrics.get("models", {}).items():
        pooled = targets.get(target, {}).get("validation", {}).get("pooled", {})
        value = (pooled.get(key) or {}).get("value")
        if value is not None and value > score:
            best, score = model, value
    return best


def headline_model(
    metrics: Mapping[str, Mapping[str, Any]], target: str, kind: str
) -> tuple[str, str, float] | None:
    """The headline model of a target, chosen on validation patients only.

    Across every variant and model (the baselines included, the permuted-label control never),
    the best pooled validation score of ``MAIN_METRIC``; test data never enter the choice. Ties
    keep the first in variant order.

    Returns:
        ``(variant, model, validation score)``, or ``None`` when no model has a validation score.
    """
    key = MAIN_METRIC[kind]
    choice = None
    for variant, result in metrics.items():
        if variant == "permuted":
            continue
        model = best_model(result, target, kind)
        if model is None:
            continue
        pooled = result["models"][model][target]["validation"]["pooled"]
        score = pooled[key]["value"]
        if choice is None or score > choice[2]:
            choice = (variant, model, float(score))
    return choice


def _chosen(choice: tuple[str, str, float], kind: str) -> str:
    """Why the headline model is shown (the caption's words)."""
    return (
        f"the model with the best pooled validation {MAIN_METRIC[kind]} ({choice[2]:.3f}) "
        "across every variant and model, chosen without test data"
    )


def models_html(
    study: str,
    metrics: Mapping[str, Mapping[str, Any]],
    oracle: Mapping[str, Any],
    comparisons: Sequence[Mapping[str, Any]],
) -> tuple[str, dict[str, bytes]]:
    """Metric tables, real vs negative-control figure, KM and td-AUC figures of one study."""
    parts: list[str] = []
    pngs: dict[str, bytes] = {}
    kinds = {m.get("kind", "binary") for m in metrics.values()}
    kind = kinds.pop() if len(kinds) == 1 else "binary"
    columns = _headline(kind)
    targets = sorted({t for m in metrics.values() for model in m["models"].values() for t in model})
    main = MAIN_METRIC[kind]
    for target in targets:
        parts.append(f"<h4>{esc(target)}</h4>")
        rows, css, interval_rows = _target_rows(metrics, target, columns, main)
        parts.append(
            table_html(
                ["variant/model", "split", "patients", "events/positives", *columns], rows, css
            )
        )
        oracle_value = oracle_on_axis(oracle, target, main)
        name = f"{study}_{target}_{main}"
        pngs[name] = figures.c_index_figure(interval_rows, oracle_value, target, main)
        entry = oracle.get(target) or {}
        other = (
            f" The oracle of this target is a {entry['metric']} ({entry['value']:.3f}), not "
            f"drawn on this {main} axis."
            if entry.get("value") is not None and oracle_value is None
            else ""
        )
        caption = (
            f"{study}, {target}: {main} of every model on the pooled test splits with its 95 % "
            "patient-bootstrap CI. Blue: real models; grey: the same pipeline trained on "
            "permuted labels (negative control, expected near 0.5). Dotted: chance; dashed "
            "green: the oracle score the demo generator allows (demo cohorts only)." + other
        )
        parts.append(figure_html(pngs[name], caption, f"{main} per model, {target}"))
        if kind == "survival":
            parts += _survival_figures(study, target, metrics, pngs)
        else:
            parts += _classification_figures(study, target, metrics, kind, pngs)
    if comparisons:
        parts.append(_comparisons_html(comparisons))
    return "".join(parts), pngs


def _target_rows(
    metrics: Mapping[str, Mapping[str, Any]], target: str, columns: Sequence[str], main: str
) -> tuple[list[list[Any]], list[str], list[dict[str, Any]]]:
    """Table rows of one target, their row classes, and the test intervals of the main metric.

    Args:
        metrics: Variant -> ``metrics.json`` of one task kind (``permuted`` = control).
        target: The target of the rows.
        columns: Metric columns of the table (:data:`SURVIVAL_COLUMNS`...).
        main: The main metric (:data:`MAIN_METRIC`), whose test interval each model gets.

    Returns:
        ``(rows, css, interval_rows)``: one row per variant x model x split (``css`` =
        ``"control"`` for the permuted-label control), and one interval per model with a test
        result for :func:`~oncoflow.report.figures.c_index_figure`.
    """
    rows, css, interval_rows = [], [], []
    for variant, result in metrics.items():
        control = variant == "permuted"
        for model, by_target in sorted(result["models"].items()):
            entry = by_target.get(target)
            if entry is None:
                continue
            for split, part in split_results(entry):
                label = f"{variant}/{model}" + (" (permuted-label control)" if control else "")
                rows.append(
                    [
                        label,
                        split,
                        part.get("n_patients"),
                        part.get("n_events", part.get("n_positive")),
                    ]
                    + [cell_text(part.get(c)) for c in columns]
                )
                css.append("control" if control else "")
            test = entry.get("test")
            if test is not None:
                cell = test.get(main) or {}
                interval_rows.append(
                    {"label": f"{variant}/{model}", "control": control, **_interval(cell)}
                )
    return rows, css, interval_rows


def _comparisons_html(comparisons: Sequence[Mapping[str, Any]]) -> str:
    """Heading and table of the paired model comparisons (``comparisons.json`` rows)."""
    rows = [
        (c["target"], c["a"], c["b"], c["reference"], f"{c['estimate']:+.3f}",
         f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" if "ci_low" in c else "",
         f"{c['p_value']:.3g}", c["n_patients"])
        if c.get("estimate") is not None
        else (c["target"], c["a"], c["b"], c["reference"], "not estimable", "",
              c.get("not_estimable", ""), c["n_patients"])
        for c in comparisons
    ]  # fmt: skip
    return "<h4>Paired model comparisons (test patients)</h4>" + table_html(
        ["target", "a", "b", "b is", "a - b", "95 % CI", "p", "patients"], rows
    )


def _interval(cell: Mapping[str, Any]) -> dict[str, Any]:
    return {k: cell.get(k) for k in ("value", "ci_low", "ci_high")}


def _survival_figures(
    study: str, target: str, metrics: Mapping[str, Mapping[str, Any]], pngs: dict[str, bytes]
) -> list[str]:
    parts = []
    choice = headline_model(metrics, target, "survival")
    if choice is not None:
        variant, best, _ = choice
        test = metrics[variant]["models"][best][target].get("test")
        if test is not None and test.get("km", {}).get("curves"):
            name = f"{study}_{target}_km"
            pngs[name] = figures.km_figure(test["km"], f"{variant}/{best}, {target}, test")
            caption = (
                f"Kaplan-Meier curves of the test patients of {study} split into low and high "
                f"risk at the median validation risk of {variant}/{best} "
                f"({_chosen(choice, 'survival')}); the cut-off too comes from validation "
                "patients. Log-rank p."
            )
            parts.append(figure_html(pngs[name], caption, f"Kaplan-Meier {target}"))
    series = {}
    for variant, result in metrics.items():
        best = best_model(result, target, "survival")
        test = result["models"].get(best, {}).get(target, {}).get("test") if best else None
        if test is None:
            continue
        points = [
            (float(h), (test.get(f"td_auc@{h:g}") or {}).get("value"))
            for h in result.get("horizons", [])
        ]
        series[f"{variant}/{best}"] = points
    if series:
        name = f"{study}_{target}_td_auc"
        pngs[name] = figures.td_auc_figure(series, target)
        caption = (
            f"Cumulative/dynamic time-dependent AUC (IPCW) of {study} on the test splits at each "
            "horizon, for the best validation model of each variant (permuted = negative control)."
        )
        parts.append(figure_html(pngs[name], caption, f"time-dependent AUC {target}"))
    return parts


def _classification_figures(
    study: str,
    target: str,
    metrics: Mapping[str, Mapping[str, Any]],
    kind: str,
    pngs: dict[str, bytes],
) -> list[str]:
    """ROC / PR, calibration and confusion matrix of the headline model on the tests."""
    choice = headline_model(metrics, target, kind)
    if choice is not None:
        variant, best, _ = choice
        entry = metrics[variant]["models"][best][target]
        test = entry.get("test")
        if test is None:
            return []
        label = f"{variant}/{best}"
        chosen = _chosen(choice, kind)
        parts = []
        if kind == "binary" and test.get("curves"):
            name = f"{study}_{target}_roc_pr"
            pngs[name] = figures.roc_pr_figure(test["curves"], f"{label}, {target}, test")
            caption = (
                f"{study}, {target}: ROC (left) and precision-recall (right) curves of {label} "
                f"({chosen}) on the pooled test splits."
            )
            parts.append(figure_html(pngs[name], caption, f"ROC and PR {target}"))
            if test["curves"].get("reliability"):
                name = f"{study}_{target}_calibration"
                pngs[name] = figures.calibration_figure(
                    test["curves"]["reliability"], f"{label}, {target}, test"
                )
                caption = (
                    f"{study}, {target}: reliability curve of {label} on the pooled test splits "
                    "(10 equal-width probability bins, marker size = patients in the bin); the "
                    "diagonal is perfect calibration."
                )
                parts.append(figure_html(pngs[name], caption, f"calibration {target}"))
        if test.get("confusion"):
            classes = entry.get("classes", ["negative", "positive"])
            name = f"{study}_{target}_confusion"
            pngs[name] = figures.confusion_figure(
                test["confusion"], classes, f"{label}, {target}, test"
            )
            rule = confusion_rule(entry)
            caption = (
                f"{study}, {target}: confusion matrix of {label} on the pooled test splits "
                f"(rows: true class; prediction: {rule})."
            )
            parts.append(figure_html(pngs[name], caption, f"confusion matrix {target}"))
        return parts
    return []


def confusion_rule(entry: Mapping[str, Any]) -> str:
    """How the test rows' predicted class was made (caption of a confusion matrix)."""
    if "threshold" in entry:
        return f"threshold {entry['threshold']:.3g} from {entry.get('threshold_from')}"
    decision = entry.get("decision") or {}
    weights = decision.get("weights")
    if decision.get("rule") == "macro_f1" and isinstance(weights, list):
        shown = ", ".join(f"{w:.2f}" for w in weights)
        return f"argmax of class weights ({shown}) x probability, fitted on validation for macro F1"
    if decision.get("rule") == "macro_f1":
        return "class-weighted argmax fitted on validation for macro F1 (one rule per run)"
    return "most probable class"


def ladder_rows(
    comparisons: Sequence[Mapping[str, Any]], ladder: Sequence[str], target: str
) -> list[dict[str, Any]]:
    """Each rung of an ablation ladder against the rung below it, from ``comparisons.json``.

    A comparison stored the other way round (``a`` = the lower rung) is turned over: estimate
    and interval negated and swapped. A pair that was not compared has no estimate.
    """
    rows = []
    for lower, upper in itertools.pairwise(ladder):
        a, b = f"{upper}/model", f"{lower}/model"
        row: dict[str, Any] = {"label": f"{upper} - {lower}", "estimate": None}
        for entry in comparisons:
            if entry.get("target") != target or {entry.get("a"), entry.get("b")} != {a, b}:
                continue
            flip = entry["a"] == b
            fields = {k: entry.get(k) for k in ("estimate", "ci_low", "ci_high")}
            if flip and fields["estimate"] is not None:
                fields = {
                    "estimate": -fields["estimate"],
                    "ci_low": None if fields["ci_high"] is None else -fields["ci_high"],
                    "ci_high": None if fields["ci_low"] is None else -fields["ci_low"],
                }
            row |= fields | {"p_value": entry.get("p_value"), "test": entry.get("test")}
            row["not_estimable"] = entry.get("not_estimable")
        rows.append(row)
    return rows


def ladder_html(
    study: str,
    comparisons: Sequence[Mapping[str, Any]],
    ladder: Sequence[str],
    pngs: dict[str, bytes],
) -> str:
    """The ablation ladder's table and forest plot per target (empty without a ladder).

    Each row is a rung's paired difference over the rung below (:func:`ladder_rows`).
    """
    if len(ladder) < 2:
        return ""
    parts = ["<h4>Ablation ladder (each rung against the rung below, test patients)</h4>"]
    for target in sorted({str(e.get("target")) for e in comparisons}):
        rows = ladder_rows(comparisons, ladder, target)
        if not any("test" in r for r in rows):
            continue
        table = [[r["label"], _difference_text(r), _p_text(r)] for r in rows]
        parts.append(
            table_html([f"{target}: rung - rung below", "difference, 95 % CI", "p"], table)
        )
        if not any(r["estimate"] is not None for r in rows):
            continue
        name = f"{study}_{target}_ladder"
        pngs[name] = figures.forest_figure(rows, target, rows[0].get("test") or "score")
        caption = (
            f"{study}, {target}: the paired difference of each rung of the ablation ladder over "
            "the rung below it on the same test patients, with its 95 % CI; each rung adds one "
            "factor, so each difference measures that factor. Dashed: no difference."
        )
        parts.append(figure_html(pngs[name], caption, f"ablation ladder {target}"))
    return "".join(parts) if len(parts) > 1 else ""


def _difference_text(row: Mapping[str, Any]) -> str:
    if row.get("estimate") is None:
        return f"not estimable: {row['not_estimable']}" if row.get("not_estimable") else ""
    return cell_text({k: row.get(k) for k in ("ci_low", "ci_high")} | {"value": row["estimate"]})


def _p_text(row: Mapping[str, Any]) -> str:
    return "" if row.get("p_value") is None else f"{row['p_value']:.3g}"
