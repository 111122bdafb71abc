"""`snakemake -n` over several configurations: the DAG builds and holds the expected jobs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import run_snakemake, snakemake_env

from oncoflow.studies import builtin_recipes

REPO = Path(__file__).resolve().parents[2]


def dry_run(workdir: Path, *extra: str) -> dict[str, int]:
    """Run a dry run in ``workdir`` and return the job count per rule."""
    proc = run_snakemake(workdir, "-n", "--quiet", "rules", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = {}
    for line in proc.stdout.splitlines():
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if match and match.group(1) != "total":
            counts[match.group(1)] = int(match.group(2))
    return counts


def write_config(workdir: Path, config: dict) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


COLUMNS = ["patient_id", "timepoint", "modality", "series", "path", "mask_path", "mask_roi", "site"]


def write_user_cohort(cohort: Path, rows: list[tuple]) -> pd.DataFrame:
    """A user cohort of zero-byte stand-in files (enough for the DAG) from images.csv rows."""
    images = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("path", "mask_path"):
        for p in images[column]:
            if p:
                (cohort / p).parent.mkdir(parents=True, exist_ok=True)
                (cohort / p).touch()
    images.to_csv(cohort / "images.csv", index=False)
    for table in ("clinical", "outcomes"):
        pd.DataFrame({"patient_id": images.patient_id.unique()}).to_csv(
            cohort / f"{table}.csv", index=False
        )
    return images


@pytest.fixture
def default_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_default_dag_lists_demo_validate_convert(tmp_path, default_config):
    write_config(tmp_path, default_config)
    counts = dry_run(tmp_path)
    from oncoflow.demo import plan_cohort

    demo = default_config["demo"]
    studies = default_config["studies"]
    size = {s: demo.get("study_patients", {}).get(s, demo["patients"]) for s in studies}
    plans = [plan_cohort(s, seed=demo["seed"], patients=size[s]) for s in studies]
    patients = {
        p for plan in plans for p in plan.images.loc[plan.images.modality != "WSI", "patient_id"]
    }
    assert counts["demo_cohort"] == 6
    assert counts["validate_cohort"] == 6
    assert counts["qc_summary"] == 1
    assert counts["convert_patient"] == len(patients) == sum(size.values())
    assert counts["all"] == 1
    # net_survival: one radiomics and one pathomics job per patient, ComBat per source x fold,
    # raw / combat / permuted Cox runs
    net = default_config["studies"]["net_survival"]
    assert counts["pathomics"] == size["net_survival"]
    # radiomics: net_survival's CT lesion, nsclc_mmdls's CT lesion (the MM-DLS radiomics vector)
    assert counts["radiomics"] == size["net_survival"] + size["nsclc_mmdls"]
    # net_survival, lung_synthesis, pancreas_multitask + the three deep-model studies
    assert counts["make_folds"] == 6
    assert counts["harmonize"] == 2 * (net["folds"]["repeats"] + 1)
    assert counts["train_net_survival"] == 3
    # nsclc_mmdls: PET metrics of the lesion label per patient; one merged table per source
    assert counts["pet_metrics"] == size["nsclc_mmdls"]
    assert counts["merge_features"] == 4  # net: radiomics, pathomics; nsclc: pet, radiomics
    # lung_synthesis: one diffusion model, a synthetic CT per patient's masks, one evaluation
    assert counts["train_ddpm"] == counts["evaluate_ddpm"] == 1
    assert counts["sample_ddpm"] == size["lung_synthesis"]
    # pancreas_multitask: the nnU-Net chain, one training job per configured fold, prediction of
    # each fold's validation cases and of the test cases
    nnunet = studies["pancreas_multitask"]["nnunet"]
    assert counts["nnunet_export"] == counts["nnunet_plan"] == counts["nnunet_collect"] == 1
    assert counts["nnunet_train"] == len(nnunet["folds"])
    assert counts["nnunet_predict"] == len(nnunet["folds"]) + 1
    # lesion crops: one job per patient of the three studies with a lesions block
    lesion_studies = [s for s, st in studies.items() if st.get("lesions")]
    assert sorted(lesion_studies) == ["liver_response", "nsclc_mmdls", "pancreas_progression"]
    assert counts["extract_lesions"] == sum(size[s] for s in lesion_studies)
    # deep models: one job per fold and variant (every rung of a recipe's ladder: liver_response,
    # the nsclc_mmdls input ablation; + permuted when the negative control is on), one fold
    # ensemble and evaluation per variant
    variants = {
        s: len(builtin_recipes()[s].variants(studies[s]))
        + int(studies[s].get("negative_control", False))
        for s in lesion_studies
    }
    assert variants["liver_response"] >= 4
    assert variants["nsclc_mmdls"] == 3
    assert counts["train_model"] == sum(studies[s]["folds"]["k"] * n for s, n in variants.items())
    assert counts["collect_model"] == sum(variants.values())
    # tabular baselines: clinical and clinical + mask sizes in every study with a target and
    # clinical columns; mask sizes alone where there are none (pancreas_multitask)
    with_targets = [s for s, st in studies.items() if st.get("targets")]
    assert len(with_targets) == 5
    # (pancreas_multitask, without clinical columns: the mask sizes and the lesion statistics)
    baselines = sum(2 if studies[s].get("clinical") else 1 for s in with_targets) + 1
    assert counts["train_baseline"] == baselines == 10
    # every trained variant, the nnU-Net model and the three Cox variants, and every baseline
    assert counts["evaluate"] == sum(variants.values()) + 1 + 3 + baselines


def test_study_patients_override(tmp_path, default_config):
    for name, study in default_config["studies"].items():
        study["enabled"] = name in ("liver_response", "net_survival")
    default_config["demo"]["patients"] = 10
    default_config["demo"]["study_patients"] = {"net_survival": 14}
    write_config(tmp_path, default_config)
    counts = dry_run(tmp_path)
    assert counts["convert_patient"] == 10 + 14
    assert counts["radiomics"] == counts["pathomics"] == 14
    assert "pet_metrics" not in counts


def test_single_study(tmp_path, default_config):
    for name, study in default_config["studies"].items():
        study["enabled"] = name == "liver_response"
    default_config["demo"]["patients"] = 10
    default_config["demo"]["study_patients"] = {}
    write_config(tmp_path, default_config)
    counts = dry_run(tmp_path)
    assert counts["demo_cohort"] == counts["validate_cohort"] == 1
    assert counts["convert_patient"] == 10


def test_user_cohort_without_demo(tmp_path, default_config):
    """A cohort of the user's own files (zero-byte stand-ins suffice for the DAG)."""
    cohort = tmp_path / "cohort"
    rows = []
    for i in range(3):
        pid = f"P{i:03d}"
        for tp in (0, 1):
            path = f"img/{pid}_{tp}.nii.gz"
            rows.append((pid, tp, "MR", "T2", path, f"img/{pid}_{tp}_mask.nii.gz", "", "s1"))
    write_user_cohort(cohort, rows)
    default_config["demo"]["enabled"] = False
    for name, study in default_config["studies"].items():
        study["enabled"] = name == "liver_response"
    default_config["studies"]["liver_response"]["cohort"] = str(cohort)
    default_config["studies"]["liver_response"]["lesions"]["images"] = ["MR_T2"]
    write_config(tmp_path / "run", default_config)
    counts = dry_run(tmp_path / "run")
    assert "demo_cohort" not in counts
    assert counts["validate_cohort"] == 1
    assert counts["convert_patient"] == 3


