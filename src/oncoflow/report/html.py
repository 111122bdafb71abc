"""The run report: one self-contained HTML page (figures inlined as PNG data URIs, no network).

:func:`study_section` builds one study's section (cohort, image QC, harmonization, models with
their negative controls, comparisons, methods) and returns its figures as PNG bytes too (for
``snakemake --report``); :func:`report_page` wraps the sections with the run summary and the
software versions. Every figure is a ``<figure>`` with an ``<figcaption>``.

The parts live by meaning: the HTML building blocks in :mod:`oncoflow.report.markup`, the models
part (metric tables, negative controls, result figures) in :mod:`oncoflow.report.models`, and the
cohort, segmentation, synthesis and methods parts in :mod:`oncoflow.report.sections`; this module
assembles them and re-exports their public names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from oncoflow.evaluate.card import task_results
from oncoflow.report import figures
from oncoflow.report.markup import esc, figure_html, table_html
from oncoflow.report.models import (
    BINARY_COLUMNS,
    MAIN_METRIC,
    MULTICLASS_COLUMNS,
    SURVIVAL_COLUMNS,
    ladder_html,
    models_html,
)
from oncoflow.report.sections import (
    SYNTHESIS_METRICS,
    cohort_html,
    methods_text,
    segmentation_html,
    synthesis_html,
)
from oncoflow.report.summary import summary_html

__all__ = [
    "BINARY_COLUMNS",
    "CHECK_SCRIPT",
    "CSS",
    "MAIN_METRIC",
    "MULTICLASS_COLUMNS",
    "SURVIVAL_COLUMNS",
    "SYNTHESIS_METRICS",
    "cohort_html",
    "esc",
    "figure_html",
    "methods_text",
    "models_html",
    "report_page",
    "segmentation_html",
    "study_section",
    "synthesis_html",
    "table_html",
]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1rem 2rem;color:#1c1c1e;line-height:1.45}
h1{border-bottom:2px solid #0a84ff}h2{margin-top:2.5rem;border-bottom:1px solid #d1d1d6}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem}
th,td{border:1px solid #d1d1d6;padding:.2rem .5rem;text-align:left}th{background:#f2f2f7}
figure{margin:1rem 0}figcaption{font-size:.85rem;color:#3a3a3c;max-width:900px}
img{max-width:100%}.note{background:#fff8e1;border-left:4px solid #ffb300;padding:.4rem .8rem}
.control{color:#6e6e73}nav a{margin-right:.8rem}
"""

CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.from(document.images);
  var broken = images.filter(function (img) { return !img.complete || img.naturalWidth === 0; });
  document.body.dataset.imagesLoaded = String(images.length - broken.length);
  document.body.dataset.imagesBroken = String(broken.length);
});
"""
"""Marks on ``<body>`` how many figures decoded (``data-images-loaded`` / ``-broken``): lets a
headless browser test, and a reader's developer tools, check the report without a network."""


