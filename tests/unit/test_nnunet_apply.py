"""nnU-Net apply: a new cohort's cases, staged as the export stages them, predicted by the frozen
fold ensemble (real nnUNetPredictor on an untrained model folder of the multitask trainer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from conftest import load_script

from oncoflow.errors import SegmentationError
from oncoflow.formats import write_predictions
from oncoflow.lesions.extract import _predicted_mask
from oncoflow.segmentation.apply import (
    MASKS,
    check_mask,
    lesion_mask_name,
    model_classes,
    new_cohort_cases,
    outcome_labels,
    predict_new_cohort,
    write_lesion_masks,
)
from oncoflow.segmentation.export import Case, dataset_json, export_dataset
from oncoflow.segmentation.nnunet import EXT_TRAINERS
from oncoflow.segmentation.predict import predict_subset
from oncoflow.segmentation.workflow import (
    DICE_COLUMNS,
    NnunetSettings,
    reference_dice,
)

REGIONS = {"whole_pancreas": [1, 2], "lesion": [2]}
SHAPE = (12, 20, 20)
SPACING = (1.5, 1.5, 2.0)
RESENC_UNET = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING)
    image.SetOrigin((-10.0, 4.0, 7.5))
    sitk.WriteImage(image, str(path))


def _mask() -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask[3:9, 5:15, 5:15] = 1
    mask[5:7, 8:12, 8:12] = 2
    return mask


def _converted(root: Path, cases: dict[tuple[str, int], tuple[str, ...]]) -> Path:
    """(patient, tp) -> stems written; a stem ending in _mask is a label map."""
    rng = np.random.default_rng(0)
    for (patient, tp), stems in cases.items():
        for stem in stems:
            if stem.endswith("_mask"):
                array = _mask()
            else:
                array = (rng.normal(40, 20, SHAPE) + 120 * (_mask() > 0)).astype(np.float32)
            _write(root / patient / str(tp) / f"{stem}.nii.gz", array)
    return root


def _images(rows: list[tuple[str, int, str, str, str | None]]) -> pd.DataFrame:
    """images.csv rows from (patient, tp, modality, series, mask_path)."""
    return pd.DataFrame(
        [
            {
                "patient_id": p,
                "timepoint": tp,
                "modality": m,
                "series": s,
                "path": f"{p}/{tp}/{m}_{s}.nii.gz",
                "mask_path": mask,
                "site": "site_x",
            }
            for p, tp, m, s, mask in rows
        ]
    )


def test_new_cohort_cases_per_patient_timepoint_with_reference_masks(tmp_path):
    converted = _converted(
        tmp_path / "converted",
        {
            ("N1", 0): ("CT_venous", "CT_venous_mask"),
            ("N1", 1): ("CT_venous",),
            ("N2", 0): ("CT_venous", "CT_arterial"),
            ("N3", 0): ("PET",),
        },
    )
    images = _images(
        [
            ("N1", 0, "CT", "venous", "n1_mask.nii.gz"),
            ("N1", 1, "CT", "venous", None),
            ("N2", 0, "CT", "venous", ""),
            ("N2", 0, "CT", "arterial", "n2_art_mask.nii.gz"),  # a mask of another stem
            ("N3", 0, "PET", "-", None),  # no channel: not a case
        ]
    )
    cases = new_cohort_cases(converted, images, ["CT_venous"], label_stem="CT_venous")
    assert [c.case_id for c in cases] == ["N1_tp0", "N1_tp1", "N2_tp0"]
    assert {c.split for c in cases} == {"apply"}
    assert cases[0].images == (converted / "N1" / "0" / "CT_venous.nii.gz",)
    assert cases[0].label == converted / "N1" / "0" / "CT_venous_mask.nii.gz"
    assert cases[1].label is None
    assert cases[2].label is None
    assert all(c.target is None for c in cases)


def test_case_missing_a_channel_names_patient_timepoint_and_stem(tmp_path):
    converted = _converted(tmp_path / "converted", {("N1", 0): ("CT_venous",), ("N1", 2): ()})
    two_channels = ["CT_venous", "PET"]
    images = _images([("N1", 0, "CT", "venous", None)])
    with pytest.raises(SegmentationError, match=r"patient N1, time point 0: no PET image"):
        new_cohort_cases(converted, images, two_channels, label_stem="CT_venous")
    # declared in images.csv, but not converted
    images = _images([("N1", 0, "CT", "venous", None), ("N1", 2, "CT", "venous", None)])
    with pytest.raises(SegmentationError, match=r"patient N1, time point 2: no CT_venous image"):
        new_cohort_cases(converted, images, ["CT_venous"], label_stem="CT_venous")
    images = _images([("N1", 0, "PET", "-", None)])
    with pytest.raises(SegmentationError, match="no CT_venous image to predict"):
        new_cohort_cases(converted, images, ["CT_venous"], label_stem="CT_venous")


def test_masks_folder_uses_the_lesion_crops_names_and_labels(tmp_path):
    converted = _converted(tmp_path / "converted", {("N_1", 3): ("CT_venous",)})
    images = _images([("N_1", 3, "CT", "venous", None)])
    (case,) = new_cohort_cases(converted, images, ["CT_venous"], label_stem="CT_venous")
    out = tmp_path / "out"
    _write(out / f"{case.case_id}.nii.gz", _mask())
    (out / MASKS).mkdir()
    (copy,) = write_lesion_masks([case], out, REGIONS, "CT_venous")
    assert copy.name == lesion_mask_name("N_1", 3) == "N_1_tp3.nii.gz"
    # the lesion crops find it under its patient and time point
    assert _predicted_mask([out / MASKS], "N_1", 3) == copy
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(copy)))
    np.testing.assert_array_equal(labels, _mask())
    # lesions settings of the pancreas studies: organ 1, lesion 2 = the regions' labels
    assert set(np.unique(labels)) == {0, 1, 2}


def test_predicted_mask_off_grid_or_with_unknown_labels_is_refused(tmp_path):
    image = tmp_path / "CT_venous.nii.gz"
    _write(image, np.zeros(SHAPE, np.float32))
    mask = tmp_path / "mask.nii.gz"
    _write(mask, (_mask() * 2).astype(np.uint8))  # labels 2 and 4
    with pytest.raises(SegmentationError, match=r"label\(s\) \[4\]"):
        check_mask(mask, image, [1, 2], "N1_tp0")
    shifted = sitk.GetImageFromArray(_mask())
    shifted.SetSpacing(SPACING)
    sitk.WriteImage(shifted, str(mask))  # origin 0 instead of the image's
    with pytest.raises(SegmentationError, match="not on the grid"):
        check_mask(mask, image, [1, 2], "N1_tp0")


def test_model_classes_and_channel_check(tmp_path):
    (tmp_path / "dataset.json").write_text(
        json.dumps(dataset_json(["CT_venous"], REGIONS, 4, classes=["0", "1", "2"]))
    )
    assert model_classes(tmp_path, ["CT_venous"]) == ["0", "1", "2"]
    with pytest.raises(SegmentationError, match="trained on channels"):
        model_classes(tmp_path, ["MR_T1"])
    with pytest.raises(SegmentationError, match=r"no dataset\.json"):
        model_classes(tmp_path / "missing", ["CT_venous"])


def test_outcome_labels_and_empty_dice_table():
    outcomes = pd.DataFrame({"patient_id": ["A", "B", "C"], "subtype": [2.0, np.nan, 0.0]})
    assert outcome_labels(outcomes, "subtype") == {"A": "2", "B": None, "C": "0"}
    assert outcome_labels(outcomes, "grade") == {}
    assert outcome_labels(None, "subtype") == {}
    settings = NnunetSettings(1, "X", ("CT_venous",), "CT_venous", REGIONS, "subtype")
    cases = pd.DataFrame({"patient_id": [], "timepoint": [], "split": []})
    dice = reference_dice(settings, cases, {}, converted=Path("nowhere"))
    assert list(dice.columns) == list(DICE_COLUMNS)
    assert dice.empty


# -- end to end: a real nnU-Net model folder of the multitask trainer (untrained weights) ------


def _plans(classes: list[str]) -> dict:
    """A tiny 3d_fullres ResEnc plan, as nnU-Net's planner + derive_plans write it."""
    resampling = {"order_z": 0, "force_separate_z": None}
    architecture = {
        "network_class_name": RESENC_UNET,
        "arch_kwargs": {
            "n_stages": 3,
            "features_per_stage": [4, 8, 16],
            "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[3, 3, 3]] * 3,
            "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
            "n_blocks_per_stage": [1, 1, 1],
            "n_conv_per_stage_decoder": [1, 1],
            "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    configuration = {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor_name": "DefaultPreprocessor",
        "batch_size": 2,
        "patch_size": [8, 16, 16],  # smaller than the images: several sliding-window tiles
        "median_image_size_in_voxels": list(SHAPE),
        "spacing": [SPACING[2], SPACING[1], SPACING[0]],
        "normalization_schemes": ["CTNormalization"],
        "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, **resampling},
        "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, **resampling},
        "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, **resampling},
        "architecture": architecture,
        "batch_dice": False,
    }
    intensities = {"mean": 130.0, "std": 30.0, "percentile_00_5": 60.0, "percentile_99_5": 220.0}
    return {
        "dataset_name": "Dataset990_Apply",
        "plans_name": "tinyPlans",
        "original_median_spacing_after_transp": configuration["spacing"],
        "original_median_shape_after_transp": list(SHAPE),
        "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2],
        "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "nnUNetPlannerResEncM",
        "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {**intensities, "median": 130.0}},
        "configurations": {"3d_fullres": configuration},
        "oncoflow": {"head": {"hidden": 8, "pooling": "roi", "classes": classes, "sigmoid": True}},
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """nnUNet_results with two folds of the multitask trainer (each its own random weights)."""
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    settings = NnunetSettings(
        dataset_id=990,
        dataset_name="Apply",
        channels=("CT_venous",),
        label="CT_venous",
        regions=REGIONS,
        classify="subtype",
        folds=(0, 1),
        plans={"name": "tinyPlans"},
        trainer={"name": "oncoflowMultitaskTrainer", "mirroring": False},
        checkpoint="checkpoint_final.pth",
    )
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("nnUNet_extTrainer", str(EXT_TRAINERS))
        trainer = recursive_find_trainer_class_by_name(settings.trainer_name)
    results = tmp_path_factory.mktemp("nnUNet_results")
    folder = results / settings.dataset / settings.model_folder
    classes = ["0", "1", "2"]
    dataset = dataset_json(settings.channels, REGIONS, 4, classes=classes)
    plans = PlansManager(_plans(classes))
    for fold in settings.folds:
        torch.manual_seed(fold)
        network = trainer.build_network_architecture(
            plans, plans.get_configuration("3d_fullres"), 1, 2, enable_deep_supervision=False
        )
        (folder / f"fold_{fold}").mkdir(parents=True)
        checkpoint = {
            "network_weights": network.state_dict(),
            "trainer_name": settings.trainer_name,
            "init_args": {"configuration": "3d_fullres"},
            "inference_allowed_mirroring_axes": None,
        }
        torch.save(checkpoint, folder / f"fold_{fold}" / settings.checkpoint)
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / "plans.json").write_text(json.dumps(plans.plans))
    return settings, results


@pytest.fixture(scope="module")
def new_cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("new_cohort")
    converted = _converted(
        root / "converted",
        {
            ("N1", 0): ("CT_venous", "CT_venous_mask"),
            ("N1", 1): ("CT_venous",),
            ("N2", 0): ("CT_venous", "CT_venous_mask"),
        },
    )
    images = _images(
        [
            ("N1", 0, "CT", "venous", "n1_0_mask.nii.gz"),
            ("N1", 1, "CT", "venous", None),
            ("N2", 0, "CT", "venous", "n2_0_mask.nii.gz"),
        ]
    )
    return root, converted, images


def test_apply_predicts_every_case_with_the_fold_ensemble(model, new_cohort, tmp_path):
    settings, results = model
    _, converted, images = new_cohort
    out = tmp_path / "apply"
    outcomes = pd.DataFrame({"patient_id": ["N1", "N2"], "subtype": [2, 0]})
    predictions, dice = predict_new_cohort(
        settings,
        converted=converted,
        images=images,
        results=results,
        out_dir=out,
        device="cpu",
        outcomes=outcomes,
    )
    write_predictions(tmp_path / "predictions.csv", predictions)  # the contract's checks
    assert list(predictions["case_id"]) == ["N1_tp0", "N1_tp1", "N2_tp0"]
    assert list(predictions["timepoint"]) == [0, 1, 0]
    assert set(predictions["split"]) == {"apply"}
    assert set(predictions["fold"]) == {"final"}
    assert list(predictions["y_true"]) == ["2", "2", "0"]
    scores = predictions[["y_score_0", "y_score_1", "y_score_2"]]
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
    cases = pd.read_csv(out / "cases.csv")
    assert list(cases["case_id"]) == ["N1_tp0", "N1_tp1", "N2_tp0"]
    assert (cases["n_patches"] > 1).all()
    assert sorted(p.name for p in out.iterdir()) == [
        "N1_tp0.nii.gz",
        "N1_tp1.nii.gz",
        "N2_tp0.nii.gz",
        "cases.csv",
        "masks",
    ]  # the staged channel files are gone
    for row in predictions.itertuples():
        image = sitk.ReadImage(
            str(converted / row.patient_id / str(row.timepoint) / "CT_venous.nii.gz")
        )
        mask = sitk.ReadImage(str(out / f"{row.case_id}.nii.gz"))
        assert mask.GetSize() == image.GetSize()
        np.testing.assert_allclose(mask.GetOrigin(), image.GetOrigin(), atol=1e-4)
        copy = _predicted_mask([out / MASKS], row.patient_id, row.timepoint)
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(sitk.ReadImage(str(copy))), sitk.GetArrayFromImage(mask)
        )
    # Dice only where the new cohort has a reference mask
    assert set(dice["case"]) == {"N1_tp0", "N2_tp0"}
    assert set(dice["region"]) == set(REGIONS)
    assert list(dice.columns) == list(DICE_COLUMNS)
    assert set(dice["split"]) == {"apply"}
    # without outcomes: y_true empty, still the contract
    again, _ = predict_new_cohort(
        settings, converted=converted, images=images, results=results, out_dir=out, device="cpu"
    )
    assert again["y_true"].isna().all()
    np.testing.assert_array_equal(again[scores.columns], scores)
    write_predictions(tmp_path / "again.csv", again)


