"""Train one fold of ``nsclc_mmdls`` (:mod:`oncoflow.models.mm_dls`).

Per patient: ``k`` lesion slices (CT + PET channels, the largest lesion areas), ``k`` lung
context patches, and a tabular vector of the feature tables (PET metrics, radiomics when on; the
baseline time point) and the clinical columns, encoded with the training patients' statistics
(:class:`~oncoflow.deep.data.TabularEncoder`). With ``core_statistics`` and the converted images,
the tabular vector also holds the CT intensity percentiles of the lesion core
(:func:`~oncoflow.deep.data.lesion_core_statistics`, mask eroded by one voxel): the texture the
32-pixel resampled crops lose. The inner-validation patients select the epoch on
the mean of histology AUC, stage macro AUC and the DFS / OS C-indices.

Before it, when the converted CT images are given, the lung + lesion segmentor
(:mod:`oncoflow.models.segmentor`: shared encoder, two decoders, lesion-to-lung cross-attention)
trains on the axial slices of the fold's training patients (soft Dice + BCE per branch), is
selected on the inner patients and scored (Dice) on the fold's validation patients; its weights
and Dice go into ``model.pt`` (the crops themselves come from the given or nnU-Net masks of the
lesions stage). Prediction rows: histology
(``y_true, y_score``), stage (``y_true, y_score_<class>``), DFS and OS (``time, event, risk`` and
``survival_<t>`` from the Breslow baseline of the training patients).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.deep.common import (
    FoldInputs,
    fit_stage,
    index_batches,
    permuted,
    prediction_rows,
)
from oncoflow.deep.data import (
    TabularEncoder,
    downsample,
    lesion_core_statistics,
    select_slices,
)
from oncoflow.errors import ModelError
from oncoflow.metrics.classification import safe_auc
from oncoflow.metrics.survival import concordance_index
from oncoflow.models.mm_dls import HEADS, breslow_survival, multitask_loss, refit_linear_head
from oncoflow.models.registry import create_model
from oncoflow.models.segmentor import LungLesionSegmentor, dice_score, segmentation_loss
from oncoflow.train.engine import History
from oncoflow.train.losses import class_weights

log = logging.getLogger(__name__)

SURVIVAL: tuple[str, ...] = ("dfs", "os")


@dataclass
class MMDLSSettings:
    """Settings of MM-DLS (config ``studies.nsclc_mmdls.train``).

    Attributes:
        histology: Binary histology column and its positive class (``LUSC``).
        stage: Stage column (classes = its sorted values in outcomes.csv, the same in every fold).
        stems: ``[CT stem, PET stem]`` of the lesion crops.
        clinical: Clinical columns.
        loss_weights: ``histology``, ``stage``, ``dfs``, ``os`` weights.
        core_statistics: Add the lesion-core CT percentiles (module docstring).
        tabular_l1: Lasso weight on the heads' tabular weights, one for all heads or one per
            head (:meth:`MMDLS.tabular_l1`).
        combat: Harmonise the image-derived tabular columns across sites (:func:`_harmonized`).
        heads: Per head (``histology``, ``stage``, ``dfs``, ``os``): ``columns``, the tabular
            columns it reads (names as in :func:`_feature_frame`: a clinical column,
            ``<table>:<column>`` of a feature table, ``core:<statistic>``; a text column
            stands for its one-hot columns; default all), ``image`` (default true: it also
            reads the fused image vector) and, for ``histology`` and ``stage``, ``refit``
            (default false). A refit head reads every input while the network trains, so its
            task still shapes the shared encoder; after training it is replaced by a penalised
            logistic regression on its declared inputs of the frozen network
            (:func:`~oncoflow.models.mm_dls.refit_linear_head`).
        network: Model settings (dim, heads, dropout).
        slices, input_size, epochs, batch_size, lr, weight_decay, patience: Training settings.
        horizons: Days at which ``S(t | x)`` is written.
        segmentor: Lung + lesion segmentor settings (epochs, width, depth, heads, lr,
            batch_size, slices per patient, CT window, lung / lesion labels); trained when the
            job has the converted images (``FoldInputs.converted``).
    """

    histology: str = "histology"
    positive: str = "LUSC"
    stage: str = "stage"
    stems: list[str] = field(default_factory=lambda: ["CT", "PET"])
    clinical: list[str] = field(default_factory=list)
    loss_weights: dict[str, float] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)
    slices: int = 4
    input_size: int = 32
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 12
    horizons: list[float] = field(default_factory=lambda: [365.0, 730.0, 1095.0])
    segmentor: dict[str, Any] = field(default_factory=dict)
    core_statistics: bool = True
    tabular_l1: float | dict[str, float] = 0.0
    combat: bool = True
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)


def _images(inputs: FoldInputs, patients: list[str], s: MMDLSSettings) -> tuple[torch.Tensor, ...]:
    lesion, context = [], []
    ct, pet = s.stems
    for p in patients:
        tp = min(inputs.lesions[p])
        crops = inputs.lesions[p][tp]
        lesion.append(
            np.stack([select_slices(crops[ct], s.slices), select_slices(crops[pet], s.slices)], 1)
        )
        context.append(select_slices(crops[ct], s.slices, what="context")[:, None])
    return (
        downsample(torch.from_numpy(np.stack(lesion)), s.input_size),
        downsample(torch.from_numpy(np.stack(context)), s.input_size),
    )


def _feature_frame(
    inputs: FoldInputs, patients: list[str], s: MMDLSSettings, core: pd.DataFrame | None
) -> pd.DataFrame:
    parts = [inputs.clinical.loc[patients, s.clinical]]
    for name, table in inputs.features.items():
        if "timepoint" in table.columns:
            table = table.sort_values("timepoint").groupby(level=0).first()
            table = table.drop(columns="timepoint")
        missing = [p for p in patients if p not in table.index]
        if missing:
            msg = f"feature table {name}: no row for patient(s) {', '.join(missing[:10])}"
            raise ModelError(msg)
        parts.append(table.loc[patients].add_prefix(f"{name}:"))
    if core is not None:
        parts.append(core.loc[patients].add_prefix("core:"))
    return pd.concat(parts, axis=1)


def _harmonized(
    inputs: FoldInputs, frames: dict[str, pd.DataFrame], image_columns: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """ComBat of the image-derived columns (feature tables, lesion core) across sites.

    ``image_columns`` names them (every column of :func:`_feature_frame` but the clinical ones);
    of these, the numeric, finite, non-constant ones are harmonised.

    Fit on the fold's ``train`` + ``inner`` patients (:class:`~oncoflow.harmonize.combat.ComBat`,
    parametric EB); the other patients get the fitted adjustments, and a site without training
    patients (the site-held-out external test) has its location and scale estimated from its
    own patients' features, never from outcomes (``unseen="estimate"``, as the harmonize stage
    does). Clinical columns, text columns and columns with a missing value stay as they are.
    Nothing happens with fewer than two training sites, without sites, or when a training
    site has fewer than two patients.
    """
    from oncoflow.harmonize.combat import ComBat

    fitted = pd.concat([frames["train"], frames["inner"]])
    everyone = pd.concat(list(frames.values()))
    columns = [
        c
        for c in image_columns
        if pd.api.types.is_numeric_dtype(everyone[c])
        and np.isfinite(everyone[c].to_numpy(float)).all()
        and everyone[c].std() > 0
    ]
    site_of = inputs.sites
    if not columns or any(p not in site_of for p in everyone.index):
        return frames
    sites = pd.Series([site_of[p] for p in fitted.index], index=fitted.index)
    counts = sites.value_counts()
    if len(counts) < 2 or counts.min() < 2:
        log.info("no ComBat: training sites %s", counts.to_dict())
        return frames
    model = ComBat().fit(fitted[columns], sites.to_numpy())
    out = {}
    for name, frame in frames.items():
        frame = frame.copy()
        batch = [site_of[p] for p in frame.index]
        frame[columns] = model.transform(frame[columns], batch, unseen="estimate")
        out[name] = frame
    log.info(
        "ComBat over %d image-derived columns, training sites %s", len(columns), counts.to_dict()
    )
    return out


def converted_baseline(converted: Path, patient: str, stem: str) -> tuple[np.ndarray, np.ndarray]:
    """Baseline ``<stem>.nii.gz`` and ``<stem>_mask.nii.gz`` of a patient (z, y, x), from convert.

    Raises:
        ModelError: The image or its mask is missing (patient and folder named).
    """
    import SimpleITK as sitk

    folder = Path(converted) / patient / "0"
    image_path, mask_path = folder / f"{stem}.nii.gz", folder / f"{stem}_mask.nii.gz"
    if not image_path.is_file() or not mask_path.is_file():
        msg = f"patient {patient}: no converted {stem} image + mask in {folder}"
        raise ModelError(msg)
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
    return image, sitk.GetArrayFromImage(sitk.ReadImage(str(mask_path)))


_CORE_CACHE: dict[tuple[str, str, str], dict[str, float]] = {}


def _core_table(inputs: FoldInputs, s: MMDLSSettings) -> pd.DataFrame:
    """:func:`lesion_core_statistics` of every patient's baseline CT (read once per process)."""
    cfg = {**SEGMENTOR_DEFAULTS, **s.segmentor}
    stem = s.stems[0]
    rows = {}
    for patient in inputs.lesions:
        key = (str(inputs.converted), patient, stem)
        if key not in _CORE_CACHE:
            image, mask = converted_baseline(Path(str(inputs.converted)), patient, stem)
            lesion = np.isin(mask, cfg["lesion_labels"])
            _CORE_CACHE[key] = lesion_core_statistics(image, lesion)
        rows[patient] = _CORE_CACHE[key]
    return pd.DataFrame.from_dict(rows, orient="index")


