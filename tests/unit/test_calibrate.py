"""Reference-tissue calibration of CT channels (oncoflow.segmentation.calibrate)."""

from __future__ import annotations

import numpy as np
import pytest

from oncoflow.errors import SegmentationError
from oncoflow.segmentation.calibrate import (
    Calibration,
    foreground_confidence,
    iterated_offset,
    most_confident_offset,
    shift_channels,
    tissue_median,
    write_calibrated,
)


def _phantom(offset: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A (1, 16, 24, 24) CT: fat -100, pancreas 105 (label 1), lesion 50 (label 2), + offset."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((16, 24, 24), dtype=np.int16)
    labels[4:12, 6:18, 6:18] = 1
    labels[6:10, 9:14, 9:14] = 2
    hu = np.select([labels == 1, labels == 2], [105.0, 50.0], -100.0)
    return (hu + offset + rng.normal(0, 10, hu.shape))[None].astype(np.float32), labels


def test_tissue_median_reads_the_label_of_the_first_channel() -> None:
    data, labels = _phantom(-22.0)
    assert tissue_median(data, labels, 1, case="c1") == pytest.approx(83.0, abs=1.5)
    assert tissue_median(data, labels[None], 2, case="c1") == pytest.approx(28.0, abs=3.0)


def test_tissue_median_names_the_case_when_it_cannot_calibrate() -> None:
    data, labels = _phantom(0.0)
    with pytest.raises(SegmentationError, match="case PM7: no voxel of reference label 3"):
        tissue_median(data, labels, 3, case="PM7")
    with pytest.raises(SegmentationError, match="case PM7: label map"):
        tissue_median(data, labels[:8], 1, case="PM7")


def test_shift_channels_shifts_only_the_given_channels_of_a_copy() -> None:
    data = np.zeros((2, 2, 2, 2), dtype=np.float32)
    out = shift_channels(data, 28.0, (1,))
    assert out[0].max() == 0.0
    assert np.all(out[1] == 28.0)
    assert data.max() == 0.0


def _window_segmenter(image: np.ndarray) -> np.ndarray:
    """Labels by intensity window, as a network trained on calibrated images (pancreas ~105)."""
    smooth = image[0]
    return np.select([(smooth > 80) & (smooth < 140), (smooth > 20) & (smooth <= 80)], [1, 2], 0)


@pytest.mark.parametrize(("drift", "passes"), [(-50.0, 3), (-22.0, 2), (0.0, 2), (28.0, 2)])
def test_passes_recover_the_scanner_offset_from_the_segmentation(drift: float, passes: int) -> None:
    data, labels = _phantom(drift, seed=int(abs(drift)) % 7)
    truth = 105.0 - tissue_median(data, labels, 1, case="c")
    offset = iterated_offset(data, _window_segmenter, 1, 105.0, case="c", passes=passes)
    # the calibrated image reads the pancreas at 105 HU within the noise of its median
    assert offset == pytest.approx(truth, abs=2.0)
    assert offset == pytest.approx(-drift, abs=2.0)
    calibrated = shift_channels(data, offset, (0,))
    assert tissue_median(calibrated, labels, 1, case="c") == pytest.approx(105.0, abs=2.0)


def test_one_pass_on_a_far_scanner_is_not_enough() -> None:
    """At -50 HU the window segmenter finds only the pancreas's bright tail on the raw image."""
    data, _ = _phantom(-50.0)
    one = iterated_offset(data, _window_segmenter, 1, 105.0, case="c", passes=1)
    assert abs(one - 50.0) > 20.0


def test_a_segmentation_without_the_tissue_leaves_the_last_offset(caplog) -> None:
    data, _ = _phantom(-22.0)
    empty = iterated_offset(data, np.zeros_like, 1, 105.0, case="PM3", passes=2)
    assert empty == 0.0
    assert "case PM3: segmentation pass 1 found no voxel of reference label 1" in caplog.text
    calls = iter([_window_segmenter(data), np.zeros(data.shape[1:])])
    kept = iterated_offset(data, lambda _image: next(calls), 1, 105.0, case="PM3")
    assert kept == pytest.approx(22.0, abs=6.0)  # the first pass's offset


def test_an_implausible_offset_is_a_failed_segmentation(caplog) -> None:
    """A pass that labels bone as the pancreas (median 310 HU) must not shift the case by -210."""
    data, labels = _phantom(-22.0)
    data[0][labels == 0] = 310.0  # everything outside the pancreas reads as bone

    def bone(_image: np.ndarray) -> np.ndarray:
        return (labels == 0).astype(np.int16)

    assert iterated_offset(data, bone, 1, 100.0, case="PM9", passes=2) == 0.0
    assert "case PM9: segmentation pass 1 gives an offset of -210.0 HU, beyond 150" in caplog.text
    calls = iter([labels, bone(data)])
    kept = iterated_offset(data, lambda _image: next(calls), 1, 105.0, case="PM9")
    assert kept == pytest.approx(22.0, abs=2.0)  # the first pass's offset
    wide = iterated_offset(data, bone, 1, 100.0, case="PM9", passes=1, max_offset_hu=300.0)
    assert wide == pytest.approx(-210.0)


def _scored_window(truth: np.ndarray):
    """The window segmenter, sure of itself in proportion to how much of the true organ it found.

    A stand-in for a network that knows the anatomy around the organ: the window alone cannot
    tell the pancreas from a lesion shifted into its range, the confidence can.
    """

    def scored(image: np.ndarray) -> tuple[np.ndarray, float]:
        labels = _window_segmenter(image)
        found = labels == 1
        return labels, float((found & truth).sum()) / max(1, int(found.sum() + truth.sum()))

    return scored


def test_a_far_scanner_has_a_wrong_fixed_point_that_other_starts_avoid(caplog) -> None:
    """+70 HU: from 0 the window takes the lesion (120 HU) for the pancreas, pass after pass."""
    data, labels = _phantom(70.0)
    truth = labels == 1
    scored = _scored_window(truth)
    wrong = iterated_offset(data, lambda image: scored(image)[0], 1, 105.0, case="c")
    assert wrong == pytest.approx(-15.0, abs=4.0)  # the lesion brought to 105 HU
    from_below = iterated_offset(data, lambda image: scored(image)[0], 1, 105.0, case="c",
                                 start=-40.0)  # fmt: skip
    assert from_below == pytest.approx(-70.0, abs=2.0)
    caplog.set_level("INFO")
    best = most_confident_offset(data, scored, 1, 105.0, case="PM4", starts=(-40.0, 0.0, 40.0))
    assert best == pytest.approx(-70.0, abs=2.0)
    assert "case PM4: pass 1 from -40 HU was surest" in caplog.text
    calibration = Calibration(label=1, reference_hu=105.0, channels=(0,), starts=(-40.0, 0.0))
    assert calibration.predicted_offset(data, scored, case="PM4") == pytest.approx(best)
    single = Calibration(label=1, reference_hu=105.0, channels=(0,))
    assert single.predicted_offset(data, scored, case="PM4") == pytest.approx(wrong)


def test_foreground_confidence_is_the_mean_top_probability_over_the_foreground() -> None:
    labels = np.array([[[0, 1, 2, 2]]])
    probabilities = np.array([[[[0.9, 0.3, 0.1, 0.2]]], [[[0.1, 0.7, 0.3, 0.2]]],
                              [[[0.0, 0.0, 0.6, 0.6]]]])  # fmt: skip
    assert foreground_confidence(labels, probabilities) == pytest.approx((0.7 + 0.6 + 0.6) / 3)
    assert foreground_confidence(np.zeros_like(labels), probabilities) == 0.0


def test_calibration_block_resolves_ct_channels() -> None:
    assert Calibration.from_block({}, [0]) is None
    calibration = Calibration.from_block({"label": 1, "reference_hu": 100}, [0, 2])
    assert calibration == Calibration(label=1, reference_hu=100.0, channels=(0, 2), passes=2)
    assert calibration.max_offset_hu == 150.0
    block = {"label": 1, "reference_hu": 100, "max_offset_hu": 80}
    assert Calibration.from_block(block, [0]).max_offset_hu == 80.0
    assert calibration.starts == (0.0,)
    block = {"label": 1, "reference_hu": 100, "starts": [-40, 0, 40]}
    assert Calibration.from_block(block, [0]).starts == (-40.0, 0.0, 40.0)
    with pytest.raises(SegmentationError, match="channels have none"):
        Calibration.from_block({"label": 1, "reference_hu": 100}, [])


def test_write_calibrated_shifts_ct_and_copies_other_channels(tmp_path) -> None:
    import SimpleITK as sitk

    data, labels = _phantom(28.0)
    paths = []
    for i, array in enumerate((data[0].astype(np.int16), np.full(labels.shape, 3.5, np.float32))):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((2.0, 2.0, 2.5))
        image.SetOrigin((10.0, -4.0, 7.0))
        paths.append(tmp_path / f"in_{i}.nii.gz")
        sitk.WriteImage(image, str(paths[-1]))
    label_file = tmp_path / "labels.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(labels.astype(np.uint8)), str(label_file))
    calibration = Calibration(label=1, reference_hu=100.0, channels=(0,))
    offset = write_calibrated("PM9", paths, label_file, calibration, tmp_path / "out")
    ct = sitk.ReadImage(str(tmp_path / "out" / "PM9_0000.nii.gz"))
    other = sitk.ReadImage(str(tmp_path / "out" / "PM9_0001.nii.gz"))
    assert offset == pytest.approx(100.0 - 133.0, abs=1.5)
    assert ct.GetSpacing() == (2.0, 2.0, 2.5)
    assert ct.GetOrigin() == (10.0, -4.0, 7.0)
    shifted = sitk.GetArrayFromImage(ct)[None]
    assert tissue_median(shifted, labels, 1, case="PM9") == pytest.approx(100.0, abs=1.0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(other), 3.5)


def test_predicted_offsets_are_read_per_case_from_the_prediction_folders(tmp_path) -> None:
    import pandas as pd

    from oncoflow.segmentation.predict import predicted_offsets

    for subset, cases, offsets in (
        ("fold_0", ["PM001_tp0"], [-4.0]),
        ("test", ["PM002_tp0", "PM003_tp0"], [-37.0, 2.5]),
    ):
        (tmp_path / subset).mkdir()
        table = pd.DataFrame({"case_id": cases, "fold": "0", "calibration_hu": offsets})
        table.to_csv(tmp_path / subset / "cases.csv", index=False)
    folders = [tmp_path / "fold_0", tmp_path / "test"]
    assert predicted_offsets(folders) == {"PM001_tp0": -4.0, "PM002_tp0": -37.0, "PM003_tp0": 2.5}
    with pytest.raises(SegmentationError, match="PM001_tp0 is in two prediction folders"):
        predicted_offsets([*folders, tmp_path / "fold_0"])
    pd.DataFrame({"case_id": ["PM004_tp0"], "fold": "1"}).to_csv(
        tmp_path / "cases.csv", index=False
    )
    with pytest.raises(SegmentationError, match="no calibration_hu column"):
        predicted_offsets([tmp_path])


def test_prediction_folders_are_read_once_with_each_cases_mask(tmp_path) -> None:
    import pandas as pd

    from oncoflow.segmentation.workflow import read_predicted

    for subset, cases in (("fold_0", ["PM001_tp0"]), ("test", ["PM002_tp0", "PM003_tp0"])):
        (tmp_path / subset).mkdir()
        pd.DataFrame({"case_id": cases, "fold": "0"}).to_csv(
            tmp_path / subset / "cases.csv", index=False
        )
    table = read_predicted([tmp_path / "fold_0", tmp_path / "test"])
    assert table["case_id"].tolist() == ["PM001_tp0", "PM002_tp0", "PM003_tp0"]
    assert table["mask"].iloc[2] == str(tmp_path / "test" / "PM003_tp0.nii.gz")
    assert table["fold"].tolist() == ["0", "0", "0"]  # read as text, as the predictions contract
    with pytest.raises(SegmentationError, match=r"PM002_tp0 is in two prediction folders \(.*test"):
        read_predicted([tmp_path / "test", tmp_path / "test"])
    with pytest.raises(SegmentationError, match="no prediction folder given"):
        read_predicted([])
