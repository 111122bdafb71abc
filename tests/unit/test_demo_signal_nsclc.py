"""nsclc_mmdls: visible site batch effect; survival learnable from volume and SUVmax; TNM stage."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from oncoflow.cohort import read_table
from oncoflow.demo import write_demo

SEED = 0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("signal")
    write_demo(out, seed=SEED, patients=40, studies=["nsclc_mmdls"])
    return out


def _voxels(path: Path) -> tuple[np.ndarray, float]:
    img = nib.load(path)
    return np.asarray(img.dataobj), float(np.prod(img.header.get_zooms()[:3]))


def _nifti_ct_pet(root: Path) -> pd.DataFrame:
    """Per NIfTI patient of nsclc_mmdls: site, lung HU, lesion log volume and log SUVmax."""
    images = read_table(root, "images")
    rows = []
    for pid, group in images.groupby("patient_id"):
        if group["mask_roi"].notna().any():
            continue  # DICOM patients
        ct = group[group["modality"] == "CT"].iloc[0]
        pet = group[group["modality"] == "PET"].iloc[0]
        mask, voxel_ml = _voxels(root / ct["mask_path"])
        hu = np.asarray(nib.load(root / ct["path"]).dataobj)
        suv = nib.load(root / pet["path"]).get_fdata()
        rows.append(
            {
                "patient_id": pid,
                "site": ct["site"],
                "lung_hu": float(hu[mask == 1].mean()),
                "log_volume": float(np.log((mask == 2).sum() * voxel_ml)),
                "log_suvmax": float(np.log(suv[mask == 2].max())),
            }
        )
    return pd.DataFrame(rows).set_index("patient_id")


def test_site_batch_effect_on_lung_hu(demo: Path) -> None:
    feats = _nifti_ct_pet(demo / "nsclc_mmdls")
    stats = feats.groupby("site")["lung_hu"].agg(["mean", "std", "count"])
    assert len(stats) == 3
    sites = list(stats.index)
    for i, a in enumerate(sites):
        for b in sites[i + 1 :]:
            se = np.sqrt(
                stats.loc[a, "std"] ** 2 / stats.loc[a, "count"]
                + stats.loc[b, "std"] ** 2 / stats.loc[b, "count"]
            )
            diff = abs(stats.loc[a, "mean"] - stats.loc[b, "mean"])
            assert diff > 10.0
            assert diff > 5 * se, f"{a} vs {b}: {diff:.1f} HU, se {se:.1f}"


def test_survival_is_learnable_from_volume_and_uptake(demo: Path) -> None:
    lifelines = pytest.importorskip("lifelines")
    from lifelines.utils import concordance_index

    root = demo / "nsclc_mmdls"
    feats = _nifti_ct_pet(root)[["log_volume", "log_suvmax"]]
    outcomes = read_table(root, "outcomes").set_index("patient_id")
    splits = read_table(root, "splits").set_index("patient_id")["split"]
    data = feats.join(outcomes[["os_time", "os_event"]].astype(float))
    train = (splits.loc[data.index] == "train").to_numpy()
    cox = lifelines.CoxPHFitter().fit(data[train], "os_time", "os_event")
    risk = cox.predict_partial_hazard(data[~train])
    c = concordance_index(data["os_time"][~train], -risk, data["os_event"][~train])
    assert c > 0.65, c


def test_stage_follows_tnm_and_pet_shows_n_and_m(demo: Path) -> None:
    """Stage = TNM group of the reported diameter and the avid foci that the PET metrics count."""
    from oncoflow.demo.nsclc_mmdls import STAGES, stage_group
    from oncoflow.features.pet import pet_metrics_table

    root = demo / "nsclc_mmdls"
    images = read_table(root, "images")
    clinical = read_table(root, "clinical").set_index("patient_id")
    stage = read_table(root, "outcomes").set_index("patient_id")["stage"]
    hits, counts = [], []
    for pid, group in images.groupby("patient_id"):
        if group["mask_roi"].notna().any():
            continue  # DICOM patients: the workflow converts them first
        pet = group[group["modality"] == "PET"].iloc[0]
        table = pet_metrics_table(
            root / pet["path"], root / pet["mask_path"], label=2, foci={"labels": [1]}
        ).set_index("feature")["value"]
        nodes, nodules = table["FociOutside"], table["FociLabel1"]
        n = 0 if nodes == 0 else (1 if nodes == 1 else 2)
        rule = stage_group(clinical.loc[pid, "tumour_diameter_mm"], n, int(nodules > 0))
        hits.append(STAGES[int(rule)] == stage[pid])
        counts.append((nodes, nodules))
    assert len(hits) >= 25
    assert np.mean(hits) >= 0.85, np.mean(hits)  # misses: diameters within 2 mm of a T cut
    assert {c[0] for c in counts} >= {0.0, 1.0}
    assert {c[1] for c in counts} == {0.0, 1.0}