def test_a_study_imported_from_a_dicom_tree(tmp_path, default_config):
    """studies.<s>.import: the tree is planned when the workflow starts, one rule imports it."""
    from oncoflow.demo.dicomtree import write_dicom_tree

    manifest = write_dicom_tree(tmp_path / "tree", seed=1)
    default_config["demo"]["enabled"] = False
    # a study that reads every image of a patient (its lesions, if any, need no stem the tree lacks)
    for name, study in default_config["studies"].items():
        study["enabled"] = name == "lung_synthesis"
    study = default_config["studies"]["lung_synthesis"]
    study["cohort"] = str(tmp_path / "cohort")
    study["import"] = {"dicom": str(tmp_path / "tree"), "key_file": str(tmp_path / "keys/k")}
    write_config(tmp_path / "run", default_config)
    counts = dry_run(tmp_path / "run")
    assert counts["import_cohort_lung_synthesis"] == 1
    assert counts["validate_cohort"] == 1
    assert counts["convert_patient"] == len(manifest["patients"])
    assert (tmp_path / "keys" / "k").is_file()  # pseudonyms need the key from the start
    assert (tmp_path / "cohort" / ".dicom_index.json").is_file()
    assert not (tmp_path / "cohort" / "images.csv").exists()  # the rule writes it


