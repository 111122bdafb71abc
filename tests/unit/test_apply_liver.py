"""Apply a liver_response rung's frozen fold model to a new cohort: same scores, nothing fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from test_deep_models import (
    LIVER,
    _cohort,
    _one_thread,  # noqa: F401 (autouse fixture)
)

from oncoflow.artefacts import sha256
from oncoflow.deep.apply import apply_deep_model
from oncoflow.deep.workflow import run_fold
from oncoflow.formats import read_predictions, write_predictions
from oncoflow.splits import APPLY_SPLIT, TEST_SPLITS


def _train(tmp_path: Path, paths: dict[str, Path], name: str, **options) -> Path:
    """Train fold 0 of the relation_net rung; return its ``model.pt``."""
    out_dir = tmp_path / name
    run_fold(
        model="relation_net",
        settings=LIVER,
        fold="0",
        out_dir=out_dir,
        resume_dir=tmp_path / f"resume_{name}",
        seed=1,
        **paths,
        **options,
    )
    return out_dir / "model.pt"


def _apply(model: Path, cohort: Path, lesions: Path) -> pd.DataFrame:
    """Apply ``model`` to ``cohort``; the rows as ``predictions.csv`` holds them, by patient."""
    rows, summary = apply_deep_model(
        [model], recipe="liver_response", cohort=cohort, lesions=lesions, device="cpu"
    )
    assert summary["model_files"][0]["sha256"] == sha256(model)
    written = cohort.parent / f"{cohort.name}_predictions.csv"
    write_predictions(written, rows)  # the schema accepts the rows, labelled or not
    return read_predictions(written).set_index("patient_id")


def test_apply_reproduces_the_fold_test_scores_without_fitting(tmp_path: Path) -> None:
    paths = _cohort(tmp_path, "liver")
    model = _train(tmp_path, paths, "fold_0")
    digest = sha256(model)
    trained = pd.read_csv(model.parent / "predictions.csv", dtype={"patient_id": str})
    test = trained[trained["split"].isin(TEST_SPLITS)].set_index("patient_id")
    assert len(test)

    applied = _apply(model, paths["cohort"], paths["lesions"])
    patients = pd.read_csv(paths["cohort"] / "clinical.csv", dtype={"patient_id": str})
    assert sorted(applied.index) == sorted(patients["patient_id"])  # one row each
    assert (applied["split"] == APPLY_SPLIT).all()
    assert (applied["fold"] == "final").all()
    np.testing.assert_allclose(
        applied.loc[test.index, "y_score"], test["y_score"], rtol=0, atol=1e-5
    )
    assert applied.loc[test.index, "y_true"].astype(int).tolist() == test["y_true"].tolist()
    assert sha256(model) == digest  # the frozen model is read, never written

    unlabelled = tmp_path / "new_cohort"
    shutil.copytree(paths["cohort"], unlabelled)
    (unlabelled / "outcomes.csv").unlink()
    blind = _apply(model, unlabelled, paths["lesions"])
    assert blind["y_true"].isna().all()
    np.testing.assert_allclose(
        blind.loc[applied.index, "y_score"], applied["y_score"], rtol=0, atol=1e-6
    )
    assert sha256(model) == digest

    outcomes = pd.read_csv(paths["cohort"] / "outcomes.csv", dtype={"patient_id": str})
    outcomes.iloc[1:].to_csv(unlabelled / "outcomes.csv", index=False)  # first patient unknown
    partial = _apply(model, unlabelled, paths["lesions"])
    first = outcomes["patient_id"].iloc[0]
    assert pd.isna(partial.loc[first, "y_true"])
    known = outcomes.set_index("patient_id")["response"].iloc[1:]
    assert partial.loc[known.index, "y_true"].astype(int).tolist() == known.tolist()


def test_apply_a_negative_control_model_scores_each_run(tmp_path: Path) -> None:
    paths = _cohort(tmp_path, "liver", n=16)
    model = _train(tmp_path, paths, "perm", permute=True, permutations=2)
    applied = _apply(model, paths["cohort"], paths["lesions"])
    assert sorted(applied["permutation"].unique()) == [0, 1]
    assert (applied.groupby("permutation").size() == 16).all()
    assert (applied["split"] == APPLY_SPLIT).all()
    assert applied["y_score"].between(0, 1).all()
    runs = [part.sort_index()["y_score"] for _, part in applied.groupby("permutation")]
    assert not np.allclose(runs[0], runs[1])  # each run applies its own weights
