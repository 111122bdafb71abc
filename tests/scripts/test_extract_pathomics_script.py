"""scripts/extract_pathomics.py: tidy CSV, the --mpp policy, one-line errors naming the file."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import load_script

from oncoflow.demo._slides import render_slide, write_slide
from oncoflow.features._synthetic import write_blob_slide
from oncoflow.features.pathomics import STATS, TILE_FEATURES

script = load_script("extract_pathomics")


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """One demo-style H&E slide as generic TIFF and as Aperio .svs, and one without µm/px."""
    root = tmp_path_factory.mktemp("slides")
    level1 = render_slide(np.random.default_rng(0), disorder=0.5, density=0.5)
    write_slide(root / "demo.tif", level1)
    write_slide(root / "demo.svs", level1, aperio=True)
    write_blob_slide(root / "nompp.tif", size=(4096, 4096), mpp=None, blobs=[(2048, 2048, 1600)])
    return root


@pytest.mark.parametrize("name", ["demo.tif", "demo.svs"])
def test_writes_tidy_csv(slides, tmp_path, name):
    out = tmp_path / "sub" / "features.csv"
    args = ["--slide", str(slides / name), "--out", str(out), "--max-tiles", "4"]
    rc = script.main([*args, "--patient", "NET001", "--seed", "7"])
    assert rc == 0
    table = pd.read_csv(out)
    assert list(table.columns[:3]) == ["patient_id", "feature", "value"]
    assert (table["patient_id"] == "NET001").all()
    assert len(table) == len(TILE_FEATURES) * len(STATS)
    assert np.isfinite(table["value"]).all()
    row = table.iloc[0]
    assert (row["n_tiles"], row["mpp_used"], row["level_used"], row["tile_px"]) == (4, 0.5, 0, 512)
    assert (row["tile_um"], row["target_mpp"], row["seed"], row["max_tiles"]) == (256, 0.5, 7, 4)


def test_tif_and_svs_of_the_same_pixels_agree(slides, tmp_path):
    values = []
    for name in ("demo.tif", "demo.svs"):
        out = tmp_path / f"{name}.csv"
        assert script.main(["--slide", str(slides / name), "--out", str(out)]) == 0
        values.append(pd.read_csv(out).set_index("feature")["value"])
    np.testing.assert_allclose(values[0], values[1], rtol=1e-9)


def test_target_mpp_and_tile_size(slides, tmp_path):
    out = tmp_path / "f.csv"
    args = ["--slide", str(slides / "demo.tif"), "--out", str(out)]
    assert script.main([*args, "--tile-um", "128", "--target-mpp", "2", "--max-tiles", "3"]) == 0
    row = pd.read_csv(out).iloc[0]
    assert (row["tile_px"], row["level_used"], row["n_tiles"]) == (64, 1, 3)


def test_missing_mpp_is_an_error_naming_file_and_patient(slides, tmp_path, capsys):
    out = tmp_path / "f.csv"
    rc = script.main(["--slide", str(slides / "nompp.tif"), "--out", str(out), "--patient", "P7"])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1
    assert "patient P7" in errors[0]
    assert "nompp.tif" in errors[0]
    assert "--mpp" in errors[0]
    assert not out.exists()


def test_missing_mpp_with_mpp_argument(slides, tmp_path):
    out = tmp_path / "f.csv"
    args = ["--slide", str(slides / "nompp.tif"), "--out", str(out), "--max-tiles", "2"]
    assert script.main([*args, "--mpp", "0.25"]) == 0
    row = pd.read_csv(out).iloc[0]
    assert (row["mpp_used"], row["mpp_source"], row["tile_px"]) == (0.25, "argument", 512)


def test_mpp_argument_disagreeing_with_metadata_warns(slides, tmp_path, caplog):
    out = tmp_path / "f.csv"
    args = ["--slide", str(slides / "demo.svs"), "--out", str(out), "--max-tiles", "2"]
    with caplog.at_level(logging.WARNING):
        assert script.main([*args, "--mpp", "0.3"]) == 0
    assert any("differs from the slide metadata" in r.getMessage() for r in caplog.records)
    row = pd.read_csv(out).iloc[0]
    assert (row["mpp_used"], row["mpp_source"]) == (0.5, "metadata")


def test_corrupt_slide_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00" + bytes(2000))
    rc = script.main(["--slide", str(bad), "--out", str(tmp_path / "f.csv"), "--patient", "P1"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "patient P1" in lines[0]
    assert "broken.svs" in lines[0]


@pytest.fixture(scope="module")
def resnet18_weights(tmp_path_factory):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_deep_embeddings_from_local_weights(slides, tmp_path, resnet18_weights):
    args = ["--slide", str(slides / "demo.svs"), "--max-tiles", "3"]
    tables = []
    for name in ("a.csv", "b.csv"):
        rc = script.main([*args, "--out", str(tmp_path / name), "--weights", str(resnet18_weights)])
        assert rc == 0
        tables.append(pd.read_csv(tmp_path / name))
    emb = tables[0][tables[0]["feature"].str.startswith("emb_resnet18_")]
    assert len(emb) == 512
    assert emb["feature"].iloc[0] == "emb_resnet18_0000_mean"
    assert np.isfinite(emb["value"]).all()
    assert emb["value"].std() > 0
    np.testing.assert_array_equal(tables[0]["value"], tables[1]["value"])
    # the handcrafted features are unchanged by the embedding, the settings hash is not
    plain = tmp_path / "plain.csv"
    assert script.main([*args, "--out", str(plain)]) == 0
    plain_table = pd.read_csv(plain)
    merged = tables[0].merge(plain_table, on="feature", suffixes=("", "_plain"))
    assert len(merged) == len(TILE_FEATURES) * len(STATS)
    np.testing.assert_array_equal(merged["value"], merged["value_plain"])
    assert tables[0]["settings_hash"].iloc[0] != plain_table["settings_hash"].iloc[0]


def test_embedding_weights_errors(slides, tmp_path, resnet18_weights, capsys):
    args = ["--slide", str(slides / "demo.svs"), "--out", str(tmp_path / "f.csv")]
    assert script.main([*args, "--weights", str(tmp_path / "nope.pt")]) == 1
    assert "nope.pt: embedding weights file does not exist" in capsys.readouterr().err
    rc = script.main([*args, "--weights", str(resnet18_weights), "--arch", "resnet50"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "resnet18.pt: weights do not fit a torchvision resnet50" in err
    assert "Traceback" not in err
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    assert script.main([*args, "--weights", str(junk)]) == 1
    assert "junk.pt: cannot read embedding weights" in capsys.readouterr().err
