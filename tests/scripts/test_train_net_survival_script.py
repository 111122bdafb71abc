"""scripts/train_net_survival.py on a small demo cohort (tables only, stand-in feature CSVs)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import load_script

from oncoflow.demo.net_survival import NetSurvival

script = load_script("train_net_survival")
apply = load_script("apply_net_survival")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A 24-patient net_survival cohort folder (no images) and two wide feature CSVs."""
    root = tmp_path_factory.mktemp("net")
    gen = NetSurvival(0, 24)
    pats = gen.patients()
    tables = gen.tables(pats)
    folder = root / "net_survival"
    folder.mkdir()
    tables.clinical.to_csv(folder / "clinical.csv", index=False)
    tables.outcomes.to_csv(folder / "outcomes.csv", index=False)
    tables.splits.to_csv(folder / "splits.csv", index=False)
    (folder / "oracle.json").write_text(json.dumps(tables.oracle))
    rng = np.random.default_rng(0)
    ids = [p.patient_id for p in pats]
    pd.DataFrame(
        {
            "patient_id": ids,
            "original_shape_MeshVolume": [p.latent["radius"] ** 3 for p in pats],
            "original_firstorder_StandardDeviation": [p.latent["texture"] for p in pats],
            "original_firstorder_Mean": rng.normal(size=len(ids)),
        }
    ).to_csv(root / "radiomics.csv", index=False)
    pd.DataFrame(
        {
            "patient_id": ids,
            "nuclei_density_mean": [p.latent["density"] for p in pats],
            "orientation_disorder_mean": [p.latent["disorder"] for p in pats],
        }
    ).to_csv(root / "pathomics.csv", index=False)
    return root, folder


def _args(root, folder, *extra):
    return [
        "--features",
        f"radiomics={root / 'radiomics.csv'}",
        f"pathomics={root / 'pathomics.csv'}",
        "--cohort",
        str(folder),
        "--out",
        str(root / "out" / "predictions.csv"),
        "--summary",
        str(root / "out" / "metrics.json"),
        "--repeats",
        "2",
        "--n-boot",
        "50",
        *extra,
    ]


def test_writes_predictions_and_summary(cohort):
    root, folder = cohort
    rc = script.main(_args(root, folder, "--models", "radiomics,all", "--seed", "3"))
    assert rc == 0
    pred = pd.read_csv(root / "out" / "predictions.csv", dtype={"fold": str})
    assert list(pred.columns) == [
        "patient_id",
        "split",
        "fold",
        "target",
        "time",
        "event",
        "risk",
        "model",
    ]
    assert set(pred["model"]) == {"radiomics", "all"}
    assert set(pred["fold"]) == {"0", "1", "final"}
    splits = pd.read_csv(folder / "splits.csv")
    n_test = int((splits["split"] != "train").sum())
    assert len(pred[(pred["fold"] == "final")]) == n_test * 2 * 2
    summary = json.loads((root / "out" / "metrics.json").read_text())
    assert summary["permuted"] is False
    assert summary["oracle"]["os"]["metric"] == "c_index"
    entry = summary["models"]["all"]["os"]["test"]
    assert entry["ci_low"] <= entry["c_index"] <= entry["ci_high"]
    assert entry["n_patients"] == n_test


def test_permute_and_targets(cohort):
    root, folder = cohort
    args = _args(root, folder, "--models", "pathomics", "--targets", "pfs", "--permute")
    assert script.main([*args, "--permutations", "2"]) == 0
    pred = pd.read_csv(root / "out" / "predictions.csv")
    assert set(pred["target"]) == {"pfs"}
    assert sorted(pred["permutation"].unique()) == [0, 1]
    assert json.loads((root / "out" / "metrics.json").read_text())["permuted"] is True


