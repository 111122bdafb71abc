"""benchmarks/nsclc_image_only.py: a score that is size alone shows as size, and nothing is left."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def image_only():
    return load_script("nsclc_image_only", folder="benchmarks")


def test_a_size_score_reads_as_size_with_no_signal_left(image_only):
    rng = np.random.default_rng(3)
    n = 400
    ids = [f"NS{i:03d}" for i in range(n)]
    diameter = rng.uniform(10, 60, n)
    texture = rng.uniform(0, 1, n)
    lusc = (rng.uniform(size=n) < 1 / (1 + np.exp(-4 * (texture - 0.5)))).astype(int)
    patients = pd.DataFrame(
        {
            "split": "internal_test",
            "lusc": lusc,
            "tumour_diameter_mm": diameter,
            "texture": texture,
        },
        index=pd.Index(ids, name="patient_id"),
    )
    size_only = pd.DataFrame({"patient_id": ids, "y_score": -np.log(diameter)})
    scored = image_only._scored(size_only, patients)
    assert scored["n"] == n
    assert scored["spearman_with_diameter"] == pytest.approx(-1.0)
    assert abs(scored["spearman_with_texture"]) < 0.15
    assert abs(scored["auc_without_size"] - 0.5) < 0.02  # the residual is rounding noise
    reads_texture = pd.DataFrame({"patient_id": ids, "y_score": texture})
    scored = image_only._scored(reads_texture, patients)
    assert scored["spearman_with_texture"] == pytest.approx(1.0)
    assert scored["auc"] > 0.7
    assert scored["auc_without_size"] > 0.7
