"""oncoflow.baselines: tabular baselines fit in the study's folds, scored like any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from oncoflow.baselines import BASELINE_NAMES, baseline_inputs, baseline_name, study_baselines
from oncoflow.baselines.design import design_table, study_targets
from oncoflow.baselines.fit import fit_classifier, inner_folds
from oncoflow.baselines.sizes import mask_sizes, mask_statistics
from oncoflow.baselines.train import BaselineSpec, train_baseline
from oncoflow.errors import ConfigError
from oncoflow.formats import check_predictions, write_folds
from oncoflow.metrics import auc, concordance_index, macro_auc

N = 120


def test_names_and_inputs():
    assert baseline_name(["size", "clinical"]) == "baseline_clinical_size"
    assert baseline_inputs("baseline_clinical_size") == ("clinical", "size")
    assert set(BASELINE_NAMES) == {
        baseline_name(i)
        for i in (["clinical"], ["clinical", "size"], ["size"], ["clinical", "lesion"], ["lesion"])
    }
    assert study_baselines(["age"], has_masks=True) == [
        "baseline_clinical",
        "baseline_clinical_size",
    ]
    assert study_baselines([], has_masks=True) == ["baseline_size"]
    assert study_baselines(["age"], has_masks=False) == ["baseline_clinical"]
    # a recipe's declared baselines, those its cohort can feed
    declared = ("baseline_size", "baseline_lesion", "baseline_clinical_lesion")
    assert study_baselines([], has_masks=True, declared=declared) == [
        "baseline_size",
        "baseline_lesion",
    ]
    assert study_baselines(["age"], has_masks=False, declared=declared) == []
    with pytest.raises(ConfigError, match="not a baseline name"):
        baseline_inputs("relation_net")


def test_targets_take_their_kind_from_the_outcomes():
    outcomes = pd.DataFrame(
        {
            "os_time": [1.0, 2.0],
            "os_event": [1, 0],
            "response": pd.array([0, 1], dtype="Int64"),
            "histology": ["LUSC", "LUAD"],
            "stage": ["I", "III"],
            "subtype": pd.array([0, 2], dtype="Int64"),
        }
    )
    targets = study_targets(outcomes, ["os_time", "os_event", "response", "histology", "subtype"])
    kinds = {t.name: (t.kind, t.positive) for t in targets}
    assert kinds == {
        "os": ("survival", None),
        "response": ("binary", "1"),
        "histology": ("binary", "LUSC"),  # the second class in sorted order, as MM-DLS scores it
        "subtype": ("binary", "2"),
    }
    three = pd.DataFrame({"stage": ["I", "II", "III"]})
    assert study_targets(three, ["stage"])[0].classes == ("I", "II", "III")


def _mask(path: Path, voxels: int, label: int = 1) -> None:
    array = np.zeros((4, 10, 10), dtype=np.uint8)
    array.flat[:voxels] = label
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.0, 2.0, 5.0))  # 20 mm^3 per voxel
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def test_mask_sizes_in_millilitres_per_time_point(tmp_path):
    _mask(tmp_path / "P1/0/MR_T2_mask.nii.gz", 50)
    _mask(tmp_path / "P1/0/CT_mask.nii.gz", 100)  # the first stem alphabetically is measured
    _mask(tmp_path / "P1/1/CT_mask.nii.gz", 25)
    sizes = mask_sizes(tmp_path, ["P1"], [1, 2])
    assert sizes["timepoint"].tolist() == [0, 1]
    assert sizes["size_label1_ml"].tolist() == pytest.approx([100 * 0.02, 25 * 0.02])
    assert sizes["size_label2_ml"].tolist() == [0.0, 0.0]
    wide = design_table(
        pd.DataFrame({"patient_id": ["P1"], "age": [60]}), ["age"], sizes,
        by_timepoint=False, keys=pd.DataFrame({"patient_id": ["P1"]}),
    )  # fmt: skip
    assert wide.loc["P1", "size_label1_ml_tp1"] == pytest.approx(0.5)
    # the response between the two scans, ln((V_1 + 0.1) / (V_0 + 0.1)), whatever the encoder logs
    assert wide.loc["P1", "size_label1_ml_change_first_tp1"] == pytest.approx(np.log(0.6 / 2.1))
    assert "size_label1_ml_change_first_tp0" not in wide.columns
    keys = pd.DataFrame({"patient_id": ["P1", "P1"], "timepoint": [0, 1]})
    long = design_table(
        pd.DataFrame({"patient_id": ["P1"]}), [], sizes, by_timepoint=True, keys=keys
    )
    # relative change, ln((V_t + 0.1) / (V_prev + 0.1)), since the previous and the first scan
    assert long["size_label1_ml_change"].tolist() == pytest.approx([0.0, np.log(0.6 / 2.1)])
    assert long["size_label1_ml_change_first"].tolist() == pytest.approx([0.0, np.log(0.6 / 2.1)])
    three = pd.concat(
        [sizes, sizes.iloc[[1]].assign(timepoint=2, size_label1_ml=1.0)], ignore_index=True
    )
    keys3 = pd.DataFrame({"patient_id": ["P1"] * 3, "timepoint": [0, 1, 2]})
    long3 = design_table(
        pd.DataFrame({"patient_id": ["P1"]}), [], three, by_timepoint=True, keys=keys3
    )
    assert long3["size_label1_ml_change"].iloc[2] == pytest.approx(np.log(1.1 / 0.6))
    assert long3["size_label1_ml_change_first"].iloc[2] == pytest.approx(np.log(1.1 / 2.1))


def test_inner_folds_keep_a_patient_together_and_stratify():
    patients = [f"P{i // 2}" for i in range(40)]  # two rows per patient
    labels = [int(i // 2 < 10) for i in range(40)]
    folds = inner_folds(patients, labels, seed=1)
    for p in set(patients):
        assert len({f for f, q in zip(folds, patients, strict=True) if q == p}) == 1
    positives = [f for f, y in zip(folds[::2], labels[::2], strict=True) if y]
    assert sorted(np.bincount(positives)) == [3, 3, 4]
    assert inner_folds(["a", "b", "c", "d"], [0, 0, 0, 1], seed=1) is None


def test_the_penalty_is_chosen_on_training_rows_and_one_class_gives_prevalence():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(int)
    fitted = fit_classifier(X, y, [f"P{i}" for i in range(200)], seed=0)
    assert fitted.chosen_by == "inner_cv"
    assert fitted.penalty >= 1.0  # a strong clean signal wants a weak penalty
    single = fit_classifier(X[:5], np.zeros(5, dtype=int), list("abcde"), seed=0)
    assert single.chosen_by == "single_class"
    assert single.model.predict_proba(X[:2]).tolist() == [[1.0], [1.0]]


def _cohort(root: Path) -> tuple[Path, Path, Path, Path]:
    """A cohort where age carries the response and the tumour volume carries survival."""
    rng = np.random.default_rng(3)
    ids = [f"P{i:03d}" for i in range(N)]
    age = rng.normal(60, 10, N)
    volume = rng.integers(5, 300, N)
    response = (age - 60 + 4 * rng.normal(size=N) > 0).astype(int)
    hazard = np.exp(volume / 100)
    time = rng.exponential(1000 / hazard)
    event = (rng.random(N) < 0.8).astype(int)
    grade = np.where(age < 55, "low", np.where(age < 65, "mid", "high"))
    cohort = root / "cohort"
    cohort.mkdir()
    sex = rng.choice(["F", "M"], N)
    pd.DataFrame({"patient_id": ids, "age": age.round(1), "sex": sex}).to_csv(
        cohort / "clinical.csv", index=False
    )
    pd.DataFrame(
        {"patient_id": ids, "response": response, "grade": grade, "os_time": time.round(1),
         "os_event": event}
    ).to_csv(cohort / "outcomes.csv", index=False)  # fmt: skip
    split = ["train"] * 90 + ["internal_test"] * 30
    splits = root / "splits.csv"
    pd.DataFrame({"patient_id": ids, "split": split}).to_csv(splits, index=False)
    train, test = ids[:90], ids[90:]
    folds = {
        str(k): {
            "fit": [p for i, p in enumerate(train) if i % 3 != k],
            "apply": [p for i, p in enumerate(train) if i % 3 == k],
        }
        for k in range(3)
    }
    folds["final"] = {"fit": train, "apply": test}
    write_folds(root / "folds.json", folds, seed=0, stratify=None)
    converted = root / "converted"
    for p, v in zip(ids, volume, strict=True):
        _mask(converted / p / "0" / "CT_mask.nii.gz", int(v))
    return cohort, splits, root / "folds.json", converted


@pytest.mark.parametrize("protocol", ["ensemble", "final"])
def test_a_baseline_learns_what_its_inputs_carry_in_the_study_folds(tmp_path, protocol):
    cohort, splits, folds, converted = _cohort(tmp_path)
    targets = ("response", "grade", "os_time", "os_event")
    spec = BaselineSpec(("clinical", "size"), ("age", "sex"), targets, (1,), protocol, (365.0,))
    predictions, summary = train_baseline(
        spec, cohort=cohort, splits=splits, folds=folds, converted=converted
    )
    check_predictions(predictions, Path("predictions.csv"))
    assert summary["targets"] == {"response": "binary", "grade": "multiclass", "os": "survival"}
    validation = predictions[predictions["split"] == "validation"]
    assert (
        validation.groupby("target")["patient_id"].nunique().eq(90).all()
    )  # each train patient once
    test = predictions[predictions["fold"] == "final"]
    assert set(test["split"]) == {"internal_test"}
    assert test.groupby("target")["patient_id"].nunique().eq(30).all()
    response = test[test["target"] == "response"]
    assert auc(response["y_true"], response["y_score"]) > 0.8  # age carries it
    grade = test[test["target"] == "grade"]
    columns = ["y_score_high", "y_score_low", "y_score_mid"]
    index = grade["y_true"].map({"high": 0, "low": 1, "mid": 2}).to_numpy()
    assert macro_auc(index, grade[columns].to_numpy(float)) > 0.8
    os = test[test["target"] == "os"]
    assert concordance_index(os["time"], os["event"], os["risk"]) > 0.65  # volume carries it
    assert os["survival_365"].between(0, 1).all()
    # every statistic of a fold comes from its fit patients: the penalty is chosen inside
    assert {f["chosen_by"] for f in summary["fits"]} <= {"inner_cv", "default"}
    clinical_only = BaselineSpec(("clinical",), ("age", "sex"), ("os_time", "os_event"))
    predictions, _ = train_baseline(clinical_only, cohort=cohort, splits=splits, folds=folds)
    os = predictions[predictions["fold"] == "final"]
    assert concordance_index(os["time"], os["event"], os["risk"]) < 0.65  # age does not


def test_lesion_statistics_are_the_image_inside_the_mask_and_its_elongation(tmp_path):
    z, y, x = np.mgrid[:20, :40, :40]
    lesion = ((z - 10) / 3.0) ** 2 + ((y - 20) / 12.0) ** 2 + ((x - 20) / 3.0) ** 2 <= 1
    labels = np.where(lesion, 2, 0).astype(np.uint8)
    labels[0, 0, :5] = 1  # a tiny organ label: too few voxels for an elongation
    rng = np.random.default_rng(0)
    hu = rng.normal(40.0, 5.0, labels.shape)
    hu[lesion] = rng.normal(-20.0, 12.0, int(lesion.sum()))
    folder = tmp_path / "P1/0"
    folder.mkdir(parents=True)
    for array, name in ((labels, "CT_venous_mask"), (hu.astype(np.float32), "CT_venous")):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((1.0, 1.0, 1.0))
        sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    table = mask_statistics(tmp_path, ["P1"], [1, 2]).iloc[0]
    assert table["size_label2_ml"] == pytest.approx(lesion.sum() / 1000)
    assert table["lesion_label2_mean"] == pytest.approx(hu[lesion].mean(), rel=1e-5)
    assert table["lesion_label2_sd"] == pytest.approx(hu[lesion].std(), rel=1e-5)
    # an ellipsoid with semi-axes 3, 12, 3 voxels: sqrt of the variance ratio = 12 / 3
    assert table["lesion_label2_elongation"] == pytest.approx(4.0, rel=0.1)  # voxelised
    assert np.isnan(table["lesion_label1_elongation"])  # a line of voxels: no smallest axis
    assert table["size_label1_ml"] == pytest.approx(5 / 1000)
    # per time point: changes of the volumes only, the statistics as measured
    keys = pd.DataFrame({"patient_id": ["P1"], "timepoint": [0]})
    long = design_table(
        pd.DataFrame({"patient_id": ["P1"]}), [], mask_statistics(tmp_path, ["P1"], [2]),
        by_timepoint=True, keys=keys,
    )  # fmt: skip
    assert "lesion_label2_mean" in long.columns
    assert "lesion_label2_mean_change" not in long.columns
    assert long["size_label2_ml_change"].tolist() == [0.0]
