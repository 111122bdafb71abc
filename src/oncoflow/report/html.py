"""The run report: one self-contained HTML page (figures inlined as PNG data URIs, no network).

:func:`study_section` builds one study's section (cohort, image QC, harmonization, models with
their negative controls, comparisons, methods) and returns its figures as PNG bytes too (for
``snakemake --report``); :func:`report_page` wraps the sections with the run summary and the
software versions. Every figure is a ``<figure>`` with an ``<figcaption>``.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import Any

from oncoflow.evaluate.card import split_results, task_results
from oncoflow.report import figures

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

SURVIVAL_COLUMNS = ("harrell_c", "uno_c", "mean_td_auc", "ibs")
BINARY_COLUMNS = ("auc", "ap", "accuracy", "sensitivity", "specificity", "f1", "brier", "ece")
MULTICLASS_COLUMNS = ("auc_macro", "accuracy", "f1_macro", "brier")
MAIN_METRIC = {"survival": "harrell_c", "binary": "auc", "multiclass": "auc_macro"}
"""The metric that ranks models (on validation) and fills the interval figure (on test)."""


def esc(text: Any) -> str:
    """HTML-escaped text of any value."""
    return html.escape(str(text))


def figure_html(png: bytes, caption: str, alt: str) -> str:
    """A ``<figure>`` with the PNG inlined and its caption."""
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def table_html(
    header: Sequence[str], rows: Sequence[Sequence[Any]], css: Sequence[str] = ()
) -> str:
    """A simple HTML table; ``css`` gives an optional class per row."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{css[i]}"' if i < len(css) and css[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _cell(cell: Mapping[str, Any] | None) -> str:
    if not cell or cell.get("value") is None:
        return "n/a"
    if cell.get("ci_low") is None:
        return f"{cell['value']:.3f}"
    return f"{cell['value']:.3f} [{cell['ci_low']:.3f}, {cell['ci_high']:.3f}]"


def cohort_html(report: Mapping[str, Any]) -> str:
    """Patients per site and split, and exclusions with reasons (validation report)."""
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
    return "".join(parts)


def _headline(kind: str) -> tuple[str, ...]:
    return {"survival": SURVIVAL_COLUMNS, "multiclass": MULTICLASS_COLUMNS}.get(
        kind, BINARY_COLUMNS
    )


def _best_model(metrics: Mapping[str, Any], target: str, kind: str) -> str | None:
    """Model with the best pooled validation score (never chosen on test data)."""
    key = MAIN_METRIC[kind]
    best, score = None, float("-inf")
    for model, targets in metrics.get("models", {}).items():
        pooled = targets.get(target, {}).get("validation", {}).get("pooled", {})
        value = (pooled.get(key) or {}).get("value")
        if value is not None and value > score:
            best, score = model, value
    return best


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
                        + [_cell(part.get(c)) for c in columns]
                    )
                    css.append("control" if control else "")
                test = entry.get("test")
                if test is not None:
                    cell = test.get(main) or {}
                    interval_rows.append(
                        {"label": f"{variant}/{model}", "control": control, **_interval(cell)}
                    )
        parts.append(
            table_html(
                ["variant/model", "split", "patients", "events/positives", *columns], rows, css
            )
        )
        oracle_value = (oracle.get(target) or {}).get("value")
        name = f"{study}_{target}_{main}"
        pngs[name] = figures.c_index_figure(interval_rows, oracle_value, target, main)
        caption = (
            f"{study}, {target}: {main} of every model on the pooled test splits with its 95 % "
            "patient-bootstrap CI. Blue: real models; grey: the same pipeline trained on "
            "permuted labels (negative control, expected near 0.5). Dotted: chance; dashed "
            "green: the oracle score the demo generator allows (demo cohorts only)."
        )
        parts.append(figure_html(pngs[name], caption, f"{main} per model, {target}"))
        if kind == "survival":
            parts += _survival_figures(study, target, metrics, pngs)
        else:
            parts += _classification_figures(study, target, metrics, kind, pngs)
    if comparisons:
        rows = [
            (c["target"], c["a"], c["b"], c["reference"], f"{c['estimate']:+.3f}",
             f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]" if "ci_low" in c else "",
             f"{c['p_value']:.3g}", c["n_patients"])
            if c.get("estimate") is not None
            else (c["target"], c["a"], c["b"], c["reference"], "not estimable", "",
                  c.get("not_estimable", ""), c["n_patients"])
            for c in comparisons
        ]  # fmt: skip
        parts.append("<h4>Paired model comparisons (test patients)</h4>")
        parts.append(
            table_html(["target", "a", "b", "b is", "a - b", "95 % CI", "p", "patients"], rows)
        )
    return "".join(parts), pngs


