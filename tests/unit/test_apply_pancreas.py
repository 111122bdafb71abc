"""Apply a trained cnn_lstm fold (pancreas_progression) to a new cohort: nothing is fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from test_deep_models import (
    PANCREAS,
    _cohort,
    _one_thread,  # noqa: F401 (autouse fixture)
)

from oncoflow.artefacts import sha256
from oncoflow.deep.apply import apply_deep_model
from oncoflow.deep.workflow import run_fold
from oncoflow.formats import read_predictions, write_predictions

KEYS = ["patient_id", "timepoint"]


def test_applied_fold_reproduces_its_test_scores_with_and_without_outcomes(
    tmp_path: Path,
) -> None:
    paths = _cohort(tmp_path, "pancreas")
    out_dir = tmp_path / "fold_0"
    run_fold(
        model="cnn_lstm",
        settings=PANCREAS,
        fold="0",
        out_dir=out_dir,
        resume_dir=tmp_path / "resume",
        seed=1,
        **paths,
    )
    model_file = out_dir / "model.pt"
    digest = sha256(model_file)
    options = {"recipe": "pancreas_progression", "lesions": paths["lesions"], "device": "cpu"}

    applied, summary = apply_deep_model([model_file], cohort=paths["cohort"], **options)
    assert set(applied["split"]) == {"apply"}
    assert set(applied["fold"].astype(str)) == {"final"}
    assert summary["outcomes_known"] is True
    assert summary["model_files"] == [{"path": str(model_file), "sha256": digest, "fold": "0"}]
    # the fold's test patients x time points score exactly as when the fold was trained
    trained = read_predictions(out_dir / "predictions.csv")
    test = trained[trained["split"].isin(["internal_test", "external_test"])]
    assert len(test)
    both = test.merge(applied, on=KEYS, how="left", suffixes=("_fold", "_apply"))
    assert both["y_score_apply"].notna().all()
    np.testing.assert_allclose(both["y_score_apply"], both["y_score_fold"], atol=1e-5)
    np.testing.assert_array_equal(
        both["y_true_apply"].astype(float), both["y_true_fold"].astype(float)
    )
    # with outcomes: one row per labelled time point of every patient (as in training)
    outcomes = pd.read_csv(paths["cohort"] / "outcomes.csv", dtype={"patient_id": str})
    labelled = outcomes.dropna(subset=["progression_next"])
    assert sorted(map(tuple, applied[KEYS].values.tolist())) == sorted(
        map(tuple, labelled[KEYS].values.tolist())
    )
    assert sha256(model_file) == digest  # apply fits and writes nothing into the model

    # a new cohort without outcomes.csv: every time point with crops, empty labels
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(paths["cohort"] / "clinical.csv", bare / "clinical.csv")
    unlabelled, summary = apply_deep_model([model_file], cohort=bare, **options)
    assert summary["outcomes_known"] is False
    crops = sorted(
        (p.name, int(f.stem)) for p in paths["lesions"].iterdir() for f in p.glob("*.npz")
    )
    assert sorted(map(tuple, unlabelled[KEYS].values.tolist())) == crops
    assert unlabelled["y_true"].isna().all()
    assert set(unlabelled["split"]) == {"apply"}
    same = applied.merge(unlabelled, on=KEYS, suffixes=("", "_bare"))
    assert len(same) == len(applied)
    np.testing.assert_allclose(same["y_score_bare"], same["y_score"], atol=1e-6)
    write_predictions(tmp_path / "bare.csv", unlabelled)  # the schema takes a null y_true
    assert read_predictions(tmp_path / "bare.csv")["y_true"].isna().all()
    assert sha256(model_file) == digest
