"""The refit head of a trained fold on disk: ``fold_<k>/head_refit.pt`` (one reader, one writer).

The head is trained by :func:`oncoflow.segmentation.frozen_head.refit_head` and read at
prediction time (:func:`oncoflow.segmentation.predict.predict_files`). With
``nnunet.harmonize_head`` the file also holds the :class:`SiteMapping` of the fold's training
cases' inputs (the descriptor when the head reads it, then the raw statistics), and with
``nnunet.head_statistics`` the :class:`~oncoflow.segmentation.lesion_statistics.StatisticsScaler`
of the statistics appended to them; both are applied before the head at prediction time
(:func:`head_inputs`: the mapping first, then the z-scores). With
``nnunet.head_descriptor: false`` the head reads the statistics alone (the file says so).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from oncoflow.errors import SegmentationError
from oncoflow.segmentation.lesion_statistics import StatisticsScaler, present_mean_sd
from oncoflow.segmentation.multitask import ClassificationHead

log = logging.getLogger(__name__)

REFIT_FILE = "head_refit.pt"
"""The refit head of a fold, next to its checkpoint in nnU-Net's results layout."""

MIN_SITE_CASES = 2
"""Cases of a site unseen in training needed to estimate its location and scale."""


@dataclass
class SiteMapping:
    """Per-site location/scale map of head descriptors onto those of the training cases.

    For feature ``j`` of a case of site ``s``: ``x' = (x - m_s) / s_s * s + m``, with ``m, s``
    the mean and SD of all training cases and ``m_s, s_s`` those of site ``s``: of its training
    cases for a training site; of the cases given to :meth:`transform` for a site the training
    cases lack (an external site; never their classes). A feature with ``s_s = 0`` is only
    shifted. An unseen site with fewer than :data:`MIN_SITE_CASES` cases, or cases without a
    site, are left unchanged (the pooled training scale; a warning says so), as ComBat leaves a
    new batch too small to estimate. This is ComBat's location/scale model without covariates
    or empirical-Bayes shrinkage, with ``unseen: estimate``
    (:class:`oncoflow.harmonize.combat.ComBat`), also defined for a single training site.

    Attributes:
        mean: ``m`` per feature.
        sd: ``s`` per feature.
        sites: Training site -> ``(m_s, s_s)``.
    """

    mean: np.ndarray
    sd: np.ndarray
    sites: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def fit(cls, x: np.ndarray, sites: Sequence[str]) -> SiteMapping:
        """The mapping of training descriptors ``x`` (cases x features) and their sites.

        Raises:
            SegmentationError: A case without a site, or ``sites`` not one per case.
        """
        labels = _site_labels(sites, len(x))
        if any(s == "" for s in labels):
            msg = "a training case has no site (cases.csv column site): export the dataset again"
            raise SegmentationError(msg)
        per_site = {s: present_mean_sd(x[labels == s]) for s in np.unique(labels)}
        return cls(*present_mean_sd(x), per_site)

    @classmethod
    def fit_transform(cls, x: np.ndarray, sites: Sequence[str]) -> tuple[SiteMapping, np.ndarray]:
        """The mapping of training descriptors and those descriptors mapped by it."""
        mapping = cls.fit(x, sites)
        return mapping, mapping.transform(x, sites)

    def transform(self, x: np.ndarray, sites: Sequence[str]) -> np.ndarray:
        """``x`` mapped site by site (float32, same shape).

        Raises:
            SegmentationError: ``sites`` not one per case.
        """
        labels = _site_labels(sites, len(x))
        out = np.asarray(x, dtype=np.float32).copy()
        for site in np.unique(labels):
            rows = labels == site
            n = int(rows.sum())
            if site in self.sites:
                m_s, s_s = self.sites[site]
            elif site and n >= MIN_SITE_CASES:
                m_s, s_s = present_mean_sd(x[rows])
                log.info("site %s unseen in training: location/scale from its %d case(s)", site, n)
            else:
                what = f"site {site} unseen in training has {n} case(s)" if site else "no site"
                log.warning("%s: %d case(s) left unmapped (pooled training scale)", what, n)
                continue
            scale = np.divide(self.sd, s_s, out=np.ones_like(self.sd), where=s_s > 0)
            out[rows] = (x[rows] - m_s) * scale + self.mean
        return out

    def to_dict(self) -> dict:
        """Plain lists, for the head file."""
        return {
            "mean": self.mean.tolist(),
            "sd": self.sd.tolist(),
            "sites": {s: [m.tolist(), d.tolist()] for s, (m, d) in self.sites.items()},
        }

    @classmethod
    def from_dict(cls, data: dict) -> SiteMapping:
        """Inverse of :meth:`to_dict`."""
        sites = {s: (np.asarray(m), np.asarray(d)) for s, (m, d) in data["sites"].items()}
        return cls(np.asarray(data["mean"]), np.asarray(data["sd"]), sites)


def _site_labels(sites: Sequence[str], n: int) -> np.ndarray:
    labels = np.asarray(["" if s is None or str(s) == "nan" else str(s) for s in sites])
    if len(labels) != n:
        msg = f"{len(labels)} site label(s) for {n} case(s)"
        raise SegmentationError(msg)
    return labels


