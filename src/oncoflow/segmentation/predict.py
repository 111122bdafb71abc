"""Predict masks and case-level classes with a trained multitask nnU-Net (real nnUNetPredictor).

nnU-Net's predictor runs the sliding window (Gaussian-weighted tiles, optional mirroring, every
fold of an ensemble); the network records the head's softmax of every tile it forwards
(:meth:`~oncoflow.segmentation.multitask.MultitaskNetwork.collecting`), and the case's class
probabilities are their mean (:func:`~oncoflow.segmentation.multitask.aggregate_patches`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from oncoflow.errors import SegmentationError
from oncoflow.segmentation.calibrate import UNCALIBRATED, Calibration, foreground_confidence
from oncoflow.segmentation.lesion_statistics import lesion_statistics
from oncoflow.segmentation.multitask import MultitaskNetwork, aggregate_patches
from oncoflow.segmentation.nnunet import EXT_TRAINERS
from oncoflow.segmentation.precision import cpu_autocast, cpu_bf16
from oncoflow.segmentation.refit import REFIT_FILE, RefitHead, load_refit_head
from oncoflow.segmentation.workflow import NnunetSettings, read_cases, read_predicted
from oncoflow.splits import TEST_SPLITS

log = logging.getLogger(__name__)


def load_predictor(
    model_dir: Path,
    folds: Sequence[int],
    *,
    checkpoint: str = "checkpoint_best.pth",
    device: str = "cpu",
    mirroring: bool = True,
    tile_step: float = 0.5,
    precision: str = "fp32",
    channels_last: bool = False,
):
    """An initialised ``nnUNetPredictor`` for the given folds of a trained model folder.

    On a CPU, ``precision`` and ``channels_last`` are the trainer's ``cpu_precision`` and
    ``channels_last`` (:mod:`oncoflow.segmentation.precision`): with bfloat16 the sliding
    window's forward passes run under bfloat16 autocast; the logits are accumulated, resampled and
    turned into a segmentation as nnU-Net does.
    """
    import torch

    os.environ.setdefault("nnUNet_extTrainer", str(EXT_TRAINERS))
    missing = [f for f in folds if not (Path(model_dir) / f"fold_{f}" / checkpoint).exists()]
    if missing:
        msg = f"{model_dir}: no {checkpoint} for fold(s) {', '.join(map(str, missing))}"
        raise SegmentationError(msg)
    cpu = device == "cpu"
    predictor = _predictor_class()(
        tile_step_size=tile_step,
        use_gaussian=True,
        use_mirroring=mirroring,
        perform_everything_on_device=not cpu,
        device=torch.device(device),
        allow_tqdm=False,
    )
    predictor.bf16 = cpu and cpu_bf16(precision)
    predictor.initialize_from_trained_model_folder(
        str(model_dir), use_folds=tuple(folds), checkpoint_name=checkpoint
    )
    if cpu and channels_last:
        predictor.network.to(memory_format=torch.channels_last_3d)
    return predictor


def study_predictor(settings: NnunetSettings, results: Path, folds: Sequence[int], device: str):
    """The predictor of a study's trained folds: checkpoint, mirroring, CPU precision, layout."""
    trainer = settings.trainer
    return load_predictor(
        Path(results) / settings.dataset / settings.model_folder,
        folds,
        checkpoint=settings.checkpoint,
        device=device,
        mirroring=bool(trainer.get("mirroring", True)),
        precision=str(trainer.get("cpu_precision", "fp32")),
        channels_last=bool(trainer.get("channels_last", False)),
    )


@functools.cache
def _predictor_class() -> type:
    """``nnUNetPredictor`` whose sliding window runs under the CPU precision it is given.

    Imported on first use: nnU-Net reads ``nnUNet_extTrainer`` from the environment.
    """
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    class PrecisionPredictor(nnUNetPredictor):
        """nnU-Net's predictor; ``bf16``: forward passes under bfloat16 autocast (CPU)."""

        bf16 = False

        def predict_sliding_window_return_logits(self, input_image):
            with cpu_autocast(self.bf16):
                return super().predict_sliding_window_return_logits(input_image)

    return PrecisionPredictor


