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

:meth:`MMDLSTask.restore` scores a new cohort (:meth:`~oncoflow.deep.task.FoldTask.apply`) with
what ``model.pt`` keeps, fitting nothing: the stage classes, the tabular encoder, the ComBat
estimates (``combat``), the Breslow baselines (``breslow``) and the network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch

from oncoflow.deep.common import index_batches, prediction_rows
from oncoflow.deep.mmdls_heads import (
    REFITTABLE,
    baseline_survival,
    breslow_baseline,
    head_layout,
    refit_heads,
    variant_heads,
)
from oncoflow.deep.mmdls_settings import MMDLSSettings
from oncoflow.deep.mmdls_tabular import (
    SURVIVAL,
    combat_frames,
    core_table,
    feature_frame,
    fit_combat,
    lesion_images,
    outcome_columns,
    permute_targets,
    targets,
)
from oncoflow.deep.task import FoldTask, Stage
from oncoflow.errors import ModelError
from oncoflow.features.tabular import TabularEncoder
from oncoflow.metrics.classification import safe_auc
from oncoflow.metrics.survival import concordance_index
from oncoflow.models.mm_dls import multitask_loss
from oncoflow.models.registry import create_model
from oncoflow.train.loop import FitResult
from oncoflow.train.losses import class_weights

log = logging.getLogger(__name__)


Arrays = dict[str, np.ndarray]

APPLY_KEYS: tuple[str, ...] = ("stages", "tabular_encoder", "combat", "breslow", "network")
"""The ``model.pt`` keys :meth:`MMDLSTask.restore` reads besides the weights."""


