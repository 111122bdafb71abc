"""Design matrices of the net_survival protocol and its frozen final model.

:data:`BLOCKS` are the feature blocks and :data:`MODEL_SETS` the model sets built from them;
:class:`ClinicalEncoder` turns the clinical table into numeric columns (fit on training
patients), :func:`design` builds the ``<block>:<column>`` feature matrices a Cox pipeline is fit
and applied on, and :class:`FittedCox` is a final model kept for new cohorts
(:mod:`oncoflow.survival.apply`).

Artefacts pickled when both classes lived in ``oncoflow.survival.protocol`` (or, before, in
``oncoflow.studies.net_survival``) still load: :data:`oncoflow.artefacts.MOVED` maps them here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.survival.pipeline import CoxPipelineCV

log = logging.getLogger(__name__)

BLOCKS: tuple[str, ...] = ("radiomics", "pathomics", "clinical")
"""Feature blocks, the keys of ``features``."""

MODEL_SETS: dict[str, tuple[str, ...]] = {
    "radiomics": ("radiomics",),
    "pathomics": ("pathomics",),
    "clinical": ("clinical",),
    "clinical+radiomics": ("clinical", "radiomics"),
    "clinical+pathomics": ("clinical", "pathomics"),
    "all": ("clinical", "radiomics", "pathomics"),
}
"""Model name -> feature blocks it uses."""


class ClinicalEncoder:
    """Clinical table -> numeric features, fit on training patients.

    Numeric columns stay numeric (missing values -> training median). Other columns are one-hot
    encoded against the categories seen in training, the first (alphabetical) category being the
    reference (no column); missing values and categories unseen in training map to the reference.
    Output columns are named ``clinical:<column>`` and ``clinical:<column>=<category>``.
    """

    def fit(self, clinical: pd.DataFrame) -> ClinicalEncoder:
        """Learn medians and categories from the training rows."""
        self.numeric_: dict[str, float] = {}
        self.categories_: dict[str, list[str]] = {}
        for col in clinical.columns:
            series = clinical[col]
            as_num = pd.to_numeric(series, errors="coerce")
            if series.notna().any() and as_num[series.notna()].notna().all():
                median = float(as_num.median()) if as_num.notna().any() else 0.0
                self.numeric_[col] = median
            else:
                cats = sorted({str(v) for v in series.dropna()})
                self.categories_[col] = cats
        return self

    def transform(self, clinical: pd.DataFrame) -> pd.DataFrame:
        """Encode any rows with the training encoding."""
        out: dict[str, Any] = {}
        for col, median in self.numeric_.items():
            values = pd.to_numeric(clinical[col], errors="coerce").astype(float)
            out[f"clinical:{col}"] = values.fillna(median).to_numpy()
        for col, cats in self.categories_.items():
            values = clinical[col].astype(object).where(clinical[col].notna(), None)
            unseen = {str(v) for v in values.dropna()} - set(cats)
            if unseen:
                log.warning("clinical %s: categories unseen in training -> reference", col)
            for cat in cats[1:]:
                out[f"clinical:{col}={cat}"] = (values.astype(str) == cat).astype(float).to_numpy()
        return pd.DataFrame(out, index=clinical.index)


def indexed(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    """Index a table by ``patient_id`` (column or index) as strings; reject duplicates."""
    if "patient_id" in frame.columns:
        frame = frame.set_index("patient_id")
    frame = frame.copy()
    frame.index = frame.index.astype(str)
    frame.index.name = "patient_id"
    dup = frame.index[frame.index.duplicated()].unique().tolist()
    if dup:
        msg = f"{what}: patient(s) listed more than once: {', '.join(dup[:5])}"
        raise ModelError(msg)
    return frame


def encode(
    features: Mapping[str, pd.DataFrame],
    blocks: Sequence[str],
    ids: Sequence[str],
    encoder: ClinicalEncoder | None,
) -> pd.DataFrame:
    """Feature matrix of ``ids``: ``<block>:<column>`` per block, clinical through ``encoder``."""
    parts = []
    for block in blocks:
        table = features[block]
        if block == "clinical":
            assert encoder is not None
            parts.append(encoder.transform(table.reindex(ids)))
        else:
            parts.append(table.add_prefix(f"{block}:").reindex(ids).astype(float))
    return pd.concat(parts, axis=1)


def design(
    features: Mapping[str, pd.DataFrame],
    blocks: Sequence[str],
    fit_ids: Sequence[str],
    apply_ids: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame, list[str], ClinicalEncoder | None]:
    """Feature matrices of the fit and apply patients; clinical encoding fit on ``fit_ids``."""
    encoder = None
    if "clinical" in blocks:
        encoder = ClinicalEncoder().fit(features["clinical"].reindex(fit_ids))
    x_fit = encode(features, blocks, fit_ids, encoder)
    keep = [str(c) for c in x_fit.columns if str(c).startswith("clinical:")]
    return x_fit, encode(features, blocks, apply_ids, encoder), keep, encoder


@dataclass
class FittedCox:
    """One final net_survival model (fit on all training patients), kept for ``apply``.

    Attributes:
        target: ``os``, ``pfs``...
        model: Model set name (:data:`MODEL_SETS`).
        blocks: Feature blocks of the model set.
        encoder: Clinical encoding fit on the training patients (``None`` without clinical).
        pipeline: The fitted :class:`~oncoflow.survival.CoxPipelineCV`.
        horizons: Days of the ``survival_<t>`` predictions.
        permutation: Negative-control permutation index, ``None`` for the real model.
    """

    target: str
    model: str
    blocks: tuple[str, ...]
    encoder: ClinicalEncoder | None
    pipeline: CoxPipelineCV
    horizons: list[float] = field(default_factory=list)
    permutation: int | None = None

    def required_columns(self) -> dict[str, list[str]]:
        """Block -> raw columns a new cohort must provide (the selected features, clinical)."""
        needed: dict[str, list[str]] = {}
        for column in self.pipeline.pipeline_.selected_:
            block, _, name = str(column).partition(":")
            if block != "clinical":
                needed.setdefault(block, []).append(name)
        if self.encoder is not None:
            needed["clinical"] = sorted([*self.encoder.numeric_, *self.encoder.categories_])
        return needed

    def predict(
        self, features: Mapping[str, pd.DataFrame], patients: Sequence[str]
    ) -> pd.DataFrame:
        """Risk and survival probabilities of ``patients`` with the frozen model.

        Args:
            features: Block -> table indexed by ``patient_id`` (harmonised with the frozen ComBat
                when the model was trained on harmonised features).
            patients: Patients to predict; one missing from a table gets that block imputed
                with the training medians (as in training).

        Returns:
            ``risk`` and ``survival_<t>`` per patient (index ``patient_id``).

        Raises:
            ModelError: A block or a column the model needs is missing (named).
        """
        for block, columns in self.required_columns().items():
            if block not in features:
                msg = f"model {self.model} ({self.target}) needs the {block} features"
                raise ModelError(msg)
            missing = [c for c in columns if c not in features[block].columns]
            if missing:
                msg = (
                    f"model {self.model} ({self.target}): {block} column(s) "
                    f"{', '.join(missing[:5])} missing from the new cohort"
                )
                raise ModelError(msg)
        x = encode(features, self.blocks, list(patients), self.encoder)
        out = pd.DataFrame({"risk": self.pipeline.predict_risk(x)}, index=list(patients))
        if self.horizons:
            survival = self.pipeline.predict_survival(x, self.horizons)
            for k, h in enumerate(self.horizons):
                out[f"survival_{h:g}"] = survival[:, k]
        out.index.name = "patient_id"
        return out