def segmentation_html(study: str, summary: Mapping[str, Any]) -> tuple[str, dict[str, bytes]]:
    """Dice table with CIs per region and split, and the box plot of per-case Dice."""
    rows, boxes = [], {}
    for region, splits in summary.get("regions", {}).items():
        for split, part in splits.items():
            rows.append(
                [region, split, part["n_cases"], part["empty_reference"], _cell(part["dice"]),
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


SYNTHESIS_METRICS = {
    "mae_hu": "MAE (HU)",
    "psnr_db": "PSNR (dB)",
    "ssim": "SSIM",
    "hu_wasserstein": "HU histogram W1 (HU)",
}


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


def _interval(cell: Mapping[str, Any]) -> dict[str, Any]:
    return {k: cell.get(k) for k in ("value", "ci_low", "ci_high")}


def _survival_figures(
    study: str, target: str, metrics: Mapping[str, Mapping[str, Any]], pngs: dict[str, bytes]
) -> list[str]:
    parts = []
    real = {v: m for v, m in metrics.items() if v != "permuted"}
    for variant, result in list(real.items())[:1]:
        best = _best_model(result, target, "survival")
        if best is None:
            continue
        test = result["models"][best][target].get("test")
        if test is None or not test.get("km", {}).get("curves"):
            continue
        name = f"{study}_{target}_km"
        pngs[name] = figures.km_figure(test["km"], f"{variant}/{best}, {target}, test")
        caption = (
            f"Kaplan-Meier curves of the test patients of {study} split into low and high risk at "
            f"the median validation risk of {variant}/{best} (the model with the best pooled "
            "validation C; cut-off and model chosen without test data), with the log-rank p."
        )
        parts.append(figure_html(pngs[name], caption, f"Kaplan-Meier {target}"))
    series = {}
    for variant, result in metrics.items():
        best = _best_model(result, target, "survival")
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
    """ROC / PR, calibration and confusion matrix of the best validation model on the tests."""
    real = {v: m for v, m in metrics.items() if v != "permuted"}
    for variant, result in list(real.items())[:1]:
        best = _best_model(result, target, kind)
        entry = result["models"][best][target] if best else {}
        test = entry.get("test")
        if test is None:
            return []
        label = f"{variant}/{best}"
        chosen = "the model with the best pooled validation score, chosen without test data"
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
            rule = (
                f"threshold {entry['threshold']:.3g} from {entry.get('threshold_from')}"
                if "threshold" in entry
                else "most probable class"
            )
            caption = (
                f"{study}, {target}: confusion matrix of {label} on the pooled test splits "
                f"(rows: true class; prediction: {rule})."
            )
            parts.append(figure_html(pngs[name], caption, f"confusion matrix {target}"))
        return parts
    return []


def methods_text(study: str, settings: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    """A generated methods paragraph from the study's configuration and what ran."""
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
        sentences.append(
            f"Model {settings.get('model')} was trained for {targets} with "
            f"{folds.get('repeats', 5)} patient-level fit/holdout repeats of the training split"
            " for validation and a final model applied to the internal and external test splits;"
            " every fitted step (encoding, feature selection, hyper-parameters) saw training "
            "patients of the fold only."
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
    """
    pngs: dict[str, bytes] = {}
    parts = [f'<section id="{esc(study)}"><h2>{esc(title or study)}</h2>']
    parts.append(
        f"<p>Model: <b>{esc(settings.get('model'))}</b>; targets: "
        f"{esc(', '.join(settings.get('targets', [])) or 'none')}.</p>"
    )
    parts.append("<h3>Cohort</h3>" + cohort_html(cohort_report))
    parts.append("<h3>Image QC</h3>")
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
    if harmonize:
        parts.append("<h3>Harmonization</h3>")
        pngs[f"{study}_site_effect"] = figures.site_effect_figure(harmonize)
        caption = (
            f"{study}: fraction of features whose distribution differs between sites "
            "(Kruskal-Wallis p < 0.05) over all patients, before and after ComBat (final fold: "
            "fit on all training patients). After harmonization the fraction should approach "
            "the chance level."
        )
        parts.append(figure_html(pngs[f"{study}_site_effect"], caption, "site effect"))
    if segmentation:
        body, figs = segmentation_html(study, segmentation)
        parts.append(body)
        pngs.update(figs)
    parts.append("<h3>Models</h3>")
    if synthesis:
        body, figs = synthesis_html(study, synthesis)
        parts.append(body)
        pngs.update(figs)
    elif metrics and not any(m.get("models") for m in metrics.values()):
        n = next(iter(metrics.values())).get("n_patients")
        parts.append(
            f'<p class="note">The trained models predicted {esc(n)} patients of this cohort; it '
            "has no outcomes, so there is nothing to score (see predictions.csv).</p>"
        )
    elif metrics:
        by_kind: dict[str, dict[str, Mapping[str, Any]]] = {}
        for variant, result in metrics.items():
            for kind, part in task_results(result).items():
                by_kind.setdefault(kind, {})[variant] = part
        for i, group in enumerate(by_kind.values()):
            body, figs = models_html(
                study, group, oracle or {}, comparisons if i == len(by_kind) - 1 else ()
            )
            parts.append(body)
            pngs.update(figs)
    else:
        parts.append(
            f'<p class="note">No model of this study ({esc(settings.get("model"))}) is trained '
            "by this version of oncoflow yet; the cohort was validated and converted.</p>"
        )
    first = next(iter(metrics.values()), {}) if metrics else {}
    facts = {
        "n_patients": cohort_report.get("n_patients"),
        "n_images": cohort_report.get("n_images"),
        "trained": bool(metrics) or bool(synthesis),
        "n_boot": first.get("n_boot"),
    }
    parts.append("<h3>Methods</h3><p>" + esc(methods_text(study, settings, facts)) + "</p>")
    parts.append("</section>")
    return "".join(parts), pngs


def report_page(
    sections: Mapping[str, str],
    *,
    versions: Mapping[str, str],
    seed: int,
    config_hash: str,
    n_patients: int,
    scale: str | None = None,
) -> str:
    """The whole report: title, run summary, navigation, study sections, software versions.

    ``scale`` ``"smoke"`` (the smoke-scale demo of ``make demo``) puts a notice on the first
    screen saying which figures are not meaningful at that scale.
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
        + "".join(sections.values())
        + '<section id="software"><h2>Software versions</h2>'
        + table_html(["package", "version"], version_rows)
        + "</section></body></html>\n"
    )
