"""Deep models (issue 5): LSTM last step, leakage of the extractor, reproducibility, ensembles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from oncoflow.deep import mmdls_heads, mmdls_tabular, train_pancreas
from oncoflow.deep.data import (
    StemCrops,
    fold_patients,
    intensity_features,
    lesion_core_statistics,
    load_lesions,
    ring_mask,
    select_slices,
)
from oncoflow.deep.ensemble import collect_folds, ensemble_predictions
from oncoflow.deep.workflow import run_fold
from oncoflow.errors import CohortError, ModelError
from oncoflow.features.tabular import TabularEncoder
from oncoflow.formats import write_folds
from oncoflow.models.backbones import LesionPool
from oncoflow.models.cnn_lstm import ProgressionLSTM, collate_sequences
from oncoflow.models.liver import ENCODERS, RUNGS
from oncoflow.models.mm_dls import HEADS, REFIT_GRID, breslow_survival, refit_linear_head
from oncoflow.models.registry import create_model
from oncoflow.splits import make_folds

SIZE = 16


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: small CPU models run many times faster than with shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _crops(rng: np.random.Generator, n: int, radius: float, bright: float) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    disc = (yy**2 + xx**2) <= radius**2
    lesion = rng.normal(0.3, 0.05, (n, SIZE, SIZE)) + bright * disc
    negative = rng.normal(0.3, 0.05, (n, SIZE, SIZE))
    return {
        "lesion": lesion.astype(np.float32),
        "lesion_mask": np.repeat(disc[None], n, 0).astype(np.uint8),
        "slices": np.arange(n),
        "area_mm2": np.full(n, float(disc.sum())) * rng.uniform(0.8, 1.2, n),
        "spacing": np.array([1.0, 1.0, 2.0]),
        "negative": negative.astype(np.float32),
        "organ_patch": rng.normal(0.2, 0.05, (n, SIZE, SIZE)).astype(np.float32),
    }


def _write_npz(path: Path, patient: str, tp: int, stems: dict[str, dict[str, np.ndarray]]) -> None:
    arrays = {f"{s}/{k}": v for s, parts in stems.items() for k, v in parts.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, patient_id=patient, timepoint=tp, stems=np.array(list(stems)), **arrays)


def _write_volume(folder: Path, rng: np.random.Generator, radius: float) -> None:
    """A 6 x 16 x 16 CT (HU) with lung (1) and lesion (2) labels, as the convert stage writes."""
    import SimpleITK as sitk

    zz, yy, xx = np.mgrid[:6, :16, :16]
    lung = ((yy - 8) ** 2 / 36 + (xx - 8) ** 2 / 36) <= 1
    lesion = ((zz - 3) ** 2 + (yy - 8) ** 2 + (xx - 8) ** 2) <= radius**2
    hu = np.where(lung, -800.0, 40.0) + rng.normal(0, 20, lung.shape)
    hu[lesion] = 20.0
    mask = lung.astype(np.uint8)
    mask[lesion] = 2
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(sitk.GetImageFromArray(hu.astype(np.float32)), str(folder / "CT.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(folder / "CT_mask.nii.gz"))


def _cohort(root: Path, study: str, n: int = 24, seed: int = 0) -> dict[str, Path]:
    """A tiny cohort whose label is visible in the crops (lesion growth / brightness)."""
    rng = np.random.default_rng(seed)
    cohort = root / "cohort"
    cohort.mkdir(parents=True)
    patients = [f"P{i:03d}" for i in range(n)]
    labels = rng.integers(0, 2, n)
    labels[:4] = [0, 1, 0, 1]
    clinical = pd.DataFrame(
        {
            "patient_id": patients,
            "age": rng.normal(60, 8, n).round(),
            "marker": rng.lognormal(2, 1, n),
        }
    )
    clinical.to_csv(cohort / "clinical.csv", index=False)
    split = np.where(np.arange(n) < n * 2 // 3, "train", "internal_test")
    split[-2:] = "external_test"
    splits = pd.DataFrame({"patient_id": patients, "split": split})
    splits.to_csv(root / "splits.csv", index=False)
    rows = []
    for i, p in enumerate(patients):
        y = int(labels[i])
        if study == "pancreas":
            n_tp = 3
            stems = ("CT_arterial", "CT_venous")
            for tp in range(n_tp):
                radius = 3 + (tp * (1.5 if y else -0.5))
                crops = {s: _crops(rng, 3, max(radius, 1.5), 0.4) for s in stems}
                _write_npz(root / "lesions" / p / f"{tp}.npz", p, tp, crops)
                rows.append(
                    {
                        "patient_id": p,
                        "timepoint": tp,
                        "progression_next": y if tp < n_tp - 1 else None,
                    }
                )
        elif study == "nsclc":
            radius = 2.5 + 2 * y
            crops = {
                "CT": _crops(rng, 3, radius, 0.4),
                "PET": _crops(rng, 3, radius, 3.0 * (1 + y)),
            }
            _write_npz(root / "lesions" / p / "0.npz", p, 0, crops)
            _write_volume(root / "converted" / p / "0", rng, radius)
            time = rng.exponential(800 if y else 1600)
            rows.append(
                {
                    "patient_id": p,
                    "histology": "LUSC" if y else "LUAD",
                    "stage": ["I", "II", "III"][min(2, int(radius > 3) + int(rng.random() < 0.3))],
                    "os_time": time,
                    "os_event": int(rng.random() < 0.7),
                    "dfs_time": time * 0.8,
                    "dfs_event": 1,
                }
            )
        else:
            for tp in (0, 1):
                radius = 4 if tp == 0 else (2 if y else 4)
                crops = {s: _crops(rng, 3, radius, 0.5) for s in ("MR_T1", "MR_T2")}
                _write_npz(root / "lesions" / p / f"{tp}.npz", p, tp, crops)
            rows.append({"patient_id": p, "response": y})
    outcomes = pd.DataFrame(rows)
    if study == "pancreas":
        outcomes["progression_next"] = outcomes["progression_next"].astype("Int64")
    outcomes.to_csv(cohort / "outcomes.csv", index=False)
    target = {"pancreas": "progression_next", "liver": "response", "nsclc": "os_event"}[study]
    strata = outcomes.groupby("patient_id")[target].max().to_dict()
    write_folds(root / "folds.json", make_folds(splits, strata=strata, k=2, seed=1))
    return {
        "cohort": cohort,
        "folds": root / "folds.json",
        "splits": root / "splits.csv",
        "lesions": root / "lesions",
    }


PANCREAS = {
    "stems": ["CT_arterial", "CT_venous"],
    "clinical": ["age", "marker"],
    "extractor": {
        "backbone": "resnet10",
        "embed_dim": 8,
        "input_size": SIZE,
        "epochs": 2,
        "batch_size": 16,
    },
    "sequence": {"hidden": 8, "epochs": 6, "batch_size": 8, "patience": 0},
}
MMDLS = {
    "stems": ["CT", "PET"],
    "clinical": ["age", "marker"],
    "network": {"dim": 16, "heads": 2},
    "slices": 2,
    "input_size": SIZE,
    "epochs": 3,
    "batch_size": 8,
    "patience": 0,
    "horizons": [365.0, 730.0],
}
LIVER = {
    "stems": ["MR_T1", "MR_T2"],
    "primary": "MR_T2",
    "clinical": ["marker"],
    "network": {"backbone": "resnet10", "dim": 8, "hidden": 8},
    "slices": 2,
    "input_size": SIZE,
    "epochs": 4,
    "batch_size": 8,
    "patience": 0,
}


def test_lstm_reads_the_true_last_step_of_each_sequence() -> None:
    torch.manual_seed(0)
    model = ProgressionLSTM(input_dim=3, clinical_dim=0, hidden=5, layers=2, dropout=0.0).eval()
    seqs = [torch.randn(n, 3) for n in (2, 4, 3)]
    padded, lengths = collate_sequences(seqs)
    padded[0, 2:] = 100.0  # garbage in the padding must not matter
    with torch.no_grad():
        batch = model.last_states(padded, lengths)
        for i, seq in enumerate(seqs):
            out, _ = model.lstm(seq.unsqueeze(0))
            assert torch.allclose(batch[i], out[0, -1], atol=1e-6)
        # the state after the padded tail differs from the true last step
        out, _ = model.lstm(padded[:1])
        assert not torch.allclose(out[0, -1], batch[0], atol=1e-3)


def test_extractor_sees_only_training_patients_of_the_fold(tmp_path: Path, monkeypatch) -> None:
    paths = _cohort(tmp_path, "pancreas")
    seen: list[set[str]] = []
    original = train_pancreas.slice_examples

    def recording(lesions, stems):
        seen.append(set(lesions))
        return original(lesions, stems)

    monkeypatch.setattr(train_pancreas, "slice_examples", recording)
    _, summary = run_fold(
        model="cnn_lstm",
        settings=PANCREAS,
        fold="0",
        out_dir=tmp_path / "fold_0",
        resume_dir=tmp_path / "resume",
        seed=3,
        **paths,
    )
    provenance = summary
    folds = json.loads(paths["folds"].read_text())["folds"]
    train, inner = set(provenance["train_patients"]), set(provenance["inner_patients"])
    assert seen[0] == train  # the extractor's training crops
    assert seen[1] == inner  # its selection crops
    forbidden = set(folds["0"]["apply"]) | set(folds["final"]["apply"])
    assert not (seen[0] | seen[1]) & forbidden
    assert train | inner == set(folds["0"]["fit"])
    predictions = pd.read_csv(tmp_path / "fold_0" / "predictions.csv", dtype={"patient_id": str})
    assert set(predictions["patient_id"]) == forbidden
    assert set(predictions.loc[predictions["split"] == "validation", "patient_id"]) == set(
        folds["0"]["apply"]
    )
    # one row per labelled time point (3 time points -> 2 labels per patient)
    assert (predictions.groupby("patient_id").size() == 2).all()
    history = pd.read_csv(tmp_path / "fold_0" / "history.csv")
    assert set(history["stage"]) == {"extractor", "sequence"}


def test_negative_control_runs_permutations_sharing_the_label_free_extractor(
    tmp_path: Path, monkeypatch
) -> None:
    paths = _cohort(tmp_path, "pancreas")
    extractor_batches: list[int] = []
    original = train_pancreas._augment

    def counting(images, generator):
        extractor_batches.append(1)
        return original(images, generator)

    monkeypatch.setattr(train_pancreas, "_augment", counting)  # once per extractor batch
    options = {"model": "cnn_lstm", "settings": PANCREAS, "fold": "0", "seed": 3, **paths}
    real, _ = run_fold(out_dir=tmp_path / "real", resume_dir=tmp_path / "r_real", **options)
    real_batches = len(extractor_batches)
    assert real_batches > 0
    rows, summary = run_fold(
        out_dir=tmp_path / "perm",
        resume_dir=tmp_path / "r_perm",
        permute=True,
        permutations=3,
        **options,
    )
    assert summary["permutations"] == 3
    assert sorted(rows["permutation"].unique()) == [0, 1, 2]
    per_run = [part.drop(columns="permutation") for _, part in rows.groupby("permutation")]
    for part in per_run:  # every run predicts the same patients x time points as the real model
        assert part[["patient_id", "timepoint"]].values.tolist() == (
            real[["patient_id", "timepoint"]].values.tolist()
        )
        pd.testing.assert_series_equal(
            part["y_true"].reset_index(drop=True), real["y_true"].reset_index(drop=True)
        )
    # each run has its own permutation, so its own scores
    assert not np.allclose(per_run[0]["y_score"], per_run[1]["y_score"])
    assert not np.allclose(per_run[0]["y_score"], real["y_score"])
    # the extractor does not read the outcome: the control's three runs train it once
    assert len(extractor_batches) == 2 * real_batches
    extractor = torch.load(tmp_path / "r_perm" / "extractor.pt", weights_only=False)
    assert extractor["epoch"] == PANCREAS["extractor"]["epochs"]
    assert sorted(d.name for d in (tmp_path / "r_perm").glob("permutation_*")) == [
        "permutation_0",
        "permutation_1",
        "permutation_2",
    ]
    history = pd.read_csv(tmp_path / "perm" / "history.csv")
    assert sorted(history["permutation"].unique()) == [0, 1, 2]
    ensemble = ensemble_predictions([rows])
    assert ensemble.groupby("permutation").size().tolist() == [len(real)] * 3


@pytest.mark.parametrize("rung", RUNGS)
def test_same_seed_same_predictions_and_other_seed_differs(tmp_path: Path, rung: str) -> None:
    paths = _cohort(tmp_path, "liver")
    tables = []
    for run, seed in (("a", 5), ("b", 5), ("c", 6)):
        tables.append(
            run_fold(
                model=rung,
                settings=LIVER,
                fold="1",
                out_dir=tmp_path / run,
                resume_dir=tmp_path / f"resume_{run}",
                seed=seed,
                **paths,
            )[0]
        )
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert not np.allclose(tables[0]["y_score"], tables[2]["y_score"])
    assert tables[0]["y_score"].between(0, 1).all()


def test_lesion_pool_rung_trains_reproducibly(tmp_path: Path) -> None:
    settings = {**LIVER, "network": {**LIVER["network"], "encoder": "lesion_pool"}}
    paths = _cohort(tmp_path, "liver")
    tables = [
        run_fold(
            model="relation_net",
            settings=settings,
            fold="0",
            out_dir=tmp_path / run,
            resume_dir=tmp_path / f"resume_{run}",
            seed=4,
            **paths,
        )[0]
        for run in ("a", "b")
    ]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert tables[0]["y_score"].between(0, 1).all()
    weights = torch.load(tmp_path / "a" / "model.pt", weights_only=False)["state_dict"]
    assert any(".pool." in name for name in weights)
    assert not any(".trunk." in name for name in weights)


def test_killed_fold_resumes_to_the_same_predictions(tmp_path: Path) -> None:
    paths = _cohort(tmp_path, "liver")
    whole, _ = run_fold(
        model="relation_net",
        settings=LIVER,
        fold="0",
        out_dir=tmp_path / "whole",
        resume_dir=tmp_path / "rw",
        seed=2,
        **paths,
    )
    from oncoflow.train import loop

    original = loop.fit

    def stop_after_two(*args, **kwargs):
        def hook(epoch: int) -> None:
            if epoch == 2:
                raise KeyboardInterrupt

        kwargs["on_epoch_end"] = hook
        return original(*args, **kwargs)

    import oncoflow.deep.common as common

    common.fit = stop_after_two
    try:
        with pytest.raises(KeyboardInterrupt):
            run_fold(
                model="relation_net",
                settings=LIVER,
                fold="0",
                out_dir=tmp_path / "killed",
                resume_dir=tmp_path / "rr",
                seed=2,
                **paths,
            )
    finally:
        common.fit = original
    assert not (tmp_path / "killed" / "predictions.csv").exists()
    assert torch.load(tmp_path / "rr" / "resume.pt", weights_only=False)["epoch"] == 2
    resumed, _ = run_fold(
        model="relation_net",
        settings=LIVER,
        fold="0",
        out_dir=tmp_path / "killed",
        resume_dir=tmp_path / "rr",
        seed=2,
        **paths,
    )
    pd.testing.assert_frame_equal(whole, resumed)
    history = pd.read_csv(tmp_path / "killed" / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_rung_builds_and_reads_its_own_inputs(encoder: str) -> None:
    # (B, Q sequences, pre/post, k slices, image/mask, H, W); the mask covers the centre
    images = torch.randn(3, 2, 2, 2, 2, SIZE, SIZE)
    images[..., 1, :, :] = 0.0
    images[..., 1, 4:-4, 4:-4] = 1.0
    tab = torch.randn(3, 4)
    for rung in RUNGS:
        model = create_model(
            rung,
            tabular_dim=4,
            n_sequences=2,
            encoder=encoder,
            backbone="resnet10",
            dim=8,
            hidden=8,
        ).eval()
        with torch.no_grad():
            base = model(images, tab)
            assert base.shape == (3, 2)
            changed = images.clone()
            changed[:, 1, 1] += 1.0  # second sequence, post time point
            moved = not torch.allclose(model(changed, tab), base)
        # the single-sequence rungs read sequence 0 only; the baseline also time point 0 only
        assert moved == (rung in ("multi_sequence", "relation_net"))


def test_lesion_pool_reads_the_lesion_only_wherever_it_lies() -> None:
    torch.manual_seed(0)
    pool = LesionPool(width=4, dim=6).eval()
    lesion = torch.rand(1, 2, 6, 6)
    x = torch.zeros(1, 2, SIZE, SIZE)
    mask = torch.zeros_like(x)
    x[..., 2:8, 2:8], mask[..., 2:8, 2:8] = lesion, 1.0
    with torch.no_grad():
        base = pool(x, mask)
        # the same lesion elsewhere in the crop: the same vector
        moved, moved_mask = torch.zeros_like(x), torch.zeros_like(x)
        moved[..., 9:15, 8:14], moved_mask[..., 9:15, 8:14] = lesion, 1.0
        assert torch.allclose(pool(moved, moved_mask), base, atol=1e-5)
        noisy = x.clone()
        noisy[..., 12:, 12:] = torch.rand(1, 2, SIZE - 12, SIZE - 12)
        assert torch.allclose(pool(noisy, mask), base, atol=1e-6)
        # a darker lesion core changes it
        darker = x.clone()
        darker[..., 4:6, 4:6] = 0.0
        assert not torch.allclose(pool(darker, mask), base)


def test_multi_sequence_branches_get_their_own_sequence() -> None:
    model = create_model("multi_sequence", tabular_dim=0, n_sequences=2, backbone="resnet10").eval()
    seen = []
    for encoder in model.encoders:
        encoder.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    images = torch.randn(1, 2, 2, 1, 2, SIZE, SIZE)
    with torch.no_grad():
        model(images, torch.zeros(1, 0))
    assert torch.equal(seen[0], images[:, 0, 0])
    assert torch.equal(seen[2], images[:, 1, 0])
    assert not torch.equal(seen[0], seen[2])


def test_ensemble_averages_test_rows_and_keeps_validation(tmp_path: Path) -> None:
    a = pd.DataFrame(
        {
            "patient_id": ["A", "T"],
            "split": ["validation", "internal_test"],
            "fold": ["0", "0"],
            "target": "y",
            "y_true": [1, 0],
            "y_score": [0.9, 0.2],
        }
    )
    b = pd.DataFrame(
        {
            "patient_id": ["B", "T"],
            "split": ["validation", "internal_test"],
            "fold": ["1", "1"],
            "target": "y",
            "y_true": [0, 0],
            "y_score": [0.1, 0.4],
        }
    )
    for name, frame in (("a", a), ("b", b)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    out = collect_folds([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "all.csv")
    final = out[out["fold"] == "final"]
    assert final["y_score"].tolist() == pytest.approx([0.3])
    assert sorted(out.loc[out["split"] == "validation", "patient_id"]) == ["A", "B"]
    with pytest.raises(ModelError, match="validated in two folds"):
        ensemble_predictions([a, a.assign(fold="1")])


def test_tabular_encoder_logs_skewed_columns_with_training_statistics() -> None:
    train = pd.DataFrame(
        {"ca": np.exp(np.arange(20.0) / 2), "age": np.arange(20.0), "sex": ["M", "F"] * 10}
    )
    enc = TabularEncoder().fit(train)
    assert enc.numeric_["ca"][0]
    assert not enc.numeric_["age"][0]
    x = enc.transform(train)
    assert x.shape == (20, 3)
    assert np.allclose(x[:, :2].mean(0), 0, atol=1e-6)
    test = pd.DataFrame({"ca": [np.nan], "age": [100.0], "sex": ["X"]})
    row = enc.transform(test)[0]
    assert row[0] == pytest.approx(
        (np.median(np.arange(20.0) / 2) - np.mean(np.arange(20.0) / 2))
        / np.std(np.arange(20.0) / 2)
    )
    assert row[2] == 0.0  # unseen category -> reference


def test_tabular_encoder_names_each_output_column() -> None:
    # a text column before numeric ones: columns_[i] must name column i of transform()
    train = pd.DataFrame(
        {
            "sex": ["M", "F"] * 10,
            "smoking": ["never", "former", "current", "former"] * 5,
            "age": np.arange(20.0),
            "suv": np.linspace(2.0, 9.0, 20),
        }
    )
    enc = TabularEncoder().fit(train)
    x = enc.transform(train)
    assert x.shape[1] == enc.width == len(enc.columns_)
    for name in ("age", "suv"):
        column = x[:, enc.columns_.index(name)]
        assert np.corrcoef(column, train[name])[0, 1] == pytest.approx(1.0)
    assert np.array_equal(x[:, enc.columns_.index("sex=M")], (train["sex"] == "M").to_numpy())
    never = x[:, enc.columns_.index("smoking=never")]
    assert np.array_equal(never, (train["smoking"] == "never").to_numpy())


def test_tabular_encoder_from_its_state_encodes_new_rows_identically() -> None:
    # the state saved in model.pt, through JSON, restores an encoder that fits nothing
    train = pd.DataFrame(
        {"age": [50.0, 61, 70, np.nan], "ca19_9": [3.0, 30, 300, 3000], "sex": list("FMMF")}
    )
    new = pd.DataFrame({"age": [np.nan, 80], "ca19_9": [-1.0, 12], "sex": ["X", "M"]})
    enc = TabularEncoder().fit(train)
    restored = TabularEncoder.from_state(json.loads(json.dumps(enc.state())))
    assert restored.columns_ == enc.columns_
    assert np.array_equal(restored.transform(new), enc.transform(new))


def test_fold_patients_is_a_stratified_partition() -> None:
    fit = [f"P{i}" for i in range(20)]
    labels = {p: int(i < 5) for i, p in enumerate(fit)}
    train, inner = fold_patients(fit, labels, inner_fraction=0.2, seed=0)
    assert sorted(train + inner) == sorted(fit)
    assert not set(train) & set(inner)
    assert sum(labels[p] for p in inner) == 1
    assert len(inner) == 4


def test_select_slices_largest_areas_in_z_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    crops = _crops(rng, 4, 3, 0.5)
    crops["area_mm2"] = np.array([1.0, 5.0, 3.0, 4.0])
    _write_npz(tmp_path / "P" / "0.npz", "P", 0, {"CT": crops})
    stem = load_lesions(tmp_path / "P", ["CT"])[0]["CT"]
    picked = select_slices(stem, 2)
    assert np.array_equal(picked, stem.lesion[[1, 3]])
    assert np.array_equal(select_slices(stem, 6), stem.lesion[[0, 1, 2, 3, 0, 1]])
    assert stem.volume_mm3 == pytest.approx(13.0 * 2.0)


def test_intensity_features_mean_sd_inside_the_mask_carried_over_empty_time_points(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    for tp, bright in ((0, 0.2), (1, 0.6), (2, 0.0)):
        phases = {}
        for stem in ("A", "B"):
            crops = _crops(rng, 3, 4 if tp < 2 else 0.1, bright)
            if tp == 2:
                crops["lesion_mask"][:] = 0  # the lesion vanished from the mask
            phases[stem] = crops
        _write_npz(tmp_path / "P" / f"{tp}.npz", "P", tp, phases)
    lesions = load_lesions(tmp_path / "P", ["A", "B"])
    out = intensity_features(lesions, ["A", "B"])
    for tp in (0, 1):
        inside = [c.lesion[c.mask > 0] for c in lesions[tp].values()]
        assert out[tp][0] == pytest.approx(np.mean([v.mean() for v in inside]), rel=1e-5)
        assert out[tp][1] == pytest.approx(np.mean([v.std() for v in inside]), rel=1e-5)
    assert out[1][0] > out[0][0] + 0.3  # brighter lesion
    np.testing.assert_array_equal(out[2], out[1])  # carried forward


def test_intensity_features_of_the_eroded_core_read_the_texture_not_the_rim() -> None:
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:32, :32] - 15.5
    disc = np.broadcast_to(yy**2 + xx**2 <= 9.0**2, (3, 32, 32))
    core = ndimage.binary_erosion(disc, structure=np.ones((1, 3, 3), bool), iterations=2)
    sds = {}
    for texture in (0.01, 0.08):
        image = np.zeros((3, 32, 32), np.float32)
        image[disc] = 0.5 + texture * rng.standard_normal(int(disc.sum()))
        image[disc & ~core] = 0.2  # the rim: partial volume with darker surroundings
        crops = StemCrops(
            image, disc.astype(np.uint8), np.full(3, 250.0), 2.0, image[:0], image[:0]
        )
        whole = intensity_features({0: {"A": crops}}, ["A"])[0]
        inner = intensity_features({0: {"A": crops}}, ["A"], erode=2)[0]
        assert whole[1] == pytest.approx(image[disc].std(), rel=1e-5)
        assert inner[1] == pytest.approx(image[core].std(), rel=1e-5)
        sds[texture] = (whole[1], inner[1])
    assert sds[0.08][1] > 5 * sds[0.01][1]  # the core's SD follows the texture
    assert sds[0.08][0] < 1.5 * sds[0.01][0]  # the whole mask's SD is mostly the rim
    tiny = np.zeros((3, 32, 32), np.uint8)
    tiny[:, 10:13, 10:13] = 1  # no core left: the whole mask
    small = StemCrops(image, tiny, np.full(3, 9.0), 2.0, image[:0], image[:0])
    assert intensity_features({0: {"A": small}}, ["A"], erode=2)[0][0] == pytest.approx(
        image[tiny > 0].mean(), rel=1e-5
    )


def test_a_ring_reference_cancels_a_smooth_gain_and_keeps_the_lesion_contrast() -> None:
    # one lesion (0.3) in liver (0.6) under gains 0.7 and 1.3: the plain core mean moves with
    # the gain, its ratio to the ring of surrounding liver stays at 0.5
    yy, xx = np.mgrid[:40, :40] - 19.5
    disc = np.broadcast_to(yy**2 + xx**2 <= 8.0**2, (2, 40, 40)).astype(np.uint8)
    ring = ring_mask(disc, 2, 6)
    assert not (ring & (disc > 0)).any()
    assert ring[0].sum() > 0
    near = ndimage.binary_dilation(disc > 0, np.ones((1, 3, 3), bool), iterations=1)
    assert not (ring & near).any()  # the first two pixels around the lesion are left out
    rows = {}
    for gain in (0.7, 1.3):
        image = np.full((2, 40, 40), 0.6 * gain, np.float32)
        image[disc > 0] = 0.3 * gain
        crops = StemCrops(image, disc, np.full(2, 200.0), 2.0, image[:0], image[:0])
        rows[gain] = (
            intensity_features({0: {"A": crops}}, ["A"])[0],
            intensity_features({0: {"A": crops}}, ["A"], reference_ring=(2, 6))[0],
        )
    assert rows[1.3][0][0] == pytest.approx(rows[0.7][0][0] * 1.3 / 0.7, rel=1e-5)
    assert rows[0.7][1][0] == pytest.approx(0.5, rel=1e-5)
    assert rows[1.3][1][0] == pytest.approx(0.5, rel=1e-5)
    with pytest.raises(ValueError, match="inner < outer"):
        ring_mask(disc, 3, 3)


def test_intensity_features_cross_phase_texture_ignores_the_noise_of_each_phase() -> None:
    # three phases share one texture (sd 0.05); phase noise of sd 0.02 or 0.10 inflates their
    # SD but not the texture they share, which stays near 0.05 whatever the noise
    rng = np.random.default_rng(3)
    mask = np.zeros((4, 32, 32), np.uint8)
    mask[:, 6:26, 6:26] = 1
    texture = 0.05 * rng.standard_normal(mask.shape)
    shared = {}
    for noise in (0.02, 0.10):
        phases = {}
        for stem in ("A", "B", "C"):
            image = (0.4 + texture + noise * rng.standard_normal(mask.shape)).astype(np.float32)
            phases[stem] = StemCrops(image, mask, np.full(4, 400.0), 2.0, image[:0], image[:0])
        row = intensity_features({0: phases}, ["A", "B", "C"], cross_phase=True)[0]
        assert row.shape == (3,)
        assert row[1] == pytest.approx(np.hypot(0.05, noise), rel=0.05)  # SD: texture + noise
        shared[noise] = row[2]
    assert shared[0.02] == pytest.approx(0.05, rel=0.08)
    assert shared[0.10] == pytest.approx(0.05, rel=0.08)
    other = dict(phases, C=StemCrops(image, mask * 0, np.full(4, 0.0), 2.0, image[:0], image[:0]))
    with pytest.raises(CohortError, match="lesion mask differs"):
        intensity_features({0: other}, ["A", "B", "C"], cross_phase=True)
    with pytest.raises(CohortError, match="two or more"):
        intensity_features({0: phases}, ["A"], cross_phase=True)


def test_lesion_core_statistics_ignore_the_partial_volume_rim() -> None:
    rng = np.random.default_rng(0)
    zz, yy, xx = np.mgrid[:24, :24, :24] - 11.5
    lesion = zz**2 + yy**2 + xx**2 <= 7.5**2
    rim = lesion & ~ndimage.binary_erosion(lesion)
    spreads = []
    for texture in (5.0, 40.0):
        image = np.full(lesion.shape, -800.0)  # lung around a soft-tissue nodule
        image[lesion] = 40.0 + texture * rng.standard_normal(int(lesion.sum()))
        image[rim] = -300.0  # partial volume at the boundary
        stats = lesion_core_statistics(image, lesion)
        core = image[ndimage.binary_erosion(lesion)]
        assert stats["median"] == pytest.approx(np.median(core))
        assert stats["spread"] == pytest.approx(np.percentile(core, 90) - np.percentile(core, 10))
        spreads.append(stats["spread"])
    assert spreads[1] > 5 * spreads[0]  # the rim no longer hides the texture
    tiny = np.zeros_like(lesion)
    tiny[10:12, 10:12, 10:12] = True  # no core left: the whole lesion is used
    assert lesion_core_statistics(np.arange(tiny.size).reshape(tiny.shape), tiny)["median"] > 0
    assert np.isnan(lesion_core_statistics(image, np.zeros_like(lesion))["p90"])


def test_breslow_survival_matches_lifelines_baseline() -> None:
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(1)
    x = rng.normal(size=60)
    t = rng.exponential(np.exp(-0.8 * x)) * 100
    e = (rng.random(60) < 0.7).astype(float)
    cph = CoxPHFitter(baseline_estimation_method="breslow").fit(
        pd.DataFrame({"x": x, "T": t, "E": e}), "T", "E"
    )
    risk = cph.params_["x"] * x
    # at event times: lifelines interpolates its step function linearly in between
    horizons = sorted(t[e > 0])[10:40:20]
    ours = breslow_survival(risk, t, e, risk[:5], horizons)
    theirs = cph.predict_survival_function(pd.DataFrame({"x": x[:5]}), times=horizons).to_numpy().T
    assert ours == pytest.approx(theirs, rel=1e-3, abs=1e-4)


def test_mm_dls_fold_predicts_four_targets_and_evaluates_as_multitask(tmp_path: Path) -> None:
    from oncoflow.evaluate.card import card_markdown, model_card
    from oncoflow.evaluate.engine import evaluate_predictions

    paths = _cohort(tmp_path, "nsclc")
    pet = pd.DataFrame(
        {
            "patient_id": [f"P{i:03d}" for i in range(24)],
            "timepoint": 0,
            "pet__SUVmax": np.arange(24.0),
        }
    )
    pet.to_csv(tmp_path / "pet.csv", index=False)
    tables = []
    for fold in ("0", "1"):
        tables.append(
            run_fold(
                model="mm_dls",
                settings={
                    **MMDLS,
                    "heads": {"stage": {"columns": ["pet:pet__SUVmax", "age"], "refit": True}},
                },
                fold=fold,
                out_dir=tmp_path / fold,
                resume_dir=tmp_path / f"resume_{fold}",
                features={"pet": tmp_path / "pet.csv"},
                converted=tmp_path / "converted",
                seed=1,
                **paths,
            )[0]
        )
    model = torch.load(tmp_path / "0" / "model.pt", weights_only=False)
    assert model["network"]["head_columns"]["stage"] == [0, 2]  # age, (marker), pet:pet__SUVmax
    assert model["refit"]["stage"]["C"] in REFIT_GRID
    assert model["refit"]["stage"]["train_rows"] == len(model["train_patients"])
    net = create_model("mm_dls", **model["network"])
    net.load_state_dict(model["state_dict"])  # the payload rebuilds the refit model
    assert net.stage.in_features == 128 + 2
    assert "segmentor" not in model  # crops come from the lesions stage's masks
    history = pd.read_csv(tmp_path / "0" / "history.csv")
    assert set(history["stage"]) == {"multitask"}
    frame = ensemble_predictions(tables)
    assert set(frame["target"]) == {"histology", "stage", "dfs", "os"}
    os_rows = frame[frame["target"] == "os"]
    assert os_rows[["survival_365", "survival_730"]].notna().all().all()
    assert (os_rows["survival_365"] >= os_rows["survival_730"]).all()  # S(t) decreases
    stage_rows = frame[frame["target"] == "stage"].dropna(axis=1, how="all")
    probs = stage_rows.filter(like="y_score_")
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    metrics = evaluate_predictions(frame, horizons=[365.0, 730.0], n_boot=20)
    assert metrics["kind"] == "multitask"
    assert set(metrics["tasks"]) == {"binary", "multiclass", "survival"}
    assert set(metrics["models"]["model"]) == {"histology", "stage", "dfs", "os"}
    text = card_markdown(model_card(metrics, {"study": "s", "variant": "mm_dls"}))
    assert text.count("| model | target |") == 3
    run_fold(
        model="mm_dls_tabular",  # the input ablation: no head reads the image vector
        settings=MMDLS,
        fold="0",
        out_dir=tmp_path / "tabular",
        resume_dir=tmp_path / "resume_tabular",
        features={"pet": tmp_path / "pet.csv"},
        converted=tmp_path / "converted",
        seed=1,
        **paths,
    )
    tabular = torch.load(tmp_path / "tabular" / "model.pt", weights_only=False)
    assert tabular["network"]["head_image"] == dict.fromkeys(HEADS, False)
    assert tabular["network"]["head_columns"] == {}  # every head reads every tabular column


def test_streamed_crops_equal_the_preloaded_tensors(tmp_path: Path) -> None:
    from oncoflow.deep.common import load_fold
    from oncoflow.deep.train_liver import LiverSettings, PatientCropDataset, _tensors

    paths = _cohort(tmp_path, "liver")
    settings = LiverSettings(**{**LIVER, "network": {}})
    inputs = load_fold(fold="0", stems=settings.stems, strata={}, **paths)
    patients = inputs.test[:3]
    images, volumes = _tensors(inputs, patients, settings)
    dataset = PatientCropDataset(paths["lesions"], patients, settings)
    assert len(dataset) == 3
    for i in range(3):
        x, v = dataset[i]
        assert torch.equal(x, images[i])
        assert np.allclose(v.numpy(), volumes[i])
    assert images.shape[1:] == (
        2,
        2,
        2,
        2,
        SIZE,
        SIZE,
    )  # sequences x pre/post x slices x image/mask


def test_lesion_means_are_the_core_means_of_the_sequences_a_rung_reads(tmp_path: Path) -> None:
    from oncoflow.deep.common import load_fold
    from oncoflow.deep.train_liver import (
        CORE_ERODE,
        REFERENCE_RING,
        LiverSettings,
        patient_tensor,
    )

    paths = _cohort(tmp_path, "liver")
    inputs = load_fold(fold="0", stems=LIVER["stems"], strata={}, **paths)
    patient = inputs.test[0]
    lesions = load_lesions(paths["lesions"] / patient, LIVER["stems"])
    square = np.ones((1, 3, 3), dtype=bool)
    expected = {}
    for stem in LIVER["stems"]:
        for tp in (0, 1):
            crops = lesions[tp][stem]
            core = ndimage.binary_erosion(crops.mask > 0, square, iterations=CORE_ERODE)
            core = core if core.sum() >= 20 else crops.mask > 0  # a lesion too small for a core
            expected[stem, tp] = crops.lesion[core].mean()
    plain = LiverSettings(**{**LIVER, "network": {}})
    _, volumes = patient_tensor(lesions, patient, plain)
    for rung, stems in (("relation_net", LIVER["stems"]), ("single_temporal", ["MR_T2"])):
        settings = LiverSettings(**{**LIVER, "network": {}, "rung": rung, "lesion_means": True})
        _, columns = patient_tensor(lesions, patient, settings)
        means = [expected[stem, tp] for stem in stems for tp in (0, 1)]
        assert np.allclose(columns, [*volumes, *means], atol=1e-5)
    # with the ring reference: the log ratio of the core mean to the surrounding ring's median
    ringed = LiverSettings(
        **{**LIVER, "network": {}, "lesion_means": True} | {"lesion_reference": True}
    )
    _, columns = patient_tensor(lesions, patient, ringed)
    ratios = []
    for stem in LIVER["stems"]:
        for tp in (0, 1):
            crops = lesions[tp][stem]
            ring = crops.lesion[ring_mask(crops.mask > 0, *REFERENCE_RING)]
            ratios.append(np.log(expected[stem, tp] / np.median(ring)))
    assert np.allclose(columns, [*volumes, *ratios], atol=1e-4)


def test_a_liver_model_refuses_columns_of_another_lesion_means_setting(tmp_path: Path) -> None:
    paths = _cohort(tmp_path, "liver")
    settings = {**LIVER, "epochs": 1, "lesion_means": True}
    run_fold(
        model="single_temporal",
        settings=settings,
        fold="0",
        out_dir=tmp_path / "means",
        resume_dir=tmp_path / "resume",
        seed=1,
        **paths,
    )
    payload = torch.load(tmp_path / "means" / "model.pt", weights_only=False)
    assert len(payload["volume_mean"]) == 4  # two log volumes + MR_T2 pre and post
    from oncoflow.deep.common import load_fold
    from oncoflow.deep.train_liver import LiverSettings, LiverTask

    inputs = load_fold(fold="0", stems=LIVER["stems"], strata={}, **paths)
    plain = LiverSettings(**{**LIVER, "network": {}, "rung": "single_temporal"})
    task = LiverTask(inputs, plain, device=torch.device("cpu"), resume_dir=tmp_path / "r")
    with pytest.raises(ModelError, match="model was fit on 4"):
        task.restore(payload)
    ringed = LiverSettings(
        **{**LIVER, "network": {}, "rung": "single_temporal", "lesion_means": True}
        | {"lesion_reference": True}
    )
    task = LiverTask(inputs, ringed, device=torch.device("cpu"), resume_dir=tmp_path / "r")
    with pytest.raises(ModelError, match="'lesion_reference': False"):
        task.restore(payload)
    whole = LiverSettings(
        **{**LIVER, "network": {}, "rung": "single_temporal", "lesion_means": True}
        | {"lesion_erode": 0}
    )
    task = LiverTask(inputs, whole, device=torch.device("cpu"), resume_dir=tmp_path / "r")
    with pytest.raises(ModelError, match="'lesion_erode': 2"):
        task.restore(payload)


def test_tabular_l1_penalises_only_the_heads_tabular_weights() -> None:
    torch.manual_seed(0)
    net = create_model("mm_dls", tabular_dim=5, n_stages=3, dim=8, heads=2)
    penalty = net.tabular_l1()
    heads = [net.histology, net.stage, net.dfs, net.os]
    expected = sum(h.weight[:, net.image_width :].abs().sum() for h in heads)
    assert penalty.item() == pytest.approx(expected.item())
    penalty.backward()
    for head in heads:
        grad = head.weight.grad
        assert torch.all(grad[:, : net.image_width] == 0)  # image features are not penalised
        assert torch.equal(
            grad[:, net.image_width :], torch.sign(head.weight[:, net.image_width :])
        )


def test_tabular_l1_per_head_weights_each_head_alone() -> None:
    torch.manual_seed(0)
    net = create_model("mm_dls", tabular_dim=5, n_stages=3, dim=8, heads=2)
    heads = {"histology": net.histology, "stage": net.stage, "dfs": net.dfs, "os": net.os}
    l1 = {k: h.weight[:, net.image_width :].abs().sum().item() for k, h in heads.items()}
    weights = {"histology": 0.1, "stage": 0.02, "os": 0.3}  # dfs left out: not penalised
    expected = sum(w * l1[k] for k, w in weights.items())
    assert net.tabular_l1(weights).item() == pytest.approx(expected)
    assert net.tabular_l1(0.5).item() == pytest.approx(0.5 * sum(l1.values()))
    with pytest.raises(ModelError, match="unknown head"):
        net.tabular_l1({"grade": 1.0})


def test_heads_read_their_declared_columns_only() -> None:
    torch.manual_seed(0)
    net = create_model(
        "mm_dls",
        tabular_dim=5,
        n_stages=3,
        dim=8,
        heads=2,
        head_columns={"stage": [1, 3]},
        head_image={"stage": False},
    )
    assert net.stage.in_features == 2
    assert net.histology.in_features == net.image_width + 5
    lesion, context = torch.randn(4, 2, 2, 16, 16), torch.randn(4, 2, 1, 16, 16)
    tabular = torch.randn(4, 5)
    z = net.head_inputs(lesion, context, tabular)
    assert torch.equal(z["stage"], tabular[:, [1, 3]])
    changed = tabular.clone()
    changed[:, [0, 2, 4]] += 10.0  # columns the stage head does not read
    net.eval()
    with torch.no_grad():
        before, after = net(lesion, context, tabular), net(lesion, context, changed)
    assert torch.equal(before["stage"], after["stage"])
    assert not torch.allclose(before["histology"], after["histology"])
    # the lasso of a head without image inputs covers all of its weights
    assert net.tabular_l1({"stage": 1.0}).item() == pytest.approx(
        net.stage.weight.abs().sum().item()
    )
    with pytest.raises(ModelError, match="neither"):
        create_model("mm_dls", tabular_dim=5, head_columns={"os": []}, head_image={"os": False})
    # after training, a head can be given other inputs (a fresh layer of the new width)
    layer = net.declare_head("histology", [4], image=True)
    assert net.histology is layer
    assert layer.in_features == net.image_width + 1
    assert net(lesion, context, tabular)["histology"].shape == (4,)
    net.declare_head("stage", None, image=True)
    assert net.stage.in_features == net.image_width + 5
    assert "stage" not in net.head_columns


def test_variant_heads_turn_one_input_off_in_every_head() -> None:
    declared = {"stage": {"columns": ["age"], "image": False, "refit": True}}
    assert mmdls_heads.variant_heads(declared, "mm_dls") == declared
    tabular = mmdls_heads.variant_heads(declared, "mm_dls_tabular")
    assert {h: s["image"] for h, s in tabular.items()} == dict.fromkeys(HEADS, False)
    assert tabular["stage"] == {"columns": ["age"], "image": False, "refit": True}
    assert "columns" not in tabular["os"]  # every tabular column, as declared by default
    image = mmdls_heads.variant_heads(declared, "mm_dls_image")
    assert all(s["image"] and s["columns"] == [] for s in image.values())
    assert image["stage"]["refit"]  # refit on the image vector alone
    encoded = ["age", "pet:pet__SUVmax"]
    assert mmdls_heads.head_layout(image, encoded)[0] == {head: [] for head in HEADS}
    net = create_model("mm_dls", tabular_dim=2, dim=16, heads=2, head_columns={"os": []})
    assert net.os.in_features == net.image_width
    assert float(net.tabular_l1({"os": 1.0})) == 0.0  # no tabular weight: nothing to penalise
    off = create_model(
        "mm_dls", tabular_dim=2, dim=16, heads=2, head_image=dict.fromkeys(HEADS, False)
    )
    off.eval()
    tab = torch.randn(3, 2)
    first = off(torch.randn(3, 2, 2, 8, 8), torch.randn(3, 2, 1, 8, 8), tab)
    other = off(torch.zeros(3, 2, 2, 8, 8), torch.zeros(3, 2, 1, 8, 8), tab)
    assert all(torch.equal(first[k], other[k]) for k in HEADS)  # crops never read
    with pytest.raises(ModelError, match="unknown variant 'mm_dls_pet'"):
        mmdls_heads.variant_heads(declared, "mm_dls_pet")


def test_head_layout_names_columns_and_refuses_unknown_ones() -> None:
    encoded = ["age", "sex=M", "smoking=former", "smoking=never", "pet:pet__SUVmax"]
    columns, image = mmdls_heads.head_layout(
        {"stage": {"columns": ["pet:pet__SUVmax", "smoking"], "image": False, "refit": True}},
        encoded,
    )
    assert columns == {"stage": [2, 3, 4]}  # a text column stands for its one-hot columns
    assert image == {"stage": False}
    with pytest.raises(ModelError, match=r"pet:SUVmax not in the tabular vector.*age"):
        mmdls_heads.head_layout({"stage": {"columns": ["pet:SUVmax"]}}, encoded)
    with pytest.raises(ModelError, match="refit is for histology and stage only"):
        mmdls_heads.head_layout({"os": {"refit": True}}, encoded)
    with pytest.raises(ModelError, match="unknown head 'grade'"):
        mmdls_heads.head_layout({"grade": {}}, encoded)


def test_refit_head_equals_logistic_regression_with_inner_chosen_penalty() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(0)
    x = rng.normal([5.0, -2.0, 30.0], [1.0, 3.0, 10.0], size=(300, 3))
    logits = np.stack([np.zeros(300), 2 * (x[:, 0] - 5), -(x[:, 2] - 30) / 5], 1)
    y = np.array([rng.choice(3, p=np.exp(r) / np.exp(r).sum()) for r in logits])
    tr, inner = slice(0, 200), slice(200, 300)
    layer = torch.nn.Linear(3, 3)
    weights = np.array([1.0, 2.0, 0.5])
    info = refit_linear_head(layer, x[tr], y[tr], x[inner], y[inner], sample_weight=weights)
    mu, sd = x[tr].mean(0), x[tr].std(0)
    losses = {}
    for c in REFIT_GRID:
        ref = LogisticRegression(C=c, max_iter=5000).fit(
            (x[tr] - mu) / sd, y[tr], sample_weight=weights[y[tr]]
        )
        losses[c] = log_loss(y[inner], ref.predict_proba((x[inner] - mu) / sd))
    best = min(losses, key=losses.get)
    assert info["C"] == best
    assert info["inner_log_loss"] == pytest.approx(losses[best], rel=1e-6)
    ref = LogisticRegression(C=best, max_iter=5000).fit(
        (x[tr] - mu) / sd, y[tr], sample_weight=weights[y[tr]]
    )
    with torch.no_grad():
        probs = torch.softmax(layer(torch.as_tensor(x, dtype=torch.float32)), 1).numpy()
    assert np.allclose(probs, ref.predict_proba((x - mu) / sd), atol=1e-4)
    # one-logit head: sigmoid(w x + b) = P(class 1); unknown labels (-1) are left out
    yb = (x[:, 0] + rng.normal(0, 1, 300) > 5).astype(int)
    yb[:10] = -1
    binary = torch.nn.Linear(3, 1)
    refit_linear_head(binary, x[tr], yb[tr], x[inner], yb[inner])
    with torch.no_grad():
        p1 = torch.sigmoid(binary(torch.as_tensor(x, dtype=torch.float32))).numpy()[:, 0]
    assert np.corrcoef(p1[yb >= 0], yb[yb >= 0])[0, 1] > 0.5
    with pytest.raises(ModelError, match="1 class"):
        refit_linear_head(binary, x[tr], np.zeros(200, int), x[inner], yb[inner])
    # a three-class head whose training rows hold classes 0 and 2 only: class 1 gets ~0 and
    # the other two follow the two-class logistic regression
    two = np.where(yb == 1, 2, 0)
    head = torch.nn.Linear(3, 3)
    info = refit_linear_head(head, x[tr], two[tr], x[inner], two[inner])
    ref = LogisticRegression(C=info["C"], max_iter=5000).fit((x[tr] - mu) / sd, two[tr])
    with torch.no_grad():
        probs = torch.softmax(head(torch.as_tensor(x, dtype=torch.float32)), 1).numpy()
    assert probs[:, 1].max() < 1e-9
    assert np.allclose(probs[:, 2], ref.predict_proba((x - mu) / sd)[:, 1], atol=1e-4)


IMAGE_COLUMNS = ["radiomics:x", "core:y"]


def test_mm_dls_combat_fits_on_training_sites_and_estimates_the_unseen_site() -> None:
    rng = np.random.default_rng(0)
    shift = {"a": 0.0, "b": 3.0, "c": -4.0}
    scale = {"a": 1.0, "b": 2.0, "c": 0.5}

    def frame(prefix: str, site: str, n: int) -> pd.DataFrame:
        index = [f"{prefix}{site}{i}" for i in range(n)]
        signal = rng.normal(size=(n, 2))
        return pd.DataFrame(
            {
                "age": rng.normal(60, 5, n),  # clinical: left alone
                "radiomics:x": shift[site] + scale[site] * signal[:, 0],
                "core:y": 10 + shift[site] + scale[site] * signal[:, 1],
            },
            index=index,
        )

    frames = {
        "train": pd.concat([frame("t", "a", 30), frame("t", "b", 30)]),
        "inner": pd.concat([frame("i", "a", 6), frame("i", "b", 6)]),
        "out": pd.concat([frame("v", "a", 10), frame("v", "b", 10), frame("x", "c", 25)]),
    }
    sites = {p: p[1] for f in frames.values() for p in f.index}
    inputs = type("Inputs", (), {"sites": sites})()
    out = mmdls_tabular.harmonized(inputs, frames, IMAGE_COLUMNS)
    pd.testing.assert_series_equal(out["out"]["age"], frames["out"]["age"])
    for column in ("radiomics:x", "core:y"):
        means = {
            s: out["out"].loc[[p for p in out["out"].index if p[1] == s], column].mean()
            for s in "abc"
        }
        raw = {
            s: frames["out"].loc[[p for p in frames["out"].index if p[1] == s], column].mean()
            for s in "abc"
        }
        assert abs(means["c"] - means["a"]) < 0.5 < abs(raw["c"] - raw["a"])
        assert abs(means["b"] - means["a"]) < 0.8 < abs(raw["b"] - raw["a"])
    # the fit sees train + inner only: other held-out values do not move the training rows
    moved = {**frames, "out": frames["out"] + 100.0}
    again = mmdls_tabular.harmonized(inputs, moved, IMAGE_COLUMNS)
    pd.testing.assert_frame_equal(again["train"], out["train"])
    # one training site: nothing to harmonise
    single = {k: f[[p[1] != "b" for p in f.index]] for k, f in frames.items()}
    assert mmdls_tabular.harmonized(inputs, single, IMAGE_COLUMNS)["train"].equals(single["train"])


@pytest.mark.parametrize("name", ["resnet10", "resnet18", "resnet34"])
def test_resnet_trunk_equals_torchvisions(name):
    """Our ResNet (no torchvision import at run time) = torchvision's: same seed, same weights
    and names, same features, and torchvision state_dict files load into it."""
    from torchvision.models.resnet import BasicBlock, ResNet

    from oncoflow.models.backbones import RESNET_LAYERS, resnet_trunk

    torch.manual_seed(7)
    ours, width = resnet_trunk(name, in_channels=2)
    torch.manual_seed(7)
    reference = ResNet(BasicBlock, RESNET_LAYERS[name])
    reference.conv1 = torch.nn.Conv2d(2, 64, kernel_size=7, stride=2, padding=3, bias=False)
    reference.fc = torch.nn.Identity()
    assert width == 512
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert list(mine) == list(theirs)
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    x = torch.randn(3, 2, 40, 40)
    ours.train(), reference.train()
    assert torch.equal(ours(x), reference(x))
    ours.eval(), reference.eval()
    assert torch.equal(ours(x), reference(x))


def test_a_time_point_whose_mask_holds_no_lesion_gets_embedding_0_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from types import SimpleNamespace

    from oncoflow.models.cnn_lstm import LesionSliceClassifier

    rng = np.random.default_rng(3)
    _write_npz(tmp_path / "P" / "0.npz", "P", 0, {"CT": _crops(rng, 3, 4, 0.5)})
    _write_npz(tmp_path / "P" / "1.npz", "P", 1, {"CT": _crops(rng, 0, 4, 0.5)})  # empty mask
    lesions = load_lesions(tmp_path / "P", ["CT"])
    settings = train_pancreas.PancreasSettings(
        stems=["CT"], extractor={"backbone": "resnet10", "embed_dim": 4, "input_size": 16}
    )
    torch.manual_seed(0)
    extractor = LesionSliceClassifier(backbone="resnet10", embed_dim=4)
    inputs = SimpleNamespace(lesions={"P": lesions})
    with caplog.at_level("WARNING"):
        out = train_pancreas.timepoint_vectors(extractor, inputs, settings, torch.device("cpu"))
    assert "P time point 1: no lesion slice in CT (empty mask); image embedding 0" in caplog.text
    first, second = out["P"][0], out["P"][1]
    assert first.shape == second.shape  # one sequence of equal-length vectors
    np.testing.assert_array_equal(second[:4], 0.0)
    assert np.abs(first[:4]).sum() > 0
    assert second[4] < first[4]  # the log lesion volume of an empty mask is the smaller one


def test_tabular_encoder_keeps_a_lab_value_with_a_few_zeros_on_the_log_scale() -> None:
    # AFP reported as 0 at its detection limit must not turn the log off for the whole column;
    # a count that is mostly 0 stays linear
    rng = np.random.default_rng(0)
    afp = np.round(np.exp(rng.normal(3.0, 1.6, 200)), 1)
    afp[:3] = 0.0
    foci = np.where(np.arange(200) < 150, 0.0, np.exp(rng.normal(1.0, 1.0, 200)))
    train = pd.DataFrame({"afp": afp, "foci": foci})
    enc = TabularEncoder().fit(train)
    logged, _, mean, sd, offset = enc.numeric_["afp"]
    assert logged
    assert offset == pytest.approx(afp[afp > 0].min() / 2)
    assert not enc.numeric_["foci"][0]
    x = enc.transform(pd.DataFrame({"afp": [0.0, 100.0, -1.0], "foci": [0.0, 1.0, 2.0]}))
    assert x[0, 0] == pytest.approx((np.log(offset) - mean) / sd, rel=1e-5)
    assert x[1, 0] == pytest.approx((np.log(100.0 + offset) - mean) / sd, rel=1e-5)
    median = enc.numeric_["afp"][1]
    assert x[2, 0] == pytest.approx((median - mean) / sd, rel=1e-5)  # negative -> missing
    # a state saved before the offset existed (four entries per column) restores with c = 0
    old = enc.state()
    old["numeric"] = {k: v[:4] for k, v in old["numeric"].items()}
    del old["zero_share"]
    restored = TabularEncoder.from_state(old)
    assert restored.numeric_["afp"][4] == 0.0
