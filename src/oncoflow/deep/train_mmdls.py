"""Train one fold of ``nsclc_mmdls`` (:mod:`oncoflow.models.mm_dls`) as :class:`MMDLSTask`.

Per patient: ``k`` lesion slices (CT + PET channels, the largest lesion areas), ``k`` lung
context patches, and a tabular vector of the feature tables (PET metrics, radiomics when on; the
baseline time point) and the clinical columns, encoded with the training patients' statistics
(:class:`~oncoflow.features.tabular.TabularEncoder`). With ``core_statistics`` and the
converted images, the tabular vector also holds the CT intensity percentiles of the lesion core
(:func:`~oncoflow.deep.data.lesion_core_statistics`, mask eroded by one voxel): the texture the
32-pixel resampled crops lose (:mod:`oncoflow.deep.mmdls_tabular`). The inner-validation patients
select the epoch on the mean of histology AUC, stage macro AUC and the DFS / OS C-indices.

The crops come from the lesion masks of the lesions stage (the cohort's masks, or the nnU-Net
stage's predicted masks where a study segments). After training, ``refit`` heads are refit on
the frozen network (:mod:`oncoflow.deep.mmdls_heads`). Prediction rows: histology
(``y_true, y_score``), stage (``y_true, y_score_<class>``), DFS and OS (``time, event, risk``
and ``survival_<t>`` from the Breslow baseline of the training patients).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.deep.common import index_batches, prediction_rows
from oncoflow.deep.mmdls_heads import REFITTABLE, head_layout, refit_heads, variant_heads
from oncoflow.deep.mmdls_settings import MMDLSSettings
from oncoflow.deep.mmdls_tabular import (
    SURVIVAL,
    core_table,
    feature_frame,
    harmonized,
    lesion_images,
    permute_targets,
    targets,
)
from oncoflow.deep.task import FoldTask, Stage
from oncoflow.errors import ModelError
from oncoflow.features.tabular import TabularEncoder
from oncoflow.metrics.classification import safe_auc
from oncoflow.metrics.survival import concordance_index
from oncoflow.models.mm_dls import breslow_survival, multitask_loss
from oncoflow.models.registry import create_model
from oncoflow.train.loop import FitResult
from oncoflow.train.losses import class_weights

log = logging.getLogger(__name__)


Arrays = dict[str, np.ndarray]


class MMDLSTask(FoldTask[MMDLSSettings]):
    """MM-DLS on one fold (module docstring) as :class:`~oncoflow.deep.task.FoldTask` hooks.

    :meth:`encode` builds the crops, the tabular vectors and the targets of each group,
    :meth:`build` / :meth:`stage` the multi-task network and :meth:`refine` refits the
    ``refit`` heads.
    """

    def check(self) -> None:
        """Refuse an unknown input variant before any crop is read.

        Raises:
            ModelError: ``settings.variant`` is not one of
                :data:`~oncoflow.deep.mmdls_heads.VARIANTS`.
        """
        variant_heads(self.settings.heads, self.settings.variant)

    def encode(self) -> None:
        """Crops, encoded tabular vectors (ComBat first when on) and targets of every group.

        The stage classes are the outcome table's (every fold's model scores the same classes;
        a class without training patients in a fold keeps its prior-free logit). A negative
        control permutes the training and inner targets (seeds ``label_seed + 1`` and ``+ 11``).
        """
        inputs, settings, groups = self.inputs, self.settings, self.groups
        self.outcomes = inputs.outcomes.set_index("patient_id")
        self.stages = sorted({str(v) for v in self.outcomes[settings.stage].dropna()})
        core = None
        if settings.core_statistics and inputs.converted is not None:
            core = core_table(inputs, settings)  # every patient of the fold, built once
        frames = {name: feature_frame(inputs, p, settings, core) for name, p in groups.items()}
        if settings.combat:
            image_columns = [c for c in frames["train"].columns if c not in settings.clinical]
            frames = harmonized(inputs, frames, image_columns)
        self.encoder = TabularEncoder().fit(pd.concat([frames["train"], frames["inner"]]))
        data: dict[str, dict[str, Any]] = {}
        for name, patients in groups.items():
            lesion, context = lesion_images(inputs, patients, settings)
            tab = torch.from_numpy(self.encoder.transform(frames[name]))
            data[name] = {"lesion": lesion, "context": context, "tabular": tab}
            data[name]["y"] = targets(self.outcomes, patients, settings, self.stages)
        if inputs.permute:
            data["train"]["y"] = permute_targets(data["train"]["y"], inputs.label_seed + 1)
            data["inner"]["y"] = permute_targets(data["inner"]["y"], inputs.label_seed + 11)
        self.data = data
        self.y_train = {k: torch.from_numpy(v) for k, v in data["train"]["y"].items()}
        self.y_train["histology"] = self.y_train["histology"].float()
        known = data["train"]["y"]["stage"][data["train"]["y"]["stage"] >= 0]
        self.stage_weight = class_weights(known, len(self.stages)).to(self.device)
        heads = variant_heads(settings.heads, settings.variant)
        self.layout = head_layout(heads, self.encoder.columns_)
        self.refit = [h for h in REFITTABLE if heads.get(h, {}).get("refit")]

    def build(self) -> torch.nn.Module:
        """The multi-task network, seeded with the run's label seed.

        A refit head trains on every input; it gets its declared inputs in :meth:`refine`.
        """
        head_columns, head_image = self.layout
        self.network = {
            "tabular_dim": self.encoder.width,
            "n_stages": len(self.stages),
            "head_columns": {h: v for h, v in head_columns.items() if h not in self.refit},
            "head_image": {h: v for h, v in head_image.items() if h not in self.refit},
            **self.settings.network,
        }
        torch.manual_seed(self.inputs.label_seed)
        return create_model("mm_dls", **self.network).to(self.device)

    def stage(self, model: torch.nn.Module) -> Stage:
        """AdamW, cosine lr; loss = weighted multi-task loss (+ the heads' tabular lasso).

        Batches: shuffled training patients, last partial batch dropped; the epoch is
        selected on the ``mean`` of :meth:`scores` of the inner patients.
        """
        settings, device, y_train = self.settings, self.device, self.y_train
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.epochs)

        def batches(epoch: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
            n = len(self.data["train"]["tabular"])
            yield from index_batches(n, settings.batch_size, generator, drop_last=True)

        def loss_fn(net: torch.nn.Module, idx: torch.Tensor) -> torch.Tensor:
            batch_targets = {k: v[idx].to(device) for k, v in y_train.items()}
            loss, _ = multitask_loss(
                net(*self.batch_of("train", idx)),
                batch_targets,
                settings.loss_weights,
                stage_weight=self.stage_weight,
            )
            if settings.tabular_l1:
                loss = loss + net.tabular_l1(settings.tabular_l1)
            return loss

        def validate(net: torch.nn.Module) -> dict[str, float]:
            return self.scores(self.probabilities(net, "inner"), self.data["inner"]["y"])

        return Stage(
            "multitask",
            optimizer,
            batches,
            loss_fn,
            validate,
            settings=settings,
            epochs=settings.epochs,
            patience=settings.patience,
            monitor="mean",
            scheduler=scheduler,
        )

    def batch_of(self, name: str, idx: Any) -> tuple[torch.Tensor, ...]:
        """Lesion crops, context crops and tabular rows ``idx`` of a group, on the device."""
        part = self.data[name]
        return tuple(part[k][idx].to(self.device) for k in ("lesion", "context", "tabular"))

    def in_chunks(
        self, fn: Callable[..., dict[str, torch.Tensor]], net: torch.nn.Module, name: str
    ) -> Arrays:
        """``fn(*batch)`` over a group in chunks of 64 rows, as NumPy arrays."""
        outs: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(self.data[name]["tabular"]), 64):
            for k, v in fn(*self.batch_of(name, slice(start, start + 64))).items():
                outs.setdefault(k, []).append(v.float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in outs.items()}

    def probabilities(self, net: torch.nn.Module, name: str) -> Arrays:
        """A group's outputs: ``P(histology)``, stage probabilities, DFS / OS risks."""

        def forward(*batch: torch.Tensor) -> dict[str, torch.Tensor]:
            result = net(*batch)
            result["histology"] = torch.sigmoid(result["histology"])
            result["stage"] = torch.softmax(result["stage"], 1)
            return result

        return self.in_chunks(forward, net, name)

    def scores(self, pred: Arrays, y: Arrays) -> dict[str, float]:
        """Histology AUC, stage macro AUC (one-vs-rest), DFS / OS C-index, and their ``mean``.

        An undefined AUC or C-index (one class, no comparable pair) counts as 0.5.
        """
        values = {"histology_auc": safe_auc(y["histology"], pred["histology"], undefined=0.5)}
        stage_aucs = [
            safe_auc(y["stage"] == k, pred["stage"][:, k], undefined=0.5)
            for k in range(len(self.stages))
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

    def refine(self, model: torch.nn.Module) -> None:
        """Refit the ``refit`` heads on the frozen network (:func:`refit_heads`)."""

        def head_inputs(group: str) -> Arrays:
            with torch.no_grad():
                return self.in_chunks(model.head_inputs, model, group)

        labels = {g: self.data[g]["y"] for g in ("train", "inner")}
        weight = self.stage_weight.cpu().numpy()
        self.refits = refit_heads(model, self.refit, self.layout, head_inputs, labels, weight)

    def predict(self, model: torch.nn.Module) -> pd.DataFrame:
        """Rows of the four targets for the validation and test patients (module docstring).

        A row whose target is unknown (histology -1, no stage, no time) is left out.
        """
        with torch.no_grad():
            seen = [self.probabilities(model, g) for g in ("train", "inner")]
            fitted = {k: np.concatenate([part[k] for part in seen]) for k in SURVIVAL}
            out = self.probabilities(model, "out")
        inputs, settings, patients = self.inputs, self.settings, self.groups["out"]
        y = targets(self.outcomes, patients, settings, self.stages)
        values = {"y_true": y["histology"], "y_score": out["histology"]}
        frames = [prediction_rows(inputs, patients, settings.histology, values)]
        frames[0] = frames[0][frames[0]["y_true"] >= 0]
        stage_rows = prediction_rows(
            inputs,
            patients,
            settings.stage,
            {
                "y_true": [self.stages[k] if k >= 0 else None for k in y["stage"]],
                **{f"y_score_{c}": out["stage"][:, k] for k, c in enumerate(self.stages)},
            },
        )
        frames.append(stage_rows[stage_rows["y_true"].notna()])
        frames += [self.survival_rows(name, fitted[name], out[name], y) for name in SURVIVAL]
        return pd.concat(frames, ignore_index=True)

    def survival_rows(self, name: str, fitted: np.ndarray, risk: np.ndarray, y: Arrays) -> Any:
        """``time, event, risk, survival_<t>`` rows of a survival task (known times only).

        ``S(t | x) = S_0(t) ** exp(risk)`` with the Breslow baseline ``S_0`` of the ``train`` +
        ``inner`` patients' risks ``fitted`` (:func:`~oncoflow.models.mm_dls.breslow_survival`).
        """
        known = {
            k: np.concatenate([self.data["train"]["y"][k], self.data["inner"]["y"][k]])
            for k in (f"{name}_time", f"{name}_event")
        }
        ok = np.isfinite(known[f"{name}_time"])
        horizons = self.settings.horizons
        surv = breslow_survival(
            fitted[ok], known[f"{name}_time"][ok], known[f"{name}_event"][ok], risk, horizons
        )
        values: dict[str, Any] = {
            "time": y[f"{name}_time"],
            "event": y[f"{name}_event"],
            "risk": risk,
        }
        values.update({f"survival_{h:g}": surv[:, i] for i, h in enumerate(horizons)})
        frame = prediction_rows(self.inputs, self.groups["out"], name, values)
        return frame[np.isfinite(frame["time"].astype(float))]

    def payload(self, model: torch.nn.Module, result: FitResult) -> dict[str, Any]:
        """Weights, network settings (the heads as refit), tabular encoder and refits."""
        network = self.network
        network["head_columns"], network["head_image"] = model.head_columns, model.head_image
        return {
            "model": "mm_dls",
            "state_dict": model.state_dict(),
            "network": network,
            "stages": self.stages,
            "tabular_encoder": self.encoder.state(),
            "best_epoch": result.best_epoch,
            "inner_score": result.best_score,
            "refit": self.refits,
            "train_patients": self.inputs.train,
            "inner_patients": self.inputs.inner,
        }
