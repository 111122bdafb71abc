"""Patient splits and folds: one patient = one split; fitting sees training patients only.

A cohort may bring ``splits.csv`` (``patient_id, split``). Without it, :func:`make_splits` holds
out the patients of the external sites as ``external_test`` and a stratified fraction of the
others as ``internal_test``. Inside the ``train`` split, :func:`make_folds` draws the folds a study
fits on: ``repeats`` stratified fit/holdout partitions (or ``k`` cross-validation folds) plus a
``final`` fold that fits on every training patient and applies to the test splits.
In every fold ``fit`` and ``apply`` are disjoint. Folds are
always over patients, so all timepoints, lesions and slides of a patient fall on the same side.

The folds are written to and read from ``folds.json`` by :func:`oncoflow.formats.write_folds` and
:func:`oncoflow.formats.read_folds` (layout: ``docs/formats.md``, ``schemas/folds.schema.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import CohortError

SPLITS: tuple[str, ...] = ("train", "internal_test", "external_test")
"""The three splits of a cohort (schemas/splits.schema.yaml)."""
TEST_SPLITS: tuple[str, ...] = SPLITS[1:]
"""The held-out splits: scored by the fold ensemble, never used to choose anything."""
APPLY_SPLIT = "apply"
"""``split`` of the predictions of a new cohort scored by frozen models (the ``apply`` target)."""


def _strata(patients: Sequence[str], strata: Mapping[str, Any] | None) -> np.ndarray:
    """Stratum label per patient; missing or absent strata form their own stratum."""
    if strata is None:
        return np.zeros(len(patients), dtype=object)
    return np.array([str(strata.get(p, "missing")) for p in patients], dtype=object)


def _stratified_take(
    patients: Sequence[str], labels: np.ndarray, fraction: float, rng: np.random.Generator
) -> set[str]:
    """Take ``round(fraction * n_s)`` patients of each stratum ``s`` (>= 1 when n_s > 1)."""
    taken: set[str] = set()
    for label in sorted(set(labels)):
        members = [p for p, lab in zip(patients, labels, strict=True) if lab == label]
        members = [members[i] for i in rng.permutation(len(members))]
        n = round(fraction * len(members))
        if len(members) > 1:
            n = min(max(n, 1), len(members) - 1)
        taken.update(members[:n])
    return taken


def make_splits(
    patient_sites: Mapping[str, str],
    *,
    external_sites: Sequence[str] = (),
    strata: Mapping[str, Any] | None = None,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> pd.DataFrame:
    """Assign every patient to exactly one of train / internal_test / external_test.

    Args:
        patient_sites: Patient id -> site (one site per patient).
        external_sites: Sites whose patients form the external test split.
        strata: Patient id -> label to stratify the internal test split on (e.g. the target).
        test_fraction: Fraction of each non-external stratum held out as internal_test.
        seed: Seed of the draw.

    Returns:
        DataFrame ``patient_id, split`` sorted by patient id.
    """
    if not 0.0 < test_fraction < 1.0:
        msg = f"test_fraction must be in (0, 1), got {test_fraction}"
        raise ValueError(msg)
    patients = sorted(patient_sites)
    external = [p for p in patients if patient_sites[p] in set(external_sites)]
    internal = [p for p in patients if p not in set(external)]
    rng = np.random.default_rng(seed)
    held = _stratified_take(internal, _strata(internal, strata), test_fraction, rng)
    split = dict.fromkeys(external, "external_test")
    split.update({p: "internal_test" if p in held else "train" for p in internal})
    return pd.DataFrame({"patient_id": patients, "split": [split[p] for p in patients]})


def _site_folds(
    train: list[str], sites: Mapping[str, str], k: int | None
) -> dict[str, dict[str, list[str]]]:
    """Leave-one-site-out folds over the training patients (:func:`make_folds`)."""
    unknown = [p for p in train if p not in sites]
    if unknown:
        msg = f"training patient(s) without a site: {', '.join(unknown[:5])}"
        raise CohortError(msg)
    names = sorted({str(sites[p]) for p in train})
    if len(names) < 2:
        msg = f"leave-one-site-out folds need two training sites, found {', '.join(names)}"
        raise CohortError(msg)
    if k is not None and k != len(names):
        msg = (
            f"folds.k is {k} but the training patients come from {len(names)} sites "
            f"({', '.join(names)}): with folds.by site, k must be the number of training sites"
        )
        raise CohortError(msg)
    folds = {}
    for fold, name in enumerate(names):
        apply = sorted(p for p in train if str(sites[p]) == name)
        folds[str(fold)] = {"fit": sorted(set(train) - set(apply)), "apply": apply}
    return folds


def make_folds(
    splits: pd.DataFrame,
    *,
    strata: Mapping[str, Any] | None = None,
    repeats: int = 5,
    holdout: float = 0.3,
    k: int | None = None,
    seed: int = 0,
    sites: Mapping[str, str] | None = None,
) -> dict[str, dict[str, list[str]]]:
    """Folds over the training patients, plus the ``final`` fold (all train -> the test splits).

    With ``k`` set, the folds are a stratified k-fold partition of the training patients (each
    patient is in exactly one ``apply`` set); otherwise ``repeats`` independent stratified
    fit/holdout draws with ``holdout`` of each stratum held out. With ``sites`` the folds leave
    one site out: fold ``i`` validates on the training patients of the i-th training site (in
    name order) and fits on the other sites', so validation measures transfer to a site the
    model has not seen (the question an external test asks, answered on training patients).

    Args:
        splits: ``patient_id, split`` (each patient once).
        strata: Patient id -> label to stratify on (e.g. the event indicator).
        repeats: Number of fit/holdout draws (ignored when ``k`` is set).
        holdout: Held-out fraction of each stratum per draw.
        k: Number of cross-validation folds, or ``None`` for repeated hold-out.
        seed: Seed of the draws.
        sites: Patient id -> site for leave-one-site-out folds (``k``, when given, must equal
            the number of training sites; ``repeats`` and ``holdout`` are not used).

    Returns:
        ``{"0": {"fit": [...], "apply": [...]}, ..., "final": {"fit": train, "apply": test}}``,
        patient ids sorted within each list.

    Raises:
        CohortError: A patient appears twice in ``splits``, there are too few training patients,
            a training patient without a site, fewer than two training sites or ``k`` another
            number than the training sites.
    """
    duplicated = splits["patient_id"][splits["patient_id"].duplicated()].tolist()
    if duplicated:
        msg = f"patients in more than one split: {', '.join(map(str, sorted(duplicated)))}"
        raise CohortError(msg)
    train = sorted(splits.loc[splits["split"] == "train", "patient_id"].astype(str))
    everyone = sorted(splits["patient_id"].astype(str))
    n_folds = k if k is not None else repeats
    if len(train) < max(2 * (k or 2), 4):
        msg = f"only {len(train)} training patients: too few for {n_folds} folds"
        raise CohortError(msg)
    labels = _strata(train, strata)
    rng = np.random.default_rng(seed)
    folds: dict[str, dict[str, list[str]]] = {}
    if sites is not None:
        folds = _site_folds(train, sites, k)
    elif k is not None:
        order: list[str] = []
        for label in sorted(set(labels)):
            members = [p for p, lab in zip(train, labels, strict=True) if lab == label]
            order += [members[i] for i in rng.permutation(len(members))]
        assignment = {p: i % k for i, p in enumerate(order)}
        for fold in range(k):
            apply = sorted(p for p in train if assignment[p] == fold)
            folds[str(fold)] = {"fit": sorted(set(train) - set(apply)), "apply": apply}
    else:
        for fold in range(repeats):
            apply = sorted(_stratified_take(train, labels, holdout, rng))
            folds[str(fold)] = {"fit": sorted(set(train) - set(apply)), "apply": apply}
    folds["final"] = {"fit": train, "apply": sorted(set(everyone) - set(train))}
    return folds