def test_missing_user_cohort_is_a_clear_error(tmp_path, default_config):
    default_config["demo"]["enabled"] = False
    write_config(tmp_path, default_config)
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "study pancreas_progression" in output
    assert "images.csv not found" in output


def test_invalid_config_is_refused(tmp_path, default_config):
    default_config["convert"]["tilt"] = "ignore"
    write_config(tmp_path, default_config)
    proc = run_snakemake(tmp_path, "-n")
    assert proc.returncode != 0
    assert "'ignore' is not one of ['resample', 'refuse']" in proc.stdout + proc.stderr


def test_feature_source_matching_no_image_is_a_clear_error(tmp_path, default_config):
    """radiomics.images naming a stem the cohort does not have: refused before any job runs."""
    cohort = tmp_path / "cohort"
    rows = []
    for i in range(3):
        pid = f"P{i:03d}"
        rows.append((pid, 0, "CT", "venous", f"img/{pid}.nii.gz", f"img/{pid}_m.nii.gz", "", "s1"))
        rows.append((pid, 0, "WSI", "HE", f"img/{pid}.svs", "", "", "s1"))
    write_user_cohort(cohort, rows)
    default_config["demo"]["enabled"] = False
    for name, study in default_config["studies"].items():
        study["enabled"] = name == "net_survival"
    default_config["studies"]["net_survival"]["cohort"] = str(cohort)
    write_config(tmp_path / "run", default_config)
    proc = run_snakemake(tmp_path / "run", "-n")
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "radiomics.images ['CT'] matches no image with a mask" in message
    assert "CT_venous" in message
    default_config["studies"]["net_survival"]["radiomics"]["images"] = ["CT_venous"]
    write_config(tmp_path / "run", default_config)
    counts = dry_run(tmp_path / "run")
    assert counts["radiomics"] == counts["pathomics"] == 3


def test_lesions_from_nnunet_predictions_wait_for_every_fold(tmp_path, default_config):
    """lesions.masks: nnunet makes each crop job depend on the study's prediction subsets."""
    for name, study in default_config["studies"].items():
        study["enabled"] = name == "pancreas_multitask"
    default_config["demo"]["patients"] = 12
    default_config["demo"]["study_patients"] = {}
    study = default_config["studies"]["pancreas_multitask"]
    study["nnunet"]["folds"] = [0, 1, 2]
    study["lesions"] = {"images": ["CT_venous"], "lesion_labels": [2], "masks": "nnunet"}
    write_config(tmp_path, default_config)
    counts = dry_run(tmp_path)
    assert counts["nnunet_train"] == 3
    assert counts["nnunet_predict"] == 4  # fold_0..2 validation cases + test
    assert counts["extract_lesions"] == 12
    # a study without an nnU-Net model cannot take its crops from predictions
    default_config["studies"]["pancreas_progression"]["enabled"] = True
    default_config["studies"]["pancreas_progression"]["lesions"]["masks"] = "nnunet"
    write_config(tmp_path / "bad", default_config)
    proc = run_snakemake(tmp_path / "bad", "-n", "--quiet", "rules")
    assert proc.returncode != 0
    assert "study pancreas_progression: lesions.masks is nnunet but the study has no nnU-Net" in (
        proc.stdout + proc.stderr
    )


