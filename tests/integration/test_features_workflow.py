"""The features part of the DAG for real, on a small demo: radiomics, pathomics, PET metrics,
per-fold ComBat and the net_survival Cox models (raw, ComBat, permuted); then reproducibility
(no-op rerun, byte-identical clean rerun, parameter change reruns only its study), a run
killed in the middle of training that resumes to the same models, the evaluation and report,
and `apply` of the trained models to a second demo cohort."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake as snakemake
from conftest import snakemake_env
from debian import ensure_packages

from oncoflow.artefacts import sha256

REPO = Path(__file__).resolve().parents[2]
NET_PATIENTS = 20
NSCLC_PATIENTS = 24
REPEATS = 2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("features_run")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name, study in config["studies"].items():
        study["enabled"] = name in ("net_survival", "nsclc_mmdls")
    config["demo"]["patients"] = NSCLC_PATIENTS
    config["demo"]["study_patients"] = {"net_survival": NET_PATIENTS}
    config["pathomics"]["max_tiles"] = 16
    config["studies"]["net_survival"]["folds"]["repeats"] = REPEATS
    config["studies"]["net_survival"]["permutations"] = 2
    # the MM-DLS deep model through train_model / collect_model, CPU-tiny: 2 folds, 2 epochs,
    # without its input ablation (the dry-run and unit tests cover the variants)
    nsclc = config["studies"]["nsclc_mmdls"]
    nsclc["folds"] = {"k": 2}
    nsclc["train"].update(
        {
            "ablation": [],
            "epochs": 2,
            "slices": 2,
            "input_size": 16,
            "network": {"dim": 16, "heads": 2, "dropout": 0.3},
        }
    )
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    proc = snakemake(workdir, "--show-failed-logs")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return workdir


def _cohort(run: Path, study: str, table: str) -> pd.DataFrame:
    return pd.read_csv(run / "resources/demo" / study / f"{table}.csv", dtype={"patient_id": str})


def test_feature_tables_cover_every_patient(run):
    net = set(_cohort(run, "net_survival", "clinical")["patient_id"])
    radiomics = pd.read_csv(run / "results/net_survival/features/radiomics.csv")
    pathomics = pd.read_csv(run / "results/net_survival/features/pathomics.csv")
    assert set(radiomics["patient_id"]) == set(pathomics["patient_id"]) == net
    # default CT params: original + LoG x 3 + 8 wavelet images -> > 1000 features
    assert radiomics.shape[1] > 1000
    assert radiomics["radiomics__original_shape_VoxelVolume"].gt(0).all()
    assert pathomics.filter(like="nuclei_density").shape[1] >= 3
    assert not radiomics.drop(columns="patient_id").isna().any().any()


def test_pet_metrics_table(run):
    pet = pd.read_csv(run / "results/nsclc_mmdls/features/pet.csv")
    assert set(pet["patient_id"]) == set(_cohort(run, "nsclc_mmdls", "clinical")["patient_id"])
    suv_max, suv_mean = pet["pet__SUVmax"], pet["pet__SUVmean"]
    assert (suv_max >= pet["pet__SUVpeak"]).all()
    assert (pet["pet__SUVpeak"] >= 0).all()
    assert (suv_max >= suv_mean).all()
    assert (suv_mean > 0).all()
    # TLG = SUVmean x MTV (g = g/mL x mL)
    assert np.allclose(pet["pet__TLG"], suv_mean * pet["pet__MTV"], rtol=1e-6)


def test_combat_fit_on_training_patients_only(run):
    folds = json.loads((run / "results/net_survival/folds.json").read_text())["folds"]
    splits = pd.read_csv(run / "results/net_survival/splits.csv", dtype={"patient_id": str})
    train = set(splits.loc[splits["split"] == "train", "patient_id"])
    assert set(folds) == {*map(str, range(REPEATS)), "final"}
    for name, fold in folds.items():
        assert set(fold["fit"]) <= train
        assert not set(fold["fit"]) & set(fold["apply"])
        for source in ("radiomics", "pathomics"):
            stats = json.loads(
                (run / f"results/net_survival/harmonize/{source}/{name}_stats.json").read_text()
            )
            assert stats["n_fit_patients"] == len(fold["fit"])
            table = pd.read_csv(run / f"results/net_survival/harmonize/{source}/{name}.csv")
            assert not table.drop(columns="patient_id").isna().any().any()


def test_survival_predictions_and_metrics(run):
    splits = pd.read_csv(run / "results/net_survival/splits.csv", dtype={"patient_id": str})
    tests = set(splits.loc[splits["split"] != "train", "patient_id"])
    for variant in ("raw", "combat", "permuted"):
        root = run / "results/net_survival/train" / variant
        preds = pd.read_csv(root / "predictions.csv", dtype={"patient_id": str, "fold": str})
        extra = ["permutation"] if variant == "permuted" else []
        survival = ["survival_365", "survival_730", "survival_1095"]
        assert list(preds.columns) == [
            *("patient_id", "split", "fold", "target", "time", "event", "risk", "model"),
            *survival,
            *extra,
        ]
        # S(t | x) from the Breslow baseline: probabilities, non-increasing in t
        probs = preds[survival].to_numpy()
        assert ((probs >= 0) & (probs <= 1)).all()
        assert (np.diff(probs, axis=1) <= 1e-12).all()
        assert set(preds["model"]) == {
            "radiomics",
            "pathomics",
            "clinical",
            "clinical+radiomics",
            "clinical+pathomics",
            "all",
        }
        assert set(preds["target"]) == {"os", "pfs"}
        final = preds[preds["fold"] == "final"]
        assert set(final["patient_id"]) == tests
        runs = 2 * 6 * (2 if variant == "permuted" else 1)  # targets x models x permutations
        assert len(final) == runs * len(tests)
        assert set(preds.loc[preds["fold"] != "final", "split"]) == {"validation"}
        assert np.isfinite(preds["risk"]).all()
        metrics = json.loads((root / "metrics.json").read_text())
        assert metrics["permuted"] is (variant == "permuted")
        for targets in metrics["models"].values():
            for splits_ in targets.values():
                entry = splits_["test"]
                assert entry["ci_low"] <= entry["c_index"] <= entry["ci_high"]


def test_every_json_output_records_config_hash_and_versions(run):
    """Each JSON output carries its job's provenance; tidy feature rows carry a settings hash."""
    documents = sorted((run / "results").rglob("*.json"))
    assert len(documents) > 2 * (NET_PATIENTS + NSCLC_PATIENTS)  # manifests + diagnostics + ...
    hashes: dict[str, set[str]] = {}
    for path in documents:
        record = json.loads(path.read_text()).get("provenance")
        assert record is not None, path
        assert len(record["config_hash"]) == 16, path
        assert record["versions"]["oncoflow"], path
        hashes.setdefault(path.name, set()).add(record["config_hash"])
    # the same rule with the same settings gives one hash over all its patients
    assert len(hashes["manifest.json"]) == 1
    metrics = {
        json.loads(p.read_text())["provenance"]["config_hash"]
        for p in (run / "results/net_survival/train").glob("*/metrics.json")
    }
    assert len(metrics) == 3  # raw, combat, permuted ran with different settings
    deep = sorted((run / "results/nsclc_mmdls/train/mm_dls").glob("fold_*/provenance.json"))
    assert len(deep) == 2
    for path in deep:
        record = json.loads(path.read_text())
        assert record["model"] == "mm_dls"
        assert not set(record["train_patients"]) & set(record["validation_patients"])
    tidy = pd.read_csv(next((run / "results/net_survival/features/pathomics").glob("*.csv")))
    assert tidy["settings_hash"].str.len().eq(16).all()


