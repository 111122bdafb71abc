"""One entry point for every ``predictions.csv``: the kind of model is read from its columns.

* survival: ``time, event, risk`` -> :func:`~oncoflow.evaluate.survival.evaluate_survival`;
* binary classification: ``y_true, y_score`` -> :func:`~oncoflow.evaluate.binary.evaluate_binary`;
* multi-class: ``y_true`` and ``y_score_<class>`` per class ->
  :func:`~oncoflow.evaluate.multiclass.evaluate_multiclass`;
* multitask: targets of different kinds in one table (e.g. MM-DLS: histology, stage, DFS, OS);
  each kind's rows are scored by their evaluator (columns empty for those rows dropped), the
  result is ``{"kind": "multitask", "tasks": {kind: result}, "models": {...}}`` with ``models``
  merged over the tasks.

A new cohort (``split = "apply"``) is scored by the same function with ``test_splits =
("apply",)``: :func:`oncoflow.evaluate.applied.evaluate_applied`.

Negative-control tables (a ``permutation`` column, several runs per patient) are scored run by
run inside every bootstrap resample and the metrics averaged, by every evaluator alike
(:func:`~oncoflow.metrics.bootstrap.run_mean`): the CI is that of the mean over runs.

:func:`compare_models` tests models of one study against each other on the same test patients:
the paired bootstrap of the C-index difference for survival models, DeLong's test for AUCs.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from oncoflow.errors import ModelError
from oncoflow.evaluate.binary import evaluate_binary
from oncoflow.evaluate.compare import paired_bootstrap
from oncoflow.evaluate.multiclass import SCORE_PREFIX, class_columns, evaluate_multiclass
from oncoflow.evaluate.survival import DEFAULT_HORIZONS, TEST_SPLITS, evaluate_survival
from oncoflow.formats import is_baseline
from oncoflow.metrics.classification import auc, delong_test, macro_auc
from oncoflow.metrics.survival import concordance_index

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ("survival", "binary", "multiclass")


def prediction_kind(columns: Sequence[str]) -> str:
    """``survival``, ``binary`` or ``multiclass`` from the columns of a predictions table.

    Raises:
        ModelError: Neither set of contract columns is present.
    """
    names = set(columns)
    if {"time", "event", "risk"} <= names:
        return "survival"
    if {"y_true", "y_score"} <= names:
        return "binary"
    if "y_true" in names and len(class_columns(list(columns))) >= 2:
        return "multiclass"
    msg = (
        "predictions have neither survival columns (time, event, risk) nor classification "
        f"columns (y_true and y_score, or y_score_<class> per class); columns: "
        f"{', '.join(sorted(names))}"
    )
    raise ModelError(msg)


def target_kinds(predictions: pd.DataFrame) -> dict[str, str]:
    """Kind of each target, read from the columns that hold values in that target's rows."""
    return {
        str(target): prediction_kind(list(rows.dropna(axis=1, how="all").columns))
        for target, rows in predictions.groupby("target", sort=True)
    }


