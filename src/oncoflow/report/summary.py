"""The report's first screen: one row per study and target, as MultiQC's general statistics.

Each row puts side by side, on the pooled test splits:

- the headline model (:func:`~oncoflow.report.models.headline_model`: best pooled validation
  score across every variant and model, the permuted control never) and its test score;
- the best tabular baseline (``baseline_*`` variants, also chosen on validation) and its score;
- the paired difference headline - baseline on the same test patients, with its CI and p
  (from ``comparisons.json``; empty when the headline is itself a baseline);
- the demo's oracle (``oracle.json``, with its own metric), and the permuted-label control.

Every score is the target's main metric (:data:`~oncoflow.report.models.MAIN_METRIC`) with its
95 % patient-bootstrap interval. :func:`summary_rows` is written per study by report_study.py
(``summary.json``) and :func:`summary_html` renders the rows of every study at the top of the
page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oncoflow.evaluate.card import task_results
from oncoflow.formats import is_baseline
from oncoflow.report.markup import cell_text, table_html
from oncoflow.report.models import MAIN_METRIC, best_model, headline_model


def test_cell(result: Mapping[str, Any], model: str, target: str, key: str) -> dict | None:
    """The pooled-test ``key`` cell (``value``, CI) of one model and target of a metrics.json."""
    test = result["models"].get(model, {}).get(target, {}).get("test") or {}
    cell = test.get(key)
    return dict(cell) if isinstance(cell, Mapping) and cell.get("value") is not None else None


def _targets(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    return sorted({t for m in metrics.values() for model in m["models"].values() for t in model})


def _paired(
    comparisons: Sequence[Mapping[str, Any]], target: str, a: str, b: str
) -> dict[str, Any] | None:
    for entry in comparisons:
        if entry.get("target") == target and entry.get("a") == a and entry.get("b") == b:
            return {k: entry.get(k) for k in ("estimate", "ci_low", "ci_high", "p_value")}
    return None


def summary_rows(
    study: str,
    metrics: Mapping[str, Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    oracle: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One row per target of one study (see the module docstring).

    Args:
        study: The study.
        metrics: Variant -> ``metrics.json`` (``permuted`` = the control).
        comparisons: ``comparisons.json`` entries.
        oracle: The demo's ``oracle.json`` (``{}`` for a real cohort).

    Returns:
        JSON-ready rows: ``study``, ``target``, ``metric``, ``headline`` / ``baseline`` /
        ``control`` (each ``{"label", "validation", "test"}`` or ``None``), ``paired``
        (estimate, CI, p or ``None``) and ``oracle`` (``{"metric", "value"}`` or ``None``).
    """
    by_kind: dict[str, dict[str, Mapping[str, Any]]] = {}
    for variant, result in metrics.items():
        for kind, part in task_results(result).items():
            if kind in MAIN_METRIC:
                by_kind.setdefault(kind, {})[variant] = part
    rows = []
    for kind, group in sorted(by_kind.items()):
        key = MAIN_METRIC[kind]
        for target in _targets(group):
            choice = headline_model(group, target, kind)
            baselines = {v: m for v, m in group.items() if is_baseline(v)}
            base = headline_model(baselines, target, kind) if baselines else None
            row: dict[str, Any] = {"study": study, "target": target, "metric": key}
            row["headline"] = _entry(group, choice, target, key)
            row["baseline"] = _entry(group, base, target, key)
            row["paired"] = None
            if choice and base and not is_baseline(choice[0]):
                row["paired"] = _paired(
                    comparisons, target, f"{choice[0]}/{choice[1]}", f"{base[0]}/{base[1]}"
                )
            control = group.get("permuted")
            model = best_model(control, target, kind) if control else None
            row["control"] = (
                {"label": f"permuted/{model}", "validation": None,
                 "test": test_cell(control, model, target, key)}
                if model else None
            )  # fmt: skip
            entry = oracle.get(target) or {}
            row["oracle"] = (
                {k: entry.get(k) for k in ("metric", "value", "value_tabular") if k in entry}
                if entry.get("value") is not None
                else None
            )
            rows.append(row)
    return rows


def _entry(
    group: Mapping[str, Mapping[str, Any]],
    choice: tuple[str, str, float] | None,
    target: str,
    key: str,
) -> dict[str, Any] | None:
    if choice is None:
        return None
    variant, model, validation = choice
    return {
        "label": f"{variant}/{model}",
        "validation": validation,
        "test": test_cell(group[variant], model, target, key),
    }


def _score(entry: Mapping[str, Any] | None) -> str:
    if not entry:
        return ""
    return f"{entry['label']}: {cell_text(entry['test']) if entry['test'] else 'no test'}"


def _difference(row: Mapping[str, Any]) -> str:
    """The paired difference headline - baseline with its CI and p, or empty."""
    paired = row.get("paired") or {}
    if paired.get("estimate") is None:
        return ""
    interval = {k: paired.get(k) for k in ("ci_low", "ci_high")} | {"value": paired["estimate"]}
    text = cell_text(interval)
    return text + (f" (p {paired['p_value']:.3g})" if paired.get("p_value") is not None else "")


def summary_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """The first-screen table of every study's rows (empty string without rows)."""
    if not rows:
        return ""
    body = []
    for row in rows:
        difference = _difference(row)
        oracle = row.get("oracle")
        body.append([
            row["study"],
            row["target"],
            row["metric"],
            _score(row.get("headline")),
            _score(row.get("baseline")),
            difference,
            f"{oracle['value']:.3f} ({oracle['metric']})" if oracle else "",
            _score(row.get("control")),
        ])  # fmt: skip
    header = [
        "study", "target", "metric", "headline model (test)", "best baseline (test)",
        "headline - baseline, 95 % CI", "oracle", "permuted control (test)",
    ]  # fmt: skip
    caption = (
        '<p class="note">Pooled test splits, 95 % patient-bootstrap intervals. The headline '
        "model and the baseline are each the best of their kind on validation patients; the "
        "difference is paired on the same test patients. The oracle (demo cohorts) is the score "
        "the generating mechanism allows, in its own metric.</p>"
    )
    return (
        '<section id="summary"><h2>Summary</h2>' + table_html(header, body) + caption + "</section>"
    )


def summary_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary rows as a Markdown table (``benchmarks/confirm.py``, the README)."""
    header = (
        "| study | target | metric | headline model (test, 95 % CI) | best baseline (test) | "
        "headline - baseline (p) | oracle | tabular oracle | permuted control |"
    )
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        difference = _difference(row)
        oracle = row.get("oracle") or {}
        value = f"{oracle['value']:.3f} ({oracle.get('metric')})" if oracle else ""
        tabular = oracle.get("value_tabular")
        cells = [
            row["study"], row["target"], row["metric"], _score(row.get("headline")),
            _score(row.get("baseline")), difference, value,
            "" if tabular is None else f"{tabular:.3f}", _score(row.get("control")),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