def study_section(
    study: str,
    settings: Mapping[str, Any],
    *,
    cohort_report: Mapping[str, Any],
    qc_panels: bytes | None = None,
    slide_panels: bytes | None = None,
    harmonize: Mapping[str, Mapping[str, Any]] | None = None,
    metrics: Mapping[str, Mapping[str, Any]] | None = None,
    comparisons: Sequence[Mapping[str, Any]] = (),
    oracle: Mapping[str, Any] | None = None,
    title: str | None = None,
    segmentation: Mapping[str, Any] | None = None,
    synthesis: Mapping[str, Any] | None = None,
    ladder: Sequence[str] = (),
) -> tuple[str, dict[str, bytes]]:
    """One study's HTML section and its figures (name -> PNG bytes).

    Args:
        study: Study name.
        settings: ``studies.<study>`` of the config.
        cohort_report: The study's validation report (``results/qc/<study>/cohort_report.json``).
        qc_panels: Mask overlay montage (PNG) or ``None``.
        slide_panels: Slide thumbnail montage (PNG) or ``None``.
        harmonize: Feature source -> ComBat statistics of the final fold.
        metrics: Variant -> ``metrics.json`` of the evaluate stage (``permuted`` = control).
        comparisons: ``comparisons.json`` rows.
        oracle: The demo's ``oracle.json`` (``{}`` on real cohorts).
        title: Heading (default: the study name), e.g. "net_survival applied to site_d".
        segmentation: Dice summary (:func:`~oncoflow.evaluate.segmentation.summarize_dice`).
        synthesis: Diffusion model: ``{"metrics": metrics.json, "panel": PNG, "loss": PNG}``.
        ladder: The variants of an ablation ladder, simplest first (each rung is shown against
            the rung below it, :func:`~oncoflow.report.models.ladder_html`).
    """
    pngs: dict[str, bytes] = {}
    parts = [
        f'<section id="{esc(study)}"><h2>{esc(title or study)}</h2>',
        f"<p>Model: <b>{esc(settings.get('model'))}</b>; targets: "
        f"{esc(', '.join(settings.get('targets', [])) or 'none')}.</p>",
        "<h3>Cohort</h3>" + cohort_html(cohort_report),
        _image_qc_html(study, qc_panels, slide_panels, pngs),
    ]
    if harmonize:
        parts.append(_harmonization_html(study, harmonize, pngs))
    if segmentation:
        body, figs = segmentation_html(study, segmentation)
        parts.append(body)
        pngs.update(figs)
    models = _models_part(study, settings, metrics, comparisons, oracle, synthesis, pngs)
    parts.append("<h3>Models</h3>" + models + ladder_html(study, comparisons, ladder, pngs))
    parts.append(_methods_html(study, settings, cohort_report, metrics, synthesis))
    parts.append("</section>")
    return "".join(parts), pngs


def _image_qc_html(
    study: str, qc_panels: bytes | None, slide_panels: bytes | None, pngs: dict[str, bytes]
) -> str:
    """The "Image QC" part: mask overlays and slide thumbnails (added to ``pngs``), or a note."""
    parts = ["<h3>Image QC</h3>"]
    if qc_panels is not None:
        pngs[f"{study}_qc_masks"] = qc_panels
        caption = (
            f"{study}: per patient (baseline), the axial slice with the largest mask area of the "
            "first masked image, intensity window 1st-99th percentile, mask outline in red."
        )
        parts.append(figure_html(qc_panels, caption, f"mask overlays {study}"))
    if slide_panels is not None:
        pngs[f"{study}_qc_slides"] = slide_panels
        caption = f"{study}: thumbnail of each whole-slide image (lowest-resolution level)."
        parts.append(figure_html(slide_panels, caption, f"slide thumbnails {study}"))
    if qc_panels is None and slide_panels is None:
        parts.append("<p>No masked image or slide to show.</p>")
    return "".join(parts)


def _harmonization_html(
    study: str, harmonize: Mapping[str, Mapping[str, Any]], pngs: dict[str, bytes]
) -> str:
    """The "Harmonization" part: the site-effect figure before / after ComBat (into ``pngs``)."""
    pngs[f"{study}_site_effect"] = figures.site_effect_figure(harmonize)
    caption = (
        f"{study}: fraction of features whose distribution differs between sites "
        "(Kruskal-Wallis p < 0.05) over all patients, before and after ComBat (final fold: "
        "fit on all training patients). After harmonization the fraction should approach "
        "the chance level."
    )
    return "<h3>Harmonization</h3>" + figure_html(
        pngs[f"{study}_site_effect"], caption, "site effect"
    )


