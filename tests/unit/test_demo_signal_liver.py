"""liver_response: the masks carry the planted volume change, which predicts the response."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from oncoflow.cohort import read_table
from oncoflow.demo import write_demo

SEED = 0


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("signal")
    write_demo(out, seed=SEED, patients=40, studies=["liver_response"])
    return out


def _voxels(path: Path) -> tuple[np.ndarray, float]:
    img = nib.load(path)
    return np.asarray(img.dataobj), float(np.prod(img.header.get_zooms()[:3]))


def test_masks_show_the_planted_volume_change_and_it_predicts_response(demo: Path) -> None:
    from oncoflow.demo.liver_response import LiverResponse

    metrics = pytest.importorskip("sklearn.metrics")
    root = demo / "liver_response"
    images = read_table(root, "images").drop_duplicates(["patient_id", "timepoint"])
    volumes = {}
    for _, row in images.iterrows():
        mask, voxel_ml = _voxels(root / row["mask_path"])
        volumes[(row["patient_id"], row["timepoint"])] = (mask == 1).sum() * voxel_ml
    latents = {p.patient_id: p.latent for p in LiverResponse(SEED, 40).patients()}
    outcomes = read_table(root, "outcomes")
    ids = outcomes["patient_id"]
    measured = np.array([np.log(volumes[(p, 1)] / volumes[(p, 0)]) for p in ids])
    planted = np.array([latents[p]["delta"] for p in ids])
    assert np.corrcoef(measured, planted)[0, 1] > 0.95  # the mask carries delta
    # shrinkage predicts response over many patients (docs/demo.md); on 40 it still shows
    auc = metrics.roc_auc_score(outcomes["response"].to_numpy(int), -measured)
    assert auc > 0.6, auc
