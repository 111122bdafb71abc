"""The demo oracles score only what a model can see (pancreas_progression: no future growth)."""

from __future__ import annotations

import numpy as np
import pytest

from oncoflow.demo.pancreas_progression import (
    PancreasProgression,
    observable_probability,
    progression_probability,
)


def _latent(growth: float, noise: tuple[float, ...] = (0.0, 0.0, 0.0)) -> dict:
    return {"growth": growth, "interval_noise": list(noise), "texture": 0.7, "ca19_9": 40.0}


def test_baseline_score_ignores_the_future_growth_rate() -> None:
    slow, fast = _latent(-0.4), _latent(0.6)
    assert progression_probability(fast) > progression_probability(slow) + 0.5
    # at baseline only CA19-9 and texture are known: the growth rate cannot move the score
    assert observable_probability(fast, 0) == pytest.approx(observable_probability(slow, 0))
    # one follow-up shows the volume trend: the score moves most of the way to the true p
    for latent in (slow, fast):
        seen = observable_probability(latent, 2)
        assert abs(seen - progression_probability(latent)) < 0.1
        assert abs(seen - progression_probability(latent)) < abs(
            observable_probability(latent, 0) - progression_probability(latent)
        )


def test_baseline_score_is_the_posterior_mean_by_monte_carlo() -> None:
    latent = _latent(0.0)
    rng = np.random.default_rng(0)
    z_c = np.log(latent["ca19_9"]) - 3.5
    # z_g | CA19-9 by importance weighting of the prior with the CA19-9 likelihood
    z_g = rng.normal(size=400_000)
    weight = np.exp(-0.5 * ((np.log(latent["ca19_9"]) - 3.5 - 0.5 * z_g) / 0.9) ** 2)
    z_h = (latent["texture"] - 0.5) / 0.289
    p = 1 / (1 + np.exp(-(-0.5 + 2 * z_g + z_h + 0.7 * z_c)))
    expected = float(np.sum(weight * p) / np.sum(weight))
    assert observable_probability(latent, 0) == pytest.approx(expected, abs=0.005)


def test_oracle_keeps_the_latent_auc_and_is_below_it() -> None:
    generator = PancreasProgression(7, 120)
    oracle = generator.tables(generator.patients()).oracle["progression_next"]
    assert oracle["metric"] == "auc"
    assert 0.5 < oracle["value"] < oracle["value_latent"]
