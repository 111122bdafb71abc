"""scripts/harmonize.py: fit on the fold's training patients, apply to all, write table + stats."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from conftest import load_script

from oncoflow.artefacts import load_artefact, save_artefact, sha256
from oncoflow.errors import HarmonizationError, OncoflowError
from oncoflow.harmonize import ComBat
from oncoflow.harmonize.table import apply_frozen_combat

harmonize = load_script("harmonize")

SITES = {"site_a": 0.0, "site_b": 1.5, "site_c": -1.0}


@pytest.fixture
def cohort(tmp_path):
    """A tiny cohort folder (images.csv + clinical.csv), a feature table and a folds file."""
    rng = np.random.default_rng(0)
    ids = [f"NET{i:03d}" for i in range(1, 31)]
    site = [list(SITES)[i % 3] for i in range(30)]
    root = tmp_path / "cohort"
    root.mkdir()
    images = pd.DataFrame(
        {
            "patient_id": np.repeat(ids, 2),
            "timepoint": 0,
            "modality": ["CT", "WSI"] * 30,
            "series": ["-", "HE"] * 30,
            "path": [f"images/{p}/{m}" for p in ids for m in ("CT.nii.gz", "WSI.tif")],
            "mask_path": "",
            "mask_roi": "",
            "site": np.repeat(site, 2),
        }
    )
    images.to_csv(root / "images.csv", index=False)
    clinical = pd.DataFrame(
        {
            "patient_id": ids,
            "age": rng.integers(40, 80, 30),
            "sex": rng.choice(["F", "M"], 30),
        }
    )
    clinical.to_csv(root / "clinical.csv", index=False)
    pd.DataFrame({"patient_id": ids, "os_time": 100, "os_event": 1}).to_csv(
        root / "outcomes.csv", index=False
    )
    shift = np.array([SITES[s] for s in site])[:, None] * rng.uniform(0.5, 1.5, 8)
    X = rng.normal(size=(30, 8)) * rng.uniform(1, 2, 8) + shift
    features = pd.DataFrame(X, columns=[f"original_firstorder_F{j}" for j in range(8)])
    features.insert(0, "patient_id", ids)
    features.insert(1, "timepoint", 0)
    features["const"] = 2.5
    features.to_csv(tmp_path / "features.csv", index=False)
    folds = {
        "folds": {"0": {"fit": ids[:21], "apply": ids[21:]}, "final": {"fit": ids, "apply": []}}
    }
    (tmp_path / "folds.json").write_text(json.dumps(folds))
    return tmp_path, root, features, clinical, ids


def args(tmp_path, root, *extra):
    return [
        "--features", str(tmp_path / "features.csv"),
        "--cohort", str(root),
        "--folds", str(tmp_path / "folds.json"),
        "--fold", "0",
        "--out", str(tmp_path / "out" / "h.csv"),
        "--stats", str(tmp_path / "out" / "s.json"),
        *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "extra",
    [[], ["--non-parametric"], ["--no-eb", "--mean-only"], ["--ref-batch", "site_b"]],
)
def test_fits_on_train_and_writes_table_and_stats(cohort, extra):
    tmp_path, root, features, clinical, ids = cohort
    assert harmonize.main(args(tmp_path, root, "--covariates", "age,sex", *extra)) == 0
    out = pd.read_csv(tmp_path / "out" / "h.csv", dtype={"patient_id": str})
    assert list(out.columns) == list(features.columns)
    assert out["patient_id"].tolist() == ids
    assert (out["const"] == 2.5).all()
    # equals the library fit on the 21 training patients, applied to all
    cols = [c for c in features.columns if c.startswith("original")] + ["const"]
    site = pd.read_csv(root / "images.csv").groupby("patient_id")["site"].first()[ids]
    cov = clinical.set_index("patient_id")[["age", "sex"]]
    options = {
        "parametric": "--non-parametric" not in extra,
        "eb": "--no-eb" not in extra,
        "mean_only": "--mean-only" in extra,
        "ref_batch": "site_b" if "--ref-batch" in extra else None,
    }
    X = features.set_index("patient_id")[cols]
    combat = ComBat(**options).fit(X.iloc[:21], site.iloc[:21], cov.iloc[:21])
    expected = combat.transform(X, site, cov)
    np.testing.assert_allclose(out[cols].to_numpy(), expected.to_numpy(), rtol=1e-12, atol=1e-12)

    stats = json.loads((tmp_path / "out" / "s.json").read_text())
    assert stats["fold"] == "0"
    assert stats["n_fit_patients"] == 21
    assert stats["constant_features"] == ["const"]
    assert stats["options"]["covariates"] == ["age", "sex"]
    before, after = stats["before"]["all"], stats["after"]["all"]
    assert before["n_features"] == 9
    assert before["kruskal_n_significant"] >= 6
    assert after["kruskal_n_significant"] <= 1
    assert set(stats["features"]["original_firstorder_F0"]) == {
        "before_kruskal_p", "before_anova_p", "after_kruskal_p", "after_anova_p"
    }  # fmt: skip


def test_test_patients_do_not_change_training_rows(cohort):
    tmp_path, root, features, _, _ = cohort
    assert harmonize.main(args(tmp_path, root, "--covariates", "age,sex")) == 0
    first = pd.read_csv(tmp_path / "out" / "h.csv")
    changed = features.copy()
    changed.iloc[21:, 2:10] = 1000.0 * np.arange(9)[:, None] + 5.0 * np.arange(8)
    changed.to_csv(tmp_path / "features.csv", index=False)
    assert harmonize.main(args(tmp_path, root, "--covariates", "age,sex")) == 0
    second = pd.read_csv(tmp_path / "out" / "h.csv")
    pd.testing.assert_frame_equal(first.iloc[:21], second.iloc[:21])


def test_errors_are_one_line(cohort, capsys):
    tmp_path, root, _, _, _ = cohort
    images = pd.read_csv(root / "images.csv")
    images.loc[1, "site"] = "site_z"  # NET001's slide on another site
    images.to_csv(root / "images.csv", index=False)
    assert harmonize.main(args(tmp_path, root)) == 1
    err = capsys.readouterr().err
    assert "NET001" in err
    assert "several 'site' values" in err

    images.loc[1, "site"] = "site_a"
    images.to_csv(root / "images.csv", index=False)
    assert harmonize.main(args(tmp_path, root, "--covariates", "bmi")) == 1
    assert "bmi" in capsys.readouterr().err
    assert (
        harmonize.main([*args(tmp_path, root)[:-6], "--fold", "7", *args(tmp_path, root)[-4:]]) == 1
    )
    assert "no fold '7'" in capsys.readouterr().err

    # a site only in the apply patients: unseen at fit
    images.loc[images["patient_id"] == "NET030", "site"] = "site_new"
    images.to_csv(root / "images.csv", index=False)
    assert harmonize.main(args(tmp_path, root)) == 1
    err = capsys.readouterr().err
    assert "site_new" in err
    assert "Traceback" not in err


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        harmonize.main(["--help"])
    assert exc.value.code == 0
    assert "--ref-batch" in capsys.readouterr().out


def test_saved_model_harmonises_a_new_cohort_without_refitting(cohort):
    tmp_path, root, features, _, _ids = cohort
    model = tmp_path / "out" / "combat.pkl"
    options = ["--covariates", "age,sex", "--model", str(model)]
    assert harmonize.main(args(tmp_path, root, *options)) == 0
    out = pd.read_csv(tmp_path / "out" / "h.csv", dtype={"patient_id": str})
    cols = [c for c in features.columns if c.startswith("original")]
    # the frozen model applied to the same rows gives the rule's table
    again, stats = apply_frozen_combat(tmp_path / "features.csv", root, model)
    np.testing.assert_allclose(again[cols].to_numpy(), out[cols].to_numpy(), rtol=1e-12)
    assert stats["frozen"]
    assert stats["fold"] == "0"
    assert stats["estimated_batches"] == []
    assert stats["model"]["sha256"] == sha256(model)
    # a new patient's harmonised row depends on its own features only (nothing refit)
    new = features.iloc[21:].copy()
    new.iloc[:, 2:10] += 3.0
    new.to_csv(tmp_path / "new.csv", index=False)
    shifted, _ = apply_frozen_combat(tmp_path / "new.csv", root, model)
    frozen = load_artefact(model, kind="combat")
    # x* = ((x - mu - cov) / sd - gamma*) / sqrt(delta*) * sd + mu + cov: dx* = dx / sqrt(delta*)
    scale = np.sqrt(frozen.combat.delta_star_[0])[: len(cols)]
    first = new["patient_id"].map(
        pd.read_csv(root / "images.csv").groupby("patient_id")["site"].first()
    )
    rows = (first == frozen.combat.batches_[0]).to_numpy()
    delta = shifted[cols].to_numpy()[rows] - out[cols].to_numpy()[21:][rows]
    np.testing.assert_allclose(delta, np.broadcast_to(3.0 / scale, delta.shape), rtol=1e-9)
    save_artefact(tmp_path / "other.pkl", {}, kind="net_survival")
    with pytest.raises(OncoflowError, match="expected 'combat'"):
        apply_frozen_combat(tmp_path / "new.csv", root, tmp_path / "other.pkl")
    new.drop(columns="original_firstorder_F3").to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(HarmonizationError, match="original_firstorder_F3"):
        apply_frozen_combat(tmp_path / "new.csv", root, model)


def test_one_patient_at_a_new_site_keeps_the_pooled_estimates(cohort, caplog):
    """A batch of one row cannot have its scale estimated: it is left at the pooled training
    estimates (its features unchanged) and the statistics and the log say so."""
    tmp_path, root, features, _, _ids = cohort
    model = tmp_path / "out" / "combat.pkl"
    assert harmonize.main(args(tmp_path, root, "--model", str(model))) == 0
    new = features.iloc[21:24].copy()
    new.to_csv(tmp_path / "new.csv", index=False)
    images = pd.read_csv(root / "images.csv", dtype={"patient_id": str})
    lonely = str(new["patient_id"].iloc[0])
    images.loc[images["patient_id"] == lonely, "site"] = "site_new"
    images.to_csv(root / "images.csv", index=False)
    with caplog.at_level(logging.WARNING):
        out, stats = apply_frozen_combat(tmp_path / "new.csv", root, model)
    cols = [c for c in features.columns if c.startswith("original")]
    row = out["patient_id"].astype(str) == lonely
    np.testing.assert_allclose(out.loc[row, cols].to_numpy(), new.loc[row.to_numpy(), cols])
    assert not np.allclose(out.loc[~row, cols].to_numpy(), new.loc[~row.to_numpy(), cols])
    assert stats["pooled_batches"] == {"site_new": 1}
    assert stats["estimated_batches"] == []
    assert "site_new has 1 row(s), too few to estimate" in caplog.text