REFITTABLE: tuple[str, ...] = ("histology", "stage")


def head_layout(
    heads: Mapping[str, Mapping[str, Any]], encoded: Sequence[str]
) -> tuple[dict[str, list[int]], dict[str, bool]]:
    """Column indices and image flag of each head from the ``heads`` settings.

    Args:
        heads: :attr:`MMDLSSettings.heads`.
        encoded: The encoded column names (:attr:`TabularEncoder.columns_`; a one-hot column
            is ``<column>=<category>``).

    Returns:
        (``{head: indices into the tabular vector}`` for heads with ``columns``,
        ``{head: reads the image vector}``).

    Raises:
        ModelError: An unknown head or key, ``refit`` on a survival head, or a column that is
            not in the tabular vector (the known names are listed).
    """
    columns: dict[str, list[int]] = {}
    image: dict[str, bool] = {}
    for head, spec in heads.items():
        if head not in HEADS:
            msg = f"mm_dls heads: unknown head {head!r} (heads: {', '.join(HEADS)})"
            raise ModelError(msg)
        extra = sorted(set(spec) - {"columns", "image", "refit"})
        if extra:
            msg = f"mm_dls heads.{head}: unknown key(s) {', '.join(extra)}"
            raise ModelError(msg)
        if spec.get("refit") and head not in REFITTABLE:
            msg = f"mm_dls heads.{head}: refit is for {' and '.join(REFITTABLE)} only"
            raise ModelError(msg)
        image[head] = bool(spec.get("image", True))
        if spec.get("columns") is None:
            continue
        base = [c.split("=", 1)[0] if c not in spec["columns"] else c for c in encoded]
        missing = [c for c in spec["columns"] if c not in base]
        if missing:
            known = ", ".join(sorted({b for b in base if "=" not in b})[:40])
            msg = (
                f"mm_dls heads.{head}.columns: {', '.join(missing)} not in the tabular vector "
                f"(known: {known}, ...)"
            )
            raise ModelError(msg)
        columns[head] = [i for i, c in enumerate(base) if c in spec["columns"]]
    return columns, image