def _models_part(
    study: str,
    settings: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]] | None,
    comparisons: Sequence[Mapping[str, Any]],
    oracle: Mapping[str, Any] | None,
    synthesis: Mapping[str, Any] | None,
    pngs: dict[str, bytes],
) -> str:
    """Body of the "Models" part (figures into ``pngs``).

    The diffusion model's fidelity when there is a ``synthesis``; else a note when the models
    only predicted a cohort without outcomes; else the models of every task kind
    (:func:`~oncoflow.report.models.models_html`, the comparisons after the last kind); else a
    note that this study's model is not trained by this version.
    """
    if synthesis:
        body, figs = synthesis_html(study, synthesis)
        pngs.update(figs)
        return body
    if metrics and not any(m.get("models") for m in metrics.values()):
        n = next(iter(metrics.values())).get("n_patients")
        return (
            f'<p class="note">The trained models predicted {esc(n)} patients of this cohort; it '
            "has no outcomes, so there is nothing to score (see predictions.csv).</p>"
        )
    if not metrics:
        return (
            f'<p class="note">No model of this study ({esc(settings.get("model"))}) is trained '
            "by this version of oncoflow yet; the cohort was validated and converted.</p>"
        )
    by_kind: dict[str, dict[str, Mapping[str, Any]]] = {}
    for variant, result in metrics.items():
        for kind, part in task_results(result).items():
            by_kind.setdefault(kind, {})[variant] = part
    parts = []
    for i, group in enumerate(by_kind.values()):
        last = i == len(by_kind) - 1
        body, figs = models_html(study, group, oracle or {}, comparisons if last else ())
        parts.append(body)
        pngs.update(figs)
    return "".join(parts)


def _methods_html(
    study: str,
    settings: Mapping[str, Any],
    cohort_report: Mapping[str, Any],
    metrics: Mapping[str, Mapping[str, Any]] | None,
    synthesis: Mapping[str, Any] | None,
) -> str:
    """The "Methods" part: :func:`~oncoflow.report.sections.methods_text` of what ran."""
    first = next(iter(metrics.values()), {}) if metrics else {}
    facts = {
        "n_patients": cohort_report.get("n_patients"),
        "n_images": cohort_report.get("n_images"),
        "trained": bool(metrics) or bool(synthesis),
        "n_boot": first.get("n_boot"),
        "missing": cohort_report.get("missing"),
    }
    return "<h3>Methods</h3><p>" + esc(methods_text(study, settings, facts)) + "</p>"


def report_page(
    sections: Mapping[str, str],
    *,
    versions: Mapping[str, str],
    seed: int,
    config_hash: str,
    n_patients: int,
    scale: str | None = None,
    summary: Sequence[Mapping[str, Any]] = (),
) -> str:
    """The whole report: title, run summary, navigation, study sections, software versions.

    ``scale`` ``"smoke"`` (the smoke-scale demo of ``make demo``) puts a notice on the first
    screen saying which figures are not meaningful at that scale. ``summary`` (the rows of
    :func:`~oncoflow.report.summary.summary_rows` of every study) is the first screen's table.
    """
    nav = "".join(f'<a href="#{esc(s)}">{esc(s)}</a>' for s in sections)
    notice = (
        '<p class="note" id="smoke"><strong>Smoke-scale demo.</strong> '
        "Every rule of the workflow ran, on a few patients per study and a few epochs, to show "
        "that the installation works. The "
        "model metrics, their confidence intervals, the paired comparisons, the gaps to the "
        "oracles and the segmentation and synthesis figures are <em>not meaningful</em> at this "
        "scale (most are near chance or not estimable). Run <code>make demo-full</code> for the "
        "science-scale demo that the README's tables describe.</p>"
        if scale == "smoke"
        else ""
    )
    version_rows = sorted(versions.items())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>oncoflow report</title>"
        f"<style>{CSS}</style><script>{CHECK_SCRIPT}</script></head><body>"
        "<h1>oncoflow run report</h1>"
        + notice
        + f"<p>{len(sections)} studies, {n_patients} patients. Seed {seed}; "
        f"validation config hash <code>{esc(config_hash)}</code>.</p>"
        f"<nav>{nav}</nav>"
        + summary_html(summary)
        + "".join(sections.values())
        + '<section id="software"><h2>Software versions</h2>'
        + table_html(["package", "version"], version_rows)
        + "</section></body></html>\n"
    )
