from __future__ import annotations

import pandas as pd
import pytest

from oncoflow.errors import CohortError
from oncoflow.formats import read_folds, write_folds
from oncoflow.splits import make_folds, make_splits


def _sites(n: int = 40) -> dict[str, str]:
    return {f"P{i:03d}": ("site_a", "site_b", "site_c")[i % 3] for i in range(n)}


def test_make_splits_external_site_and_stratified_internal():
    sites = _sites()
    strata = {p: i % 2 for i, p in enumerate(sites)}
    splits = make_splits(sites, external_sites=["site_c"], strata=strata, seed=1)
    assert splits.patient_id.is_unique
    assert len(splits) == 40
    ext = set(splits.loc[splits.split == "external_test", "patient_id"])
    assert ext == {p for p, s in sites.items() if s == "site_c"}
    internal = splits.loc[splits.split == "internal_test", "patient_id"]
    assert sorted({strata[p] for p in internal}) == [0, 1]
    assert len(internal) == pytest.approx(0.25 * (40 - len(ext)), abs=1)
    assert splits.equals(make_splits(sites, external_sites=["site_c"], strata=strata, seed=1))


def test_repeated_holdout_folds_are_patient_disjoint_and_train_only():
    splits = make_splits(_sites(), external_sites=["site_c"], seed=0)
    train = set(splits.loc[splits.split == "train", "patient_id"])
    strata = {p: int(p[-1]) % 2 for p in splits.patient_id}
    folds = make_folds(splits, strata=strata, repeats=4, holdout=0.3, seed=3)
    assert set(folds) == {"0", "1", "2", "3", "final"}
    for name in ("0", "1", "2", "3"):
        fit, apply = set(folds[name]["fit"]), set(folds[name]["apply"])
        assert not fit & apply
        assert fit | apply == train
        assert {strata[p] for p in apply} == {0, 1}
    assert folds["0"]["apply"] != folds["1"]["apply"]
    assert set(folds["final"]["fit"]) == train
    assert set(folds["final"]["apply"]) == set(splits.patient_id) - train


def test_kfold_partition_each_train_patient_applied_once():
    splits = make_splits(_sites(), external_sites=["site_c"], seed=0)
    folds = make_folds(splits, k=5, seed=0)
    applied = [p for f in map(str, range(5)) for p in folds[f]["apply"]]
    assert sorted(applied) == sorted(splits.loc[splits.split == "train", "patient_id"])


def test_duplicate_patient_refused_and_round_trip(tmp_path):
    splits = pd.DataFrame(
        {"patient_id": ["A", "A", "B"], "split": ["train", "internal_test", "train"]}
    )
    with pytest.raises(CohortError, match="more than one split: A"):
        make_folds(splits)
    good = make_splits(_sites(12), seed=0)
    folds = make_folds(good, repeats=2, seed=0)
    write_folds(tmp_path / "folds.json", folds, stratify="os_event", seed=0)
    assert read_folds(tmp_path / "folds.json") == folds


def test_make_folds_script_on_demo_cohort_without_splits(tmp_path):
    from conftest import load_script

    from oncoflow.demo import write_cohort

    write_cohort(tmp_path / "demo", "net_survival", seed=0, patients=12)
    cohort = tmp_path / "demo" / "net_survival"
    (cohort / "splits.csv").unlink()
    code = load_script("make_folds").main(
        [
            "--cohort", str(cohort), "--stratify", "os_event", "--external-sites", "site_c",
            "--splits-out", str(tmp_path / "splits.csv"), "--folds-out", str(tmp_path / "f.json"),
            "--repeats", "2",
        ]
    )  # fmt: skip
    assert code == 0
    splits = pd.read_csv(tmp_path / "splits.csv")
    images = pd.read_csv(cohort / "images.csv")
    site_c = set(images.loc[images.site == "site_c", "patient_id"])
    assert set(splits.loc[splits.split == "external_test", "patient_id"]) == site_c
    folds = read_folds(tmp_path / "f.json")
    train = set(splits.loc[splits.split == "train", "patient_id"])
    assert set(folds["0"]["fit"]) | set(folds["0"]["apply"]) == train


def test_leave_one_site_out_folds_validate_on_each_training_site():
    sites = _sites(60)
    splits = make_splits(sites, external_sites=["site_c"], seed=0)
    train = set(splits.loc[splits.split == "train", "patient_id"])
    folds = make_folds(splits, k=2, sites=sites, seed=0)
    assert set(folds) == {"0", "1", "final"}
    for fold, site in (("0", "site_a"), ("1", "site_b")):
        assert set(folds[fold]["apply"]) == {p for p in train if sites[p] == site}
        assert set(folds[fold]["fit"]) == {p for p in train if sites[p] != site}
    assert make_folds(splits, sites=sites) == folds  # k optional, the seed does not matter
    with pytest.raises(CohortError, match=r"folds.k is 3 .* 2 sites \(site_a, site_b\)"):
        make_folds(splits, k=3, sites=sites)
    one_site = splits[splits.patient_id.map(sites) != "site_b"]
    with pytest.raises(CohortError, match="two training sites, found site_a"):
        make_folds(one_site, sites=sites)
    with pytest.raises(CohortError, match="without a site: P000"):
        make_folds(splits, sites={p: s for p, s in sites.items() if p != "P000"})


def test_make_folds_script_leaves_sites_out(tmp_path):
    from conftest import load_script

    from oncoflow.demo import write_cohort

    write_cohort(tmp_path / "demo", "pancreas_multitask", seed=0, patients=18)
    cohort = tmp_path / "demo" / "pancreas_multitask"
    (cohort / "splits.csv").unlink()
    code = load_script("make_folds").main(
        [
            "--cohort", str(cohort), "--external-sites", "site_c", "--by-site", "--k", "2",
            "--splits-out", str(tmp_path / "splits.csv"), "--folds-out", str(tmp_path / "f.json"),
        ]
    )  # fmt: skip
    assert code == 0
    images = pd.read_csv(cohort / "images.csv").drop_duplicates("patient_id")
    site = dict(zip(images.patient_id, images.site, strict=True))
    folds = read_folds(tmp_path / "f.json")
    assert {site[p] for p in folds["0"]["apply"]} == {"site_a"}
    assert {site[p] for p in folds["1"]["apply"]} == {"site_b"}
    assert {site[p] for p in folds["final"]["apply"]} >= {"site_c"}
