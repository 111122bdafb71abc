"""Pathomics: tile geometry, tissue detection, features vs the demo's planted latents, memory."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import openslide
import pytest
from scipy.stats import spearmanr

from oncoflow.demo import write_cohort
from oncoflow.demo.cohort import _generator
from oncoflow.errors import FeatureError
from oncoflow.features._synthetic import write_blob_slide
from oncoflow.features._tiles import open_slide, plan_tiles, read_rgb, read_tiles, tissue_mask
from oncoflow.features.pathomics import (
    STATS,
    TILE_FEATURES,
    extract_pathomics,
    iter_tissue_tiles,
    tile_features,
)

REPO = Path(__file__).resolve().parents[2]
N_DEMO = 8


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The net_survival demo cohort (8 patients) and its latents by patient."""
    out = tmp_path_factory.mktemp("demo")
    write_cohort(out, "net_survival", seed=0, patients=N_DEMO)
    latents = {p.patient_id: p.latent for p in _generator("net_survival", 0, N_DEMO).patients()}
    slides = {
        pid: next((out / "net_survival" / "images" / pid / "tp0").glob("WSI_HE.*"))
        for pid in latents
    }
    return slides, latents


@pytest.fixture(scope="module")
def disc_slide(tmp_path_factory):
    """A 4096 x 3072 px slide at 0.5 µm/px with one tissue disc of radius 1000 px."""
    path = tmp_path_factory.mktemp("disc") / "disc.tif"
    write_blob_slide(path, size=(4096, 3072), mpp=0.5, blobs=[(2048, 1536, 1000)])
    return path


def _values(table):
    return table.set_index("feature")["value"]


def test_demo_features_follow_planted_latents(demo):
    slides, latents = demo
    suffixes = {p.suffix for p in slides.values()}
    assert suffixes == {".tif", ".svs"}  # generic TIFF and Aperio both read
    density, disorder, nuclei, entropy = [], [], [], []
    for pid, slide in slides.items():
        table = extract_pathomics(slide, max_tiles=6, seed=1)
        assert (table["n_tiles"] == 6).all()
        assert (table["mpp_used"] == 0.5).all()
        assert (table["level_used"] == 0).all()
        assert (table["tile_px"] == 512).all()
        assert (table["mpp_source"] == "metadata").all()
        values = _values(table)
        density.append(latents[pid]["density"])
        disorder.append(latents[pid]["disorder"])
        nuclei.append(values["nuclei_density_mean"])
        entropy.append(values["fibre_orientation_entropy_mean"])
    rho_density = spearmanr(nuclei, density).statistic
    rho_disorder = spearmanr(entropy, disorder).statistic
    assert rho_density >= 0.6, rho_density
    assert rho_disorder >= 0.6, rho_disorder
    # planted rate is 800 + 4200 rho nuclei / mm²; touching nuclei merge, so fewer blobs
    assert min(nuclei) > 300
    assert max(nuclei) < 5000


def test_tidy_table_has_every_feature_and_stat(demo):
    slides, _ = demo
    slide = slides["NET002"]  # the .svs
    table = extract_pathomics(slide, max_tiles=4)
    expected = [f"{f}_{s}" for f in TILE_FEATURES for s in STATS]
    assert list(table["feature"]) == expected
    assert np.isfinite(table["value"]).all()
    for col in ("n_tiles", "mpp_used", "level_used", "tile_px", "tile_um", "settings_hash"):
        assert table[col].nunique() == 1
    other = extract_pathomics(slide, max_tiles=4, seed=1)
    assert other["settings_hash"].iloc[0] != table["settings_hash"].iloc[0]
    assert len(table["settings_hash"].iloc[0]) == 16
    values = _values(table)
    assert 0.5 <= values["tissue_fraction_q10"] <= 1.0
    assert 0.0 < values["fibre_orientation_entropy_mean"] <= 1.0
    assert 0.0 < values["fibre_coherence_mean"] < 1.0
    assert values["h_mean_q10"] <= values["h_mean_q50"] <= values["h_mean_q90"]