def read_case(case: str, files: Sequence[Path]) -> tuple[np.ndarray, dict]:
    """A case's channels as nnU-Net's reader returns them ``(data, properties)``.

    Raises:
        SegmentationError: A file SimpleITK cannot read, naming the case and the files.
    """
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    try:
        return SimpleITKIO().read_images([str(f) for f in files])
    except Exception as exc:  # SimpleITK raises RuntimeError with its own text
        msg = f"case {case}: cannot read {', '.join(map(str, files))} ({exc})"
        raise SegmentationError(msg) from exc


def fold_descriptors(patches: Sequence[torch.Tensor], n_folds: int) -> list[np.ndarray]:
    """A case's mean lesion descriptor per fold of the ensemble, in fold order.

    nnU-Net's predictor runs the folds of an ensemble one after the other over the same tiles,
    so the recorded patches split into ``n_folds`` equal runs.
    """
    rows = torch.cat(list(patches))
    if len(rows) % n_folds:
        msg = f"{len(rows)} patch descriptors do not split over {n_folds} fold(s)"
        raise SegmentationError(msg)
    return [part.mean(dim=0).numpy() for part in rows.chunk(n_folds)]


def refit_probabilities(
    descriptors: Sequence[Sequence[np.ndarray]],
    heads: Sequence[RefitHead],
    sites: Sequence[str] | None = None,
) -> np.ndarray:
    """Class probabilities ``(cases, classes)``: mean over folds of each fold's refit head.

    Args:
        descriptors: Per case, its descriptor per fold (:func:`fold_descriptors`).
        heads: The refit head of each fold, in fold order.
        sites: Site of each case; needed when a head has a site mapping
            (:class:`~oncoflow.segmentation.refit.SiteMapping`), which maps the cases' descriptors
            of that fold site by site before the head reads them.
    """
    probabilities = []
    for k, refit in enumerate(heads):
        x = refit.inputs(np.stack([case[k] for case in descriptors]), sites)
        with torch.no_grad():
            logits = refit.head.classify(torch.as_tensor(x))
            probabilities.append(torch.softmax(logits, dim=1).numpy())
    return np.mean(probabilities, axis=0)


