"""benchmarks/validation_ablation.py: the overlay, the rerun guard and the validation-only read."""

from __future__ import annotations

import json

import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def ablation():
    return load_script("validation_ablation", folder="benchmarks")


def test_a_dotted_key_becomes_an_overlay_under_the_study(ablation):
    key, value, overlay = ablation.override("liver_response", "train.lesion_means=false")
    assert (key, value) == ("train.lesion_means", False)
    assert overlay == {"studies": {"liver_response": {"train": {"lesion_means": False}}}}
    assert ablation.override("s", "train.epochs=40")[1] == 40
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        ablation.override("s", "train.epochs")


def test_several_assignments_are_one_candidate_with_one_overlay(ablation):
    key, value, overlay = ablation.overrides(
        "liver_response", ["train.lesion_reference=true", "train.lesion_erode=0"]
    )
    assert key == "train.lesion_reference+train.lesion_erode"
    assert value == {"train.lesion_reference": True, "train.lesion_erode": 0}
    train = {"lesion_reference": True, "lesion_erode": 0}
    assert overlay == {"studies": {"liver_response": {"train": train}}}
    assert ablation.overrides("s", ["train.epochs=40"])[:2] == ("train.epochs", 40)


def test_the_dry_run_table_is_read_per_rule(ablation):
    table = """Job stats:
job              count
-------------  -------
train_model          5
collect_model        1
evaluate             1
total                7
"""
    counts = ablation.rule_counts(table)
    assert counts == {"train_model": 5, "collect_model": 1, "evaluate": 1}
    assert not set(counts) - ablation.ALLOWED_RULES
    assert set(ablation.rule_counts(table + "convert_patient 3\n")) - ablation.ALLOWED_RULES


def test_the_command_forces_the_folds_and_targets_the_metrics(ablation, tmp_path):
    command = ablation.snakemake_command(
        tmp_path, "liver_response", ["relation_net"], 2, "full", "-n"
    )
    assert command[command.index("--forcerun") + 1] == "train_model"
    assert command.index("-n") < command.index("--")
    assert command[-1] == "results/liver_response/evaluate/relation_net/metrics.json"
    assert str(tmp_path / "ablation.yaml") in command


def test_only_validation_scores_are_read(ablation, tmp_path):
    folder = tmp_path / "results" / "liver_response" / "evaluate" / "relation_net"
    folder.mkdir(parents=True)
    entry = {
        "validation": {
            "pooled": {"auc": {"value": 0.8}},
            "per_fold": {"0": {"auc": {"value": 0.7}}, "1": {"auc": {"value": 0.9}}},
        },
        "test": {"auc": {"value": 0.1}},
    }
    metrics = {"kind": "binary", "models": {"model": {"response": entry}}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    scores = ablation.validation_scores(tmp_path, "liver_response", "relation_net")
    assert scores == {
        "response": {"metric": "auc", "pooled": 0.8, "per_fold": {"0": 0.7, "1": 0.9}}
    }


def test_the_wall_time_of_an_earlier_call_is_read_from_its_log(ablation, tmp_path):
    log = tmp_path / "ablation.log"
    log.write_text("Building DAG of jobs...\nElapsed time: 0:10:37.477605\n")
    assert ablation.logged_wall(log) == pytest.approx(637.477605)
    log.write_text("Building DAG of jobs...\n")
    assert ablation.logged_wall(log) is None