def test_apply_sees_the_inputs_of_an_exported_test_case(model, new_cohort, tmp_path):
    """The same images exported as test cases and predicted by predict_subset give the same
    masks and class probabilities as apply: the new cohort is staged as the export stages."""
    settings, results = model
    _, converted, images = new_cohort
    cases = new_cohort_cases(converted, images, settings.channels, label_stem=settings.label)
    train = Case("T1_tp0", "T1", 0, "train", cases[0].images, cases[0].label, "0")
    tests = [Case(c.case_id, c.patient_id, c.timepoint, "external_test", c.images) for c in cases]
    raw = tmp_path / "raw"
    export_dataset(
        [train, *tests], raw / settings.dataset, settings.channels, REGIONS, classes=["0", "1", "2"]
    )
    (tmp_path / "splits_final.json").write_text("[]")
    subset = predict_subset(
        settings,
        "test",
        raw_root=raw,
        results=results,
        splits_file=tmp_path / "splits_final.json",
        out_dir=tmp_path / "test",
        device="cpu",
    )
    applied, _ = predict_new_cohort(
        settings,
        converted=converted,
        images=images,
        results=results,
        out_dir=tmp_path / "apply",
        device="cpu",
    )
    scores = [c for c in subset.columns if c.startswith("y_score_")]
    assert scores == [c for c in applied.columns if c.startswith("y_score_")]
    np.testing.assert_array_equal(
        subset.set_index("case_id").loc[applied["case_id"], scores].to_numpy(),
        applied[scores].to_numpy(),
    )
    for case in applied["case_id"]:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "test" / f"{case}.nii.gz")))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "apply" / f"{case}.nii.gz")))
        np.testing.assert_array_equal(a, b)


