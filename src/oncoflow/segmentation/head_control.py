"""Permuted-label control of the multitask head: new heads on the frozen network's features.

Retraining the whole multitask nnU-Net on permuted labels would cost as much as the model
itself (tens of CPU minutes per fold). The control asks the question the report needs at the
cost of a prediction pass: given what the trained encoder hands its head, does a head trained
on *permuted* classes score above chance? If it does, something other than the image (a case
order, a leaked label, a split) reaches the head.

For each trained nnU-Net fold ``k`` the frozen network reads every case of the fold and every
test case once; a case's feature vector is the head's input (:meth:`~oncoflow.segmentation.
multitask.ClassificationHead.pool`: the bottleneck's global mean, and with ``roi`` pooling its
mean over the network's own predicted lesion) averaged over the case's sliding-window patches.
Run ``r`` trains a new head of the same architecture (LayerNorm, MLP with the study's hidden
width and dropout, class-weighted cross-entropy, full-batch Adam for a fixed number of steps) on
fold ``k``'s training cases with their classes permuted (seed, fold and run fix the
permutation), then scores fold ``k``'s validation cases and the test cases; a test case's score
is the mean over folds of run ``r``'s heads. The rows have the ``permutation`` column of a
negative control (:mod:`oncoflow.evaluate.binary`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from oncoflow.errors import SegmentationError
from oncoflow.formats import RUN_COLUMN
from oncoflow.segmentation.multitask import ClassificationHead, class_weights
from oncoflow.segmentation.workflow import NnunetSettings, read_cases

log = logging.getLogger(__name__)

TEST_SPLITS = ("internal_test", "external_test")


def case_features(predictor, files: Sequence[tuple[str, Sequence[Path]]]) -> np.ndarray:
    """The head's input of each case, averaged over its patches: ``(cases, features)``.

    Args:
        predictor: An initialised ``nnUNetPredictor`` of one fold
            (:func:`~oncoflow.segmentation.predict.load_predictor`).
        files: ``(case_id, channel files)`` per case.
    """
    import torch
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    reader = SimpleITKIO()
    rows = []
    for i, (case, paths) in enumerate(files, start=1):
        try:
            data, properties = reader.read_images([str(p) for p in paths])
        except Exception as exc:  # SimpleITK raises RuntimeError with its own text
            msg = f"case {case}: cannot read {', '.join(map(str, paths))} ({exc})"
            raise SegmentationError(msg) from exc
        with predictor.network.collecting_features() as pooled:
            predictor.predict_single_npy_array(data, properties, None, None, False)
        rows.append(torch.cat(pooled).mean(dim=0).numpy())
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
    steps: int = 300,
    lr: float = 1e-3,
    seed: int = 0,
) -> ClassificationHead:
    """A new head trained on pooled features ``x`` and class indices ``y`` (full batch).

    Loss: cross-entropy with inverse-frequency class weights ``N / (K * n_c)``, as the
    multitask trainer's; Adam (``lr``, weight decay 1e-4) for ``steps`` steps.
    """
    import torch

    torch.manual_seed(seed)
    head = ClassificationHead(x.shape[1], n_classes, hidden, dropout, "mean")
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


def _fold_files(
    raw: Path, ids: Sequence[str], folder: str, n_channels: int
) -> list[tuple[str, list[Path]]]:
    return [(c, [raw / folder / f"{c}_{i:04d}.nii.gz" for i in range(n_channels)]) for c in ids]


def permuted_head_control(
    settings: NnunetSettings,
    *,
    raw_root: Path,
    results: Path,
    splits_file: Path,
    permutations: int,
    seed: int,
    device: str = "cpu",
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
    """
    from oncoflow.segmentation.predict import load_predictor

    raw = Path(raw_root) / settings.dataset
    cases = read_cases(raw).set_index("case_id")
    names = json.loads((raw / "dataset.json").read_text())["oncoflow"]["classes"]
    index = {name: i for i, name in enumerate(names)}
    splits_final = json.loads(Path(splits_file).read_text())
    test_ids = sorted(cases.index[cases["split"].isin(TEST_SPLITS)])
    n_channels = len(settings.channels)
    head = settings.head
    runs: dict[int, list[np.ndarray]] = {r: [] for r in range(permutations)}
    frames = []
    for k in settings.folds:
        predictor = load_predictor(
            Path(results) / settings.dataset / settings.model_folder,
            (k,),
            checkpoint=settings.checkpoint,
            device=device,
            mirroring=bool(settings.trainer.get("mirroring", True)),
        )
        train_ids = sorted(splits_final[k]["train"])
        val_ids = sorted(splits_final[k]["val"])
        log.info("fold %d: features of %d training, %d validation, %d test case(s)",
                 k, len(train_ids), len(val_ids), len(test_ids))  # fmt: skip
        x_train = case_features(predictor, _fold_files(raw, train_ids, "imagesTr", n_channels))
        x_val = case_features(predictor, _fold_files(raw, val_ids, "imagesTr", n_channels))
        x_test = case_features(predictor, _fold_files(raw, test_ids, "imagesTs", n_channels))
        y_train = cases.loc[train_ids, "target"].map(index).to_numpy(int)
        for r in range(permutations):
            rng = np.random.default_rng([seed, k, r])
            fitted = train_head(
                x_train,
                rng.permutation(y_train),
                len(names),
                hidden=int(head.get("hidden", 128)),
                dropout=float(head.get("dropout", 0.3)),
                seed=seed + 1000 * k + r,
            )
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