def test_tiles_geometry_and_levels(disc_slide):
    with open_slide(disc_slide) as slide:
        assert slide.level_downsamples == (1.0, 4.0, 16.0)
        # 0.5 µm/px target: level 0, 512 px
        plan = plan_tiles(slide, disc_slide, tile_um=256, target_mpp=0.5)
        assert (plan.level, plan.read_size, plan.tile_px) == (0, (512, 512), 512)
        # 2 µm/px target: level 1 (2 µm/px), 128 px, no resize
        plan = plan_tiles(slide, disc_slide, tile_um=256, target_mpp=2.0)
        assert (plan.level, plan.read_size, plan.tile_px) == (1, (128, 128), 128)
        # 1 µm/px: largest downsample with mpp <= 1 is level 0, read 512 then resize to 256
        plan = plan_tiles(slide, disc_slide, tile_um=256, target_mpp=1.0)
        assert (plan.level, plan.read_size, plan.tile_px) == (0, (512, 512), 256)
        tiles = list(read_tiles(slide, plan))
        assert all(t.rgb.shape == (256, 256, 3) and t.rgb.dtype == np.uint8 for t in tiles)
        # 3 µm/px: level 1 (2 µm/px), 128 px read, shrunk to 85 px
        plan = plan_tiles(slide, disc_slide, tile_um=256, target_mpp=3.0)
        assert (plan.level, plan.read_size, plan.tile_px) == (1, (128, 128), 85)
        assert next(read_tiles(slide, plan)).rgb.shape == (85, 85, 3)


def test_only_tissue_tiles_in_row_major_order(disc_slide):
    tiles = list(iter_tissue_tiles(disc_slide, tile_um=256, target_mpp=0.5))
    centres = np.array([(t.x + 256, t.y + 256) for t in tiles], dtype=float)
    dist = np.hypot(centres[:, 0] - 2048, centres[:, 1] - 1536)
    # a 512 px tile with half its area inside a disc of r = 1000 has its centre within r + 256
    assert (dist < 1000 + 256).all()
    # tiles fully inside the disc are all there: centres within r - 362 (half-diagonal)
    grid = [(x, y) for y in range(0, 3072 - 511, 512) for x in range(0, 4096 - 511, 512)]
    inside = {g for g in grid if np.hypot(g[0] + 256 - 2048, g[1] + 256 - 1536) < 1000 - 363}
    assert inside <= {(t.x, t.y) for t in tiles}
    assert [(t.y, t.x) for t in tiles] == sorted((t.y, t.x) for t in tiles)
    assert [t.index for t in tiles] == list(range(len(tiles)))
    assert all(t.tissue_fraction >= 0.5 for t in tiles)
    # the tile pixels are the slide's pixels
    with openslide.OpenSlide(str(disc_slide)) as slide:
        ref = np.asarray(slide.read_region((tiles[3].x, tiles[3].y), 0, (512, 512)).convert("RGB"))
    np.testing.assert_array_equal(tiles[3].rgb, ref)


def test_read_rgb_outside_the_slide_is_white(disc_slide):
    from PIL import Image

    with openslide.OpenSlide(str(disc_slide)) as slide:
        # straddles the right edge of level 1 (1024 px wide): half is outside the scan
        got = read_rgb(slide, disc_slide, (3800, 1000), 1, (128, 64))
        region = slide.read_region((3800, 1000), 1, (128, 64))
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    expected = np.asarray(Image.alpha_composite(white, region).convert("RGB"))
    assert got.shape == (64, 128, 3)
    np.testing.assert_array_equal(got, expected)
    assert (got[:, 100:] == 255).all()


def test_max_tiles_sampling_is_seeded_subset(disc_slide):
    every = [(t.x, t.y) for t in iter_tissue_tiles(disc_slide)]
    a = [(t.x, t.y) for t in iter_tissue_tiles(disc_slide, max_tiles=5, seed=3)]
    b = [(t.x, t.y) for t in iter_tissue_tiles(disc_slide, max_tiles=5, seed=3)]
    c = [(t.x, t.y) for t in iter_tissue_tiles(disc_slide, max_tiles=5, seed=4)]
    assert a == b
    assert a != c
    assert len(a) == 5
    assert set(a) <= set(every)
    assert a == sorted(a, key=lambda xy: (xy[1], xy[0]))


