"""Heads trained on the frozen multitask network's features: the refit head and its control.

The head trained inside nnU-Net's schedule reads the bottleneck and starts late (after the
segmentation warm-up, once the network finds lesions); on a CPU budget it is still
under-trained when the schedule ends. Once a fold is trained its network is frozen and reads
every case once; a case's feature vector is its :func:`~oncoflow.segmentation.multitask.
lesion_descriptor` (per encoder stage: global mean, and mean and SD over the network's own
predicted lesion) averaged over the case's sliding-window patches; with
``nnunet.head_statistics`` followed by the CT's median and robust SD in the core of the
network's own segmented lesion and that lesion's elongation
(:mod:`oncoflow.segmentation.lesion_statistics`, z-scored on the training cases, past the
head's LayerNorm); with ``nnunet.head_descriptor: false`` the statistics alone. Two uses:

- **Refit head** (``nnunet.refit_head``): a new head (LayerNorm, MLP with the study's hidden
  width and dropout, class-weighted cross-entropy, full-batch Adam for :data:`REFIT_STEPS` steps)
  learns the classes of the fold's *training* cases and is stored next to the fold's checkpoint
  (``head_refit.pt``); prediction then classifies with it (:mod:`oncoflow.segmentation.predict`).
  On the demo's fold 0 (20 validation cases) it took the validation macro AUC from 0.722 (the
  in-network head) to 0.81; bottleneck features alone gave 0.75-0.78.
- **Permuted-label control**: the same heads learn *permuted* classes (seed, fold and run fix
  the permutation) and score fold ``k``'s validation cases and the test cases (mean over folds
  of run ``r``'s heads). Retraining the whole network on permuted labels would cost as much as
  the model; this asks the question the report needs at the cost of one prediction pass: does
  anything but the image reach a head? The rows have the ``permutation`` column of a negative
  control.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from oncoflow.errors import SegmentationError
from oncoflow.formats import RUN_COLUMN
from oncoflow.segmentation.calibrate import UNCALIBRATED, Calibration
from oncoflow.segmentation.lesion_statistics import lesion_statistics
from oncoflow.segmentation.multitask import ClassificationHead, class_weights
from oncoflow.segmentation.refit import REFIT_FILE, fit_head_inputs, head_inputs, save_refit_head
from oncoflow.segmentation.workflow import NnunetSettings, read_cases
from oncoflow.splits import TEST_SPLITS

log = logging.getLogger(__name__)

REFIT_STEPS = 100
"""Adam steps of a refit head: 100 / 300 / 1000 gave a validation macro AUC of 0.754 / 0.738 /
0.741 with bottleneck features on the demo's fold 0 (mean of 5 seeds; chosen there)."""


