"""liver_response: the planted response is learnable from lesion shrinkage in the masks."""

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


def test_response_is_learnable_from_lesion_shrinkage(demo: Path) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    metrics = pytest.importorskip("sklearn.metrics")
    root = demo / "liver_response"
    images = read_table(root, "images").drop_duplicates(["patient_id", "timepoint"])
    volumes = {}
    for _, row in images.iterrows():
        mask, voxel_ml = _voxels(root / row["mask_path"])
        volumes[(row["patient_id"], row["timepoint"])] = (mask == 1).sum() * voxel_ml
    outcomes = read_table(root, "outcomes").merge(read_table(root, "splits"), on="patient_id")
    x = np.array([[np.log(volumes[(p, 1)] / volumes[(p, 0)])] for p in outcomes["patient_id"]])
    y = outcomes["response"].to_numpy(dtype=int)
    train = (outcomes["split"] == "train").to_numpy()
    model = linear_model.LogisticRegression().fit(x[train], y[train])
    auc = metrics.roc_auc_score(y[~train], model.predict_proba(x[~train])[:, 1])
    assert auc > 0.7, auc
