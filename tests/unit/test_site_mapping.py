"""Site mapping of refit-head descriptors (oncoflow.segmentation.refit.SiteMapping), no nnU-Net."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from oncoflow.errors import SegmentationError
from oncoflow.metrics.classification import macro_auc
from oncoflow.metrics.decision import confusion_codes, confusion_macro_f1
from oncoflow.segmentation.frozen_head import head_probabilities, train_head
from oncoflow.segmentation.predict import refit_probabilities
from oncoflow.segmentation.refit import (
    RefitHead,
    SiteMapping,
    load_refit_head,
    save_refit_head,
)

# site -> (offset, gain) of the descriptor features, each feature its own share of them (the
# head's LayerNorm would cancel one offset and gain common to all features)
SCANNERS = {"site_a": (0.0, 1.0), "site_b": (1.5, 1.2), "site_c": (-2.5, 0.6)}
SHARE = np.linspace(-1.0, 1.0, 8)


def _cases(rng: np.random.Generator, site: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Descriptors of ``n`` cases of 3 classes read through ``site``'s scanner."""
    y = rng.choice(3, size=n, p=[0.25, 0.42, 0.33])
    x = rng.normal(size=(n, 8))
    x[:, 0] += 1.6 * y
    x[:, 1] -= 1.2 * (y == 1)
    offset, gain = SCANNERS[site]
    return (gain ** (1 + SHARE) * x + offset * SHARE).astype(np.float32), y


def test_each_site_is_mapped_onto_the_training_location_and_scale() -> None:
    rng = np.random.default_rng(0)
    xa, _ = _cases(rng, "site_a", 60)
    xb, _ = _cases(rng, "site_b", 40)
    x = np.vstack([xa, xb])
    sites = ["site_a"] * 60 + ["site_b"] * 40
    mapping, mapped = SiteMapping.fit_transform(x, sites)
    assert np.array_equal(mapped, SiteMapping.fit(x, sites).transform(x, sites))
    for rows in (slice(0, 60), slice(60, 100)):
        assert np.allclose(mapped[rows].mean(axis=0), x.mean(axis=0), atol=1e-5)
        assert np.allclose(mapped[rows].std(axis=0), x.std(axis=0), rtol=1e-4)
    # an unseen site: its location and scale come from its own cases, whatever their classes
    xc, _ = _cases(rng, "site_c", 30)
    mapped_c = mapping.transform(xc, ["site_c"] * 30)
    assert np.allclose(mapped_c.mean(axis=0), x.mean(axis=0), atol=1e-5)
    assert np.allclose(mapped_c.std(axis=0), x.std(axis=0), rtol=1e-4)
    # a training site's cases use the training estimates, not their own
    one = mapping.transform(xb[:3], ["site_b"] * 3)
    assert np.allclose(one, mapped[60:63], atol=1e-5)


def test_a_single_case_of_an_unseen_site_or_without_site_is_left_unmapped(caplog) -> None:
    rng = np.random.default_rng(1)
    x, _ = _cases(rng, "site_a", 20)
    mapping = SiteMapping.fit(x, ["site_a"] * 20)
    new, _ = _cases(rng, "site_c", 2)
    with caplog.at_level(logging.WARNING):
        out = mapping.transform(new, ["site_c", ""])
    assert np.allclose(out, new)
    assert "site site_c unseen in training has 1 case(s)" in caplog.text
    assert "no site: 1 case(s) left unmapped" in caplog.text
    with pytest.raises(SegmentationError, match="training case has no site"):
        SiteMapping.fit(x, ["site_a"] * 19 + [""])
    with pytest.raises(SegmentationError, match="3 site label"):
        mapping.transform(new, ["site_a", "site_a", "x"])


def test_a_head_behind_the_mapping_holds_on_an_unseen_scanner() -> None:
    """Trained on two sites, scored on a third whose scanner moves every boundary."""
    rng = np.random.default_rng(2)
    parts = [_cases(rng, s, 80) for s in ("site_a", "site_b")]
    x, y = np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    sites = ["site_a"] * 80 + ["site_b"] * 80
    xc, yc = _cases(rng, "site_c", 120)
    scores = {}
    for mapped in (False, True):
        mapping = SiteMapping.fit(x, sites) if mapped else None
        train = mapping.transform(x, sites) if mapping else x
        test = mapping.transform(xc, ["site_c"] * 120) if mapping else xc
        head = train_head(train, y, 3, hidden=32, dropout=0.3, seed=0)
        p = head_probabilities(head, test)
        f1 = confusion_macro_f1(confusion_codes(yc, p.argmax(axis=1), 3))
        scores[mapped] = (macro_auc(yc, p), f1)
    assert scores[True][0] > 0.8
    assert scores[True][1] > scores[False][1] + 0.15  # the boundaries hold after the mapping


