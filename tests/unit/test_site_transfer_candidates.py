"""benchmarks/site_transfer.py: candidate specs, their config overlays and the adoption rule."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

site_transfer = importlib.import_module("site_transfer")


def _figures(auc: float, dice: float) -> dict:
    return {
        "subtype": {"nnunet": {"auc_macro": {"value": auc}}},
        "dice": {"lesion": {"value": dice}},
    }


def test_specs_become_trainer_and_plans_settings_of_one_fold():
    assert site_transfer.candidate_settings("none") == {}
    assert site_transfer.candidate_settings("shift30+blur1.75+noise18") == {
        "intensity_shift_hu": 30.0,
        "scanner_blur_mm": 1.75,
        "scanner_noise_hu": 18.0,
    }
    extra = site_transfer.candidate_settings("zscore+noise10")
    study = site_transfer.overlay(31, 120, 0.0, fold=1, extra=extra)["studies"][
        "pancreas_multitask"
    ]
    assert study["folds"] == {"by": "site", "k": 2}
    assert study["nnunet"] == {
        "folds": [1],
        "plans": {"normalization": "ZScoreNormalization"},
        "trainer": {"intensity_shift_hu": 0.0, "scanner_noise_hu": 10.0},
    }
    assert extra == {"plans": {"normalization": "ZScoreNormalization"}, "scanner_noise_hu": 10.0}
    with pytest.raises(ValueError, match="'gamma2' is not shift<HU>"):
        site_transfer.candidate_settings("shift30+gamma2")


def test_highest_qualified_auc_wins_and_dice_may_not_fall_by_more_than_two_points():
    candidates = {
        "none": _figures(0.70, 0.60),
        "a": _figures(0.80, 0.57),  # Dice 0.03 lower: not qualified
        "b": _figures(0.74, 0.59),
        "c": _figures(0.76, 0.65),
    }
    assert site_transfer.choose(candidates, ["none", "a", "b", "c"]) == "c"
    assert site_transfer.choose(candidates, ["none", "a"]) == "none"
    # offsets (--shifts): the largest qualified offset, whatever its AUC among the qualified
    offsets = {"0": _figures(0.70, 0.6), "15": _figures(0.80, 0.6), "30": _figures(0.75, 0.6)}
    assert site_transfer.choose(offsets) == "30"
