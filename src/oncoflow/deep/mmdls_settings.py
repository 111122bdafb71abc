"""Settings of MM-DLS (:mod:`oncoflow.deep.train_mmdls`), read by each of its modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MMDLSSettings:
    """Settings of MM-DLS (config ``studies.nsclc_mmdls.train``).

    Attributes:
        histology: Binary histology column and its positive class (``LUSC``).
        stage: Stage column (classes = its sorted values in outcomes.csv, the same in every fold).
        stems: ``[CT stem, PET stem]`` of the lesion crops.
        clinical: Clinical columns.
        loss_weights: ``histology``, ``stage``, ``dfs``, ``os`` weights.
        core_statistics: Add the lesion-core CT percentiles
            (:func:`~oncoflow.deep.mmdls_tabular.core_table`).
        tabular_l1: Lasso weight on the heads' tabular weights, one for all heads or one per
            head (:meth:`~oncoflow.models.mm_dls.MMDLS.tabular_l1`).
        combat: Harmonise the image-derived tabular columns across sites
            (:func:`~oncoflow.deep.mmdls_tabular.harmonized`).
        heads: Per head (``histology``, ``stage``, ``dfs``, ``os``): ``columns``, the tabular
            columns it reads (names as in
            :func:`~oncoflow.deep.mmdls_tabular.feature_frame`: a clinical column,
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
        variant: The input ablation trained (:data:`~oncoflow.deep.mmdls_heads.VARIANTS`):
            ``mm_dls`` (every input), ``mm_dls_tabular`` (no head reads the image vector) or
            ``mm_dls_image`` (no head reads a tabular column); set by the workflow from the
            study's ladder.
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
    variant: str = "mm_dls"
    core_statistics: bool = True
    tabular_l1: float | dict[str, float] = 0.0
    combat: bool = True
    heads: dict[str, dict[str, Any]] = field(default_factory=dict)
