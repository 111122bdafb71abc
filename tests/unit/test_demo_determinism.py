"""Same seed -> byte-identical cohort (tables, NIfTI, DICOM, slides); another seed -> different."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from oncoflow.demo import write_cohort

STUDIES = ("pancreas_multitask", "net_survival", "nsclc_mmdls")
TABLES = ("images.csv", "clinical.csv", "outcomes.csv", "splits.csv", "oracle.json")


def _digests(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for label, seed in (("a", 4), ("b", 4), ("c", 5)):
        folder = tmp_path_factory.mktemp(label)
        for study in STUDIES:
            write_cohort(folder, study, seed=seed, patients=6)
        out[label] = folder
    return out


@pytest.mark.parametrize("study", STUDIES)
def test_same_seed_gives_identical_bytes(runs: dict[str, Path], study: str) -> None:
    first = _digests(runs["a"] / study)
    second = _digests(runs["b"] / study)
    assert first == second
    assert any(name.endswith(".dcm") for name in first) or study == "net_survival"
    assert any(name.endswith((".tif", ".svs")) for name in first) or study != "net_survival"


@pytest.mark.parametrize("study", STUDIES)
def test_other_seed_differs(runs: dict[str, Path], study: str) -> None:
    for table in ("clinical.csv", "outcomes.csv"):
        assert (runs["a"] / study / table).read_bytes() != (runs["c"] / study / table).read_bytes()
    ct = "images/{p}001/tp0/CT{s}.nii.gz"
    name = {
        "pancreas_multitask": ct.format(p="PM", s="_venous"),
        "net_survival": ct.format(p="NET", s=""),
        "nsclc_mmdls": ct.format(p="NS", s=""),
    }[study]
    a = np.asarray(nib.load(runs["a"] / study / name).dataobj)
    b = np.asarray(nib.load(runs["b"] / study / name).dataobj)
    c = np.asarray(nib.load(runs["c"] / study / name).dataobj)
    np.testing.assert_array_equal(a, b)
    assert a.shape != c.shape or not np.array_equal(a, c)


def test_rewrite_replaces_the_folder(tmp_path: Path) -> None:
    write_cohort(tmp_path, "lung_synthesis", seed=1, patients=8)
    stray = tmp_path / "lung_synthesis" / "images" / "stray.nii.gz"
    stray.write_bytes(b"x")
    write_cohort(tmp_path, "lung_synthesis", seed=1, patients=6)
    assert not stray.exists()
    assert not (tmp_path / "lung_synthesis" / "images" / "LS007").exists()
    assert all((tmp_path / "lung_synthesis" / t).is_file() for t in TABLES)