def fit_head_inputs(
    x: np.ndarray,
    sites: Sequence[str],
    *,
    harmonize: bool,
    statistics: tuple[int, int] | None = None,
    descriptor: bool = True,
    reference: int | None = None,
) -> tuple[SiteMapping | None, StatisticsScaler | None, np.ndarray]:
    """Fit what stands between training descriptors and the head; return it and the head's input.

    Args:
        x: Training cases x (descriptor, then the raw lesion statistics when ``statistics``).
        sites: Site of each case (read with ``harmonize``).
        harmonize: Fit a :class:`SiteMapping` of the columns the head reads, before the
            statistics' z-scores (the descriptor part when it reads it, then the raw statistics).
        statistics: ``(lesion label, number of statistics)`` of the last columns of ``x``
            (:mod:`~oncoflow.segmentation.lesion_statistics`), or ``None``.
        descriptor: The head reads the descriptor part (``False``: the statistics alone).
        reference: The label the statistics were read against (stored in the scaler), or
            ``None``.

    Raises:
        SegmentationError: Neither the descriptor nor statistics.
    """
    if not descriptor and statistics is None:
        msg = "the refit head reads neither the descriptor nor the lesion statistics"
        raise SegmentationError(msg)
    n = 0 if statistics is None else statistics[1]
    read = _read_columns(x, n, descriptor)
    mapping = SiteMapping.fit(read, sites) if harmonize else None
    if mapping is not None:
        read = mapping.transform(read, sites)
    scaler = (
        None
        if statistics is None
        else StatisticsScaler.fit(read[:, read.shape[1] - n :], statistics[0], reference)
    )
    return mapping, scaler, head_inputs(x, sites, mapping, scaler, descriptor=descriptor)


def _read_columns(x: np.ndarray, n_statistics: int, descriptor: bool) -> np.ndarray:
    """The raw columns a head reads: the descriptor part (when it does), then the statistics."""
    return x if descriptor else x[:, x.shape[1] - n_statistics :]


def head_inputs(
    x: np.ndarray,
    sites: Sequence[str] | None,
    mapping: SiteMapping | None,
    scaler: StatisticsScaler | None,
    *,
    descriptor: bool = True,
) -> np.ndarray:
    """The head's input (float32): its columns mapped by site, the statistics as z-scores.

    The mapping covers the leading columns of what the head reads that it was fitted on (a head
    file from before the statistics were mapped holds a mapping of the descriptor part alone).

    Args:
        x: Cases x (descriptor, then the raw statistics when ``scaler``).
        sites: Site of each case (read with ``mapping``).
        mapping: Site mapping, or ``None``.
        scaler: Scaler of the statistics, or ``None``.
        descriptor: Keep the descriptor part (``False``: the z-scored statistics alone).

    Raises:
        SegmentationError: A mapping and no sites.
    """
    n = 0 if scaler is None else len(scaler.mean)
    read = np.asarray(_read_columns(x, n, descriptor), dtype=np.float32)
    if mapping is not None:
        if sites is None:
            msg = "the refit head maps its inputs by site, and no site was given"
            raise SegmentationError(msg)
        width = len(mapping.mean)
        read = np.concatenate([mapping.transform(read[:, :width], sites), read[:, width:]], axis=1)
    if scaler is None:
        return read
    stats = scaler.transform(read[:, read.shape[1] - n :])
    return np.concatenate([read[:, : read.shape[1] - n], stats], axis=1).astype(np.float32)


@dataclass
class RefitHead:
    """A stored refit head (eval mode), its classes, site mapping and statistics scaler, if any.

    ``descriptor`` is ``False`` for a head that reads the statistics alone.
    """

    head: ClassificationHead
    classes: list[str]
    mapping: SiteMapping | None = None
    statistics: StatisticsScaler | None = None
    descriptor: bool = True

    def inputs(self, x: np.ndarray, sites: Sequence[str] | None = None) -> np.ndarray:
        """The head's input of descriptors ``x`` (:func:`head_inputs`)."""
        return head_inputs(x, sites, self.mapping, self.statistics, descriptor=self.descriptor)


def save_refit_head(
    path: Path,
    head: ClassificationHead,
    classes: Sequence[str],
    *,
    training_cases: Sequence[str],
    steps: int,
    mapping: SiteMapping | None = None,
    statistics: StatisticsScaler | None = None,
    descriptor: bool = True,
) -> None:
    """Write a refit head: weights, widths, classes, its training cases, mapping and scaler."""
    linear = head.mlp[0]
    payload = {
        "state_dict": head.state_dict(),
        "in_features": int(linear.in_features),
        "hidden": int(linear.out_features),
        "dropout": float(head.mlp[2].p),
        "normalized": int(head.normalized),
        "descriptor": bool(descriptor),
        "classes": list(classes),
        "training_cases": list(training_cases),
        "steps": int(steps),
        "site_mapping": None if mapping is None else mapping.to_dict(),
        "statistics": None if statistics is None else statistics.to_dict(),
    }
    torch.save(payload, path)


def load_refit_head(path: Path) -> RefitHead:
    """A stored refit head (eval mode), its class names, site mapping and statistics scaler.

    Raises:
        SegmentationError: No such file.
    """
    if not Path(path).is_file():
        msg = f"{path}: no refit head (train it with the nnunet_refit_head rule)"
        raise SegmentationError(msg)
    payload = torch.load(path, map_location="cpu", weights_only=False)
    head = ClassificationHead(
        payload["in_features"],
        len(payload["classes"]),
        payload["hidden"],
        payload["dropout"],
        normalized=payload.get("normalized"),
    )
    head.load_state_dict(payload["state_dict"])
    mapping, statistics = payload.get("site_mapping"), payload.get("statistics")
    return RefitHead(
        head.eval(),
        list(payload["classes"]),
        None if mapping is None else SiteMapping.from_dict(mapping),
        None if statistics is None else StatisticsScaler.from_dict(statistics),
        bool(payload.get("descriptor", True)),
    )