def test_bad_inputs_give_one_line_errors(cohort, tmp_path, capsys):
    root, folder = cohort
    args = _args(root, folder)
    args[1] = f"radiomics={tmp_path / 'missing.csv'}"
    assert script.main(args) == 1
    err = capsys.readouterr().err
    assert "missing.csv" in err
    assert "does not exist" in err
    assert len(err.strip().splitlines()) == 1
    bad = tmp_path / "cohort"
    bad.mkdir()
    for name in ("clinical.csv", "splits.csv"):
        (bad / name).write_text((folder / name).read_text())
    outcomes = pd.read_csv(folder / "outcomes.csv")
    outcomes["os_event"] = 1 - outcomes["os_event"] + 1  # 'alive' coded as 2
    outcomes.to_csv(bad / "outcomes.csv", index=False)
    args = _args(root, bad)
    assert script.main(args) == 1
    assert "event must be 0" in capsys.readouterr().err


def test_given_folds_file(cohort, tmp_path, capsys):
    root, folder = cohort
    splits = pd.read_csv(folder / "splits.csv")
    train = sorted(splits.loc[splits["split"] == "train", "patient_id"])
    test = sorted(set(splits["patient_id"]) - set(train))
    folds = {
        "stratify": "os_event",
        "folds": {
            "0": {"fit": train[1:], "apply": train[:1]},
            "final": {"fit": train, "apply": test},
        },
    }
    path = tmp_path / "folds.json"
    path.write_text(json.dumps(folds))
    args = _args(root, folder, "--models", "radiomics", "--folds", str(path))
    assert script.main(args) == 0
    pred = pd.read_csv(root / "out" / "predictions.csv", dtype={"fold": str})
    assert set(pred["fold"]) == {"0", "final"}
    args = _args(root, folder, "--models", "radiomics", "--folds", str(tmp_path / "nope.json"))
    assert script.main(args) == 1
    assert "nope.json: folds file does not exist" in capsys.readouterr().err


def test_saved_models_applied_to_the_test_patients_repeat_their_predictions(cohort):
    root, folder = cohort
    models = root / "out" / "models.pkl"
    args = _args(root, folder, "--models", "all", "--horizons", "365,730")
    assert script.main([*args, "--models-out", str(models)]) == 0
    pred = pd.read_csv(root / "out" / "predictions.csv", dtype={"fold": str})
    # a "new cohort" made of the test patients only
    new = root / "new"
    new.mkdir()
    final = pred[pred["fold"] == "final"]
    test_ids = set(final["patient_id"])
    for name in ("clinical", "outcomes"):
        table = pd.read_csv(folder / f"{name}.csv")
        table[table["patient_id"].isin(test_ids)].to_csv(new / f"{name}.csv", index=False)
    out = root / "applied"
    rc = apply.main(
        [
            "--models", str(models),
            "--features",
            f"radiomics={root / 'radiomics.csv'}",
            f"pathomics={root / 'pathomics.csv'}",
            "--cohort", str(new),
            "--out", str(out / "predictions.csv"),
            "--summary", str(out / "apply.json"),
        ]
    )  # fmt: skip
    assert rc == 0
    applied = pd.read_csv(out / "predictions.csv", dtype={"fold": str})
    assert set(applied["split"]) == {"apply"}
    assert set(applied["patient_id"]) == test_ids
    merged = final.merge(applied, on=["patient_id", "target", "model"], suffixes=("", "_new"))
    assert len(merged) == len(final) == len(applied)
    for column in ("risk", "survival_365", "survival_730", "time", "event"):
        np.testing.assert_allclose(merged[f"{column}_new"], merged[column], rtol=1e-12)
    summary = json.loads((out / "apply.json").read_text())
    assert summary["n_patients"] == len(test_ids)
    assert len(summary["models_file"]["sha256"]) == 64
    # the wrong artefact is refused with the file named
    rc = apply.main(["--models", str(root / "out" / "metrics.json"), "--cohort", str(new),
                     "--out", str(out / "x.csv"), "--summary", str(out / "x.json")])  # fmt: skip
    assert rc == 1