def test_apply_scores_every_family_of_every_study_with_frozen_artefacts(tmp_path, default_config):
    """A folder of second demo cohorts: each study's new patients through its frozen models; a
    pancreas_progression time point without a mask is segmented by pancreas_multitask's nnU-Net."""
    default_config["demo"]["patients"] = 8
    default_config["demo"]["study_patients"] = {}
    write_config(tmp_path, default_config)
    second = tmp_path / "second"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts/make_demo_cohort.py"), "--out", str(second),
         "--seed", "9", "--patients", "6"],
        capture_output=True, text=True, env=snakemake_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    images = pd.read_csv(second / "pancreas_progression/images.csv", dtype=str)
    first = images["patient_id"] == images["patient_id"].iloc[0]
    images.loc[first & (images["timepoint"] == "1"), "mask_path"] = None
    images.to_csv(second / "pancreas_progression/images.csv", index=False)
    counts = dry_run(tmp_path, "--config", f"apply_cohort={second}", "apply_name=b", "--", "apply")
    assert counts["apply_validate_cohort"] == 6
    assert counts["apply_predict"] == 3  # net_survival: raw, combat, permuted
    # liver ladder (5) + pancreas cnn_lstm (1) + MM-DLS variants (3)
    assert counts["apply_deep"] == 5 + 1 + 3
    assert counts["apply_nnunet"] == 1
    assert counts["apply_segment_unmasked"] == 1
    assert counts["apply_ddpm"] == 1
    assert counts["apply_evaluate"] == 3 + 9 + 1
    proc = run_snakemake(tmp_path, "-n", "apply", "--config", f"apply_cohort={second}/net_survival")
    assert proc.returncode != 0
    assert "name its study with apply_study=STUDY" in proc.stdout + proc.stderr


def _liver_cohort_missing_a_sequence(tmp_path, default_config) -> Path:
    """A user liver cohort of four patients; L1 lacks MR_T1 at time point 1."""
    cohort = tmp_path / "cohort"
    rows = [
        (p, tp, "MR", s, f"img/{p}_{tp}_{s}.nii.gz", f"img/{p}_{tp}_mask.nii.gz", "", "s1")
        for p in ("L0", "L1", "L2", "L3")
        for tp in (0, 1)
        for s in ("T1", "T2")
        if (p, tp, s) != ("L1", 1, "T1")
    ]
    write_user_cohort(cohort, rows)
    default_config["demo"]["enabled"] = False
    for name, study in default_config["studies"].items():
        study["enabled"] = name == "liver_response"
    liver = default_config["studies"]["liver_response"]
    liver["cohort"] = str(cohort)
    liver["clinical"] = []
    liver["lesions"]["images"] = ["MR_T1", "MR_T2"]
    return tmp_path / "run"


def test_missing_input_refused_before_any_job_runs(tmp_path, default_config):
    run = _liver_cohort_missing_a_sequence(tmp_path, default_config)
    write_config(run, default_config)
    proc = run_snakemake(run)  # a real run, not a dry run: it must stop before any job
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "study liver_response: 1 patient(s) lack inputs its models need" in out
    assert "L1: MR_T1 at time point 1" in out
    assert "studies.liver_response.missing (modalities: refuse | drop_patient)" in out
    assert not (run / "results").exists()
    assert not (run / "logs").exists()


def test_drop_patient_leaves_the_patient_out_of_every_job(tmp_path, default_config):
    run = _liver_cohort_missing_a_sequence(tmp_path, default_config)
    default_config["studies"]["liver_response"]["missing"] = {"modalities": "drop_patient"}
    write_config(run, default_config)
    counts = dry_run(run)
    assert counts["convert_patient"] == 3
    assert counts["extract_lesions"] == 3
    proc = run_snakemake(run, "-n", "-p", "results/liver_response/folds.json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--exclude L1" in proc.stdout
    assert '"dropped":{"L1":["MR_T1 at time point 1"]}' in proc.stdout  # validate_cohort.py
