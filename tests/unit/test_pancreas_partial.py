"""pancreas_progression with missing time points: sequences of the available time points."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from test_deep_models import (
    PANCREAS,
    _cohort,
    _one_thread,  # noqa: F401 (autouse fixture)
)

from oncoflow.deep import train_pancreas
from oncoflow.deep.apply import apply_deep_model, apply_inputs
from oncoflow.deep.pancreas_data import sequence_points
from oncoflow.deep.workflow import run_fold
from oncoflow.formats import read_predictions

KEYS = ["patient_id", "timepoint"]
GAPPED_TRAIN = ["P003", "P006"]  # training patients of fold 0 (seed 1)
GAPPED_TEST = "P016"  # an internal_test patient


def test_sequence_points_are_the_available_time_points_up_to_t() -> None:
    assert sequence_points([3, 0, 2], 2) == [0, 2]
    assert sequence_points({0: None, 1: None, 2: None}, 1) == [0, 1]
    assert sequence_points([2, 3], 3) == [2, 3]


def test_patients_missing_a_time_point_train_and_score_with_those_they_have(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    paths = _cohort(tmp_path, "pancreas")
    # every time point labelled, so that the gapped test patient is scored at 0 and 2
    outcomes = pd.read_csv(paths["cohort"] / "outcomes.csv", dtype={"patient_id": str})
    per_patient = outcomes.groupby("patient_id")["progression_next"].transform("max")
    outcomes["progression_next"] = per_patient.astype(int)
    outcomes.to_csv(paths["cohort"] / "outcomes.csv", index=False)
    for patient in [*GAPPED_TRAIN, GAPPED_TEST]:
        (paths["lesions"] / patient / "1.npz").unlink()

    lengths: dict[tuple[str, int], int] = {}
    original = train_pancreas.sequences

    def recording(vectors, samples, mean, sd):
        out = original(vectors, samples, mean, sd)
        lengths.update({(p, t): len(s) for (p, t, _), s in zip(samples, out, strict=True)})
        return out

    monkeypatch.setattr(train_pancreas, "sequences", recording)
    out_dir = tmp_path / "fold_0"
    with caplog.at_level(logging.WARNING, logger="oncoflow.deep.pancreas_data"):
        _, summary = run_fold(
            model="cnn_lstm",
            settings=PANCREAS,
            fold="0",
            out_dir=out_dir,
            resume_dir=tmp_path / "resume",
            seed=1,
            **paths,
        )
    assert set(GAPPED_TRAIN) <= set(summary["train_patients"])
    # training read the gapped patients' sequences over their time points 0 and 2
    for patient in GAPPED_TRAIN:
        assert lengths[patient, 0] == 1
        assert lengths[patient, 2] == 2
        assert (patient, 1) not in lengths
    # one warning per gapped patient, naming the skipped labelled time point
    warned = [r.getMessage() for r in caplog.records if "without lesion crops" in r.getMessage()]
    for patient in [*GAPPED_TRAIN, GAPPED_TEST]:
        mine = [m for m in warned if f"patient {patient}:" in m]
        assert len(mine) == 1
        assert "[1]" in mine[0]

    trained = read_predictions(out_dir / "predictions.csv")
    points = trained.groupby("patient_id")["timepoint"].apply(sorted).to_dict()
    assert points[GAPPED_TEST] == [0, 2]
    assert all(v == [0, 1, 2] for p, v in points.items() if p != GAPPED_TEST)

    # the gapped test patient's time point 2 is the LSTM's score of [x0, x2], built by hand
    payload = torch.load(out_dir / "model.pt", weights_only=False)
    settings = train_pancreas.PancreasSettings(**payload["settings"])
    inputs = apply_inputs(
        cohort=paths["cohort"], lesions=paths["lesions"], stems=settings.stems,
        patients=[GAPPED_TEST],
    )  # fmt: skip
    task = train_pancreas.PancreasTask(
        inputs, settings, device=torch.device("cpu"), resume_dir=out_dir
    )
    model = task.restore(payload).eval()
    vectors = task.vectors[GAPPED_TEST]
    assert sorted(vectors) == [0, 2]
    x = (np.stack([vectors[0], vectors[2]]) - task.mean) / task.sd
    clinical = task.encoder.transform(inputs.clinical.loc[[GAPPED_TEST], settings.clinical])
    with torch.no_grad():
        logits = model(
            torch.from_numpy(x).float()[None], torch.tensor([2]), torch.from_numpy(clinical)
        )
    by_hand = float(torch.softmax(logits, 1)[0, 1])
    row = trained[(trained["patient_id"] == GAPPED_TEST) & (trained["timepoint"] == 2)]
    np.testing.assert_allclose(row["y_score"], [by_hand], atol=1e-5)

    # apply reproduces the fold's test scores, gapped patient included
    options = {"recipe": "pancreas_progression", "lesions": paths["lesions"], "device": "cpu"}
    applied, _ = apply_deep_model([out_dir / "model.pt"], cohort=paths["cohort"], **options)
    test = trained[trained["split"].isin(["internal_test", "external_test"])]
    assert GAPPED_TEST in set(test["patient_id"])
    both = test.merge(applied, on=KEYS, how="left", suffixes=("_fold", "_apply"))
    assert both["y_score_apply"].notna().all()
    np.testing.assert_allclose(both["y_score_apply"], both["y_score_fold"], atol=1e-5)
    gapped = applied[applied["patient_id"].isin([*GAPPED_TRAIN, GAPPED_TEST])]
    assert sorted(set(gapped["timepoint"])) == [0, 2]

    # without outcomes: every time point with crops is scored, with no error for the gaps
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "clinical.csv").write_bytes((paths["cohort"] / "clinical.csv").read_bytes())
    unlabelled, _ = apply_deep_model([out_dir / "model.pt"], cohort=bare, **options)
    mine = unlabelled[unlabelled["patient_id"] == GAPPED_TEST]
    assert sorted(mine["timepoint"]) == [0, 2]
    same = mine.merge(test, on=KEYS, suffixes=("", "_fold"))
    np.testing.assert_allclose(same["y_score"], same["y_score_fold"], atol=1e-5)
