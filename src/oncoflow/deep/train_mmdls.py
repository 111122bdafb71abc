"""Train one fold of ``nsclc_mmdls`` (:mod:`oncoflow.deep.mmdls`).

Per patient: ``k`` lesion slices (CT + PET channels, the largest lesion areas), ``k`` lung
context patches, and a tabular vector of the feature tables (PET metrics, radiomics when on; the
baseline time point) and the clinical columns, encoded with the training patients' statistics
(:class:`~oncoflow.deep.data.TabularEncoder`). The inner-validation patients select the epoch on
the mean of histology AUC, stage macro AUC and the DFS / OS C-indices. Prediction rows: histology
(``y_true, y_score``), stage (``y_true, y_score_<class>``), DFS and OS (``time, event, risk`` and
``survival_<t>`` from the Breslow baseline of the training patients).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.deep.common import FoldInputs, index_batches, permuted, prediction_rows, safe_auc
from oncoflow.deep.data import TabularEncoder, downsample, select_slices
from oncoflow.deep.mmdls import breslow_survival, multitask_loss
from oncoflow.errors import ModelError
from oncoflow.survival.metrics import concordance_index
from oncoflow.train.engine import Checkpoint, History, config_hash
from oncoflow.train.loop import FitSettings, fit
from oncoflow.train.losses import class_weights
from oncoflow.train.registry import create_model

log = logging.getLogger(__name__)

SURVIVAL: tuple[str, ...] = ("dfs", "os")


@dataclass
class MMDLSSettings:
    """Settings of MM-DLS (config ``studies.nsclc_mmdls.train``).

    Attributes:
        histology: Binary histology column and its positive class (``LUSC``).
        stage: Stage column (classes = the sorted values of the training patients).
        stems: ``[CT stem, PET stem]`` of the lesion crops.
        clinical: Clinical columns.
        loss_weights: ``histology``, ``stage``, ``dfs``, ``os`` weights.
        network: Model settings (dim, heads, dropout).
        slices, input_size, epochs, batch_size, lr, weight_decay, patience: Training settings.
        horizons: Days at which ``S(t | x)`` is written.
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


def _feature_frame(inputs: FoldInputs, patients: list[str], s: MMDLSSettings) -> pd.DataFrame:
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
    return pd.concat(parts, axis=1)


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
    resume_dir.mkdir(parents=True, exist_ok=True)
    outcomes = inputs.outcomes.set_index("patient_id")
    groups = {"train": inputs.train, "inner": inputs.inner, "out": inputs.validation + inputs.test}
    stages = sorted({str(v) for v in outcomes.loc[inputs.fitted, settings.stage].dropna()})
    encoder = TabularEncoder().fit(_feature_frame(inputs, inputs.fitted, settings))
    data: dict[str, dict[str, Any]] = {}
    for name, patients in groups.items():
        lesion, context = _images(inputs, patients, settings)
        tab = torch.from_numpy(encoder.transform(_feature_frame(inputs, patients, settings)))
        data[name] = {"lesion": lesion, "context": context, "tabular": tab}
        data[name]["y"] = _targets(outcomes, patients, settings, stages)
    if inputs.permute:
        data["train"]["y"] = _permute_targets(data["train"]["y"], inputs.seed + 1)
        data["inner"]["y"] = _permute_targets(data["inner"]["y"], inputs.seed + 11)
    y_train = {k: torch.from_numpy(v) for k, v in data["train"]["y"].items()}
    y_train["histology"] = y_train["histology"].float()
    known = data["train"]["y"]["stage"][data["train"]["y"]["stage"] >= 0]
    stage_weight = class_weights(known, len(stages)).to(device)
    network = {"tabular_dim": encoder.width, "n_stages": len(stages), **settings.network}
    torch.manual_seed(inputs.seed)
    model = create_model("mm_dls", **network).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)

    def forward(net: torch.nn.Module, name: str, idx: Any) -> dict[str, torch.Tensor]:
        part = data[name]
        return net(
            part["lesion"][idx].to(device),
            part["context"][idx].to(device),
            part["tabular"][idx].to(device),
        )

    def batches(epoch: int, generator: torch.Generator):
        n = len(data["train"]["tabular"])
        yield from index_batches(n, settings.batch_size, generator, drop_last=True)

    def loss_fn(net: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
        targets = {k: v[idx].to(device) for k, v in y_train.items()}
        loss, _ = multitask_loss(
            forward(net, "train", idx), targets, settings.loss_weights, stage_weight=stage_weight
        )
        return loss

    def predict(net: torch.nn.Module, name: str) -> dict[str, np.ndarray]:
        outs: dict[str, list[np.ndarray]] = {}
        n = len(data[name]["tabular"])
        for start in range(0, n, 64):
            result = forward(net, name, slice(start, start + 64))
            result["histology"] = torch.sigmoid(result["histology"])
            result["stage"] = torch.softmax(result["stage"], 1)
            for k, v in result.items():
                outs.setdefault(k, []).append(v.float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in outs.items()}

    def scores(pred: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, float]:
        values = {"histology_auc": safe_auc(y["histology"], pred["histology"])}
        stage_aucs = [safe_auc(y["stage"] == k, pred["stage"][:, k]) for k in range(len(stages))]
        values["stage_auc"] = float(np.mean(stage_aucs))
        for name in SURVIVAL:
            t, e = y[f"{name}_time"], y[f"{name}_event"]
            ok = np.isfinite(t) & np.isfinite(e)
            c = concordance_index(t[ok], e[ok], pred[name][ok]) if e[ok].sum() > 0 else 0.5
            values[f"{name}_c"] = float(c) if np.isfinite(c) else 0.5
        values["mean"] = float(np.mean(list(values.values())))
        return values

    def validate(net: torch.nn.Module) -> dict[str, float]:
        return scores(predict(net, "inner"), data["inner"]["y"])

    history = History(resume_dir / "history.csv")
    key = config_hash(
        {
            "settings": repr(settings),
            "train": inputs.train,
            "seed": inputs.seed,
            "perm": inputs.permute,
        }
    )
    result = fit(
        model,
        optimizer,
        batches,
        loss_fn,
        validate,
        FitSettings(epochs=settings.epochs, patience=settings.patience, seed=inputs.seed),
        monitor="mean",
        device=device,
        checkpoint=Checkpoint(resume_dir / "resume.pt", key),
        history=history,
        scheduler=scheduler,
    )
    model.eval()
    with torch.no_grad():
        fitted = {
            k: np.concatenate([predict(model, g)[k] for g in ("train", "inner")]) for k in SURVIVAL
        }
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
    payload = {
        "model": "mm_dls",
        "state_dict": model.state_dict(),
        "network": network,
        "stages": stages,
        "tabular_encoder": encoder.state(),
        "best_epoch": result.best_epoch,
        "inner_score": result.best_score,
        "train_patients": inputs.train,
        "inner_patients": inputs.inner,
    }
    return payload, pd.concat(frames, ignore_index=True), pd.DataFrame(history.rows)