def test_the_mapping_round_trips_with_its_head_and_is_applied_at_prediction(tmp_path) -> None:
    rng = np.random.default_rng(3)
    x, y = _cases(rng, "site_a", 40)
    mapping = SiteMapping.fit(x, ["site_a"] * 40)
    head = train_head(mapping.transform(x, ["site_a"] * 40), y, 3, hidden=16, dropout=0.2)
    path = tmp_path / "head_refit.pt"
    save_refit_head(path, head, ["0", "1", "2"], training_cases=["c1"], steps=100, mapping=mapping)
    loaded = load_refit_head(path)
    assert isinstance(loaded, RefitHead)
    assert loaded.classes == ["0", "1", "2"]
    assert loaded.mapping is not None
    assert np.allclose(loaded.mapping.sites["site_a"][0], mapping.sites["site_a"][0])
    xc, _ = _cases(rng, "site_c", 10)
    expected = head_probabilities(head, mapping.transform(xc, ["site_c"] * 10))
    # two folds with the same head: the ensemble equals one fold
    probs = refit_probabilities([[row, row] for row in xc], [loaded, loaded], ["site_c"] * 10)
    assert np.allclose(probs, expected, atol=1e-5)
    with pytest.raises(SegmentationError, match="no site was given"):
        refit_probabilities([[row] for row in xc], [loaded])


def test_statistics_of_an_unseen_blurrier_scanner_are_mapped_before_their_z_scores(
    tmp_path,
) -> None:
    """A statistics-only head: the unseen site reads the texture SD at 0.55 and has a NaN."""
    from oncoflow.segmentation.refit import fit_head_inputs, head_inputs

    rng = np.random.default_rng(3)

    def statistics(n: int, texture_gain: float) -> tuple[np.ndarray, np.ndarray]:
        y = rng.choice(3, size=n, p=[0.25, 0.42, 0.33])
        contrast = -25.0 - 20.0 * y + rng.normal(0.0, 14.0, n)  # HU
        texture = texture_gain * (12.0 + 8.0 * y + rng.normal(0.0, 6.0, n))  # HU
        shape = 1.05 + 0.4 * y + rng.normal(0.0, 0.3, n)
        descriptor = rng.normal(size=(n, 4))  # what the head does not read
        return np.column_stack([descriptor, contrast, texture, shape]), y

    x = np.vstack([statistics(60, 0.92)[0], statistics(40, 0.65)[0]])
    sites = ["site_a"] * 60 + ["site_b"] * 40
    mapping, scaler, inputs = fit_head_inputs(
        x, sites, harmonize=True, statistics=(2, 3), descriptor=False, reference=1
    )
    assert mapping is not None
    assert scaler is not None
    assert len(mapping.mean) == 3  # the statistics alone: the descriptor is not read
    assert inputs.shape == (100, 3)
    assert np.allclose(inputs.mean(axis=0), 0.0, atol=1e-5)
    for rows in (slice(0, 60), slice(60, 100)):  # each training site on the pooled scale
        assert np.allclose(inputs[rows].mean(axis=0), 0.0, atol=1e-4)
    xc, _ = statistics(40, 0.53)
    xc[0, 5] = np.nan  # one case without a texture statistic
    mapped = head_inputs(xc, ["site_c"] * 40, mapping, scaler, descriptor=False)
    assert mapped[0, 1] == 0.0  # a missing statistic reads the training mean
    assert np.allclose(mapped[1:].mean(axis=0), 0.0, atol=0.1)
    unmapped = head_inputs(xc, ["site_c"] * 40, None, scaler, descriptor=False)
    assert unmapped[1:, 1].mean() < -0.5  # without the mapping the site reads as smooth
    # a head file whose mapping covers the leading columns only maps those
    part = SiteMapping(mapping.mean[:2], mapping.sd[:2], {})
    partial = head_inputs(xc, ["site_c"] * 40, part, scaler, descriptor=False)
    assert np.allclose(partial[:, :2], mapped[:, :2], atol=1e-5)
    assert np.allclose(partial[:, 2], unmapped[:, 2], atol=1e-5)
