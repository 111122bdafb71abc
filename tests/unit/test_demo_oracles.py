"""The demo oracles score only what a model can see (pancreas_progression: no future growth)."""

from __future__ import annotations

import numpy as np
import pytest

from oncoflow.demo.pancreas_progression import (
    GROWTH_WEIGHT,
    TEXTURE_WEIGHT,
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
    p = 1 / (1 + np.exp(-(-0.5 + GROWTH_WEIGHT * z_g + TEXTURE_WEIGHT * z_h + 0.7 * z_c)))
    expected = float(np.sum(weight * p) / np.sum(weight))
    assert observable_probability(latent, 0) == pytest.approx(expected, abs=0.005)


def test_oracle_keeps_the_latent_auc_and_is_below_it() -> None:
    generator = PancreasProgression(7, 120)
    oracle = generator.tables(generator.patients()).oracle["progression_next"]
    assert oracle["metric"] == "auc"
    assert 0.5 < oracle["value"] < oracle["value_latent"]
    # a tabular model (CA19-9, volumes) cannot see the texture: its ceiling is lower
    assert 0.5 < oracle["value_tabular"] < oracle["value"]


def test_tabular_score_integrates_the_texture_out() -> None:
    latent = _latent(0.2)
    rough, smooth = dict(latent, texture=0.95), dict(latent, texture=0.05)
    assert observable_probability(rough, 1) > observable_probability(smooth, 1) + 0.2
    blind = [observable_probability(x, 1, texture_known=False) for x in (rough, smooth)]
    assert blind[0] == pytest.approx(blind[1])
    # the mean over the uniform texture prior, by Monte Carlo over h
    draws = [dict(latent, texture=h) for h in np.random.default_rng(1).uniform(size=4000)]
    expected = np.mean([observable_probability(x, 1) for x in draws])
    assert blind[0] == pytest.approx(expected, abs=0.01)


def _lesion_ct(h: float, site: str, radius_vox: float, seed: int) -> tuple:
    """A lesion rendered like the nsclc_mmdls CT: texture (8 + 50 h) HU, the site's scanner."""
    from oncoflow.demo._common import Grid, apply_ct_scanner, smooth_noise
    from oncoflow.demo._phantoms import LESION

    rng = np.random.default_rng(seed)
    grid = Grid(size=(24, 24, 20), spacing=(5.2, 5.2, 5.0), origin=(0, 0, 0), centre=(0, 0, 0))
    z, y, x = np.indices((20, 24, 24))
    inside = (z - 9.5) ** 2 + (y - 11.5) ** 2 + (x - 11.5) ** 2 <= radius_vox**2
    texture = smooth_noise(rng, inside.shape, 0.9)
    hu = np.where(inside, 40.0 + (8.0 + 50.0 * h) * texture, -850.0).astype(np.float32)
    ct = apply_ct_scanner(hu, grid, site, rng)
    tissue = np.where(inside, LESION, 0)
    return ct, tissue


def test_observable_histology_reads_the_texture_of_a_large_lesion() -> None:
    from oncoflow.demo.nsclc_mmdls import lesion_core, lusc_probability, observable_lusc_probability

    latent = {"smoking": "former"}
    seen = []
    for h in (0.15, 0.5, 0.85):
        ct, tissue = _lesion_ct(h, "site_a", 7.0, seed=int(100 * h))
        p = observable_lusc_probability(ct, lesion_core(tissue), latent, "site_a", (5.0, 5.2, 5.2))
        # a large core at a quiet scanner pins h down: the score is near the true probability
        assert abs(p - lusc_probability({**latent, "texture": h})) < 0.12
        seen.append(p)
    assert seen[0] < seen[1] < seen[2]


def test_observable_histology_of_an_empty_core_is_the_prior_mean() -> None:
    from oncoflow.demo.nsclc_mmdls import lusc_probability, observable_lusc_probability

    ct, tissue = _lesion_ct(0.9, "site_c", 1.0, seed=3)
    latent = {"smoking": "current"}
    prior = np.mean([lusc_probability({**latent, "texture": h}) for h in np.linspace(0, 1, 101)])
    empty = np.zeros(tissue.shape, dtype=bool)
    p = observable_lusc_probability(ct, empty, latent, "site_c", (5.0, 5.2, 5.2))
    assert p == pytest.approx(prior)


def test_observable_histology_knows_less_at_the_noisy_site() -> None:
    # the same small lesion: at 20 HU noise the score stays nearer the prior than at 10 HU
    from oncoflow.demo.nsclc_mmdls import lesion_core, lusc_probability, observable_lusc_probability

    latent = {"smoking": "never"}
    prior = np.mean([lusc_probability({**latent, "texture": h}) for h in np.linspace(0, 1, 101)])
    shift = {}
    for site in ("site_a", "site_c"):
        moves = []
        for seed in range(6):
            ct, tissue = _lesion_ct(0.9, site, 3.0, seed=seed)
            core = lesion_core(tissue)
            moves.append(observable_lusc_probability(ct, core, latent, site, (5.0, 5.2, 5.2)))
        shift[site] = np.mean(moves) - prior
    assert shift["site_a"] > shift["site_c"] > 0


def test_liver_tabular_oracle_integrates_the_necrosis_change_out() -> None:
    from oncoflow.demo.liver_response import LiverResponse, response_probability

    latent = {"delta": -0.5, "n0": 0.1, "n1": 0.5, "afp_drop": -1.0, "dcp_drop": -0.5}
    blind = response_probability(latent, necrosis_known=False)
    assert blind == pytest.approx(response_probability(dict(latent, n1=0.1), necrosis_known=False))
    rng = np.random.default_rng(2)  # an independent draw of the visible change's prior
    n0 = rng.uniform(0, 0.25, 20_000)
    n1 = np.clip(n0 + rng.normal(0.12, 0.15, 20_000), 0.0, 0.85)
    expected = np.mean(
        [response_probability(dict(latent, n0=a, n1=b)) for a, b in zip(n0, n1, strict=True)]
    )
    assert blind == pytest.approx(expected, abs=0.005)
    # the necrosis the images show: a drop below -n0 leaves n1 = 0, whatever dn was
    assert response_probability(dict(latent, n1=0.0, dn=-0.5)) == pytest.approx(
        response_probability(dict(latent, n1=0.0, dn=-0.2))
    )
    generator = LiverResponse(7, 120)
    oracle = generator.tables(generator.patients()).oracle["response"]
    assert 0.5 < oracle["value_tabular"] < oracle["value"]


def test_net_survival_tabular_oracle_averages_the_hidden_latents_out() -> None:
    from oncoflow.demo.net_survival import NetSurvival, linear_predictor, tabular_predictor

    latent = {"radius": 12.0, "age": 71.0, "texture": 0.9, "density": 0.2, "disorder": 0.6}
    rng = np.random.default_rng(3)
    hidden = rng.uniform(size=(20_000, 3))
    average = np.mean(
        [linear_predictor(dict(latent, texture=a, density=b, disorder=c)) for a, b, c in hidden]
    )
    assert tabular_predictor(latent) == pytest.approx(average, abs=0.02)
    generator = NetSurvival(7, 120)
    oracle = generator.tables(generator.patients()).oracle
    for target in ("os", "pfs"):
        assert 0.5 < oracle[target]["value_tabular"] < oracle[target]["value"]


def _pancreas_phases(h: float, site: str, radius_vox: float, seed: int, phases: int = 3) -> tuple:
    """Phases of one pancreas lesion: one texture (6 + 28 h) HU, each phase its own noise."""
    from oncoflow.demo._common import Grid, apply_ct_scanner, smooth_noise
    from oncoflow.demo._phantoms import LESION

    rng = np.random.default_rng(seed)
    grid = Grid(size=(24, 24, 20), spacing=(4.4, 4.4, 5.0), origin=(0, 0, 0), centre=(0, 0, 0))
    z, y, x = np.indices((20, 24, 24))
    inside = (z - 9.5) ** 2 + (y - 11.5) ** 2 + (x - 11.5) ** 2 <= radius_vox**2
    texture = smooth_noise(rng, inside.shape, 0.9)
    out = []
    for base in (62.0, 72.0, 80.0)[:phases]:
        hu = np.where(inside, base + (6.0 + 28.0 * h) * texture, 110.0).astype(np.float32)
        out.append(apply_ct_scanner(hu, grid, site, rng, circle=False))
    return out, np.where(inside, LESION, 0)


def _posterior(log_lik: np.ndarray) -> tuple[float, float]:
    from oncoflow.demo._oracle import H_GRID, posterior_weights

    w = posterior_weights(log_lik)
    mean = float(w @ H_GRID)
    return mean, float(np.sqrt(w @ (H_GRID - mean) ** 2))


def test_pancreas_pixel_posterior_finds_the_texture_and_the_phases_sharpen_it() -> None:
    from oncoflow.demo.pancreas_progression import pixel_log_likelihood

    spacing = (5.0, 4.4, 4.4)
    for h in (0.15, 0.85):
        sds = {}
        for k in (1, 3):
            means, spreads = [], []
            for seed in range(4):
                phases, tissue = _pancreas_phases(h, "site_a", 6.0, seed=seed, phases=k)
                mean, sd = _posterior(pixel_log_likelihood(phases, tissue, "site_a", spacing))
                means.append(mean)
                spreads.append(sd)
            # a large core pins h down; three phases (three noise draws) know more than one
            assert abs(np.mean(means) - h) < 0.12
            sds[k] = np.mean(spreads)
        assert sds[3] < sds[1]


def test_pancreas_observable_probability_with_texture_weights() -> None:
    from oncoflow.demo._oracle import H_GRID
    from oncoflow.demo.pancreas_progression import PancreasProgression, observable_probability

    latent = PancreasProgression(3, 24).patients()[0].latent
    one_hot = np.zeros(len(H_GRID))
    one_hot[30] = 1.0
    known = observable_probability({**latent, "texture": H_GRID[30]}, 1)
    assert observable_probability(latent, 1, texture_weights=one_hot) == pytest.approx(known)
    flat = np.ones(len(H_GRID))
    tabular = observable_probability(latent, 1, texture_known=False)
    flat_score = observable_probability(latent, 1, texture_weights=flat)
    assert flat_score == pytest.approx(tabular, abs=0.01)


def test_the_scores_of_the_tables_reproduce_their_oracles() -> None:
    from oncoflow.demo.liver_response import LiverResponse
    from oncoflow.demo.nsclc_mmdls import NsclcMmdls
    from oncoflow.metrics.classification import safe_auc
    from oncoflow.metrics.concordance import safe_concordance_index

    for generator, targets in (
        (LiverResponse(7, 120), ["response"]),
        (NsclcMmdls(7, 60), ["dfs", "os"]),
    ):
        tables = generator.tables(generator.patients())
        test = (tables.splits["split"] != "train").to_numpy()
        assert sorted(tables.scores) == sorted(targets)
        for target in targets:
            arrays = {k: np.asarray(v)[test] for k, v in tables.scores[target].items()}
            for name in ("value", "value_tabular"):
                if "y" in arrays:
                    score = safe_auc(arrays["y"], arrays[name])
                else:
                    score = safe_concordance_index(arrays["time"], arrays["event"], arrays[name])
                assert round(score, 4) == pytest.approx(tables.oracle[target][name], abs=1e-4)


def test_lesion_likelihood_finds_the_shift_and_texture_it_was_given() -> None:
    from scipy import ndimage

    from oncoflow.demo._common import smooth_noise
    from oncoflow.demo._oracle import lesion_log_likelihood

    rng = np.random.default_rng(3)
    shape = (16, 16, 16)
    core = np.zeros(shape, dtype=bool)
    core[3:13, 3:13, 3:13] = True
    expected = np.full(shape, 50.0)
    slope = np.ones(shape)
    # as the demo renders it at site_a (gain 1, PSF 0.6 mm, noise 10 HU) on 1 mm voxels: texture
    # of amplitude 25 HU, lesion shift -12 HU (class 1's mean)
    texture = ndimage.gaussian_filter(25.0 * smooth_noise(rng, shape, 0.9), 0.6)
    image = np.round(expected - 12.0 + texture + 10.0 * smooth_noise(rng, shape, 0.6))
    amplitudes = np.linspace(5.0, 45.0, 41)
    log_lik = lesion_log_likelihood(
        image, core, "site_a", (1.0, 1.0, 1.0), amplitudes, expected, slope,
        np.array([10.0, -12.0, -32.0]), 14.0,
    )  # fmt: skip
    assert log_lik.shape == (41, 3)
    best_amplitude, best_class = np.unravel_index(np.argmax(log_lik), log_lik.shape)
    assert best_class == 1
    assert 18.0 < amplitudes[best_amplitude] < 32.0
    # fewer than two core voxels: a flat likelihood
    one = np.zeros_like(core)
    one[5, 5, 5] = True
    flat = lesion_log_likelihood(image, one, "site_a", (1, 1, 1), amplitudes, expected, slope,
                                 np.array([0.0, 1.0]), 14.0)  # fmt: skip
    assert np.all(flat == 0.0)


def test_the_pixel_posterior_sits_between_chance_and_the_descriptors() -> None:
    import tempfile
    from pathlib import Path

    from oncoflow.demo.pancreas_multitask import PancreasMultitask, subtype_posterior
    from oncoflow.metrics.classification import macro_auc

    generator = PancreasMultitask(11, 30)
    patients = [p for p in generator.patients() if not generator.image_specs(p)[0].dicom]
    with tempfile.TemporaryDirectory() as tmp:
        seen = [generator.render(p, generator.image_specs(p), Path(tmp)) for p in patients]
    pixels = np.array([[s[f"p_pixels_{k}"] for k in range(3)] for s in seen])
    assert np.allclose(pixels.sum(axis=1), 1.0)
    y = np.array([p.latent["subtype"] for p in patients])
    known = subtype_posterior(np.array([p.latent["descriptors"] for p in patients]))
    assert 0.7 < macro_auc(y, pixels) <= macro_auc(y, known) + 0.05
    # the observer mostly agrees with the one who knows the descriptors
    assert np.mean(pixels.argmax(axis=1) == known.argmax(axis=1)) > 0.6