def case_features(
    predictor,
    files: Sequence[tuple[str, Sequence[Path]]],
    *,
    contrast: bool = False,
    calibration: Calibration | None = None,
    offsets: Mapping[str, float] | None = None,
    statistics_label: int | None = None,
    statistics_reference: int | None = None,
) -> np.ndarray:
    """The lesion descriptor of each case, averaged over its patches: ``(cases, features)``.

    Args:
        predictor: An initialised ``nnUNetPredictor`` of one fold
            (:func:`~oncoflow.segmentation.predict.load_predictor`).
        files: ``(case_id, channel files)`` per case.
        contrast: Add the lesion-to-organ contrast part
            (:meth:`~oncoflow.segmentation.multitask.MultitaskNetwork.collecting_features`).
        calibration: Calibrate each (uncalibrated) case through the network's own segmentation
            first, as prediction does (:func:`~oncoflow.segmentation.predict.calibrated_offset`).
        offsets: With ``calibration``, case -> the offset (HU) its prediction already measured
            (:func:`~oncoflow.segmentation.predict.predicted_offsets`): the case is shifted by it
            instead of being segmented again; every case must have one.
        statistics_label: Append the raw statistics of the image inside this label of the
            network's own segmentation of the case (:func:`~oncoflow.segmentation.
            lesion_statistics.lesion_statistics`; ``nnunet.head_statistics``).
        statistics_reference: Read them against this label of the same segmentation
            (``nnunet.head_statistics_reference``), or ``None``.

    Raises:
        SegmentationError: ``offsets`` without ``calibration`` (they would be ignored), or a
            case without an offset.
    """
    import torch

    from oncoflow.segmentation.predict import calibrated_offset, read_case

    if offsets is not None and calibration is None:
        msg = "case_features: offsets were given without a calibration; they would be ignored"
        raise SegmentationError(msg)
    rows = []
    for i, (case, paths) in enumerate(files, start=1):
        data, properties = read_case(case, paths)
        if calibration is not None:
            if offsets is None:
                offset = calibrated_offset(predictor, calibration, data, properties, case)
            elif case in offsets:
                offset = offsets[case]
            else:
                msg = f"case {case}: no calibration offset among the predicted cases"
                raise SegmentationError(msg)
            data = calibration.apply(data, offset)
        with predictor.network.collecting_features(contrast) as pooled:
            segmentation = predictor.predict_single_npy_array(data, properties, None, None, False)
        row = torch.cat(pooled).mean(dim=0).numpy()
        if statistics_label is not None:
            stats = lesion_statistics(
                data, segmentation, properties["spacing"], statistics_label, statistics_reference
            )
            row = np.concatenate([row, stats])
        rows.append(row)
        if i % 20 == 0 or i == len(files):
            log.info("features of %d/%d case(s)", i, len(files))
    return np.stack(rows).astype(np.float32)


def train_head(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    hidden: int,
    dropout: float,
    steps: int = REFIT_STEPS,
    lr: float = 1e-3,
    seed: int = 0,
    normalized: int | None = None,
) -> ClassificationHead:
    """A new head trained on pooled features ``x`` and class indices ``y`` (full batch).

    Loss: cross-entropy with inverse-frequency class weights ``N / (K * n_c)``, as the
    multitask trainer's; Adam (``lr``, weight decay 1e-4) for ``steps`` steps. ``normalized``:
    the LayerNorm covers the first ``normalized`` features only (all when ``None``;
    :class:`~oncoflow.segmentation.multitask.ClassificationHead`).
    """
    import torch

    torch.manual_seed(seed)
    head = ClassificationHead(x.shape[1], n_classes, hidden, dropout, "mean", normalized)
    # the features are already pooled: the head's LayerNorm and MLP are what is trained
    weight = torch.as_tensor(
        class_weights(np.bincount(y, minlength=n_classes)), dtype=torch.float32
    )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=1e-4)
    features = torch.as_tensor(x)
    labels = torch.as_tensor(y, dtype=torch.long)
    head.train()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(head.classify(features), labels)
        loss.backward()
        optimizer.step()
    return head.eval()


def head_probabilities(head: ClassificationHead, x: np.ndarray) -> np.ndarray:
    """Softmax ``(cases, classes)`` of a trained head on pooled features."""
    import torch

    with torch.no_grad():
        return torch.softmax(head.classify(torch.as_tensor(x)), dim=1).numpy()


def fold_files(
    raw: Path, ids: Sequence[str], folder: str, n_channels: int
) -> list[tuple[str, list[Path]]]:
    """``(case_id, channel files)`` of ``ids`` in ``raw/<folder>`` (nnU-Net's ``_0000`` naming)."""
    return [(c, [raw / folder / f"{c}_{i:04d}.nii.gz" for i in range(n_channels)]) for c in ids]


def _predictor(settings: NnunetSettings, results: Path, fold: int, device: str):
    """The frozen network of one fold (the checkpoint the study predicts with)."""
    from oncoflow.segmentation.predict import study_predictor

    return study_predictor(settings, results, (fold,), device)


def _new_head(settings: NnunetSettings, x: np.ndarray, y: np.ndarray, n: int, seed: int):
    """A refit head of the study's width on head inputs ``x`` (statistics past its LayerNorm)."""
    head = settings.head
    hidden, dropout = int(head.get("hidden", 128)), float(head.get("dropout", 0.3))
    normalized = head_normalized(x.shape[1], settings.statistics)
    return train_head(x, y, n, hidden=hidden, dropout=dropout, seed=seed, normalized=normalized)


