"""pancreas_multitask through the real nnU-Net v2 chain on CPU: export -> plan_and_preprocess
-> derived plans -> nnUNetv2_train with oncoflow's trainer (killed and resumed) -> prediction with
the head aggregated over all sliding-window patches -> predictions.csv, Dice, metrics, lesions."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_snakemake as snakemake
from conftest import snakemake_env

from oncoflow.segmentation.precision import native_bf16

REPO = Path(__file__).resolve().parents[2]
PATIENTS = 16
EPOCHS = 10
NN = "results/pancreas_multitask/nnunet"
MODEL = "oncoflowMultitaskTrainer__oncoflowCPUPlans__3d_fullres"
FOLD_DIR = f"{NN}/nnUNet_results/Dataset501_PancreasMultitask/{MODEL}/fold_0"
TRAIN_LOG = f"logs/nnunet/pancreas_multitask/Dataset501_PancreasMultitask/{MODEL}/train_fold_0.log"

pytestmark = pytest.mark.slow


def _config(workdir: Path) -> None:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for name, study in config["studies"].items():
        study["enabled"] = name in ("pancreas_multitask", "pancreas_progression")
    config["demo"]["patients"] = PATIENTS
    config["demo"]["study_patients"] = {}
    # pancreas_progression's cnn_lstm runs too (whole DAG): CPU-tiny, 2 folds
    progression = config["studies"]["pancreas_progression"]
    progression["folds"] = {"k": 2}
    progression["train"]["extractor"].update(epochs=1, input_size=16, backbone="resnet10")
    progression["train"]["sequence"].update(epochs=3)
    # the permuted-label control of the head (new heads on the frozen network's features)
    config["studies"]["pancreas_multitask"].update(negative_control=True, permutations=2)
    # the refit head reads the CT inside the network's own lesion, and only that (config.yaml's
    # default; no descriptor, so no per-site map of it)
    nnunet_block = config["studies"]["pancreas_multitask"]["nnunet"]
    assert nnunet_block["head_statistics"] is True
    assert nnunet_block["head_descriptor"] is False
    assert nnunet_block["harmonize_head"] is False
    # every CT calibrated on its pancreas (label 1; config.yaml's default): training cases
    # through their masks, predicted cases through the network's own segmentation, its passes
    # started from three offsets (the most confident kept)
    assert config["studies"]["pancreas_multitask"]["nnunet"]["calibrate"] == {
        "label": 1,
        "reference_hu": 100,
        "starts": [-40, 0, 40],
    }
    config["studies"]["pancreas_multitask"]["nnunet"]["trainer"].update(
        epochs=EPOCHS, iterations_per_epoch=4, val_iterations_per_epoch=2, warmup_epochs=2,
        selection_ramp_epochs=2, save_every=1, teacher_forcing_epochs=3, intensity_shift_hu=30,
        scanner_blur_mm=1.5, scanner_noise_hu=15,
    )  # fmt: skip
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _kill_when(workdir: Path, proc: subprocess.Popen, ready, timeout: float = 900) -> None:
    start = time.time()
    while not ready():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"snakemake ended before the kill point: {out[-4000:]}")
        if time.time() - start > timeout:
            break
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job tree, as a node failure would
    proc.wait()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("nnunet_run")
    _config(workdir)
    # 1. train fold 0 and kill the job after its second epoch's checkpoint
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    cmd += ["--directory", str(workdir), "--cores", "2", f"{FOLD_DIR}/checkpoint_final.pth"]
    proc = subprocess.Popen(
        cmd,
        env=snakemake_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    latest = workdir / FOLD_DIR / "checkpoint_latest.pth"

    def second_epoch_saved() -> bool:
        if not latest.exists():
            return False
        logs = sorted((workdir / FOLD_DIR).glob("training_log_*.txt"))
        return bool(logs) and re.search(r": Epoch 2\s*$", logs[-1].read_text(), re.M) is not None

    _kill_when(workdir, proc, second_epoch_saved)
    assert latest.exists()
    assert not (workdir / FOLD_DIR / "checkpoint_final.pth").exists()
    # 2. the whole DAG: training resumes, then predict / collect / evaluate / report
    unlocked = snakemake(workdir, "--unlock")
    assert unlocked.returncode == 0, unlocked.stderr[-2000:]
    done = snakemake(workdir, "--rerun-incomplete", "--show-failed-logs")
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    return workdir


def test_real_nnunet_layout_and_trainer(run):
    fold = run / FOLD_DIR
    assert (fold / "checkpoint_final.pth").is_file()
    assert (fold / "checkpoint_best.pth").is_file()
    import torch

    checkpoint = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert checkpoint["trainer_name"] == "oncoflowMultitaskTrainer"
    assert checkpoint["current_epoch"] == EPOCHS
    assert any(k.startswith("head.") for k in checkpoint["network_weights"])
    log = (run / TRAIN_LOG).read_text()
    assert re.search(
        r"nnUNetv2_train 501 3d_fullres 0 -tr oncoflowMultitaskTrainer -p oncoflowCPUPlans", log
    )
    # on a CPU the fold keeps to the rule's threads (train_threads: 1) and augments in-process
    training_log = sorted(fold.glob("training_log_*.txt"))[-1].read_text()
    assert "CPU training: 1 torch thread(s), 0 augmentation worker process(es)" in training_log
    # config.yaml's cpu_precision: auto, channels_last: true (bfloat16 where the CPU has it)
    precision = "bfloat16" if native_bf16() else "float32"
    assert f"forward pass in {precision}, channels_last_3d layout" in training_log
    # the scanner offset, in the normalised units of the CT channel
    assert re.search(r"calibration offset augmentation: \+-30 HU \(\+-\d\.\d{3} ", training_log)
    degradation = "scanner degradation augmentation: blur U(0, 1.5) mm, noise SD U(0, 15) HU"
    assert degradation in training_log
    # the head's validation figures every epoch (teacher-forced for the first 3)
    assert (
        len(re.findall(r"head on \d+ validation case\(s\): macro AUC", training_log)) >= EPOCHS - 2
    )
    prep = run / NN / "nnUNet_preprocessed/Dataset501_PancreasMultitask"
    plans = json.loads((prep / "oncoflowCPUPlans.json").read_text())
    planned = json.loads((prep / "nnUNetResEncUNetMPlans.json").read_text())
    arch = plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"]
    assert arch["features_per_stage"][:2] == [8, 16]
    assert plans["configurations"]["3d_fullres"]["batch_size"] == 2
    assert (
        plans["configurations"]["3d_fullres"]["data_identifier"]
        == planned["configurations"]["3d_fullres"]["data_identifier"]
    )


def test_killed_training_resumed_from_its_checkpoint(run):
    log = (run / TRAIN_LOG).read_text()
    assert "resuming from checkpoint_latest.pth" in log
    assert "--c" in log
    logs = sorted((run / FOLD_DIR).glob("training_log_*.txt"))
    assert len(logs) == 2  # the killed run and the resumed one
    first_epoch = int(re.search(r": Epoch (\d+)\s*$", logs[-1].read_text(), re.M).group(1))
    assert first_epoch >= 2  # continued, not restarted from epoch 0


def test_splits_final_from_patient_folds(run):
    splits = json.loads((run / NN / "splits_final.json").read_text())
    table = pd.read_csv(run / "results/pancreas_multitask/splits.csv")
    test = set(table.loc[table["split"] != "train", "patient_id"])
    folds = json.loads((run / "results/pancreas_multitask/folds.json").read_text())["folds"]
    for k, entry in enumerate(splits):
        assert {c.split("_tp")[0] for c in entry["val"]} == set(folds[str(k)]["apply"])
        assert not {c.split("_tp")[0] for c in entry["train"] + entry["val"]} & test


def test_predictions_masks_and_patch_aggregation(run):
    predictions = pd.read_csv(run / "results/pancreas_multitask/train/nnunet/predictions.csv")
    table = pd.read_csv(run / "results/pancreas_multitask/splits.csv")
    folds = json.loads((run / "results/pancreas_multitask/folds.json").read_text())["folds"]
    validation = set(predictions.loc[predictions["split"] == "validation", "patient_id"])
    assert validation == set(folds["0"]["apply"])
    tested = set(predictions.loc[predictions["split"] != "validation", "patient_id"])
    assert tested == set(table.loc[table["split"] != "train", "patient_id"])
    scores = predictions[[c for c in predictions.columns if c.startswith("y_score_")]]
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
    # the class of a case is the mean over all its sliding-window tiles (unit test: the mean, not
    # the last tile); the larger fields of view of one demo site need several tiles
    import SimpleITK as sitk

    cases = pd.read_csv(run / NN / "predict/test/cases.csv")
    assert (cases["n_patches"] >= 1).all()
    assert cases["n_patches"].max() > 1
    for row in cases.itertuples():
        mask = sitk.ReadImage(str(run / NN / "predict/test" / f"{row.case_id}.nii.gz"))
        patient = row.case_id.split("_tp")[0]
        image = sitk.ReadImage(str(run / "results/converted" / patient / "0/CT_venous.nii.gz"))
        assert mask.GetSize() == image.GetSize()  # masks come back on the original grid
        np.testing.assert_allclose(mask.GetSpacing(), image.GetSpacing(), rtol=1e-5)


def test_calibrated_training_cases_and_predictions(run):
    from oncoflow.segmentation.calibrate import MAX_OFFSET_HU, UNCALIBRATED
    from oncoflow.segmentation.workflow import read_cases

    raw = run / NN / "nnUNet_raw/Dataset501_PancreasMultitask"
    cases = read_cases(raw)
    train = cases[cases["split"] == "train"]
    assert train["calibration_hu"].notna().all()
    assert cases.loc[cases["split"] != "train", "calibration_hu"].isna().all()
    uncalibrated = sorted(p.name for p in (raw / UNCALIBRATED).iterdir())
    assert uncalibrated == sorted(p.name for p in (raw / "imagesTr").iterdir())
    # every predicted case (validation and test) carries the offset its passes found
    for subset in ("fold_0", "test"):
        table = pd.read_csv(run / NN / "predict" / subset / "cases.csv")
        assert np.isfinite(table["calibration_hu"]).all()
        # a pass whose "pancreas" is another tissue (a 2-epoch network) is not used
        assert table["calibration_hu"].abs().max() <= MAX_OFFSET_HU
        # the passes ran from each of the three starts, and the log names the one kept
        log = (run / f"logs/nnunet/pancreas_multitask/predict_{subset}.log").read_text()
        assert len(re.findall(r"pass 1 from [-+]\d+ HU was surest", log)) == len(table)


def test_refit_head_learnt_from_the_folds_training_cases_only(run):
    import torch

    payload = torch.load(run / FOLD_DIR / "head_refit.pt", weights_only=False)
    splits = json.loads((run / NN / "splits_final.json").read_text())
    assert payload["training_cases"] == sorted(splits[0]["train"])
    assert not set(payload["training_cases"]) & set(splits[0]["val"])
    assert payload["classes"] == ["0", "1", "2"]
    # head_statistics without the descriptor: the three statistics of the lesion (label 2), the
    # head's whole input, z-scored on the training cases and past no LayerNorm
    statistics = payload["statistics"]
    assert statistics["label"] == 2
    assert len(statistics["mean"]) == len(statistics["sd"]) == 3
    assert all(sd > 0 for sd in statistics["sd"])
    assert payload["descriptor"] is False
    assert payload["in_features"] == 3
    assert payload["normalized"] == 0
    assert payload["site_mapping"] is None
    cases = pd.read_csv(next((run / NN / "nnUNet_raw").glob("Dataset*")) / "cases.csv")
    assert set(cases.loc[cases["split"] == "external_test", "site"]) == {"site_c"}


def test_permuted_head_control_scores_the_same_cases_in_two_runs(run):
    control = pd.read_csv(run / "results/pancreas_multitask/train/permuted/predictions.csv")
    model = pd.read_csv(run / "results/pancreas_multitask/train/nnunet/predictions.csv")
    assert sorted(control["permutation"].unique()) == [0, 1]
    for _, rows in control.groupby("permutation"):
        # every case the model scores, in the same split and fold, with probabilities summing to 1
        key = ["case_id", "split", "fold", "y_true"]
        pairs = rows[key].sort_values("case_id").reset_index(drop=True)
        assert pairs.equals(model[key].sort_values("case_id").reset_index(drop=True))
        scores = rows.filter(like="y_score_").to_numpy()
        assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    # the two runs permute differently, so they score differently
    first, second = (part.sort_values("case_id") for _, part in control.groupby("permutation"))
    assert not np.allclose(first.filter(like="y_score_"), second.filter(like="y_score_"))
    metrics = json.loads(
        (run / "results/pancreas_multitask/evaluate/permuted/metrics.json").read_text()
    )
    subtype = metrics["models"]["model"]["subtype"]
    assert subtype["test"]["n_runs"] == 2
    assert 0.0 <= subtype["test"]["auc_macro"]["value"] <= 1.0
    # with calibrate the control shifts each case by the offset of its prediction (no passes)
    log = (run / "logs/nnunet/pancreas_multitask/head_control.log").read_text()
    assert "offsets of their prediction" in log
    assert "calibrated by" not in log


def test_metrics_have_dice_and_classification_with_cis(run):
    metrics = json.loads(
        (run / "results/pancreas_multitask/evaluate/nnunet/metrics.json").read_text()
    )
    regions = metrics["segmentation"]["regions"]
    assert set(regions) == {"whole_pancreas", "lesion"}
    for region in regions.values():
        for split, summary in region.items():
            low, value, high = (summary["dice"][k] for k in ("ci_low", "value", "ci_high"))
            assert 0.0 <= low <= value <= high <= 1.0, split
    dice = pd.read_csv(run / "results/pancreas_multitask/train/nnunet/dice.csv")
    assert set(dice["region"]) == {"whole_pancreas", "lesion"}
    subtype = metrics["models"]["model"]["subtype"]
    assert {"validation", "internal_test", "external_test"} <= set(subtype)
    for split in ("internal_test", "external_test"):
        f1 = subtype[split]["f1_macro"]
        assert 0.0 <= f1["ci_low"] <= f1["value"] <= f1["ci_high"] <= 1.0
        assert np.sum(subtype[split]["confusion"]) == subtype[split]["n_patients"]


def test_lesion_crops_for_every_patient_timepoint(run):
    images = pd.read_csv(run / "resources/demo/pancreas_progression/images.csv")
    for (patient, tp), _ in images.groupby(["patient_id", "timepoint"]):
        data = np.load(run / f"results/pancreas_progression/lesions/{patient}/{tp}.npz")
        assert {"CT_arterial/lesion", "CT_venous/lesion", "CT_delayed/lesion"} <= set(data.files)


# --- apply: the frozen nnU-Net and cnn_lstm on a second demo cohort ----------------------------

NEW_PATIENTS = 6


def _frozen(run: Path) -> dict[str, tuple[str, int]]:
    from oncoflow.artefacts import sha256

    paths = [
        *(run / NN / "nnUNet_results").rglob("checkpoint_*.pth"),
        *(run / "results/pancreas_progression/train").glob("*/fold_*/model.pt"),
    ]
    return {str(p.relative_to(run)): (sha256(p), p.stat().st_mtime_ns) for p in sorted(paths)}


@pytest.fixture(scope="module")
def applied(run, tmp_path_factory):
    root = tmp_path_factory.mktemp("second")
    subprocess.run(
        [sys.executable, str(REPO / "scripts/make_demo_cohort.py"), "--out", str(root),
         "--seed", "9", "--patients", str(NEW_PATIENTS), "--study", "pancreas_multitask",
         "--study", "pancreas_progression"],
        check=True, capture_output=True, env=snakemake_env(),
    )  # fmt: skip
    # one time point of one patient comes without its masks
    table = root / "pancreas_progression/images.csv"
    images = pd.read_csv(table, dtype=str)
    unmasked = (images["patient_id"] == images["patient_id"].iloc[0]) & (images["timepoint"] == "1")
    images.loc[unmasked, "mask_path"] = None
    images.to_csv(table, index=False)
    before = _frozen(run)
    proc = snakemake(run, "apply", "--config", f"apply_cohort={root}", "apply_name=second")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    return root, images.loc[unmasked, "patient_id"].iloc[0], before, proc.stdout + proc.stderr


def test_apply_runs_the_frozen_models_and_no_training_rule(run, applied):
    root, _, before, log = applied
    assert before
    assert _frozen(run) == before  # the same bytes, never rewritten
    ran = set(re.findall(r"\(Rule: (\w+)\)", log))
    assert all(rule == "apply" or rule.startswith("apply_") for rule in ran), ran
    out = run / "results/apply/second"
    nnunet = pd.read_csv(out / "pancreas_multitask/predict/nnunet/predictions.csv")
    multitask = pd.read_csv(root / "pancreas_multitask/clinical.csv")
    assert set(nnunet["patient_id"]) == set(multitask["patient_id"])
    assert set(nnunet["split"]) == {"apply"}
    scores = nnunet.filter(like="y_score_")
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-4)
    for case in nnunet["case_id"]:
        assert (out / f"pancreas_multitask/nnunet/{case}.nii.gz").is_file()
    metrics = json.loads((out / "pancreas_multitask/evaluate/nnunet/metrics.json").read_text())
    assert metrics["outcomes_known"]
    progression = pd.read_csv(out / "pancreas_progression/predict/cnn_lstm/predictions.csv")
    patients = pd.read_csv(root / "pancreas_progression/clinical.csv")["patient_id"]
    assert set(progression["patient_id"]) == set(patients)


def test_a_time_point_without_masks_gets_its_crops_from_the_predicted_mask(run, applied):
    _, patient, _, _ = applied
    out = run / "results/apply/second/pancreas_progression"
    assert sorted(p.name for p in (out / "segmented/masks").iterdir()) == [f"{patient}_tp1.nii.gz"]
    log = (run / "logs/apply/second/lesions/pancreas_progression/segmented.log").read_text()
    assert "1 case" in log
    crops = np.load(out / f"lesions/{patient}/1.npz")
    assert {"CT_arterial/lesion", "CT_venous/lesion", "CT_delayed/lesion"} <= set(crops.files)