def test_untrained_fold_is_refused(model, new_cohort, tmp_path):
    settings, results = model
    _, converted, images = new_cohort
    three = NnunetSettings.from_json(json.dumps({**settings.__dict__, "folds": [0, 1, 2]}))
    with pytest.raises(SegmentationError, match=r"no checkpoint_final\.pth for fold\(s\) 2"):
        predict_new_cohort(
            three,
            converted=converted,
            images=images,
            results=results,
            out_dir=tmp_path / "apply",
            device="cpu",
        )


def test_script_reads_the_cohort_folder(model, new_cohort, tmp_path):
    settings, results = model
    _, converted, images = new_cohort
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    images.to_csv(cohort / "images.csv", index=False)
    pd.DataFrame({"patient_id": ["N1", "N2"], "subtype": ["1", ""]}).to_csv(
        cohort / "outcomes.csv", index=False
    )
    out = tmp_path / "out"
    argv = ["--settings", json.dumps(settings.__dict__), "--converted", str(converted)]
    argv += ["--cohort", str(cohort), "--results", str(results), "--out", str(out)]
    argv += ["--predictions", str(out / "predictions.csv"), "--dice", str(out / "dice.csv")]
    assert load_script("nnunet_apply").main([*argv, "--device", "cpu"]) == 0
    predictions = pd.read_csv(out / "predictions.csv", dtype={"y_true": str})
    assert list(predictions["case_id"]) == ["N1_tp0", "N1_tp1", "N2_tp0"]
    assert predictions["y_true"].tolist()[:2] == ["1", "1"]
    assert pd.isna(predictions["y_true"].iloc[2])
    dice = pd.read_csv(out / "dice.csv")
    assert set(dice["case"]) == {"N1_tp0", "N2_tp0"}
    assert sorted(p.name for p in (out / MASKS).iterdir()) == [
        "N1_tp0.nii.gz",
        "N1_tp1.nii.gz",
        "N2_tp0.nii.gz",
    ]