def predict_cases(
    predictor,
    cases: Sequence[tuple[str, Sequence[Path]]],
    out_dir: Path,
    class_names: Sequence[str],
    heads: Sequence[RefitHead] | None = None,
    sites: Sequence[str] | None = None,
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """Write ``<case>.nii.gz`` masks into ``out_dir`` and return the class probabilities.

    Args:
        predictor: From :func:`load_predictor`.
        cases: ``(case_id, channel files)`` per case.
        out_dir: Folder of the masks.
        class_names: Names of the head's classes (columns ``y_score_<name>``).
        heads: The refit head of each fold of the predictor, in fold order
            (:mod:`oncoflow.segmentation.frozen_head`); ``None`` = the network's own head.
        sites: Site of each case (refit heads with a site mapping: every case is read before
            any is classified, since a site unseen in training is mapped from its own cases).
        calibration: Calibrate each case's CT through the network's own segmentation before
            the pass that writes its mask and reads its class (:mod:`~oncoflow.segmentation.
            calibrate`); the offsets are the column ``calibration_hu``.

    Returns:
        ``case_id, n_patches, y_score_<class>...`` (one row per case).
    """
    network = predictor.network
    if not isinstance(network, MultitaskNetwork):
        msg = f"the model's network is {type(network).__name__}, not a multitask network"
        raise SegmentationError(msg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cases:
        scores = [f"y_score_{name}" for name in class_names]
        return pd.DataFrame(columns=["case_id", "n_patches", *scores])
    # per case: its descriptor per fold (refit heads) or its mean softmax (the network's head)
    n_patches, descriptors, softmax, offsets = [], [], [], []
    for i, (case, files) in enumerate(cases, start=1):
        data, properties = read_case(case, files)
        if calibration is not None:
            offsets.append(calibrated_offset(predictor, calibration, data, properties, case))
            data = calibration.apply(data, offsets[-1])
        collect = network.collecting_features() if heads else network.collecting()
        with collect as patches:
            segmentation = predictor.predict_single_npy_array(data, properties, None, None, False)
        _write_mask(predictor, segmentation, out_dir / case, properties)
        n_patches.append(int(sum(p.shape[0] for p in patches)) // max(len(heads or ()), 1))
        if heads:
            descriptors.append(fold_descriptors(patches, len(heads)))
            if heads[0].statistics is not None:
                scaler = heads[0].statistics
                stats = lesion_statistics(
                    data, segmentation, properties["spacing"], scaler.label, scaler.reference
                )
                descriptors[-1] = [np.concatenate([d, stats]) for d in descriptors[-1]]
            log.info("case %d/%d %s: %d patches", i, len(cases), case, n_patches[-1])
            continue
        softmax.append(aggregate_patches(patches))
        log.info("case %d/%d %s: %d patches, p = %s",
                 i, len(cases), case, n_patches[-1], np.round(softmax[-1], 3))  # fmt: skip
    probabilities = refit_probabilities(descriptors, heads, sites) if heads else np.stack(softmax)
    if probabilities.shape[1] != len(class_names):
        msg = f"the head has {probabilities.shape[1]} classes, the dataset names {len(class_names)}"
        raise SegmentationError(msg)
    table = pd.DataFrame({"case_id": [c for c, _ in cases], "n_patches": n_patches})
    for name, column in zip(class_names, probabilities.T, strict=True):
        table[f"y_score_{name}"] = column.astype(float)
    if calibration is not None:
        table["calibration_hu"] = offsets
    return table


def _write_mask(predictor, segmentation: np.ndarray, truncated: Path, properties: dict) -> None:
    """Write a predicted label map as nnU-Net's prediction does (``<truncated><file_ending>``)."""
    writer = predictor.plans_manager.image_reader_writer_class()
    ending = predictor.dataset_json["file_ending"]
    writer.write_seg(segmentation, f"{truncated}{ending}", properties)


def calibrated_offset(
    predictor, calibration: Calibration, data: np.ndarray, properties: dict, case: str
) -> float:
    """A case's calibration offset (HU) through the predictor's own segmentation passes.

    Each pass also returns nnU-Net's class probabilities, scored by
    :func:`~oncoflow.segmentation.calibrate.foreground_confidence` (they cost no measurable time:
    0.5 s per pass with or without them on a demo case, on CPU).
    """

    def scored(image: np.ndarray) -> tuple[np.ndarray, float]:
        labels, probabilities = predictor.predict_single_npy_array(
            image, properties, None, None, True
        )
        return np.asarray(labels), foreground_confidence(labels, probabilities)

    offset = calibration.predicted_offset(data, scored, case=case)
    log.info("case %s: calibrated by %+.1f HU", case, offset)
    return offset


def predicted_offsets(folders: Sequence[Path]) -> dict[str, float]:
    """Case -> the calibration offset (HU) its prediction used, from ``<folder>/cases.csv``.

    Args:
        folders: Prediction folders (``predict/<subset>``) written with a calibration.

    Raises:
        SegmentationError: The folders were predicted without the calibration (no column
            ``calibration_hu``), or a case is in two folders (:func:`read_predicted`).
    """
    table = read_predicted(folders)
    offsets = table.get("calibration_hu")
    if offsets is None or offsets.isna().any():
        lacking = table["mask"] if offsets is None else table.loc[offsets.isna(), "mask"]
        where = ", ".join(sorted({f"{Path(m).parent}/cases.csv" for m in lacking}))
        msg = f"{where}: no calibration_hu column (predicted without the calibration)"
        raise SegmentationError(msg)
    return dict(zip(table["case_id"], offsets.astype(float), strict=True))


def subset_cases(
    subset: str,
    cases: pd.DataFrame,
    splits_final: Sequence[Mapping[str, Sequence[str]]],
    *,
    calibrated: bool = False,
) -> tuple[list[str], str]:
    """Case ids of a prediction subset and the raw images folder they are in.

    ``fold_<k>``: the validation cases of nnU-Net fold k (predicted by that fold's model only);
    ``test``: every internal and external test case (predicted by the ensemble of folds).
    ``calibrated``: the export calibrated the training cases; a fold's validation cases are
    read uncalibrated (:data:`~oncoflow.segmentation.calibrate.UNCALIBRATED`), as test cases are.
    """
    if subset == "test":
        return sorted(cases.loc[cases["split"].isin(TEST_SPLITS), "case_id"]), "imagesTs"
    if subset.startswith("fold_") and subset[5:].isdigit():
        k = int(subset[5:])
        if k >= len(splits_final):
            msg = f"subset {subset}: splits_final.json has {len(splits_final)} folds"
            raise SegmentationError(msg)
        return sorted(splits_final[k]["val"]), UNCALIBRATED if calibrated else "imagesTr"
    msg = f"unknown prediction subset {subset!r} (fold_<k> or test)"
    raise SegmentationError(msg)


def predict_subset(
    settings: NnunetSettings,
    subset: str,
    *,
    raw_root: Path,
    results: Path,
    splits_file: Path,
    out_dir: Path,
    device: str,
) -> pd.DataFrame:
    """Masks and class probabilities of one subset (``fold_<k>`` or ``test``) into ``out_dir``."""
    raw = Path(raw_root) / settings.dataset
    cases = read_cases(raw)
    splits_final = json.loads(Path(splits_file).read_text())
    calibrated = settings.calibration is not None
    ids, folder = subset_cases(subset, cases, splits_final, calibrated=calibrated)
    folds = settings.folds if subset == "test" else (int(subset[5:]),)
    n_channels = len(settings.channels)
    files = [(c, [raw / folder / f"{c}_{i:04d}.nii.gz" for i in range(n_channels)]) for c in ids]
    dataset = json.loads((raw / "dataset.json").read_text())
    names = dataset.get("oncoflow", {}).get("classes", [])
    log.info("predicting %d %s case(s) with fold(s) %s", len(files), subset, list(folds))
    # test rows carry fold "final" (the evaluation engine's fold of the test splits); here it
    # is the ensemble of the trained CV folds
    site = cases.set_index("case_id")["site"]
    return predict_files(
        settings,
        files,
        names,
        folds=folds,
        fold_label="final" if subset == "test" else str(folds[0]),
        results=results,
        out_dir=out_dir,
        device=device,
        sites=[site[c] for c in ids],
    )


def predict_files(
    settings: NnunetSettings,
    files: Sequence[tuple[str, Sequence[Path]]],
    class_names: Sequence[str],
    *,
    folds: Sequence[int],
    fold_label: str,
    results: Path,
    out_dir: Path,
    device: str,
    sites: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Predict cases with the trained model of ``folds`` (their ensemble when several).

    Args:
        settings: The study's nnU-Net settings (model folder, checkpoint, mirroring).
        files: ``(case_id, channel files)`` per case, in nnU-Net's raw layout.
        class_names: Classes of the head, in its output order.
        folds: Trained folds whose models predict.
        fold_label: The ``fold`` column of the rows (``final`` for an ensemble).
        results: ``nnUNet_results``.
        out_dir: Folder of the masks ``<case>.nii.gz`` and of ``cases.csv``.
        device: ``cpu`` or ``cuda``.
        sites: Site of each case (read by refit heads with a site mapping).

    Returns:
        ``case_id, fold, n_patches, y_score_<class>...``, as written to ``cases.csv``.
    """
    predictor = study_predictor(settings, results, folds, device)
    heads = None
    if settings.refit_head:
        model_dir = Path(results) / settings.dataset / settings.model_folder
        heads = [load_refit_head(model_dir / f"fold_{k}" / REFIT_FILE) for k in folds]
    table = predict_cases(
        predictor, files, out_dir, class_names, heads, sites, settings.calibration
    )
    table.insert(1, "fold", fold_label)
    table.to_csv(Path(out_dir) / "cases.csv", index=False)
    return table
