"""Apply a trained MM-DLS fold to a new cohort: the frozen model.pt scores as in training."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_deep_models import (
    MMDLS,
    _cohort,
    _one_thread,  # noqa: F401 (autouse fixture)
)

from oncoflow.artefacts import sha256
from oncoflow.deep.apply import apply_deep_model
from oncoflow.deep.mmdls_heads import baseline_survival, breslow_baseline
from oncoflow.deep.workflow import run_fold
from oncoflow.errors import ModelError
from oncoflow.models.mm_dls import breslow_survival

SETTINGS = {**MMDLS, "heads": {"stage": {"columns": ["pet:pet__SUVmax", "age"], "refit": True}}}
TARGETS = ("histology", "stage", "dfs", "os")
LABELS = ("y_true", "time", "event")


def _train(root: Path, *, sites: bool) -> tuple[dict[str, Path], Path, pd.DataFrame]:
    """Fold 0 of the tiny NSCLC cohort; ``sites``: images.csv sites A / B, C only in the test.

    Returns:
        The cohort's paths, the fold's model.pt and its predictions.
    """
    paths = _cohort(root, "nsclc")
    patients = [f"P{i:03d}" for i in range(24)]
    rng = np.random.default_rng(5)
    pet = pd.DataFrame(
        {
            "patient_id": patients,
            "timepoint": 0,
            "pet__SUVmax": np.arange(24.0),
            "pet__MTV": rng.lognormal(2, 0.5, 24),  # ComBat's EB needs two varying columns
        }
    )
    pet.to_csv(root / "pet.csv", index=False)
    if sites:  # P022, P023 are external test patients: their site C has no training patient
        site = ["C" if i >= 22 else "AB"[i % 2] for i in range(24)]
        images = pd.DataFrame({"patient_id": patients, "site": site})
        images.to_csv(paths["cohort"] / "images.csv", index=False)
    rows, _ = run_fold(
        model="mm_dls",
        settings=SETTINGS,
        fold="0",
        out_dir=root / "fold_0",
        resume_dir=root / "resume",
        features={"pet": root / "pet.csv"},
        converted=root / "converted",
        seed=1,
        **paths,
    )
    return paths, root / "fold_0" / "model.pt", rows


def _apply(root: Path, paths: dict[str, Path], model: Path, cohort: Path) -> pd.DataFrame:
    frame, summary = apply_deep_model(
        [model],
        recipe="nsclc_mmdls",
        cohort=cohort,
        lesions=paths["lesions"],
        features={"pet": root / "pet.csv"},
        converted=root / "converted",
        device="cpu",
    )
    assert summary["model_files"][0]["sha256"] == sha256(model)
    return frame


def _scores(frame: pd.DataFrame, target: str) -> pd.DataFrame:
    rows = frame[frame["target"] == target].set_index("patient_id").sort_index()
    columns = [c for c in rows if c.startswith(("y_score", "risk", "survival_"))]
    return rows[columns].dropna(axis=1, how="all").astype(float)


def test_breslow_baseline_gives_the_numbers_of_breslow_survival() -> None:
    rng = np.random.default_rng(2)
    risk = rng.normal(size=40).astype(np.float32)  # the network's float32 risks
    time = rng.exponential(900, 40)
    time[:3] = np.nan  # unknown times are left out of the baseline
    event = (rng.random(40) < 0.6).astype(float)
    new = rng.normal(size=7).astype(np.float32)
    ok = np.isfinite(time)
    expected = breslow_survival(risk[ok], time[ok], event[ok], new, [365.0, 730.0, 1095.0])
    baseline = breslow_baseline(risk, time, event, [365.0, 730.0, 1095.0])
    assert baseline_survival(baseline, new) == pytest.approx(expected, rel=1e-12, abs=0)
    assert all(isinstance(v, float) for v in baseline["cumulative_hazard"])


@pytest.mark.parametrize("sites", [False, True], ids=["no_sites", "combat"])
def test_applied_fold_scores_its_patients_as_in_training(tmp_path: Path, sites: bool) -> None:
    paths, model, trained = _train(tmp_path, sites=sites)
    payload = torch.load(model, weights_only=False)
    assert (payload["combat"] is not None) == sites  # no images.csv: no ComBat to keep
    if sites:
        assert payload["combat"]["batches"] == ["A", "B"]
    assert set(payload["breslow"]) == {"dfs", "os"}
    digest = sha256(model)
    applied = _apply(tmp_path, paths, model, paths["cohort"])
    assert sha256(model) == digest
    assert set(applied["split"]) == {"apply"}
    assert set(applied["fold"]) == {"final"}
    test = set(trained.loc[trained["split"].str.endswith("test"), "patient_id"])
    assert {"P022", "P023"} <= test
    for target in TARGETS:
        ours = _scores(trained, target)
        assert test <= set(ours.index)
        theirs = _scores(applied, target).loc[ours.index, ours.columns]
        np.testing.assert_allclose(theirs.to_numpy(), ours.to_numpy(), rtol=0, atol=1e-5)
    if sites:  # a new site of one patient keeps the pooled estimates; the summary says so
        lone = tmp_path / "lone"
        shutil.copytree(paths["cohort"], lone)
        images = pd.read_csv(lone / "images.csv", dtype=str)
        images.loc[images["patient_id"] == "P021", "site"] = "D"
        images.to_csv(lone / "images.csv", index=False)
        _, summary = apply_deep_model(
            [model], recipe="nsclc_mmdls", cohort=lone, lesions=paths["lesions"],
            features={"pet": tmp_path / "pet.csv"}, converted=tmp_path / "converted", device="cpu",
        )  # fmt: skip
        assert summary["notes"]["0"]["combat_sites"] == {"estimated": ["C"], "pooled": ["D"]}
    # the new cohort without outcomes.csv: every patient and target, labels empty, same scores
    blind = tmp_path / "blind"
    shutil.copytree(paths["cohort"], blind)
    (blind / "outcomes.csv").unlink()
    unlabelled = _apply(tmp_path, paths, model, blind)
    assert len(unlabelled) == 24 * len(TARGETS)
    assert (unlabelled.groupby("target")["patient_id"].nunique() == 24).all()
    assert unlabelled[[c for c in LABELS if c in unlabelled]].isna().all().all()
    for target in TARGETS:
        labelled = _scores(applied, target)
        scores = _scores(unlabelled, target).loc[labelled.index, labelled.columns]
        pd.testing.assert_frame_equal(scores, labelled)


def test_model_without_the_apply_keys_asks_to_retrain(tmp_path: Path) -> None:
    paths, model, _ = _train(tmp_path, sites=False)
    payload = torch.load(model, weights_only=False)
    del payload["breslow"], payload["combat"]
    old = tmp_path / "old" / "fold_0" / "model.pt"
    old.parent.mkdir(parents=True)
    torch.save(payload, old)
    with pytest.raises(ModelError, match=r"no combat, breslow .*retrain"):
        _apply(tmp_path, paths, old, paths["cohort"])
