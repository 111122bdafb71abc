"""`snakemake -n` over several configurations: the DAG builds and holds the expected jobs."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import run_snakemake

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
    baselines = sum(2 if studies[s].get("clinical") else 1 for s in with_targets)
    assert counts["train_baseline"] == baselines == 9
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
    for name, study in default_config["studies"].items():
        study["enabled"] = name == "liver_response"
    study = default_config["studies"]["liver_response"]
    study["cohort"] = str(tmp_path / "cohort")
    study["import"] = {"dicom": str(tmp_path / "tree"), "key_file": str(tmp_path / "keys/k")}
    write_config(tmp_path / "run", default_config)
    counts = dry_run(tmp_path / "run")
    assert counts["import_cohort_liver_response"] == 1
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