def task_tables(predictions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Rows of each kind (their empty columns dropped); one entry when the table has one kind."""
    kinds = target_kinds(predictions) if "target" in predictions.columns else {}
    if len(set(kinds.values())) <= 1:
        return {kinds.popitem()[1] if kinds else prediction_kind(predictions.columns): predictions}
    out = {}
    for kind in sorted(set(kinds.values())):
        rows = predictions[predictions["target"].astype(str).map(kinds) == kind]
        rows = rows.dropna(axis=1, how="all").infer_objects()
        if kind == "binary":  # y_true shares a text column with the class names of other tasks
            rows = rows.assign(y_true=pd.to_numeric(rows["y_true"], errors="raise"))
        out[kind] = rows
    return out


def evaluate_predictions(
    predictions: pd.DataFrame,
    *,
    horizons: Sequence[float] = DEFAULT_HORIZONS,
    threshold: float | str = "youden",
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    test_splits: Sequence[str] = TEST_SPLITS,
) -> dict[str, Any]:
    """Metrics of a predictions table of any kind (module docstring), with bootstrap CIs.

    Args:
        predictions: Rows of the ``predictions.csv`` contract.
        horizons: Survival horizons (days).
        threshold: Classification threshold: ``"youden"`` (validation rows) or a number.
        n_boot: Bootstrap replicates.
        seed: Bootstrap seed.
        alpha: 1 - confidence level.
        test_splits: The ``fold == "final"`` splits scored as test splits, each alone and
            pooled as ``test`` (``("apply",)`` for a new cohort: :mod:`oncoflow.evaluate.applied`).

    Returns:
        The JSON-ready result of the kind's evaluator, with ``"kind"`` set.
    """
    tasks = task_tables(predictions)
    options = {"horizons": horizons, "threshold": threshold, "n_boot": n_boot, "seed": seed}
    if len(tasks) > 1:
        results = {
            k: evaluate_predictions(rows, alpha=alpha, test_splits=test_splits, **options)
            for k, rows in tasks.items()
        }
        return multitask_result(results, n_boot=n_boot, alpha=alpha)
    kind = next(iter(tasks))
    boot = {"n_boot": n_boot, "seed": seed, "alpha": alpha, "test_splits": tuple(test_splits)}
    if kind == "survival":
        return evaluate_survival(predictions, horizons=horizons, **boot)
    if kind == "multiclass":
        return evaluate_multiclass(predictions, **boot)
    return {"kind": kind, **evaluate_binary(predictions, threshold=threshold, **boot)}


def multitask_result(
    results: Mapping[str, dict[str, Any]], *, n_boot: int, alpha: float
) -> dict[str, Any]:
    """One result of several kinds' results: ``tasks`` per kind, ``models`` merged over them."""
    models: dict[str, dict[str, Any]] = {}
    for result in results.values():
        for model, targets in result.get("models", {}).items():
            models.setdefault(model, {}).update(targets)
    return {
        "kind": "multitask",
        "n_boot": int(n_boot),
        "alpha": float(alpha),
        "tasks": dict(results),
        "models": models,
    }


def _class_arrays(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Class index per row and the (rows, classes) probabilities of a multi-class table."""
    columns = class_columns(list(rows.columns))
    index = {column.removeprefix(SCORE_PREFIX): i for i, column in enumerate(columns)}
    return rows["y_true"].astype(str).map(index).to_numpy(int), rows[columns].to_numpy(float)


def ranking_score(rows: pd.DataFrame, kind: str) -> float:
    """The ranking metric of ``kind`` over ``rows``: Harrell's C, AUC or macro AUC.

    Args:
        rows: Prediction rows of one kind (``time, event, risk``; ``y_true, y_score`` with 0/1
            labels; or ``y_true`` and ``y_score_<class>``).
        kind: ``survival``, ``binary`` or ``multiclass`` (:func:`prediction_kind`).

    Raises:
        ModelError: The rows cannot be scored (one class only, no comparable pair).
    """
    if kind == "survival":
        return concordance_index(rows["time"], rows["event"], rows["risk"])
    if kind == "multiclass":
        return macro_auc(*_class_arrays(rows))
    return auc(pd.to_numeric(rows["y_true"]), rows["y_score"])


def _validation_score(rows: pd.DataFrame, kind: str) -> float:
    """Mean per-fold validation score (C-index or AUC): chooses the reference model."""
    scores = []
    for _, part in rows[rows["split"] == "validation"].groupby("fold"):
        try:
            scores.append(ranking_score(part, kind))
        except ModelError:
            continue
    return float(np.mean(scores)) if scores else float("-inf")


def _pair_test(
    ta: pd.DataFrame,
    tb: pd.DataFrame,
    kind: str,
    *,
    n_boot: int,
    seed: int,
    alpha: float,
    label: tuple[Any, str, str],
) -> dict[str, Any]:
    """Paired test of two models on the same test patients (rows of ``ta`` and ``tb`` aligned).

    Survival: paired bootstrap of the Harrell C difference; multi-class: paired bootstrap of the
    macro AUC difference (both with a percentile CI); binary: DeLong's test of the AUC
    difference (``z``, and the Wald interval ``estimate +- Phi^-1(1 - alpha/2) * se``),
    ``not_estimable`` when it cannot be computed (logged). The estimate is always
    ``score(a) - score(b)`` (unitless).

    Args:
        ta: Final-fold predictions of model ``a``, indexed by patient.
        tb: Same patients, model ``b``.
        kind: ``survival``, ``multiclass`` or ``binary``.
        n_boot: Bootstrap replicates.
        seed: Bootstrap seed.
        alpha: 1 - confidence level.
        label: ``(target, a, b)`` for the log line.

    Returns:
        The test fields of a comparison entry (``test``, ``estimate``, ``p_value``...).
    """
    fields: dict[str, Any] = {}
    if kind == "survival":
        diff = paired_bootstrap(
            concordance_index,
            (ta["time"].to_numpy(float), ta["event"].to_numpy(int)),
            ta["risk"].to_numpy(float),
            tb["risk"].to_numpy(float),
            n=n_boot,
            seed=seed,
            alpha=alpha,
        )
        fields |= {
            "test": "paired bootstrap of Harrell C difference",
            "estimate": diff.estimate,
            "ci_low": diff.low,
            "ci_high": diff.high,
            "p_value": diff.p_value,
        }
    elif kind == "multiclass":
        y, scores_a = _class_arrays(ta)
        diff = paired_bootstrap(
            macro_auc, (y,), scores_a, _class_arrays(tb)[1], n=n_boot, seed=seed,
            alpha=alpha,
        )  # fmt: skip
        fields |= {
            "test": "paired bootstrap of macro AUC difference",
            "estimate": diff.estimate,
            "ci_low": diff.low,
            "ci_high": diff.high,
            "p_value": diff.p_value,
        }
    else:
        fields["test"] = "DeLong AUC difference"
        try:
            # y_true may share a column with the class names of another task (read as text)
            labels = pd.to_numeric(ta["y_true"], errors="raise").astype(int)
            result = delong_test(labels, ta["y_score"], tb["y_score"])
        except ModelError as exc:  # too few positives or negatives among the test patients
            log.warning("%s: %s vs %s not compared: %s", *label, exc)
            fields |= {"estimate": None, "p_value": None, "not_estimable": str(exc)}
        else:
            from scipy import stats  # here: scipy.stats costs ~1 s at import

            half = float(stats.norm.ppf(1.0 - alpha / 2.0)) * result.se
            estimate = result.auc_a - result.auc_b
            fields |= {
                "estimate": estimate,
                "ci_low": estimate - half,
                "ci_high": estimate + half,
                "z": result.z,
                "p_value": result.p_value,
            }
    return fields


def _baseline_pairs(by_model: Mapping[str, pd.DataFrame]) -> list[tuple[str, str, str]]:
    """Every model against every baseline (``a`` = the model); baselines against each other.

    Baseline names sort by their input blocks, so of two baselines the later one has the larger
    input set (``baseline_clinical_size`` after ``baseline_clinical``) and is ``a``.
    """
    baselines = sorted(m for m in by_model if is_baseline(m))
    models = sorted(m for m in by_model if not is_baseline(m))
    out = [(m, b, "baseline") for m in models for b in baselines]
    out += [(b2, b1, "other baseline") for b1, b2 in itertools.combinations(baselines, 2)]
    return out


def _test_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """A model's test rows, indexed by patient (and time point for per-time-point targets).

    A target is per time point when a patient has several test rows; a table that names the one
    time point of each patient (the nnU-Net's cases) pairs with tables that do not.
    """
    test = rows[rows["fold"] == "final"]
    per_timepoint = test["patient_id"].duplicated().any()
    if per_timepoint and "timepoint" in test.columns and test["timepoint"].notna().any():
        keys = test["patient_id"] + "@" + test["timepoint"].astype("Int64").astype(str)
        return test.set_index(keys.rename("key"))
    return test.set_index("patient_id")


def compare_models(
    predictions: Mapping[str, pd.DataFrame],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Paired tests between models of one study on the test patients they share.

    Models are ``<label>/<model>`` (``label`` = key of ``predictions``, e.g. the feature
    variant raw / combat; ``model`` = the ``model`` column). Pairs: within a label, every model
    against the one with the best mean validation score (chosen without test data); across
    labels, the same model (``reference`` "same model, other features"; "other variant" when
    neither table has a ``model`` column, e.g. the rungs of an ablation ladder); and every model
    against every tabular baseline (labels ``baseline_*``; ``reference`` "baseline", ``a`` =
    the model), the baselines against each other ("other baseline"). Per-time-point targets
    are paired on (patient, time point).
    Negative-control tables (with a ``permutation`` column, several runs per patient) are left
    out: the report shows them next to the real models instead.

    Returns:
        ``{"comparisons": [{"target", "a", "b", "reference", "test", "estimate", "p_value",
        "n_patients", ...}]}`` where ``test`` is ``paired bootstrap of Harrell C difference``
        (with ``ci_low``, ``ci_high``), ``paired bootstrap of macro AUC difference``
        (multi-class) or ``DeLong AUC difference`` (with ``z``) and
        ``estimate = score(a) - score(b)``.
    """
    frames = []
    single = set()  # labels whose table is one model (deep variants: the label is the model)
    for label, frame in predictions.items():
        if "permutation" in frame.columns:
            continue
        frame = frame.copy()
        if "model" not in frame.columns:
            single.add(str(label))
        model = frame["model"] if "model" in frame.columns else "model"
        frame["_model"] = f"{label}/" + pd.Series(model, index=frame.index).astype(str)
        frame["patient_id"] = frame["patient_id"].astype(str)
        frame["fold"] = frame["fold"].astype(str)
        frames.append(frame)
    out: list[dict[str, Any]] = []
    if not frames:
        return {"comparisons": out}
    rows = pd.concat(frames, ignore_index=True)
    kinds = target_kinds(rows)
    for target, group in rows.groupby("target", sort=True):
        kind = kinds[str(target)]
        group = group.dropna(axis=1, how="all")
        by_model = dict(list(group.groupby("_model", sort=True)))
        pairs: list[tuple[str, str, str]] = []
        for label in sorted({name.split("/", 1)[0] for name in by_model}):
            members = [m for m in by_model if m.startswith(f"{label}/")]
            best = max(members, key=lambda m: _validation_score(by_model[m], kind))
            pairs += [(m, best, "best validation model") for m in members if m != best]
        pairs += _baseline_pairs(by_model)
        for a, b in itertools.combinations(sorted(by_model), 2):
            if is_baseline(a) or is_baseline(b):
                continue
            if a.split("/", 1)[1] == b.split("/", 1)[1]:
                both = {a.split("/", 1)[0], b.split("/", 1)[0]} <= single
                pairs.append((a, b, "other variant" if both else "same model, other features"))
        for a, b, why in pairs:
            test_a, test_b = _test_rows(by_model[a]), _test_rows(by_model[b])
            common = sorted(set(test_a.index) & set(test_b.index))
            if len(common) < 3:
                continue
            ta, tb = test_a.loc[common], test_b.loc[common]
            entry = {"target": str(target), "a": a, "b": b, "reference": why}
            entry |= _pair_test(
                ta, tb, kind, n_boot=n_boot, seed=seed, alpha=alpha, label=(target, a, b)
            )
            entry["n_patients"] = len({str(key).split("@")[0] for key in common})
            entry["n_rows"] = len(common)
            out.append(entry)
    return {"comparisons": out}