def test_workers_give_identical_tiles(disc_slide):
    one = list(iter_tissue_tiles(disc_slide, workers=1))
    two = list(iter_tissue_tiles(disc_slide, workers=3))
    assert [(t.x, t.y) for t in one] == [(t.x, t.y) for t in two]
    for t1, t2 in zip(one, two, strict=True):
        np.testing.assert_array_equal(t1.rgb, t2.rgb)


def test_extract_is_deterministic(disc_slide):
    a = extract_pathomics(disc_slide, max_tiles=6, seed=2)
    b = extract_pathomics(disc_slide, max_tiles=6, seed=2, workers=2)
    np.testing.assert_array_equal(a["value"].to_numpy(), b["value"].to_numpy())


def test_tissue_mask_otsu_separates_glass_and_removes_specks():
    rng = np.random.default_rng(0)
    img = np.full((200, 200, 3), 245, dtype=np.uint8)
    img[50:150, 40:160] = (200, 120, 170)  # pink tissue, saturation 0.4
    img[10:13, 10:13] = (200, 100, 160)  # a 9 px speck (dust)
    img[100:104, 180:184] = (10, 10, 10)  # black pen dot
    img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    mask, thr = tissue_mask(img, pixel_um2=64.0)  # 8 µm/px: 156 px = 0.01 mm²
    assert 0.05 < thr < 0.4
    assert mask[50:150, 40:160].all()
    assert mask.sum() == 100 * 120
    assert not mask[10:13, 10:13].any()


def test_tile_features_units_on_a_synthetic_tile():
    # two disc "nuclei" of radius 8 px (area 201 px = 50 µm² at 0.5 µm/px) on pink stroma
    tile = np.zeros((256, 256, 3), dtype=np.uint8)
    tile[...] = (215, 150, 185)
    yy, xx = np.mgrid[:256, :256]
    for cy, cx in ((64, 64), (180, 150)):
        tile[(yy - cy) ** 2 + (xx - cx) ** 2 <= 64] = (90, 60, 140)
    feats = tile_features(tile, mpp=0.5, saturation_threshold=0.1, tissue_fraction=1.0)
    assert set(feats) == set(TILE_FEATURES)
    tissue_mm2 = (256 * 0.5 / 1000) ** 2
    assert feats["nuclei_density"] == pytest.approx(2 / tissue_mm2)
    assert feats["nuclei_area"] == pytest.approx(50.0, rel=0.25)
    assert feats["h_mean"] > 0


def test_fibre_entropy_orders_aligned_and_random_lines():
    rng = np.random.default_rng(0)

    def lines(sd):
        img = np.full((256, 256, 3), 235, dtype=np.uint8)
        for _ in range(150):
            cy, cx = rng.uniform(0, 256, 2)
            theta = 0.4 + sd * rng.standard_normal()
            t = np.linspace(-30, 30, 120)
            r = np.clip(np.rint(cy + t * np.sin(theta)).astype(int), 0, 255)
            c = np.clip(np.rint(cx + t * np.cos(theta)).astype(int), 0, 255)
            img[r, c] = (225, 110, 170)
        return tile_features(img, mpp=1.0, saturation_threshold=0.0)

    aligned, random = lines(0.05), lines(3.0)
    assert aligned["fibre_orientation_entropy"] < 0.6 < random["fibre_orientation_entropy"]
    assert aligned["fibre_coherence"] > random["fibre_coherence"]


def test_missing_mpp_needs_argument(tmp_path, caplog):
    path = tmp_path / "nompp.tif"
    write_blob_slide(path, size=(4096, 4096), mpp=None, blobs=[(2048, 2048, 1600)])
    with pytest.raises(FeatureError, match=r"nompp\.tif: .*no µm/px metadata.*--mpp"):
        extract_pathomics(path)
    table = extract_pathomics(path, mpp=0.25, max_tiles=2)
    assert (table["mpp_source"] == "argument").all()
    assert (table["mpp_used"] == 0.25).all()
    # 256 µm at 0.25 µm/px is 1024 level-0 px; target 0.5 -> read 1024 px from level 0
    assert (table["tile_px"] == 512).all()