def _targets(
    outcomes: pd.DataFrame, patients: list[str], s: MMDLSSettings, stages: list[str]
) -> dict[str, np.ndarray]:
    rows = outcomes.loc[patients]
    hist = rows[s.histology].astype(object)
    stage = rows[s.stage].astype(object)
    out = {
        "histology": np.where(hist.isna(), -1.0, (hist == s.positive).astype(float)),
        "stage": np.array([stages.index(v) if v in stages else -1 for v in stage], dtype=np.int64),
    }
    for name in SURVIVAL:
        out[f"{name}_time"] = pd.to_numeric(rows[f"{name}_time"], errors="coerce").to_numpy(float)
        out[f"{name}_event"] = pd.to_numeric(rows[f"{name}_event"], errors="coerce").to_numpy(float)
    return out


def _permute_targets(targets: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Negative control: every task's labels permuted across patients (time with its event)."""
    out = dict(targets)
    for i, group in enumerate(
        (("histology",), ("stage",), ("dfs_time", "dfs_event"), ("os_time", "os_event"))
    ):
        order = permuted(np.arange(len(targets["stage"])), seed + i)
        for name in group:
            out[name] = targets[name][order]
    return out


def train_fold(
    inputs: FoldInputs,
    settings: MMDLSSettings,
    *,
    device: torch.device,
    resume_dir: Path,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Train MM-DLS on one fold (module docstring).

    Returns:
        (``model.pt`` payload, ``predictions.csv`` rows of the fold's validation and test
        patients for the four targets, ``history.csv``).
    """
    segmentation: dict[str, Any] = {}
    seg_rows: list[dict[str, Any]] = []
    if inputs.converted is not None:
        seg_history = History(
            inputs.resume_file(resume_dir, "segmentor_history.csv", labelled=False)
        )
        segmentor, dice = train_segmentor(
            inputs,
            settings,
            device=device,
            resume=inputs.resume_file(resume_dir, "segmentor.pt", labelled=False),
            history=seg_history,
        )
        segmentation = {"state_dict": segmentor.state_dict(), "validation": dice}
        seg_rows = [{**row, "stage": "segmentor"} for row in seg_history.rows]
    outcomes = inputs.outcomes.set_index("patient_id")
    groups = {"train": inputs.train, "inner": inputs.inner, "out": inputs.validation + inputs.test}
    # the class set is the table's (every fold's model scores the same classes; a class without
    # training patients in a fold keeps its prior-free logit)
    stages = sorted({str(v) for v in outcomes[settings.stage].dropna()})
    core = None
    if settings.core_statistics and inputs.converted is not None:
        core = _core_table(inputs, settings)  # every patient of the fold, built once
    frames = {name: _feature_frame(inputs, p, settings, core) for name, p in groups.items()}
    if settings.combat:
        image_columns = [c for c in frames["train"].columns if c not in settings.clinical]
        frames = _harmonized(inputs, frames, image_columns)
    encoder = TabularEncoder().fit(pd.concat([frames["train"], frames["inner"]]))
    data: dict[str, dict[str, Any]] = {}
    for name, patients in groups.items():
        lesion, context = _images(inputs, patients, settings)
        tab = torch.from_numpy(encoder.transform(frames[name]))
        data[name] = {"lesion": lesion, "context": context, "tabular": tab}
        data[name]["y"] = _targets(outcomes, patients, settings, stages)
    if inputs.permute:
        data["train"]["y"] = _permute_targets(data["train"]["y"], inputs.label_seed + 1)
        data["inner"]["y"] = _permute_targets(data["inner"]["y"], inputs.label_seed + 11)
    y_train = {k: torch.from_numpy(v) for k, v in data["train"]["y"].items()}
    y_train["histology"] = y_train["histology"].float()
    known = data["train"]["y"]["stage"][data["train"]["y"]["stage"] >= 0]
    stage_weight = class_weights(known, len(stages)).to(device)
    head_columns, head_image = head_layout(settings.heads, encoder.columns_)
    refit = [h for h in REFITTABLE if settings.heads.get(h, {}).get("refit")]
    network = {  # a refit head trains on every input (declared inputs after training)
        "tabular_dim": encoder.width,
        "n_stages": len(stages),
        "head_columns": {h: v for h, v in head_columns.items() if h not in refit},
        "head_image": {h: v for h, v in head_image.items() if h not in refit},
        **settings.network,
    }
    torch.manual_seed(inputs.label_seed)
    model = create_model("mm_dls", **network).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)

    def batch_of(name: str, idx: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        part = data[name]
        return tuple(part[k][idx].to(device) for k in ("lesion", "context", "tabular"))

    def forward(net: torch.nn.Module, name: str, idx: Any) -> dict[str, torch.Tensor]:
        return net(*batch_of(name, idx))

    def probabilities(net: torch.nn.Module, name: str, idx: Any) -> dict[str, torch.Tensor]:
        result = forward(net, name, idx)
        result["histology"] = torch.sigmoid(result["histology"])
        result["stage"] = torch.softmax(result["stage"], 1)
        return result

    def head_inputs(net: torch.nn.Module, name: str, idx: Any) -> dict[str, torch.Tensor]:
        return net.head_inputs(*batch_of(name, idx))

    def in_chunks(fn: Any, net: torch.nn.Module, name: str) -> dict[str, np.ndarray]:
        """``fn(net, name, rows)`` over a group in chunks of 64 rows, as NumPy arrays."""
        outs: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(data[name]["tabular"]), 64):
            for k, v in fn(net, name, slice(start, start + 64)).items():
                outs.setdefault(k, []).append(v.float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in outs.items()}

    def batches(epoch: int, generator: torch.Generator):
        n = len(data["train"]["tabular"])
        yield from index_batches(n, settings.batch_size, generator, drop_last=True)

    def loss_fn(net: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
        targets = {k: v[idx].to(device) for k, v in y_train.items()}
        loss, _ = multitask_loss(
            forward(net, "train", idx), targets, settings.loss_weights, stage_weight=stage_weight
        )
        if settings.tabular_l1:
            loss = loss + net.tabular_l1(settings.tabular_l1)
        return loss

    def predict(net: torch.nn.Module, name: str) -> dict[str, np.ndarray]:
        return in_chunks(probabilities, net, name)

    def scores(pred: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, float]:
        values = {"histology_auc": safe_auc(y["histology"], pred["histology"], undefined=0.5)}
        stage_aucs = [
            safe_auc(y["stage"] == k, pred["stage"][:, k], undefined=0.5)
            for k in range(len(stages))
        ]
        values["stage_auc"] = float(np.mean(stage_aucs))
        for name in SURVIVAL:
            t, e = y[f"{name}_time"], y[f"{name}_event"]
            ok = np.isfinite(t) & np.isfinite(e)
            try:
                c = concordance_index(t[ok], e[ok], pred[name][ok])
            except ModelError:  # no comparable pair in a small inner split
                c = 0.5
            values[f"{name}_c"] = float(c) if np.isfinite(c) else 0.5
        values["mean"] = float(np.mean(list(values.values())))
        return values

    def validate(net: torch.nn.Module) -> dict[str, float]:
        return scores(predict(net, "inner"), data["inner"]["y"])

    history = History(inputs.resume_file(resume_dir, "history.csv"))
    result = fit_stage(
        model,
        optimizer,
        batches,
        loss_fn,
        validate,
        inputs=inputs,
        stage="multitask",
        settings=settings,
        epochs=settings.epochs,
        patience=settings.patience,
        monitor="mean",
        device=device,
        resume=inputs.resume_file(resume_dir, "resume.pt"),
        history=history,
        scheduler=scheduler,
    )
    model.eval()
    refits = {}
    for head in refit:
        model.declare_head(head, head_columns.get(head), head_image.get(head, True))
        with torch.no_grad():
            x = {g: in_chunks(head_inputs, model, g)[head] for g in ("train", "inner")}
        refits[head] = refit_linear_head(
            getattr(model, head),
            x["train"],
            data["train"]["y"][head],
            x["inner"],
            data["inner"]["y"][head],
            sample_weight=stage_weight.cpu().numpy() if head == "stage" else None,
        )
        log.info(
            "%s head refit: C %g, inner log-loss %.3f",
            head,
            *map(refits[head].get, ("C", "inner_log_loss")),
        )
    with torch.no_grad():
        seen = [predict(model, g) for g in ("train", "inner")]  # once per group, not per task
        fitted = {k: np.concatenate([part[k] for part in seen]) for k in SURVIVAL}
        out = predict(model, "out")
    fitted_y = {
        k: np.concatenate([data["train"]["y"][k], data["inner"]["y"][k]])
        for k in ("dfs_time", "dfs_event", "os_time", "os_event")
    }
    patients = groups["out"]
    y = _targets(outcomes, patients, settings, stages)
    frames = [
        prediction_rows(
            inputs,
            patients,
            settings.histology,
            {"y_true": y["histology"], "y_score": out["histology"]},
        )
    ]
    frames[0] = frames[0][frames[0]["y_true"] >= 0]
    stage_rows = prediction_rows(
        inputs,
        patients,
        settings.stage,
        {
            "y_true": [stages[k] if k >= 0 else None for k in y["stage"]],
            **{f"y_score_{c}": out["stage"][:, k] for k, c in enumerate(stages)},
        },
    )
    frames.append(stage_rows[stage_rows["y_true"].notna()])
    for name in SURVIVAL:
        ok = np.isfinite(fitted_y[f"{name}_time"])
        surv = breslow_survival(
            fitted[name][ok],
            fitted_y[f"{name}_time"][ok],
            fitted_y[f"{name}_event"][ok],
            out[name],
            settings.horizons,
        )
        values: dict[str, Any] = {
            "time": y[f"{name}_time"],
            "event": y[f"{name}_event"],
            "risk": out[name],
        }
        values.update({f"survival_{h:g}": surv[:, i] for i, h in enumerate(settings.horizons)})
        frame = prediction_rows(inputs, patients, name, values)
        frames.append(frame[np.isfinite(frame["time"].astype(float))])
    network["head_columns"], network["head_image"] = model.head_columns, model.head_image
    payload = {
        "model": "mm_dls",
        "state_dict": model.state_dict(),
        "network": network,
        "stages": stages,
        "tabular_encoder": encoder.state(),
        "best_epoch": result.best_epoch,
        "inner_score": result.best_score,
        "refit": refits,
        "train_patients": inputs.train,
        "inner_patients": inputs.inner,
        "segmentor": segmentation,
    }
    rows = [*seg_rows, *({**row, "stage": "multitask"} for row in history.rows)]
    return payload, pd.concat(frames, ignore_index=True), pd.DataFrame(rows)


SEGMENTOR_DEFAULTS: dict[str, Any] = {
    "epochs": 6,
    "width": 8,
    "depth": 3,
    "heads": 4,
    "lr": 3e-3,
    "batch_size": 16,
    "slices": 8,
    "window": [-1000.0, 400.0],
    "lung_labels": [1, 2],
    "lesion_labels": [2],
}


def segmentation_slices(
    converted: Path, patients: list[str], stem: str, cfg: Mapping[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Axial CT slices with lung and lesion masks of the patients' baseline (from ``convert``).

    Per patient the ``slices`` lesion slices with the largest lesion area and as many lung-only
    slices (evenly spaced); CT windowed to ``window`` and scaled to [0, 1].

    Returns:
        Images, lung masks and lesion masks, each (n, 1, H, W) float32.

    Raises:
        ModelError: A patient's converted image or mask is missing (named).
    """
    low, high = (float(v) for v in cfg["window"])
    images, lungs, lesions = [], [], []
    for patient in patients:
        image, mask = converted_baseline(converted, patient, stem)
        image = image.astype(np.float32)
        lung = np.isin(mask, cfg["lung_labels"])
        lesion = np.isin(mask, cfg["lesion_labels"])
        area = lesion.sum((1, 2))
        k = int(cfg["slices"])
        with_lesion = np.sort(np.argsort(-area, kind="stable")[: min(k, int((area > 0).sum()))])
        lung_only = np.flatnonzero((area == 0) & (lung.sum((1, 2)) > 0))
        if len(lung_only):
            lung_only = lung_only[
                np.linspace(0, len(lung_only) - 1, min(k, len(lung_only))).astype(int)
            ]
        chosen = np.concatenate([with_lesion, lung_only]).astype(int)
        images.append(np.clip((image[chosen] - low) / (high - low), 0, 1))
        lungs.append(lung[chosen])
        lesions.append(lesion[chosen])
    as_tensor = lambda parts: torch.from_numpy(np.concatenate(parts).astype(np.float32)[:, None])  # noqa: E731
    return as_tensor(images), as_tensor(lungs), as_tensor(lesions)


def train_segmentor(
    inputs: FoldInputs,
    settings: MMDLSSettings,
    *,
    device: torch.device,
    resume: Path,
    history: History,
) -> tuple[LungLesionSegmentor, dict[str, float]]:
    """Train the lung + lesion segmentor on the fold's training patients; Dice of the others.

    The inner-validation patients select the epoch (mean of lung and lesion Dice); the fold's
    validation patients are scored once at the end (never used to train or select).
    """
    cfg = {**SEGMENTOR_DEFAULTS, **settings.segmentor}
    stem = settings.stems[0]
    x_tr, lung_tr, lesion_tr = segmentation_slices(inputs.converted, inputs.train, stem, cfg)
    x_in, lung_in, lesion_in = segmentation_slices(inputs.converted, inputs.inner, stem, cfg)
    torch.manual_seed(inputs.seed + 5)
    model = create_model(
        "lung_lesion_segmentor",
        in_channels=1,
        width=int(cfg["width"]),
        depth=int(cfg["depth"]),
        heads=int(cfg["heads"]),
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]))

    def batches(epoch: int, generator: torch.Generator):
        n = len(x_tr)
        for idx in index_batches(n, int(cfg["batch_size"]), generator, drop_last=True):
            flip = bool(torch.randint(0, 2, (1,), generator=generator))
            parts = [x_tr[idx], lung_tr[idx], lesion_tr[idx]]
            yield [torch.flip(p, dims=(-1,)) if flip else p for p in parts]

    def loss_fn(net: torch.nn.Module, batch: list[torch.Tensor]) -> torch.Tensor:
        x, lung, lesion = (b.to(device) for b in batch)
        return segmentation_loss(net(x), lung, lesion)

    def dice_of(net: torch.nn.Module, x: torch.Tensor, lung: torch.Tensor, lesion: torch.Tensor):
        scores: dict[str, list[float]] = {"lung_dice": [], "lesion_dice": []}
        for i in range(0, len(x), 64):
            out = net(x[i : i + 64].to(device))
            scores["lung_dice"] += dice_score(out["lung"], lung[i : i + 64].to(device)).tolist()
            has = lesion[i : i + 64].sum((1, 2, 3)) > 0
            if has.any():
                dice = dice_score(out["lesion"][has.to(device)], lesion[i : i + 64][has].to(device))
                scores["lesion_dice"] += dice.tolist()
        values = {k: float(np.mean(v)) if v else 0.0 for k, v in scores.items()}
        values["dice"] = (values["lung_dice"] + values["lesion_dice"]) / 2
        return values

    fit_stage(
        model,
        optimizer,
        batches,
        loss_fn,
        lambda net: dice_of(net, x_in, lung_in, lesion_in),
        inputs=inputs,
        stage="segmentor",
        settings=cfg,
        epochs=int(cfg["epochs"]),
        patience=0,
        monitor="dice",
        device=device,
        resume=resume,
        history=history,
        labelled=False,
    )
    model.eval()
    x_va, lung_va, lesion_va = segmentation_slices(inputs.converted, inputs.validation, stem, cfg)
    with torch.no_grad():
        validation = dice_of(model, x_va, lung_va, lesion_va)
    log.info(
        "segmentor: validation Dice lung %.3f, lesion %.3f",
        validation["lung_dice"],
        validation["lesion_dice"],
    )
    return model, validation