def test_rerun_is_a_no_op(run):
    proc = snakemake(run, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Nothing to be done" in proc.stdout + proc.stderr


# --- reproducibility and faults (issue 8) -----------------------------------------------------

TRAIN_OUTPUTS = [
    f"results/net_survival/train/{variant}/{name}"
    for variant in ("raw", "combat", "permuted")
    for name in ("predictions.csv", "metrics.json")
]
EVALUATE_OUTPUTS = [
    f"results/net_survival/evaluate/{variant}/{name}"
    for variant in ("raw", "combat", "permuted")
    for name in ("metrics.json", "model_card.md")
] + ["results/net_survival/evaluate/comparisons.json"]


def _dry_run_jobs(workdir: Path) -> dict[str, int]:
    """Jobs per rule that a dry run schedules (Snakemake's "Job stats" table)."""
    proc = snakemake(workdir, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (proc.stdout + proc.stderr).splitlines()
    counts: dict[str, int] = {}
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or parts[0] == "total":
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_clean_rerun_is_byte_identical(run, tmp_path):
    """A second clean run of the same config gives byte-identical features, models and metrics."""
    second = tmp_path / "second"
    second.mkdir()
    shutil.copy2(run / "config.yaml", second / "config.yaml")
    files = [
        "results/net_survival/features/radiomics.csv",
        "results/net_survival/features/pathomics.csv",
        "results/nsclc_mmdls/features/pet.csv",
        "results/net_survival/harmonize/radiomics/final.csv",
        *TRAIN_OUTPUTS,
        *EVALUATE_OUTPUTS,
    ]
    # only what these files need (the deep model and the report are not compared here)
    proc = snakemake(second, *files)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in files:
        assert (second / name).read_bytes() == (run / name).read_bytes(), name


def test_parameter_change_reruns_only_that_study(run, tmp_path):
    """Changing one study's parameter schedules only that study's downstream jobs."""
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, symlinks=True)
    config = yaml.safe_load((copy / "config.yaml").read_text())
    config["studies"]["nsclc_mmdls"]["pet"]["threshold_rel"] = 0.41
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # the study's report section reruns too: its methods paragraph states the settings
    # ... and its deep model, which reads the PET metrics (two folds, ensemble, evaluation)
    # the PET batches rerun (their settings changed); each patient's file is published again
    batches = -(-NSCLC_PATIENTS // config["batch"]["patients"])
    assert _dry_run_jobs(copy) == {
        "pet_batch": batches,
        "pet_metrics": NSCLC_PATIENTS,
        "merge_features": 1,
        "train_model": 2,
        "collect_model": 1,
        "evaluate": 1,
        "compare_models": 1,
        "report_study": 1,
        "report": 1,
        "all": 1,
    }
    config["studies"]["nsclc_mmdls"]["pet"]["threshold_rel"] = None
    config["studies"]["net_survival"]["permutations"] = 3
    (copy / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert _dry_run_jobs(copy) == {
        "train_net_survival": 1,
        "evaluate": 1,
        "report_study": 1,
        "report": 1,
        "all": 1,
    }


def test_killed_training_resumes_to_the_same_metrics(run, tmp_path):
    """SIGKILL the run in the middle of a training job; after --unlock, --rerun-incomplete
    completes it and the models equal those of the uninterrupted run."""
    copy = tmp_path / "killed"
    shutil.copytree(run, copy, symlinks=True)
    for name in TRAIN_OUTPUTS:
        (copy / name).unlink()
    # the copied logs would end the wait below at once: a training job's new log marks its start
    shutil.rmtree(copy / "logs/train/net_survival")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    cmd += ["--directory", str(copy), "--cores", "1", *TRAIN_OUTPUTS]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=snakemake_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not list((copy / "logs/train/net_survival").glob("*.log")):
            assert proc.poll() is None, "the run ended before any training job started"
            assert time.monotonic() < deadline, "no training job started in 300 s"
            time.sleep(0.2)
        time.sleep(3)  # inside the training job (each takes ~10-30 s)
        assert proc.poll() is None
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not all((copy / name).exists() for name in TRAIN_OUTPUTS)
    # what a user does after a crash: remove the stale lock, rerun the incomplete jobs
    unlocked = snakemake(copy, "--unlock")
    assert unlocked.returncode == 0, unlocked.stderr[-3000:]
    resumed = snakemake(copy, "--rerun-incomplete", *TRAIN_OUTPUTS)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    for name in TRAIN_OUTPUTS:
        assert (copy / name).read_bytes() == (run / name).read_bytes(), name


# --- evaluation and report (issue 7) ----------------------------------------------------------


def _chromium(page: Path) -> tuple[str, list[str]]:
    """Open ``page`` in headless Chromium: the ``<body>`` tag after load, and console messages."""
    ensure_packages(["chromium"], ["chromium"], "report test")
    proc = subprocess.run(
        [
            "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
            "--v=0", "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri(),
        ],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    body = re.search(r"<body[^>]*>", proc.stdout)
    assert body is not None, proc.stdout[:500]
    return body.group(0), [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


def test_evaluation_scores_the_training_predictions(run):
    metrics = json.loads((run / "results/net_survival/evaluate/raw/metrics.json").read_text())
    summary = json.loads((run / "results/net_survival/train/raw/metrics.json").read_text())
    for target in ("os", "pfs"):
        for model, entry in metrics["models"].items():
            got = entry[target]["test"]["harrell_c"]
            assert got["value"] == pytest.approx(
                summary["models"][model][target]["test"]["c_index"], abs=1e-6
            )
            assert got["ci_low"] <= got["value"] <= got["ci_high"]
    permuted = json.loads((run / "results/net_survival/evaluate/permuted/metrics.json").read_text())
    assert permuted["models"]["all"]["os"]["test"]["n_runs"] == 2  # two permutations averaged
    card = (run / "results/net_survival/evaluate/raw/model_card.md").read_text()
    assert "## Intended use" in card
    assert "## Known limits" in card
    comparisons = json.loads((run / "results/net_survival/evaluate/comparisons.json").read_text())
    assert {c["target"] for c in comparisons["comparisons"]} == {"os", "pfs"}


def test_report_loads_in_headless_chromium(run, tmp_path):
    page = run / "results/report/index.html"
    text = page.read_text()
    assert "http://" not in text.replace("http://www.w3.org", "")  # self-contained
    assert "https://" not in text
    n_images = text.count("<img ")
    assert n_images >= 8
    assert text.count("<figcaption>") == n_images
    for study in ("net_survival", "nsclc_mmdls"):
        assert f'<section id="{study}">' in text
    net = text[text.index('<section id="net_survival">') :]
    assert "(permuted-label control)" in net
    assert "oracle" in net
    body, console = _chromium(page)
    assert f'data-images-loaded="{n_images}"' in body
    assert 'data-images-broken="0"' in body
    assert console == []
    # the check itself fails on a broken figure and a console error
    broken = tmp_path / "broken.html"
    broken.write_text(
        text.replace("<nav>", '<img src="missing.png"><script>console.error("x")</script><nav>')
    )
    body, console = _chromium(broken)
    assert 'data-images-broken="1"' in body
    assert len(console) == 1


def test_snakemake_report_zip(run):
    proc = snakemake(run, "--report", "report.zip")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(run / "report.zip") as archive:
        names = archive.namelist()
    pngs = [n for n in names if n.endswith(".png")]
    figures = list((run / "results/report").glob("*/figures/*.png"))
    assert len(pngs) == len(figures) > 0
    assert any(n.endswith("report.html") for n in names)


# --- apply to a new cohort (issue 7) ------------------------------------------------------------

NEW_PATIENTS = 12


def _new_cohort(root: Path, seed: int) -> Path:
    """Second demo cohorts of both studies (other seed: other patients, same ids NET001...),
    one sub-folder per study."""
    subprocess.run(
        [sys.executable, str(REPO / "scripts/make_demo_cohort.py"), "--out", str(root),
         "--seed", str(seed), "--patients", str(NEW_PATIENTS), "--study", "net_survival",
         "--study", "nsclc_mmdls"],
        check=True, capture_output=True, env=snakemake_env(),
    )  # fmt: skip
    return root


def _fitted(run: Path) -> dict[str, tuple[str, int]]:
    paths = [
        *(run / "results/net_survival/train").glob("*/models.pkl"),
        *(run / "results/net_survival/harmonize").glob("*/final_combat.pkl"),
        *(run / "results/nsclc_mmdls/train").glob("*/fold_*/model.pt"),
    ]
    return {str(p.relative_to(run)): (sha256(p), p.stat().st_mtime_ns) for p in sorted(paths)}


@pytest.fixture(scope="module")
def applied(run, tmp_path_factory):
    root = _new_cohort(tmp_path_factory.mktemp("new_cohort"), seed=9)
    before = _fitted(run)
    proc = snakemake(
        run, "apply", "--config", f"apply_cohort={root}", "apply_name=second",
        "--show-failed-logs",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return root / "net_survival", before, proc.stdout + proc.stderr


def test_apply_predicts_every_new_patient_without_refitting(run, applied):
    cohort, before, log = applied
    # models of raw / combat / permuted, ComBat of two sources, two MM-DLS folds
    assert len(before) == 3 + 2 + 2
    assert _fitted(run) == before  # same bytes, never rewritten
    ran = set(re.findall(r"\(Rule: (\w+)\)", log))
    assert all(rule == "apply" or rule.startswith("apply_") for rule in ran), (
        ran
    )  # no training rule ran
    assert {"apply_harmonize", "apply_predict", "apply_deep", "apply_evaluate"} <= ran
    new = set(pd.read_csv(cohort / "clinical.csv", dtype={"patient_id": str})["patient_id"])
    out = run / "results/apply/second/net_survival"
    for variant in ("raw", "combat", "permuted"):
        pred = pd.read_csv(out / f"predict/{variant}/predictions.csv", dtype={"patient_id": str})
        assert set(pred["split"]) == {"apply"}
        assert set(pred["patient_id"]) == new
        runs = 2 if variant == "permuted" else 1
        per_model = pred.groupby(["model", "target"])["patient_id"]
        assert per_model.nunique().eq(NEW_PATIENTS).all()
        assert per_model.size().eq(NEW_PATIENTS * runs).all()
        assert len(per_model) == 6 * 2
        assert pred["risk"].notna().all()
        assert pred["survival_730"].between(0, 1).all()
        metrics = json.loads((out / f"evaluate/{variant}/metrics.json").read_text())
        assert metrics["outcomes_known"]
        c = metrics["models"]["all"]["os"]["apply"]["harrell_c"]
        assert c["ci_low"] <= c["value"] <= c["ci_high"]
    # the frozen ComBat: new rows harmonised, the site effect recorded before/after
    stats = json.loads((out / "harmonize/radiomics_stats.json").read_text())
    assert stats["frozen"]
    assert stats["fold"] == "final"
    assert stats["n_rows"] == NEW_PATIENTS
    page = (run / "results/apply/second/report/index.html").read_text()
    assert "net_survival applied to second" in page
    assert "nsclc_mmdls applied to second" in page
    assert "(permuted-label control)" in page
    body, console = _chromium(run / "results/apply/second/report/index.html")
    assert f'data-images-loaded="{page.count("<img ")}"' in body
    assert console == []


def test_apply_scores_every_new_patient_with_the_frozen_mm_dls_folds(run, applied):
    cohort = applied[0].parent / "nsclc_mmdls"
    new = set(pd.read_csv(cohort / "clinical.csv", dtype={"patient_id": str})["patient_id"])
    out = run / "results/apply/second/nsclc_mmdls"
    pred = pd.read_csv(out / "predict/mm_dls/predictions.csv", dtype={"patient_id": str})
    assert set(pred["split"]) == {"apply"}
    assert set(pred["fold"]) == {"final"}
    for target in ("histology", "stage", "dfs", "os"):
        assert set(pred.loc[pred["target"] == target, "patient_id"]) == new
    summary = json.loads((out / "predict/mm_dls/apply.json").read_text())
    assert [f["fold"] for f in summary["model_files"]] == ["0", "1"]
    metrics = json.loads((out / "evaluate/mm_dls/metrics.json").read_text())
    assert metrics["outcomes_known"]


def test_apply_refuses_a_cohort_without_required_inputs(run, applied, tmp_path):
    cohort, _, _ = applied
    no_slides = tmp_path / "no_slides"
    shutil.copytree(cohort, no_slides)
    images = pd.read_csv(no_slides / "images.csv", dtype={"patient_id": str})
    images[images["modality"] != "WSI"].to_csv(no_slides / "images.csv", index=False)
    proc = snakemake(
        run, "-n", "apply", "--config", f"apply_cohort={no_slides}", "apply_study=net_survival"
    )
    assert proc.returncode != 0
    assert "pathomics is on but images.csv has no WSI row" in proc.stdout + proc.stderr
    no_age = tmp_path / "no_age"
    shutil.copytree(cohort, no_age)
    clinical = pd.read_csv(no_age / "clinical.csv")
    clinical.drop(columns="age").to_csv(no_age / "clinical.csv", index=False)
    proc = snakemake(
        run, "apply", "--config", f"apply_cohort={no_age}", "apply_study=net_survival",
        "--show-failed-logs",
    )  # fmt: skip
    assert proc.returncode != 0
    assert "age" in proc.stdout + proc.stderr
    assert not (run / "results/apply/no_age/net_survival/predict").exists()