def test_mpp_argument_disagreeing_with_metadata_warns(disc_slide, caplog):
    with caplog.at_level(logging.WARNING):
        table = extract_pathomics(disc_slide, mpp=0.25, max_tiles=2)
    assert (table["mpp_used"] == 0.5).all()
    assert (table["mpp_source"] == "metadata").all()
    assert any("differs from the slide metadata" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        extract_pathomics(disc_slide, mpp=0.5, max_tiles=2)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_unopenable_and_corrupt_slides_name_the_file(tmp_path, disc_slide):
    junk = tmp_path / "junk.svs"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(FeatureError, match=r"junk\.svs: cannot open slide"):
        extract_pathomics(junk)
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(disc_slide.read_bytes()[:5000])
    with pytest.raises(FeatureError, match=r"truncated\.tif"):
        extract_pathomics(truncated)
    with pytest.raises(FeatureError, match=r"missing\.svs: slide file does not exist"):
        extract_pathomics(tmp_path / "missing.svs")


def test_corrupt_tile_data_is_an_error_naming_the_file(tmp_path, disc_slide):
    data = bytearray(disc_slide.read_bytes())
    rng = np.random.default_rng(1)
    # scribble over the level-0 JPEG tiles (the TIFF header and IFDs stay intact)
    for i in range(100_000, len(data) // 2, 211):
        data[i] = int(rng.integers(0, 256))
    garbled = tmp_path / "garbled.tif"
    garbled.write_bytes(bytes(data))
    with pytest.raises(FeatureError, match=r"garbled\.tif: cannot read region"):
        extract_pathomics(garbled)


def test_bad_settings_and_no_tissue(tmp_path, disc_slide):
    with pytest.raises(FeatureError, match="tile_um must be positive"):
        extract_pathomics(disc_slide, tile_um=0)
    with pytest.raises(FeatureError, match="max_tiles must be >= 1"):
        extract_pathomics(disc_slide, max_tiles=0)
    empty = tmp_path / "empty.tif"
    write_blob_slide(empty, size=(2048, 2048), mpp=0.5, blobs=[])
    with pytest.raises(FeatureError, match=r"empty\.tif: no tissue tile found"):
        extract_pathomics(empty)


_MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": proc.returncode, "peak_kb": peak_kb, "stderr": proc.stderr[-2000:]}))
"""


def test_large_slide_streams_with_flat_memory(tmp_path):
    slide = tmp_path / "large.tif"
    blobs = write_blob_slide(slide, size=(20480, 20480), mpp=0.5, seed=1)
    with openslide.OpenSlide(str(slide)) as osr:
        assert min(osr.dimensions) >= 20_000
        assert osr.level_count >= 3
    out = tmp_path / "large.csv"
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "extract_pathomics.py"),
        "--slide",
        str(slide),
        "--out",
        str(out),
        "--max-tiles",
        "12",
        "--patient",
        "BIG001",
    ]
    # measure in a fresh parent so RUSAGE_CHILDREN covers this one extraction only
    res = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True
    )
    result = json.loads(res.stdout)
    assert result["rc"] == 0, result["stderr"]
    peak_gb = result["peak_kb"] * 1024 / 1e9
    level0_rgba_gb = 20480 * 20480 * 4 / 1e9
    assert peak_gb < 1.5, peak_gb
    assert peak_gb < level0_rgba_gb / 3
    import pandas as pd

    table = pd.read_csv(out)
    assert (table["patient_id"] == "BIG001").all()
    assert (table["n_tiles"] == 12).all()
    # the planner found about the discs' area in 512 px tiles
    with open_slide(slide) as osr:
        plan = plan_tiles(osr, slide)
    expected = sum(np.pi * r * r for _, _, r in blobs) / 512**2
    assert plan.n_candidates == pytest.approx(expected, rel=0.15)
    assert plan.mask_mpp == pytest.approx(16.0)