def head_normalized(width: int, statistics: tuple[int, int] | None) -> int | None:
    """Features of a refit head's input its LayerNorm covers: all but the z-scored statistics.

    ``width`` is the head's input width, ``statistics`` the ``(label, number)`` it ends with.
    """
    return None if statistics is None else width - statistics[1]


def refit_head(
    settings: NnunetSettings,
    fold: int,
    *,
    raw_root: Path,
    results: Path,
    splits_file: Path,
    seed: int,
    device: str = "cpu",
) -> Path:
    """Train the refit head of one fold on its training cases; return ``fold_<k>/head_refit.pt``.

    The file holds the head's weights, its input width, the class names and the training
    cases (nothing of the fold's validation cases or of the test cases is read); with
    ``harmonize_head`` also the :class:`~oncoflow.segmentation.refit.SiteMapping` of the training
    descriptors, which the head was trained behind.
    """
    raw = Path(raw_root) / settings.dataset
    cases = read_cases(raw).set_index("case_id")
    names = json.loads((raw / "dataset.json").read_text())["oncoflow"]["classes"]
    train_ids = sorted(json.loads(Path(splits_file).read_text())[fold]["train"])
    predictor = _predictor(settings, results, fold, device)
    files = fold_files(raw, train_ids, "imagesTr", len(settings.channels))
    log.info("fold %d: lesion descriptors of %d training case(s)", fold, len(train_ids))
    x = case_features(
        predictor,
        files,
        statistics_label=_label(settings),
        statistics_reference=settings.head_statistics_reference,
    )
    mapping, scaler, x = fit_head_inputs(
        x,
        cases.loc[train_ids, "site"].tolist(),
        harmonize=settings.harmonize_head,
        statistics=settings.statistics,
        descriptor=settings.head_descriptor,
        reference=settings.head_statistics_reference,
    )
    if mapping is not None:
        log.info("fold %d: descriptors mapped by site (%s)", fold, ", ".join(mapping.sites))
    y = cases.loc[train_ids, "target"].map({n: i for i, n in enumerate(names)}).to_numpy(int)
    head = _new_head(settings, x, y, len(names), seed + fold)
    path = Path(results) / settings.dataset / settings.model_folder / f"fold_{fold}" / REFIT_FILE
    save_refit_head(
        path,
        head,
        names,
        training_cases=train_ids,
        steps=REFIT_STEPS,
        mapping=mapping,
        statistics=scaler,
        descriptor=settings.head_descriptor,
    )
    return path


def _label(settings: NnunetSettings) -> int | None:
    """The lesion label whose statistics the head reads (``head_statistics``), or ``None``."""
    return None if settings.statistics is None else settings.statistics[0]