class MMDLSTask(FoldTask[MMDLSSettings]):
    """MM-DLS on one fold (module docstring) as :class:`~oncoflow.deep.task.FoldTask` hooks.

    :meth:`encode` builds the crops, the tabular vectors and the targets of each group,
    :meth:`build` / :meth:`stage` the multi-task network and :meth:`refine` refits the
    ``refit`` heads and keeps the Breslow baselines; :meth:`restore` rebuilds the ``out`` group
    and the network from ``model.pt`` to score a new cohort.
    """

    unlabelled_rows: bool = False
    """Keep the rows of unknown labels (a new cohort without outcomes; :meth:`restore`)."""

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
        a class without training patients in a fold keeps its prior-free logit). ComBat and the
        tabular encoder are fit on the ``train`` + ``inner`` patients. A negative control
        permutes the training and inner targets (seeds ``label_seed + 1`` and ``+ 11``).
        """
        inputs, settings, groups = self.inputs, self.settings, self.groups
        self.outcomes = inputs.outcomes.set_index("patient_id")
        self.stages = sorted({str(v) for v in self.outcomes[settings.stage].dropna()})
        frames = self.frames(groups)
        self.combat = None
        if settings.combat:
            image_columns = [c for c in frames["train"].columns if c not in settings.clinical]
            self.combat = fit_combat(inputs, frames, image_columns)
        frames = combat_frames(self.combat, inputs, frames)
        self.encoder = TabularEncoder().fit(pd.concat([frames["train"], frames["inner"]]))
        data = {name: self.tensors(patients, frames[name]) for name, patients in groups.items()}
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

    def frames(self, groups: dict[str, list[str]]) -> dict[str, pd.DataFrame]:
        """Each group's tabular frame before ComBat (:func:`feature_frame`).

        With ``core_statistics`` and the converted images, the lesion-core statistics of every
        patient of the inputs are computed once (:func:`core_table`).
        """
        inputs, settings = self.inputs, self.settings
        core = None
        if settings.core_statistics and inputs.converted is not None:
            core = core_table(inputs, settings)
        return {name: feature_frame(inputs, p, settings, core) for name, p in groups.items()}

    def tensors(self, patients: list[str], frame: pd.DataFrame) -> dict[str, Any]:
        """Lesion and context crops, tabular rows (:attr:`encoder`, fitted) and targets.

        Args:
            patients: The group's patients, in row order.
            frame: Their tabular frame, harmonised when the model harmonises.

        Returns:
            ``{"lesion", "context", "tabular", "y"}`` (:func:`targets` of :attr:`outcomes`).
        """
        lesion, context = lesion_images(self.inputs, patients, self.settings)
        return {
            "lesion": lesion,
            "context": context,
            "tabular": torch.from_numpy(self.encoder.transform(frame)),
            "y": targets(self.outcomes, patients, self.settings, self.stages),
        }

    def restore(self, payload: Mapping[str, Any]) -> torch.nn.Module:
        """The trained network and the ``out`` patients' inputs, from a ``model.pt`` payload.

        Nothing is fit: the stage classes, the ComBat estimates (:func:`combat_frames`), the
        tabular encoder and the Breslow baselines are the payload's. The ``out`` patients'
        crops, tabular rows and targets are built as in :meth:`encode`; without outcomes
        (a new cohort without ``outcomes.csv``) every row is kept with empty labels.

        Args:
            payload: One run's ``model.pt`` payload (:meth:`payload`).

        Returns:
            The network with the payload's weights (refit heads included) on :attr:`device`.

        Raises:
            ModelError: The payload predates ``apply`` (no ``combat`` / ``breslow``: retrain
                the fold), or the new cohort lacks a tabular column the model reads.
        """
        missing = [k for k in (*APPLY_KEYS, "state_dict") if k not in payload]
        if missing:
            msg = (
                f"mm_dls model of fold {self.inputs.fold}: model.pt has no {', '.join(missing)} "
                "(trained before models could be applied to a new cohort); retrain the study"
            )
            raise ModelError(msg)
        inputs, settings, patients = self.inputs, self.settings, self.groups["out"]
        self.stages = [str(c) for c in payload["stages"]]
        self.encoder = TabularEncoder.from_state(payload["tabular_encoder"])
        self.combat, self.breslow = payload["combat"], payload["breslow"]
        outcomes = inputs.outcomes.drop_duplicates("patient_id").set_index("patient_id")
        self.unlabelled_rows = outcomes.empty
        self.outcomes = outcomes.reindex(index=patients, columns=outcome_columns(settings))
        frame = self.frames({"out": patients})["out"]
        absent = [c for c in [*self.encoder.numeric_, *self.encoder.categories_] if c not in frame]
        if absent:
            msg = (
                f"mm_dls apply: the new cohort has no tabular column(s) {', '.join(absent[:10])} "
                "the model reads (clinical.csv, the feature tables; core:* needs the converted "
                "images)"
            )
            raise ModelError(msg)
        notes = self.notes.setdefault("combat_sites", {}) if self.combat is not None else None
        frames = combat_frames(self.combat, inputs, {"out": frame}, notes)
        self.data = {"out": self.tensors(patients, frames["out"])}
        model = create_model("mm_dls", **payload["network"])
        model.load_state_dict(payload["state_dict"])
        return model.to(self.device)

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
        """Refit the ``refit`` heads on the frozen network (:func:`refit_heads`).

        Then keep the Breslow baselines of the survival heads (:meth:`baselines`), which
        :meth:`predict` and :meth:`restore` use.
        """

        def head_inputs(group: str) -> Arrays:
            with torch.no_grad():
                return self.in_chunks(model.head_inputs, model, group)

        labels = {g: self.data[g]["y"] for g in ("train", "inner")}
        weight = self.stage_weight.cpu().numpy()
        self.refits = refit_heads(model, self.refit, self.layout, head_inputs, labels, weight)
        self.breslow = self.baselines(model)

    def baselines(self, model: torch.nn.Module) -> dict[str, dict[str, Any]]:
        """The Breslow baseline of each survival head (:func:`breslow_baseline`).

        Fit on the ``train`` + ``inner`` patients' risks of the trained network and their
        (negative control: permuted) times and events, at ``settings.horizons`` (days).
        """
        with torch.no_grad():
            seen = [self.probabilities(model, g) for g in ("train", "inner")]
        y = [self.data[g]["y"] for g in ("train", "inner")]
        out = {}
        for name in SURVIVAL:
            risk = np.concatenate([part[name] for part in seen])
            time, event = (np.concatenate([v[f"{name}_{k}"] for v in y]) for k in ("time", "event"))
            out[name] = breslow_baseline(risk, time, event, self.settings.horizons)
        return out

    def predict(self, model: torch.nn.Module) -> pd.DataFrame:
        """Rows of the four targets for the ``out`` patients (module docstring).

        A row whose target is unknown (no histology, no stage, no time) is left out, unless
        :attr:`unlabelled_rows` (a new cohort without outcomes: one row per patient and target,
        labels empty).
        """
        with torch.no_grad():
            out = self.probabilities(model, "out")
        inputs, settings, patients = self.inputs, self.settings, self.groups["out"]
        y = self.data["out"]["y"]
        hist = np.where(y["histology"] >= 0, y["histology"], np.nan)
        values = {"y_true": hist, "y_score": out["histology"]}
        frames = [prediction_rows(inputs, patients, settings.histology, values)]
        frames.append(
            prediction_rows(
                inputs,
                patients,
                settings.stage,
                {
                    "y_true": [self.stages[k] if k >= 0 else None for k in y["stage"]],
                    **{f"y_score_{c}": out["stage"][:, k] for k, c in enumerate(self.stages)},
                },
            )
        )
        frames += [self.survival_rows(name, out[name], y) for name in SURVIVAL]
        if not self.unlabelled_rows:
            frames[:2] = [f[f["y_true"].notna()] for f in frames[:2]]
            frames[2:] = [f[np.isfinite(f["time"].astype(float))] for f in frames[2:]]
        return pd.concat(frames, ignore_index=True)

    def survival_rows(self, name: str, risk: np.ndarray, y: Arrays) -> pd.DataFrame:
        """``time, event, risk, survival_<t>`` rows of a survival task for the ``out`` patients.

        ``S(t | x) = exp(-H_0(t) exp(risk - c))`` with the Breslow baseline of the ``train`` +
        ``inner`` patients kept in :attr:`breslow` (:func:`baseline_survival`; ``t`` in days).
        """
        baseline = self.breslow[name]
        surv = baseline_survival(baseline, risk)
        values: dict[str, Any] = {
            "time": y[f"{name}_time"],
            "event": y[f"{name}_event"],
            "risk": risk,
        }
        values.update({f"survival_{h:g}": surv[:, i] for i, h in enumerate(baseline["horizons"])})
        return prediction_rows(self.inputs, self.groups["out"], name, values)

    def payload(self, model: torch.nn.Module, result: FitResult) -> dict[str, Any]:
        """Weights, network settings (the heads as refit), encoder, ComBat, baselines, refits.

        ``combat``: :func:`~oncoflow.deep.mmdls_tabular.combat_state` (``None`` when the model
        does not harmonise); ``breslow``: :meth:`baselines`; both fit on ``train`` + ``inner``.
        """
        network = self.network
        network["head_columns"], network["head_image"] = model.head_columns, model.head_image
        return {
            "model": "mm_dls",
            "state_dict": model.state_dict(),
            "network": network,
            "stages": self.stages,
            "tabular_encoder": self.encoder.state(),
            "combat": self.combat,
            "breslow": self.breslow,
            "best_epoch": result.best_epoch,
            "inner_score": result.best_score,
            "refit": self.refits,
            "train_patients": self.inputs.train,
            "inner_patients": self.inputs.inner,
        }
