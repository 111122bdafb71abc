"""Predict masks and case-level classes with a trained multitask nnU-Net (real nnUNetPredictor).

nnU-Net's predictor runs the sliding window (Gaussian-weighted tiles, optional mirroring, every
fold of an ensemble); the network records the head's softmax of every tile it forwards
(:meth:`~oncoflow.segmentation.multitask.MultitaskNetwork.collecting`), and the case's class
probabilities are their mean (:func:`~oncoflow.segmentation.multitask.aggregate_patches`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from oncoflow.errors import SegmentationError
from oncoflow.segmentation.multitask import ClassificationHead, MultitaskNetwork, aggregate_patches
from oncoflow.segmentation.nnunet import EXT_TRAINERS

log = logging.getLogger(__name__)


def load_predictor(
    model_dir: Path,
    folds: Sequence[int],
    *,
    checkpoint: str = "checkpoint_best.pth",
    device: str = "cpu",
    mirroring: bool = True,
    tile_step: float = 0.5,
):
    """An initialised ``nnUNetPredictor`` for the given folds of a trained model folder."""
    import torch

    os.environ.setdefault("nnUNet_extTrainer", str(EXT_TRAINERS))
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    missing = [f for f in folds if not (Path(model_dir) / f"fold_{f}" / checkpoint).exists()]
    if missing:
        msg = f"{model_dir}: no {checkpoint} for fold(s) {', '.join(map(str, missing))}"
        raise SegmentationError(msg)
    predictor = nnUNetPredictor(
        tile_step_size=tile_step,
        use_gaussian=True,
        use_mirroring=mirroring,
        perform_everything_on_device=device != "cpu",
        device=torch.device(device),
        allow_tqdm=False,
    )
    predictor.initialize_from_trained_model_folder(
        str(model_dir), use_folds=tuple(folds), checkpoint_name=checkpoint
    )
    return predictor


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


def _refit_probabilities(
    descriptors: Sequence[torch.Tensor], heads: Sequence[ClassificationHead]
) -> np.ndarray:
    """Mean over folds of each fold's refit head on its mean lesion descriptor.

    nnU-Net's predictor runs the folds of an ensemble one after the other over the same tiles,
    so the recorded patches split into ``len(heads)`` equal runs, in fold order.
    """
    rows = torch.cat(list(descriptors))
    if len(rows) % len(heads):
        msg = f"{len(rows)} patch descriptors do not split over {len(heads)} fold(s)"
        raise SegmentationError(msg)
    probabilities = []
    with torch.no_grad():
        for head, part in zip(heads, rows.chunk(len(heads)), strict=True):
            logits = head.classify(part.mean(dim=0, keepdim=True))
            probabilities.append(torch.softmax(logits, dim=1)[0].numpy())
    return np.mean(probabilities, axis=0)


def predict_cases(
    predictor,
    cases: Sequence[tuple[str, Sequence[Path]]],
    out_dir: Path,
    class_names: Sequence[str],
    heads: Sequence[ClassificationHead] | None = None,
) -> pd.DataFrame:
    """Write ``<case>.nii.gz`` masks into ``out_dir`` and return the class probabilities.

    Args:
        predictor: From :func:`load_predictor`.
        cases: ``(case_id, channel files)`` per case.
        out_dir: Folder of the predicted masks.
        class_names: Names of the head's classes (columns ``y_score_<name>``).
        heads: The refit head of each fold of the predictor, in fold order
            (:mod:`oncoflow.segmentation.frozen_head`); ``None`` = the network's own head.

    Returns:
        ``case_id, n_patches, y_score_<class>...`` (one row per case).
    """
    network = predictor.network
    if not isinstance(network, MultitaskNetwork):
        msg = f"the model's network is {type(network).__name__}, not a multitask network"
        raise SegmentationError(msg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (case, files) in enumerate(cases, start=1):
        data, properties = read_case(case, files)
        if heads:
            with network.collecting_features() as patches:
                predictor.predict_single_npy_array(
                    data, properties, None, str(out_dir / case), False
                )
            probabilities = _refit_probabilities(patches, heads)
        else:
            with network.collecting() as patches:
                predictor.predict_single_npy_array(
                    data, properties, None, str(out_dir / case), False
                )
            probabilities = aggregate_patches(patches)
        n_patches = int(sum(p.shape[0] for p in patches)) // max(len(heads or ()), 1)
        if len(probabilities) != len(class_names):
            msg = f"the head has {len(probabilities)} classes, the dataset names {len(class_names)}"
            raise SegmentationError(msg)
        log.info(
            "case %d/%d %s: %d patches, p = %s",
            i,
            len(cases),
            case,
            n_patches,
            np.round(probabilities, 3),
        )
        rows.append(
            {
                "case_id": case,
                "n_patches": n_patches,
                **{
                    f"y_score_{name}": float(p)
                    for name, p in zip(class_names, probabilities, strict=True)
                },
            }
        )
    return pd.DataFrame(rows)
