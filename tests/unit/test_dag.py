"""oncoflow.dag: every results path written once, filled with checked wildcards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oncoflow import dag

REPO = Path(__file__).resolve().parents[2]
PATTERNS = {k: v for k, v in vars(dag).items() if k.isupper() and isinstance(v, str)}


def test_fill_replaces_every_wildcard_and_refuses_missing_or_unknown_ones():
    assert dag.wildcards(dag.FOLD_MODEL) == ["study", "variant", "fold"]
    path = dag.fill(dag.FOLD_MODEL, study="s", variant="v", fold=0)
    assert path == "results/s/train/v/fold_0/model.pt"
    with pytest.raises(KeyError, match=r"missing wildcard\(s\) \['fold'\]"):
        dag.fill(dag.FOLD_MODEL, study="s", variant="v")
    with pytest.raises(KeyError, match=r"unknown \['patient'\]"):
        dag.fill(dag.FOLDS, study="s", patient="P1")
    # a wildcard filled with itself stays a wildcard (rule outputs built from a pattern)
    assert dag.fill(dag.DICE, study="{study}", variant="nnunet") == dag.DICE.replace(
        "{variant}", "nnunet"
    )


def test_patterns_live_under_results_and_use_the_workflow_wildcards():
    known = {"study", "patient", "stage", "batch", "tp", "stem", "label", "source", "fold"}
    known |= {"variant", "dataset", "model", "subset", "name"}
    for name, pattern in PATTERNS.items():
        if name in ("RESULTS", "ROI_ITEM"):
            continue
        assert pattern.startswith("results/"), name
        assert set(dag.wildcards(pattern)) <= known, name


def test_apply_paths_move_training_patterns_under_the_cohort_root():
    assert dag.under("results/apply/x", dag.CONVERTED) == "results/apply/x/converted/{patient}"
    assert (
        dag.applied(dag.APPLY_SUMMARY, "x")
        == "results/apply/x/{study}/predict/{variant}/apply.json"
    )
    assert dag.batch("convert") == "results/.batches/convert/{study}/{batch}"
    assert dag.relative("results/apply/x") == "apply/x"
    with pytest.raises(ValueError, match="not under results/"):
        dag.under("results/apply/x", "logs/x")


def test_a_run_names_its_rules_paths_and_logs():
    training, applied = dag.Run(), dag.Run("second")
    assert not training.applied
    assert applied.applied
    assert training.root == "results"
    assert applied.root == "results/apply/second"
    assert training.rule("convert_batch") == "convert_batch"
    assert applied.rule("convert_batch") == "apply_convert_batch"
    assert training.path(dag.QC_STUDY) == dag.QC_STUDY
    assert applied.path(dag.QC_STUDY) == "results/apply/second/qc/{study}/cohort_report.json"
    assert applied.path(dag.batch("convert")) == (
        "results/apply/second/.batches/convert/{study}/{batch}"
    )
    # an APPLY_* pattern gets the run's name instead of moving
    assert applied.path(dag.APPLY_PREDICTIONS) == (
        "results/apply/second/{study}/predict/{variant}/predictions.csv"
    )
    assert training.log("convert/{patient}.log") == "logs/convert/{patient}.log"
    assert applied.log("convert/{patient}.log") == "logs/apply/second/convert/{patient}.log"
    assert training.benchmark("report/index.tsv") == "logs/benchmarks/report/index.tsv"
    assert applied.benchmark("report/index.tsv") == (
        "logs/benchmarks/apply/second/report/index.tsv"
    )


def test_the_rules_write_no_results_path_by_hand():
    """Rule files and the DAG helpers take every results path from oncoflow.dag."""
    literal = re.compile(r"""["'](results/[^"']*)["']""")
    for path in sorted((REPO / "rules").glob("*.smk")):
        found = literal.findall(path.read_text())
        assert not found, f"{path.name}: {found}"
