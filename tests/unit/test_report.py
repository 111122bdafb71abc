"""Report HTML: sections, captions, negative controls next to real models, self-contained."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd

from oncoflow.evaluate.engine import evaluate_predictions
from oncoflow.report import figures
from oncoflow.report.html import report_page, study_section
from oncoflow.report.models import headline_model, ladder_html, ladder_rows, oracle_on_axis
from oncoflow.report.summary import summary_markdown, summary_rows

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cell(value: float) -> dict:
    return {"value": value, "ci_low": value - 0.1, "ci_high": value + 0.1}


def _metrics(c: float) -> dict:
    split = {
        "harrell_c": _cell(c),
        "uno_c": _cell(c),
        "td_auc@365": _cell(c),
        "td_auc@730": _cell(c),
        "mean_td_auc": _cell(c),
        "n_patients": 40,
        "n_events": 20,
        "km": {
            "p_value": 0.01,
            "curves": {
                "low": {"time": [0, 100, 400], "survival": [1, 0.9, 0.8], "n": 20},
                "high": {"time": [0, 50, 300], "survival": [1, 0.6, 0.3], "n": 20},
            },
        },
    }
    entry = {"validation": {"per_fold": {}, "pooled": split}, "test": split}
    return {
        "kind": "survival",
        "n_boot": 100,
        "horizons": [365.0, 730.0],
        "models": {"all": {"os": entry}},
    }


COHORT = {
    "n_patients": 60,
    "n_images": 120,
    "per_split": {"train": {"patients": 40, "images": 80}},
    "per_site": {"site_a": {"patients": 60, "images": 120}},
    "excluded": [],
    "problems": [],
}


def test_section_shows_real_model_next_to_control_with_captions():
    html, pngs = study_section(
        "net_survival",
        {"model": "cox", "targets": ["os_time"], "negative_control": True, "permutations": 3},
        cohort_report=COHORT,
        metrics={"raw": _metrics(0.72), "permuted": _metrics(0.51)},
        oracle={"os": {"metric": "c_index", "value": 0.75}},
    )
    assert "raw/all" in html
    assert "permuted/all (permuted-label control)" in html
    assert "0.720 [0.620, 0.820]" in html
    assert set(pngs) == {
        "net_survival_os_harrell_c",
        "net_survival_os_km",
        "net_survival_os_td_auc",
    }
    assert all(png.startswith(PNG_MAGIC) for png in pngs.values())
    assert html.count("<img ") == html.count("<figcaption>") == len(pngs)
    assert "permuted among training patients" in html  # methods paragraph
    inlined = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data in inlined)


def test_section_without_a_model_says_so():
    html, pngs = study_section("lung_synthesis", {"model": "lung_ddpm"}, cohort_report=COHORT)
    assert "No model of this study (lung_ddpm)" in html
    assert pngs == {}


def test_page_is_self_contained_with_versions():
    page = report_page(
        {"a": '<section id="a"></section>'},
        versions={"numpy": "2.0"},
        seed=7,
        config_hash="abc",
        n_patients=3,
    )
    assert page.startswith("<!DOCTYPE html>")
    assert "<td>numpy</td><td>2.0</td>" in page
    assert not re.search(r"(src|href)=\"https?:", page)
    assert "Smoke-scale demo" not in page


def test_smoke_scale_notice_comes_before_the_first_study():
    page = report_page(
        {"a": '<section id="a"></section>'},
        versions={},
        seed=7,
        config_hash="abc",
        n_patients=3,
        scale="smoke",
    )
    assert page.index("Smoke-scale demo") < page.index('<section id="a">')
    assert "not meaningful" in page


def test_mid_lesion_slice_is_the_largest_mask_area():
    mask = np.zeros((8, 8, 5), dtype=np.uint8)
    mask[2:4, 2:4, 1] = 1
    mask[1:6, 1:6, 3] = 1
    image = np.random.default_rng(0).normal(size=mask.shape)
    plane, outline, k = figures.mid_lesion_slice(image, mask)
    assert k == 3
    assert outline.sum() == 25
    assert np.array_equal(plane, image[..., 3])


def _classification_predictions(kind: str) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    n = 120
    frame = pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(n)],
            "split": ["validation"] * 80 + ["internal_test"] * 20 + ["external_test"] * 20,
            "fold": [str(i % 4) for i in range(80)] + ["final"] * 40,
            "target": "response",
        }
    )
    if kind == "binary":
        y = rng.integers(0, 2, n)
        frame["y_true"] = y
        frame["y_score"] = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(0, 1, n))))
    else:
        y = rng.integers(0, 3, n)
        logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y]
        prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        frame["y_true"] = np.array(["CR", "PR", "SD"])[y]
        for k, name in enumerate(("CR", "PR", "SD")):
            frame[f"y_score_{name}"] = prob[:, k]
    return frame


def test_classification_sections_have_roc_calibration_confusion_with_axis_labels(monkeypatch):
    labelled: list[bool] = []
    draw = figures._png

    def checked(fig):
        plots = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        labelled.append(all(ax.get_xlabel() and ax.get_ylabel() for ax in plots))
        return draw(fig)

    monkeypatch.setattr(figures, "_png", checked)
    expected = {
        "binary": {"roc_pr": 1, "calibration": 1, "confusion": 1, "auc": 1},
        "multiclass": {"confusion": 1, "auc_macro": 1},
    }
    for kind, names in expected.items():
        metrics = evaluate_predictions(_classification_predictions(kind), n_boot=50)
        real = {"raw": metrics, "permuted": metrics}
        html, pngs = study_section("liver", {"model": "m"}, cohort_report=COHORT, metrics=real)
        assert set(pngs) == {f"liver_response_{n}" for n, v in names.items() if v}, kind
        assert html.count("<img ") == html.count("<figcaption>") == len(pngs)
        if kind == "multiclass":
            model = next(iter(metrics["models"].values()))
            weights = next(iter(model.values()))["decision"]
            shown = ", ".join(f"{w:.2f}" for w in weights["weights"])
            assert f"argmax of class weights ({shown}) x probability, fitted on validation" in html
            assert "auc_macro" in html
        else:
            assert "Youden" in html
    assert labelled
    assert all(labelled)


def test_the_headline_model_is_the_best_validation_model_across_variants():
    """The first variant is the worst on validation (and the best on test): never shown."""
    worst_first = {
        "resnet_single": _metrics(0.5),
        "relation_net": _metrics(0.7),
        "baseline_clinical": _metrics(0.6),
        "permuted": _metrics(0.9),  # the control never heads the report
    }
    worst_first["resnet_single"]["models"]["all"]["os"]["test"] = _metrics(0.95)["models"]["all"][
        "os"
    ]["test"]
    assert headline_model(worst_first, "os", "survival") == ("relation_net", "all", 0.7)
    html, _ = study_section(
        "net_survival", {"model": "cox"}, cohort_report=COHORT, metrics=worst_first
    )
    km = html[html.index("Kaplan-Meier curves") :]
    assert "median validation risk of relation_net/all" in km
    assert "best pooled validation harrell_c (0.700) across every variant" in km


def test_an_oracle_is_drawn_only_on_the_axis_of_its_own_metric():
    assert oracle_on_axis({"os": {"metric": "c_index", "value": 0.75}}, "os", "harrell_c") == 0.75
    stage = {"stage": {"metric": "macro_f1", "value": 0.69}}
    assert oracle_on_axis(stage, "stage", "auc_macro") is None
    assert oracle_on_axis({"stage": {"metric": "macro_auc", "value": 0.8}}, "stage", "auc_macro")


def test_the_first_screen_summarises_model_baseline_oracle_and_control():
    metrics = {
        "raw": _metrics(0.72),
        "baseline_clinical": _metrics(0.61),
        "baseline_clinical_size": _metrics(0.65),
        "permuted": _metrics(0.5),
    }
    comparisons = [
        {"target": "os", "a": "raw/all", "b": "baseline_clinical_size/all",
         "reference": "baseline", "estimate": 0.07, "ci_low": 0.01, "ci_high": 0.13,
         "p_value": 0.02},
    ]  # fmt: skip
    oracle = {"os": {"metric": "c_index", "value": 0.75}}
    (row,) = summary_rows("net_survival", metrics, comparisons, oracle)
    assert row["headline"]["label"] == "raw/all"
    assert row["baseline"]["label"] == "baseline_clinical_size/all"  # the better on validation
    assert row["paired"] == {"estimate": 0.07, "ci_low": 0.01, "ci_high": 0.13, "p_value": 0.02}
    assert row["control"]["test"]["value"] == 0.5
    assert row["oracle"] == {"metric": "c_index", "value": 0.75}
    page = report_page(
        {"net_survival": "<section id='net_survival'></section>"},
        versions={}, seed=1, config_hash="x", n_patients=10, summary=[row],
    )  # fmt: skip
    first = page[page.index('<section id="summary">') :]
    assert first.index("Summary") < first.index("net_survival'></section>")
    assert "raw/all: 0.720 [0.620, 0.820]" in first
    assert "0.070 [0.010, 0.130] (p 0.02)" in first
    assert "0.750 (c_index)" in first
    table = summary_markdown([row | {"oracle": row["oracle"] | {"value_tabular": 0.6}}])
    line = table.splitlines()[2]
    assert line.startswith("| net_survival | os | harrell_c | raw/all: 0.720 [0.620, 0.820] |")
    assert "| 0.070 [0.010, 0.130] (p 0.02) | 0.750 (c_index) | 0.600 |" in line


def test_the_ladder_shows_each_rung_against_the_rung_below():
    comparisons = [
        # stored the other way round: turned over
        {"target": "response", "a": "resnet_single/model", "b": "pre_post/model",
         "estimate": -0.1, "ci_low": -0.2, "ci_high": 0.05, "p_value": 0.2, "test": "DeLong"},
        {"target": "response", "a": "single_temporal/model", "b": "pre_post/model",
         "estimate": 0.05, "ci_low": -0.01, "ci_high": 0.11, "p_value": 0.1, "test": "DeLong"},
        {"target": "response", "a": "single_temporal/model", "b": "resnet_single/model",
         "estimate": 0.15, "ci_low": 0.0, "ci_high": 0.3, "p_value": 0.05, "test": "DeLong"},
    ]  # fmt: skip
    ladder = ["resnet_single", "pre_post", "single_temporal", "relation_net"]
    rows = ladder_rows(comparisons, ladder, "response")
    assert [r["label"] for r in rows] == [
        "pre_post - resnet_single",
        "single_temporal - pre_post",
        "relation_net - single_temporal",
    ]
    assert rows[0]["estimate"] == 0.1
    assert (rows[0]["ci_low"], rows[0]["ci_high"]) == (-0.05, 0.2)
    assert rows[1]["estimate"] == 0.05
    assert rows[2]["estimate"] is None  # not compared
    pngs: dict[str, bytes] = {}
    html = ladder_html("liver_response", comparisons, ladder, pngs)
    assert "0.100 [-0.050, 0.200]" in html
    assert set(pngs) == {"liver_response_response_ladder"}
    assert ladder_html("liver_response", comparisons, ["relation_net"], {}) == ""


def test_the_cohort_part_lists_dropped_patients_and_imputed_columns():
    cohort = {
        **COHORT,
        "missing": {
            "policy": {"modalities": "drop_patient", "timepoints": "refuse", "clinical": "impute"},
            "dropped": {"P007": ["MR_T2 at time point 1", "MR_DWI at time point 1"]},
            "imputed": {"ca19_9": ["P002", "P005"]},
            "partial": {},
        },
    }
    html, _ = study_section("pancreas", {"model": "cox"}, cohort_report=cohort)
    assert (
        "<tr><th>patient</th><th>missing inputs</th><th>policy</th></tr>"
        "<tr><td>P007</td><td>MR_T2 at time point 1, MR_DWI at time point 1</td>"
        "<td>modalities: drop_patient</td></tr>"
    ) in html
    assert "1 patient(s) left out of every step for missing inputs" in html
    assert "<tr><td>ca19_9</td><td>2</td></tr>" in html
    assert "median of each fold&#x27;s training patients" in html
    assert "Empty clinical values of ca19_9 (2 patient(s)) were imputed" in html  # methods
    plain, _ = study_section("pancreas", {"model": "cox"}, cohort_report=COHORT)
    assert "Missing-input policy" not in plain