def permuted_head_control(
    settings: NnunetSettings,
    *,
    raw_root: Path,
    results: Path,
    splits_file: Path,
    permutations: int,
    seed: int,
    device: str = "cpu",
    offsets: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Rows of the control (``predictions.csv`` of the multitask model + ``permutation``).

    Args:
        settings: The study's nnU-Net settings (model folder, folds, checkpoint, head).
        raw_root: ``nnUNet_raw`` of the export.
        results: ``nnUNet_results`` with the trained folds.
        splits_file: ``splits_final.json`` (the folds' training and validation cases).
        permutations: Runs per fold.
        seed: Seed of the permutations and of the heads' initialisation.
        device: Device of the feature pass.
        offsets: With ``calibrate``, case -> the offset (HU) the model's prediction used for
            each validation and test case (read, not measured again: the control's heads then
            read the cases exactly as the model's did); ``None`` measures them per fold.
    """
    raw = Path(raw_root) / settings.dataset
    cases = read_cases(raw).set_index("case_id")
    names = json.loads((raw / "dataset.json").read_text())["oncoflow"]["classes"]
    index = {name: i for i, name in enumerate(names)}
    splits_final = json.loads(Path(splits_file).read_text())
    test_ids = sorted(cases.index[cases["split"].isin(TEST_SPLITS)])
    n_channels = len(settings.channels)
    # validation and test cases are read as prediction read them (uncalibrated, then shifted by
    # the offset the prediction measured), the training cases as the network was trained on them
    calibration = settings.calibration
    val_folder = "imagesTr" if calibration is None else UNCALIBRATED
    runs: dict[int, list[np.ndarray]] = {r: [] for r in range(permutations)}
    frames = []
    for k in settings.folds:
        predictor = _predictor(settings, results, k, device)
        train_ids = sorted(splits_final[k]["train"])
        val_ids = sorted(splits_final[k]["val"])
        log.info("fold %d: features of %d training, %d validation, %d test case(s)",
                 k, len(train_ids), len(val_ids), len(test_ids))  # fmt: skip
        x_train = case_features(
            predictor,
            fold_files(raw, train_ids, "imagesTr", n_channels),
            statistics_label=_label(settings),
            statistics_reference=settings.head_statistics_reference,
        )
        if calibration is not None and offsets is not None:
            log.info(
                "fold %d: validation and test cases shifted by the offsets of their prediction", k
            )
        x_val, x_test = (
            case_features(
                predictor,
                fold_files(raw, ids, folder, n_channels),
                calibration=calibration,
                offsets=offsets,
                statistics_label=_label(settings),
                statistics_reference=settings.head_statistics_reference,
            )
            for ids, folder in ((val_ids, val_folder), (test_ids, "imagesTs"))
        )
        # as the refit head: site mapping and statistics' scaler fitted on the training cases
        site = cases["site"]
        mapping, scaler, x_train = fit_head_inputs(
            x_train,
            site[train_ids].tolist(),
            harmonize=settings.harmonize_head,
            statistics=settings.statistics,
            descriptor=settings.head_descriptor,
            reference=settings.head_statistics_reference,
        )
        keep = settings.head_descriptor
        x_val = head_inputs(x_val, site[val_ids].tolist(), mapping, scaler, descriptor=keep)
        x_test = head_inputs(x_test, site[test_ids].tolist(), mapping, scaler, descriptor=keep)
        y_train = cases.loc[train_ids, "target"].map(index).to_numpy(int)
        for r in range(permutations):
            rng = np.random.default_rng([seed, k, r])
            permuted = rng.permutation(y_train)
            fitted = _new_head(settings, x_train, permuted, len(names), seed + 1000 * k + r)
            probs = head_probabilities(fitted, x_val)
            frames.append(_rows(cases, val_ids, probs, names, (settings.classify, k, r)))
            runs[r].append(head_probabilities(fitted, x_test))
    for r, fold_probs in runs.items():
        probs = np.mean(fold_probs, axis=0)
        frames.append(_rows(cases, test_ids, probs, names, (settings.classify, "final", r)))
    return pd.concat(frames, ignore_index=True).sort_values([RUN_COLUMN, "split", "case_id"])


def _rows(
    cases: pd.DataFrame,
    ids: Sequence[str],
    probabilities: np.ndarray,
    names: Sequence[str],
    where: tuple[str, int | str, int],
) -> pd.DataFrame:
    """Rows of ``predictions.csv`` for ``ids``; ``where = (target, fold, run)``."""
    target, fold, run = where
    info = cases.loc[list(ids)]
    frame = pd.DataFrame(
        {
            "patient_id": info["patient_id"].to_numpy(),
            "timepoint": info["timepoint"].to_numpy(),
            "case_id": list(ids),
            "split": info["split"].replace({"train": "validation"}).to_numpy(),
            "fold": str(fold),
            "target": target,
            "y_true": info["target"].to_numpy(),
            RUN_COLUMN: run,
        }
    )
    for j, name in enumerate(names):
        frame[f"y_score_{name}"] = probabilities[:, j]
    return frame
